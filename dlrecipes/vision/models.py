"""Image classifiers trained from scratch: the feature extractors `mlp`,
`lenet`, `vgg`, `resnet`, `alexnet`, `inception` and `densenet` (from
`dlrecipes.layers.ConvNormAct`, `ResidualBlock`, `InceptionBlock` and
`DenseBlock`), and batch norm that settles within a short run.

`features(x, model, ...)` maps an image tensor (already rescaled and
augmented) to a feature vector `(batch, features)`; a recipe adds its
classifier on top. Keras loads on the first call (`MODELS` is read while
flags parse).
"""

import math

from dlrecipes.lazy import dl_layers, keras

MODELS = ("mlp", "lenet", "vgg", "resnet", "alexnet", "inception",
          "densenet")

# AlexNet's widths (Krizhevsky et al. 2012): five convs, two dense layers.
# `features` scales them by `width / 96` (its first conv has `width`
# filters).
ALEXNET_CONVS = (96, 256, 384, 384, 256)
ALEXNET_DENSE = 4096
# From this input size on (pixels), the stems are the papers' ImageNet ones
# (AlexNet's 11x11 stride 4, GoogLeNet's and DenseNet's 7x7 stride 2 and a
# max pool); smaller images keep their resolution through the stem.
LARGE_IMAGE = 64
# Groups of `norm="group"`, reduced to a divisor of each channel count.
NORM_GROUPS = 32


def features(x, model, width=32, stages=2, depth=1, norm="batch",
             dropout=0.2, kernel_initializer="he_normal", activation="relu",
             drop_path=0.0, taps=None):
    """`x` (batch, height, width, channels) through feature extractor
    `model`, to `(batch, features)` with dropout at the end.

    - `mlp`: `depth + 1` dense layers of `4 * width` units, each with
      dropout;
    - `lenet`: LeCun's two 5x5 convolutions (6 and 16 filters, scaled by
      `width / 8`), max pooling, dense 120 and 84;
    - `vgg`: `stages` stages of `depth` `ConvNormAct` 3x3 convolutions,
      max pooling between stages, global average pooling;
    - `resnet`: a `ConvNormAct` stem, then `stages` stages of `depth`
      `ResidualBlock`s (the first of each later stage strided),
      global average pooling;
    - `alexnet`: AlexNet's five convolutions (11x11, 5x5, 3x3, 3x3, 3x3)
      and two dense layers, scaled (`alexnet_features`); ignores `stages`
      and `depth`;
    - `inception`: a stem, then `stages` stages of `depth`
      `InceptionBlock`s (`inception_features`);
    - `densenet`: a stem, then `stages` `DenseBlock`s joined by transition
      layers (`densenet_features`).

    In `vgg`, `resnet` and `inception` each stage after the first halves
    the resolution and doubles the width.

    `activation` is every hidden layer's (None: relu); `drop_path` (resnet
    only) is the stochastic-depth rate of the last residual block, the
    earlier ones' rising linearly from 0 with the block's index, as in timm
    (a single block gets `drop_path`). `taps` (inception only): a list
    that receives the features GoogLeNet's auxiliary classifiers read.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}. "
                         f"Received: model={model!r}")
    if drop_path and model != "resnet":
        raise ValueError("drop_path applies to model='resnet' only (its "
                         "residual blocks). Received: "
                         f"model={model!r}, drop_path={drop_path!r}")
    init = kernel_initializer
    act = activation or "relu"
    if model == "mlp":
        x = keras.layers.Flatten()(x)
        for _ in range(depth + 1):
            x = keras.layers.Dense(width * 4, activation=act,
                                   kernel_initializer=init)(x)
            x = keras.layers.Dropout(dropout)(x)
        return x
    if model == "lenet":
        x = keras.layers.Conv2D(6 * width // 8 or 6, 5, padding="same",
                                activation=act, kernel_initializer=init)(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(16 * width // 8 or 16, 5, padding="same",
                                activation=act, kernel_initializer=init)(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(120, activation=act,
                               kernel_initializer=init)(x)
        x = keras.layers.Dense(84, activation=act,
                               kernel_initializer=init)(x)
        return keras.layers.Dropout(dropout)(x)
    if model == "alexnet":
        return alexnet_features(x, width, norm, dropout, init, act)
    if model == "inception":
        return inception_features(x, width, stages, depth, norm, dropout,
                                  init, act, taps=taps)
    if model == "densenet":
        return densenet_features(x, width, stages, depth, norm, dropout,
                                 init, act)
    if model == "resnet":
        x = dl_layers.ConvNormAct(width, 3, norm=norm, activation=act,
                                  kernel_initializer=init, name="stem")(x)
    blocks = stages * depth
    for stage in range(stages):
        filters = width * 2 ** stage
        for i in range(depth):
            if model == "vgg":
                if stage > 0 and i == 0:
                    x = keras.layers.MaxPooling2D()(x)
                x = dl_layers.ConvNormAct(filters, 3, norm=norm,
                                          activation=act,
                                          kernel_initializer=init)(x)
            else:
                index = stage * depth + i
                rate = drop_path * (index / (blocks - 1) if blocks > 1
                                    else 1)
                x = dl_layers.ResidualBlock(
                    filters, strides=2 if stage > 0 and i == 0 else 1,
                    norm=norm, activation=act, drop_path=rate,
                    kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dropout(dropout)(x)


def _size(x):
    """The smaller known spatial size of `x`, or None when unknown."""
    sizes = [s for s in x.shape[1:3] if s is not None]
    return min(sizes) if len(sizes) == 2 else None


def _large(x):
    size = _size(x)
    return size is None or size >= LARGE_IMAGE


def _max_pool(x, pool_size=3):
    """A stride-2 max pooling ("same"), while the spatial size allows:
    nothing once the image is down to one pixel."""
    if _size(x) == 1:
        return x
    return keras.layers.MaxPooling2D(pool_size, strides=2, padding="same")(x)


def _groups(*channels):
    """Groups of `norm="group"` that divide every count of `channels`."""
    return math.gcd(NORM_GROUPS, *channels)


def alexnet_features(x, width, norm, dropout, init, act):
    """AlexNet (Krizhevsky et al. 2012) scaled to the input.

    What is kept: five convolutions of AlexNet's kernel sizes (11x11 or
    the stem below, 5x5, 3x3, 3x3, 3x3) and width ratios, overlapping 3x3
    stride-2 max pooling after convs 1, 2 and 5, then two dense layers with
    dropout. What is scaled: every width by `width / 96` (`width=96` is
    AlexNet's 96-256-384-384-256 convs and 4096-unit dense layers; the
    default 32 gives 32-85-128-128-85 and 1365); the stem is the paper's
    11x11 stride 4 only for images of `LARGE_IMAGE` (64) pixels or more,
    otherwise a stride-1 5x5 (32 px and more) or 3x3 one keeps the small
    image's resolution; "same" padding throughout, and a pooling is
    skipped once the image is down to one pixel (8x8 digits: 8, 4, 2, 1).
    Each conv is a `ConvNormAct`: `norm` (batch norm) replaces the local
    response normalization after convs 1 and 2, and is on every conv.
    `dropout` follows each dense layer (the paper's rate was 0.5).
    """
    filters = [max(1, round(f * width / 96)) for f in ALEXNET_CONVS]
    units = max(1, round(ALEXNET_DENSE * width / 96))
    size = _size(x)
    if _large(x):
        stem = dict(kernel_size=11, strides=4)
    else:
        stem = dict(kernel_size=5 if size >= 32 else 3, strides=1)
    for i, (f, kernel) in enumerate(zip(filters, (None, 5, 3, 3, 3))):
        kwargs = stem if i == 0 else dict(kernel_size=kernel)
        x = dl_layers.ConvNormAct(f, **kwargs, norm=norm, activation=act,
                                  norm_groups=_groups(f),
                                  kernel_initializer=init,
                                  name=f"conv{i + 1}")(x)
        if i in (0, 1, 4):
            x = _max_pool(x)
    x = keras.layers.Flatten()(x)
    for i in range(2):
        x = keras.layers.Dense(units, activation=act, kernel_initializer=init,
                               name=f"fc{i + 6}")(x)
        x = keras.layers.Dropout(dropout)(x)
    return x


def _stem(x, filters, norm, init, act, plain=False):
    """The stem of `inception` and `densenet`: the papers' 7x7 stride-2
    conv and 3x3 stride-2 max pool on large images; on small ones a 3x3
    conv (`plain`: without norm and activation, DenseNet's CIFAR stem,
    since its blocks normalize first)."""
    if _large(x):
        x = dl_layers.ConvNormAct(filters, 7, strides=2, norm=norm,
                                  activation=act,
                                  norm_groups=_groups(filters),
                                  kernel_initializer=init, name="stem")(x)
        return _max_pool(x)
    if plain:
        return keras.layers.Conv2D(filters, 3, padding="same",
                                   use_bias=False, kernel_initializer=init,
                                   name="stem")(x)
    return dl_layers.ConvNormAct(filters, 3, norm=norm, activation=act,
                                 norm_groups=_groups(filters),
                                 kernel_initializer=init, name="stem")(x)


def inception_features(x, width, stages, depth, norm, dropout, init, act,
                       taps=None):
    """GoogLeNet (Szegedy et al. 2014) scaled to the input: a stem
    (`width` filters; `_stem`), then `stages` stages of `depth`
    `InceptionBlock`s with 3x3 stride-2 max pooling between stages, global
    average pooling and dropout.

    Every block has inception (3a)'s proportions with its 64 1x1 filters
    replaced by `c = width * 2 ** stage`: 1x1 `c`, 3x3 reduce `3c/2`, 3x3
    `2c`, 5x5 reduce `c/4`, 5x5 `c/2`, pool projection `c/2` (`4c`
    channels out). With a list `taps`, the output of every stage but the
    last is appended to it: where GoogLeNet's auxiliary classifiers read
    (`auxiliary_head`).
    """
    x = _stem(x, width, norm, init, act)
    for stage in range(stages):
        if stage > 0:
            x = _max_pool(x)
        c = width * 2 ** stage
        filters = [max(1, round(c * r)) for r in (1, 1.5, 2, 0.25, 0.5, 0.5)]
        for _ in range(depth):
            x = dl_layers.InceptionBlock(
                *filters, norm=norm, activation=act,
                norm_groups=_groups(*filters), kernel_initializer=init)(x)
        if taps is not None and stage < stages - 1:
            taps.append(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dropout(dropout)(x)


def auxiliary_head(x, num_classes, width, norm, init, act, name):
    """GoogLeNet's auxiliary classifier scaled to the features `x`: 5x5
    average pooling with stride 3 (where the map is at least 5 pixels
    wide), a 1x1 `ConvNormAct` of `4 * width` filters (GoogLeNet: 128), a
    dense layer of `16 * width` units (1,024), dropout 0.7 and a float32
    softmax named `name`."""
    if min(x.shape[1:3]) >= 5:
        x = keras.layers.AveragePooling2D(5, strides=3)(x)
    x = dl_layers.ConvNormAct(4 * width, 1, norm=norm, activation=act,
                              norm_groups=_groups(4 * width),
                              kernel_initializer=init)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16 * width, activation=act,
                           kernel_initializer=init)(x)
    x = keras.layers.Dropout(0.7)(x)
    return keras.layers.Dense(num_classes, activation="softmax",
                              dtype="float32", name=name)(x)


def densenet_features(x, width, stages, depth, norm, dropout, init, act):
    """DenseNet (Huang et al. 2017) scaled to the input: a stem of `2k`
    filters (`_stem`), then `stages` `DenseBlock`s of `2 * depth + 2`
    layers each, growth rate `k = width // 2`, joined by transition layers
    (norm, activation, 1x1 conv to half the channels, 2x2 average pooling,
    skipped once the image is one pixel), then a final norm and
    activation, global average pooling and dropout.

    The blocks have no 1x1 bottleneck (DenseNet-C: compression, no B): the
    bottleneck's `4k` channels pay off when a layer's input is wider than
    that, and these short blocks' inputs are narrower (32 to 80 channels
    at the default width against 64); on the digits it doubled the
    training time (105 s against 70 s a run) for no gain that three seeds
    can show.
    """
    growth = max(1, width // 2)
    num_layers = 2 * depth + 2
    x = _stem(x, 2 * growth, norm, init, act, plain=True)
    for stage in range(stages):
        if stage > 0:
            x = dl_layers.normalization(
                norm, groups=_groups(x.shape[-1]))(x)
            x = keras.layers.Activation(act)(x)
            x = keras.layers.Conv2D(x.shape[-1] // 2, 1,  # compression 0.5
                                    use_bias=norm == "none",
                                    kernel_initializer=init)(x)
            if _size(x) != 1:
                x = keras.layers.AveragePooling2D(2, padding="same")(x)
        # The block normalizes its input plus k channels per layer, and
        # its bottlenecks' 4k.
        x = dl_layers.DenseBlock(num_layers, growth, bottleneck=False,
                                 norm=norm, activation=act,
                                 norm_groups=_groups(x.shape[-1], growth),
                                 kernel_initializer=init)(x)
    x = dl_layers.normalization(norm, groups=_groups(x.shape[-1]))(x)
    x = keras.layers.Activation(act)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dropout(dropout)(x)


def batch_norm_momentum(total_steps, residue=0.05, default=0.99):
    """The moving-average momentum of batch norm for a run of
    `total_steps` training steps.

    Keras' 0.99 needs about 300 steps to forget the initial statistics
    (mean 0, variance 1). A short run stops far earlier (84 images, 40
    epochs of 32: 120 steps, 0.99 ** 120 = 30% left) and the model is right
    in training and wrong in inference (measured on such a folder of
    shapes: 0.68 accuracy with batch statistics, 0.35 with the moving
    ones). Shorter runs get the momentum that leaves `residue` of the
    initial statistics at the end; longer runs keep `default`.
    """
    return min(default, residue ** (1 / max(1, total_steps)))


def set_batch_norm_momentum(model, momentum):
    """Set the momentum of every BatchNormalization layer in `model`,
    nested ones included (before compiling)."""
    from dlrecipes.training import sublayers

    for layer in sublayers.walk(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def settle_batch_norm(model, num_train, batch_size, epochs):
    """Give `model`'s batch norm the momentum of a run of `epochs` epochs
    of `num_train` examples (`batch_norm_momentum`); nothing when the
    number of examples is unknown (None)."""
    if num_train:
        steps = -(-num_train // batch_size) * epochs
        set_batch_norm_momentum(model, batch_norm_momentum(steps))
    return model
