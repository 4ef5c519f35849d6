"""Image classifiers trained from scratch: the feature extractors `mlp`,
`lenet`, `vgg` and `resnet` (from `dlrecipes.layers.ConvNormAct` and
`ResidualBlock`), and batch norm that settles within a short run.

`features(x, model, ...)` maps an image tensor (already rescaled and
augmented) to a feature vector `(batch, features)`; a recipe adds its
classifier on top. Keras loads on the first call (`MODELS` is read while
flags parse).
"""

from dlrecipes.lazy import dl_layers, keras

MODELS = ("mlp", "lenet", "vgg", "resnet")


def features(x, model, width=32, stages=2, depth=1, norm="batch",
             dropout=0.2, kernel_initializer="he_normal"):
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
      global average pooling.

    In `vgg` and `resnet` each stage after the first halves the resolution
    and doubles the width.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}. "
                         f"Received: model={model!r}")
    init = kernel_initializer
    if model == "mlp":
        x = keras.layers.Flatten()(x)
        for _ in range(depth + 1):
            x = keras.layers.Dense(width * 4, activation="relu",
                                   kernel_initializer=init)(x)
            x = keras.layers.Dropout(dropout)(x)
        return x
    if model == "lenet":
        x = keras.layers.Conv2D(6 * width // 8 or 6, 5, padding="same",
                                activation="relu", kernel_initializer=init)(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(16 * width // 8 or 16, 5, padding="same",
                                activation="relu", kernel_initializer=init)(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(120, activation="relu",
                               kernel_initializer=init)(x)
        x = keras.layers.Dense(84, activation="relu",
                               kernel_initializer=init)(x)
        return keras.layers.Dropout(dropout)(x)
    if model == "resnet":
        x = dl_layers.ConvNormAct(width, 3, norm=norm, kernel_initializer=init,
                                  name="stem")(x)
    for stage in range(stages):
        filters = width * 2 ** stage
        for i in range(depth):
            if model == "vgg":
                if stage > 0 and i == 0:
                    x = keras.layers.MaxPooling2D()(x)
                x = dl_layers.ConvNormAct(filters, 3, norm=norm,
                                          kernel_initializer=init)(x)
            else:
                x = dl_layers.ResidualBlock(
                    filters, strides=2 if stage > 0 and i == 0 else 1,
                    norm=norm, kernel_initializer=init)(x)
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
