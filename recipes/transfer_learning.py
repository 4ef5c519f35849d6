"""
Title: Transfer learning from ImageNet backbones or your own saved models
Description: Feature extraction or fine-tuning of a keras.applications backbone or any saved .keras model.

Commands:

    dlrecipes run transfer-learning --dataset tf_flowers   # ImageNet weights
    dlrecipes run transfer-learning --backbone resnet50 \\
        --dataset cats_vs_dogs --strategy feature-extraction --epochs 5
    dlrecipes run transfer-learning --backbone efficientnet_b0 \\
        --dataset folder:path/to/images --image-size 224
    dlrecipes run transfer-learning --weights mobilenet_v2.weights.h5
    dlrecipes run transfer-learning --backbone convnext_tiny --weights none

    # Offline, from a model that another recipe trained (the quality test):
    dlrecipes run image-classification --classes 0-4 --epochs 15 --width 64 \\
        --stages 3 --output-dir runs/pre
    dlrecipes run transfer-learning \\
        --backbone runs/pre/image-classification/<run>/model.keras \\
        --classes 5-9 --label-fraction 0.1 --epochs 10 --head-epochs 5 \\
        --batch-size 8 --learning-rate 0.01 --augment none \\
        --strategy fine-tune          # or feature-extraction, or scratch

Backbones: `mobilenet_v2`, `mobilenet_v3_small`, `mobilenet_v3_large`,
`resnet50`, `resnet50_v2`, `efficientnet_b0`, `efficientnet_v2_b0`,
`convnext_tiny`, `densenet121` from `keras.applications`, with
`--weights imagenet` (downloaded into the Keras cache on first use; offline
the run stops with one line naming the alternatives), `--weights PATH` (a
weights file of the same architecture, e.g. `model.save_weights(
"x.weights.h5")` or a keras-applications `.h5`) or `--weights none` (random
initialisation); or `--backbone PATH.keras`: any saved functional or
Sequential Keras image model (one input of shape (batch, height, width,
channels)), read by `dlrecipes.load_model` (its content checked before
Keras sees it, whatever its name; `safe_mode` on), cut at its last pooling
layer (at its last layer's input if it has none), without its augmentation
and noise layers (`Random*`, `GaussianNoise`), which would otherwise stay
active in training. A `--weights` file is checked the same way
(`dlrecipes.saving.check_weights_file`) before Keras reads it.

The model takes raw pixels. For a keras.applications backbone it rescales
them to 0..255, resizes them to `--image-size`, repeats a grey channel three
times and applies the family's own `keras.applications.<family>.
preprocess_input`, as a frozen per-pixel linear layer read off that function
(EfficientNet, ConvNeXt and MobileNetV3 preprocess inside the model, so
there it is the identity). A `--backbone PATH.keras` model gets the pixels
it was trained on, resized to its input size. `--augment` layers sit in
front of the backbone, for every strategy alike.

Strategies (after Keras' guide "Transfer learning & fine-tuning"):

- `feature-extraction`: the backbone is frozen; a new head (global pooling,
  dropout, softmax) is trained.
- `fine-tune`: the head alone for `--head-epochs` (its own optimizer and
  schedule), then the top `--fine-tune-layers` weight-carrying layers or
  blocks of the backbone are unfrozen (0: all) and training continues with a
  fresh optimizer at `--fine-tune-lr-factor` (0.1) times the learning rate.
  Every BatchNormalization layer, also inside blocks, stays frozen and so in
  inference mode: its statistics never change. (The backbone is also called
  with `training=False`, but Keras 3 passes `fit`'s `training=True` on into
  nested models regardless, keras-team/keras#20285; freezing is what holds.)
- `scratch`: the same network with the backbone re-initialised and trained
  end to end (batch norm in training mode): the baseline.

Resume: an interrupted run resumes where it stopped, in the phase it was
in: the harness' backup is kept across the phase boundary, a resumed
fine-tune run skips the head epochs already done, and the fine-tuning
phase restores its own optimizer state. An EarlyStopping
patience that runs out in the head phase ends that phase only.

Results (CPU, TensorFlow, seed 0; checked by
tests/test_transfer.py::test_transfer_beats_scratch): a ResNet pretrained
by image-classification on digits 0-4 (`--epochs 15 --width 64 --stages 3`,
test accuracy 1.0), transferred to digits 5-9 with 10% of the training
labels (64 images; 72 validation, 180 test images), all three with the same
short budget (10 epochs of 8-image batches, Adam 0.01, no augmentation;
fine-tune: 5 head epochs, then everything but batch norm at 0.001):

    strategy              test accuracy
    scratch               0.750
    feature-extraction    0.872
    fine-tune             0.867

The test requires both transfer strategies to beat scratch by 0.03 at the
10-epoch budget. Digits are easy: with 30 epochs (measured with an earlier
data order: scratch 0.956, feature extraction 0.856, fine-tune 0.939) the
network trained from scratch on the 64 images catches up; the pretrained
backbone buys speed, not a higher ceiling, on this task. With 64 training
images one seed moves these figures by several points.
"""

import dataclasses
import math
import os
import warnings

import keras
import numpy as np

from dlrecipes.config import TrainConfig, option
from dlrecipes.errors import RunError, UsageError, choices_message
from dlrecipes.paths import check_file
from dlrecipes.recipe import Phase, Recipe, register_recipe
from dlrecipes.search_space import Boolean, Choice, Float, Int  # noqa: F401
from dlrecipes.saving import (check_model_file, check_weights_file,
                              declared_input_shapes, load_model)
from dlrecipes.training import Data
from dlrecipes.training import sublayers
from recipes import image_classification as _ic

# name -> (keras.applications constructor, preprocessing module).
BACKBONES = {
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3"),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3"),
    "resnet50": ("ResNet50", "resnet50"),
    "resnet50_v2": ("ResNet50V2", "resnet_v2"),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet"),
    "efficientnet_v2_b0": ("EfficientNetV2B0", "efficientnet_v2"),
    "convnext_tiny": ("ConvNeXtTiny", "convnext"),
    "densenet121": ("DenseNet121", "densenet"),
}
WIDTH_MULTIPLIER = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
STRATEGIES = ("feature-extraction", "fine-tune", "scratch")
TFDS_DATASETS = ("tf_flowers", "cats_vs_dogs")
DATASETS = ("digits",) + TFDS_DATASETS + ("folder:PATH",)
MIN_IMAGE_SIZE = 32
OBJECTIVE = ("val_accuracy", "max")
# Offline and fast: a random-init MobileNetV2 (alpha 0.35) on 32x32 digits,
# one head epoch then one fine-tuning epoch (exercises both phases).
SMOKE = {"backbone": "mobilenet_v2", "alpha": 0.35, "weights": "none",
         "image_size": 32, "epochs": 2, "head_epochs": 1, "batch_size": 64}


@dataclasses.dataclass(frozen=True)
class TransferLearningConfig(TrainConfig):
    backbone: str = option(
        "mobilenet_v2", "a keras.applications backbone "
        f"({', '.join(BACKBONES)}) or PATH.keras, a saved Keras model")
    weights: str = option(
        "imagenet", "imagenet | none (random init) | PATH to a weights file "
        "(keras.applications backbones only)")
    alpha: float = option(1.0, "width multiplier (MobileNet backbones)",
                          min=0, exclusive_min=True)
    strategy: str = option("fine-tune", "what to train", choices=STRATEGIES)
    head_epochs: int = option(
        5, "fine-tune: epochs of head-only training before unfreezing", min=1)
    fine_tune_layers: int = option(
        0, "fine-tune: unfreeze the top N weight-carrying layers or blocks "
        "of the backbone (0: all; batch norm stays frozen)", min=0)
    fine_tune_lr_factor: float = option(
        0.1, "fine-tune: learning-rate factor after unfreezing", min=0,
        max=1, exclusive_min=True)
    dataset: str = option("digits", "digits | tf_flowers | cats_vs_dogs | "
                          "folder:PATH")
    data_dir: str = option("", "tensorflow-datasets data directory")
    image_size: int = option(
        0, "resize images to N x N for the backbone (0: 96 for digits, "
        "224 otherwise; a PATH.keras backbone uses its input size)", min=0)
    classes: str = option("", "keep only these digits, e.g. '5-9' "
                          "(digits only; relabelled 0..k-1)")
    label_fraction: float = option(
        1.0, "keep this fraction of the training labels, stratified "
        "(digits only)", min=0, max=1, exclusive_min=True)
    val_fraction: float = option(0.1, "fraction of training data held out "
                                 "for validation", min=0, max=0.5)
    pooling: str = option(
        "avg", "how the head pools a backbone's feature map (avg: global "
        "average, as Keras' guide; flatten keeps the layout of small maps)",
        choices=("avg", "max", "flatten"))
    dropout: float = option(0.2, "dropout before the new classifier",
                            min=0, max=0.95)
    augment: str = option("auto", "augmentation in front of the backbone "
                          "(auto: light)", choices=_ic.AUGMENTS)
    epochs: int = option(10, "training epochs (both phases for fine-tune)",
                         min=1)

    def check(self):
        if is_backbone_path(self.backbone):
            check_backbone_file(self.backbone)
            if self.weights != "imagenet":
                raise UsageError(
                    "--weights applies to keras.applications backbones; a "
                    "--backbone PATH.keras brings its own weights. "
                    f"Received: weights={self.weights!r}")
        elif self.backbone not in BACKBONES:
            raise UsageError("--backbone: " + choices_message(
                "backbone", self.backbone,
                tuple(BACKBONES) + ("PATH.keras",)))
        if self.weights not in ("imagenet", "none"):
            check_file(self.weights, "--weights",
                       "imagenet, none or a weights file")
            _flag_errors("--weights", check_weights_file, self.weights)
        if self.alpha != 1.0 and self.backbone not in WIDTH_MULTIPLIER:
            raise UsageError("--alpha applies to "
                             f"{', '.join(WIDTH_MULTIPLIER)} only. "
                             f"Received: alpha={self.alpha}")
        if self.image_size and self.image_size < MIN_IMAGE_SIZE:
            raise UsageError(f"--image-size must be 0 or >= {MIN_IMAGE_SIZE}."
                             f" Received: image_size={self.image_size}")
        if self.strategy == "fine-tune" and self.head_epochs >= self.epochs:
            raise UsageError(
                "--head-epochs must be smaller than --epochs with --strategy "
                "fine-tune (the rest fine-tunes). Received: "
                f"head_epochs={self.head_epochs}, epochs={self.epochs}")
        if self.dataset != "digits":
            for name in ("classes", "label_fraction"):
                if getattr(self, name) != self.__dataclass_fields__[
                        name].default:
                    raise UsageError(
                        f"--{name.replace('_', '-')} works with --dataset "
                        f"digits only. Received: dataset={self.dataset}")
        if self.classes:
            _ic.parse_classes(self.classes, 10)
        if self.dataset.startswith("folder:"):
            path = self.dataset[len("folder:"):]
            if not os.path.isdir(path):
                raise UsageError(f"--dataset: folder not found: {path!r}")
        elif self.dataset not in ("digits",) + TFDS_DATASETS:
            raise UsageError("--dataset: " + choices_message(
                "dataset", self.dataset, DATASETS))


def is_backbone_path(value):
    """A `--backbone` value names a file (not a keras.applications name)."""
    return value not in BACKBONES and (
        value.endswith(".keras") or os.sep in value or os.path.exists(value))


def check_backbone_file(path):
    """Checks of a `--backbone` file before a run starts (and before its
    directory exists): the safe loader's checks
    (`dlrecipes.saving.check_model_file`: a regular file, whose content
    decides, not its name) and, where its config declares them, one image
    input."""
    model_config = _flag_errors("--backbone", check_model_file, path)
    shapes = declared_input_shapes(model_config)
    if shapes is not None:
        check_image_inputs(shapes, path)


def _flag_errors(flag, fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, its `UsageError` prefixed with `flag`."""
    try:
        return fn(*args, **kwargs)
    except UsageError as e:
        raise type(e)(f"{flag}: {e}") from None


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


NEEDED_INPUT = "one image input of shape (batch, height, width, channels)"


def check_image_inputs(shapes, path):
    """Raise a `UsageError` unless `shapes` (a backbone's input shapes,
    batch axis first) are one image input with a known channel count."""
    if len(shapes) != 1:
        raise UsageError(
            f"--backbone {path!r} has {len(shapes)} inputs "
            f"({', '.join(map(_shape_text, shapes))}); transfer learning "
            f"needs a model with {NEEDED_INPUT}. Received: "
            f"num_inputs={len(shapes)}")
    (shape,) = shapes
    if len(shape) != 4 or shape[-1] is None:
        raise UsageError(
            f"--backbone {path!r} takes input of shape {_shape_text(shape)}"
            f", not an image; transfer learning needs a model with "
            f"{NEEDED_INPUT}. Received: input_shape={_shape_text(shape)}")


def check_features(backbone, path):
    """Raise a `UsageError` unless the cut `backbone` outputs a feature map
    (batch, height, width, channels) or a vector (batch, features)."""
    shape = tuple(backbone.output.shape)
    if len(shape) not in (2, 4):
        raise UsageError(
            f"--backbone {path!r} gives features of shape "
            f"{_shape_text(shape)} (at its last pooling layer, or its last "
            "layer's input); transfer learning needs a feature map (batch, "
            "height, width, channels) or a vector (batch, features). "
            f"Received: feature_shape={_shape_text(shape)}")


def image_size(config):
    """The backbone's input size: --image-size or the dataset's default."""
    if config.image_size:
        return config.image_size
    return 96 if config.dataset == "digits" else 224


# --------------------------------------------------------------------- data


def load_data(config):
    """Digits (embedded, optionally some classes and a fraction of the
    labels), tf_flowers / cats_vs_dogs (tensorflow-datasets, resized to the
    image size) or `folder:PATH`."""
    if config.dataset == "digits":
        return _ic.digits_data(config, label_fraction=config.label_fraction)
    size = image_size(config)
    if config.dataset.startswith("folder:"):
        return _ic.load_folder(config.replace(image_size=size),
                                config.dataset[len("folder:"):])
    return _load_tfds(config, size)


def _load_tfds(config, size):
    import tensorflow as tf

    from dlrecipes.data import tfds_loader

    # Both datasets have a single "train" split: 80% train+val, 20% test.
    val_pct = int(round(config.val_fraction * 100))
    if val_pct:
        splits = [f"train[:{80 - val_pct}%]", f"train[{80 - val_pct}%:80%]",
                  "train[80%:]"]
    else:
        splits = ["train[:80%]", "train[80%:]"]
    datasets, info = tfds_loader.load(config.dataset, splits,
                                      data_dir=config.data_dir or None)
    if not val_pct:
        datasets = [datasets[0], None, datasets[1]]

    def resize(image, label):  # (h, w, 3) uint8 -> (size, size, 3) float32
        return tf.image.resize(image, (size, size)), label

    def pipeline(ds, training):
        if training:
            ds = ds.shuffle(1000, seed=config.seed)
        ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    train, val, test = (None if d is None else pipeline(d, i == 0)
                        for i, d in enumerate(datasets))
    try:
        num_train = info.splits[splits[0]].num_examples
    except KeyError:  # no split metadata (tfds.testing.mock_data)
        num_train = max(0, int(datasets[0].cardinality()))
    labels = info.features["label"]
    return Data(train, val, test, input_shape=(size, size, 3),
                num_classes=labels.num_classes,
                class_names=tuple(labels.names),
                info={"scale": 1 / 255, "flip": True,
                      "num_train": num_train or None})


# ----------------------------------------------------------------- backbone


def preprocess_layer(family):
    """`keras.applications.<family>.preprocess_input` as a frozen Dense(3).

    Every family's preprocessing is an affine map of each pixel's channels
    (scaling, mean/std normalisation, RGB->BGR); it is read off the function
    itself by probing it with the zero pixel and the unit pixels, so the
    saved model needs no Lambda. Returns None where it is the identity.
    """
    fn = getattr(keras.applications, family).preprocess_input
    probe = np.concatenate([np.zeros((1, 3)), 255 * np.eye(3)])
    out = np.asarray(fn(probe.reshape(4, 1, 1, 3).copy()),
                     dtype="float64").reshape(4, 3)
    bias = out[0]
    kernel = (out[1:] - bias) / 255  # row i: response to channel i
    check = np.random.default_rng(0).uniform(0, 255, (8, 3))
    expected = np.asarray(fn(check.reshape(8, 1, 1, 3).copy()),
                          dtype="float64").reshape(8, 3)
    if not np.allclose(check @ kernel + bias, expected, atol=1e-3):
        raise RuntimeError(f"{family}.preprocess_input is not affine")
    if np.allclose(kernel, np.eye(3)) and np.allclose(bias, 0):
        return None
    # float32 even under mixed precision: ImageNet means are ~100.
    layer = keras.layers.Dense(3, trainable=False, dtype="float32",
                               name="preprocess")
    layer.build((None, 3))
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return layer


def _application(config, size, weights):
    constructor, _ = BACKBONES[config.backbone]
    kwargs = {"include_top": False, "weights": weights,
              "input_shape": (size, size, 3)}
    if config.backbone in WIDTH_MULTIPLIER:
        kwargs["alpha"] = config.alpha
    try:
        with warnings.catch_warnings():
            if weights not in (None, "imagenet"):  # Keras warns, then raises
                warnings.simplefilter("ignore")
            model = getattr(keras.applications, constructor)(**kwargs)
    except Exception as e:
        reason = _first_line(e)
        if weights == "imagenet" and not isinstance(e, ValueError):
            # keras' get_file: "URL fetch failure on URL: errno -- reason"
            reason = reason.split(" -- ", 1)[-1][:200]
            raise RunError(
                f"cannot download ImageNet weights for {config.backbone} "
                f"({reason}); offline, pass --weights PATH (a weights file "
                "of the same architecture) or --backbone PATH.keras (a saved "
                "Keras model), or --weights none for random initialisation"
            ) from None
        if weights not in (None, "imagenet"):
            detail = " ".join(str(e).split("Target variable:")[0].split())
            raise UsageError(f"--weights: cannot load {weights!r} into "
                             f"{config.backbone} (is it the same "
                             f"architecture, alpha included?): "
                             f"{detail[:300]}") from None
        if isinstance(e, ValueError):  # e.g. an alpha without ImageNet weights
            raise UsageError(f"--backbone {config.backbone}: {reason}") \
                from None
        raise
    # Renamed by a wrapper (EfficientNetV2 reads its `name` argument as its
    # variant); the layers and weights are the same objects.
    return keras.Model(model.input, model.output, name="backbone")


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


POOLING_LAYERS = tuple(getattr(keras.layers, n) for n in dir(keras.layers)
                       if n.endswith(("Pooling1D", "Pooling2D", "Pooling3D")))
# Layers that only add noise in training and are the identity in inference
# (shape-preserving): a cut backbone drops them, augmentation is the
# recipe's job (--augment), in front of the backbone.
NOISE_LAYERS = tuple(getattr(keras.layers, n) for n in (
    "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom",
    "RandomContrast", "RandomBrightness", "RandomErasing",
    "RandomGaussianBlur", "RandomSaturation", "RandomHue", "RandomSharpness",
    "RandomColorJitter", "RandomGrayscale", "RandomPerspective",
    "GaussianNoise", "GaussianDropout") if hasattr(keras.layers, n))


def _drop_noise(layer):
    if isinstance(layer, NOISE_LAYERS):
        return keras.layers.Identity(name=layer.name)
    return layer  # the same layer object: weights are shared, not copied


def cut_model(model, name="backbone"):
    """The part of a functional `model` up to its last pooling layer (or up
    to its last layer's input if it has none), as a new model that shares
    the weights, without augmentation and noise layers."""
    try:
        (inputs,) = model.inputs
        layers = model.layers
        pools = [i for i, layer in enumerate(layers)
                 if isinstance(layer, POOLING_LAYERS)]
        outputs = layers[pools[-1]].output if pools else layers[-1].input
        cut = keras.Model(inputs, outputs, name=name)
        return keras.models.clone_model(cut, clone_function=_drop_noise)
    except (AttributeError, TypeError, ValueError) as e:
        raise UsageError(
            "--backbone must be a functional or Sequential model with one "
            f"image input ({_first_line(e)[:160]})") from None


def load_backbone_file(path):
    """A saved .keras model, read by `dlrecipes.load_model` (checked, then
    loaded with `safe_mode` on), cut at its last pooling layer; an image
    model (one 4-D input, a feature map or vector out) or a `UsageError`."""
    model = _flag_errors("--backbone", load_model, path, compile=False)
    inputs = getattr(model, "inputs", None)
    if inputs:  # a subclassed model has none: cut_model says so
        check_image_inputs([tuple(t.shape) for t in inputs], path)
    backbone = cut_model(model)
    check_features(backbone, path)
    return backbone


def build_backbone(config, data):
    """(backbone, preprocess layer or None), re-initialised for scratch."""
    scratch = config.strategy == "scratch"
    if is_backbone_path(config.backbone):
        backbone = load_backbone_file(config.backbone)
        if scratch:  # same architecture, fresh initial weights
            backbone = keras.models.clone_model(backbone)
        return backbone, None
    size = image_size(config)
    weights = None if scratch or config.weights == "none" else config.weights
    family = BACKBONES[config.backbone][1]
    return _application(config, size, weights), preprocess_layer(family)


# -------------------------------------------------------------------- model


def build_model(config, data):
    """An uncompiled classifier on raw pixels: input adapter, backbone
    (frozen unless `scratch`; called with training=False unless `scratch`),
    new head; softmax in float32."""
    backbone, preprocess = build_backbone(config, data)
    _, height, width, channels = backbone.input_shape
    inputs = keras.Input(data.input_shape, name="image")
    x = inputs
    if not is_backbone_path(config.backbone):  # keras.applications
        scale = data.info.get("scale", 1 / 255) * 255
        if not math.isclose(scale, 1.0):
            x = keras.layers.Rescaling(scale, name="to_255")(x)  # 0..255
    if height and tuple(data.input_shape[:2]) != (height, width):
        x = keras.layers.Resizing(height, width, name="resize")(x)
    for layer in _ic.augmentation(config, data):
        x = layer(x)
    have = data.input_shape[-1]
    if have == 1 and channels == 3:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    elif have != channels:
        raise UsageError(f"the backbone takes {channels} channels but the "
                         f"dataset has {have}. Received: channels={have}")
    if preprocess is not None:
        x = preprocess(x)
    scratch = config.strategy == "scratch"
    # Keras 3 passes fit's training=True on into nested models even when
    # they were called with training=False (keras-team/keras#20285): what
    # keeps batch norm in inference mode is its trainable=False. Frozen
    # here; fine-tuning unfreezes all but the batch-norm layers.
    features = backbone(x, training=None if scratch else False)
    if not scratch:
        backbone.trainable = False
    # features: (batch, h, w, c) or (batch, features)
    x = features
    if len(x.shape) == 4 and config.pooling != "flatten":
        pool = (keras.layers.GlobalAveragePooling2D if config.pooling == "avg"
                else keras.layers.GlobalMaxPooling2D)
        x = pool(name="pool")(x)
    elif len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(data.num_classes, activation="softmax",
                                 dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs,
                       name=config.strategy.replace("-", "_") + "_transfer")


def compile_kwargs(config, data):
    return {"loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"]}


# --------------------------------------------------------------- training


def _batch_norms(layer):
    """`layer` and its nested sublayers that are BatchNormalization layers
    (also inside composite blocks such as `ResidualBlock`)."""
    return [s for s in sublayers.walk(layer)
            if isinstance(s, keras.layers.BatchNormalization)]


def unfreeze_top(backbone, num_layers):
    """Make the top `num_layers` weight-carrying layers or blocks (0: all)
    of `backbone` trainable, except every BatchNormalization layer (also
    inside blocks), which stays frozen and so in inference mode. Returns the
    names of the unfrozen layers."""
    candidates = [layer for layer in backbone.layers if layer.weights
                  and not isinstance(layer, keras.layers.BatchNormalization)]
    top = candidates[-num_layers:] if num_layers else candidates
    chosen = {id(layer) for layer in top}
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = id(layer) in chosen
        for norm in _batch_norms(layer):
            norm.trainable = False
    return [layer.name for layer in top]


def phases(config):
    """`fine-tune`: the head alone for `head_epochs` (backbone frozen), then
    the top `fine_tune_layers` unfrozen at `fine_tune_lr_factor` times the
    learning rate with a fresh optimizer. Other strategies: one phase."""
    if config.strategy != "fine-tune":
        return [Phase("train", config.epochs)]

    def unfreeze(model):
        unfreeze_top(model.get_layer("backbone"), config.fine_tune_layers)

    return [Phase("head", config.head_epochs),
            Phase("fine-tune", config.epochs - config.head_epochs,
                  prepare=unfreeze,
                  overrides={"learning_rate": config.learning_rate
                             * config.fine_tune_lr_factor})]


# ------------------------------------------------------------------- report


def report(model, data, run_dir, config):
    """Confusion matrix and misclassified images, as image-classification,
    plus the backbone's parameter count."""
    metrics = _ic.report(model, data, run_dir, config)
    metrics["backbone_params"] = int(
        model.get_layer("backbone").count_params())
    return metrics



# ------------------------------------------------------------ search space
# Names are TransferLearningConfig fields (see `dlrecipes.search_space`).

SEARCH_SPACE = {
    "backbone": Choice(("mobilenet_v2", "efficientnet_b0", "resnet50"),
                     grid=("mobilenet_v2",)),
    "alpha": Choice((0.35, 0.5, 1.0), when=("backbone", ("mobilenet_v2",)),
                  grid=(1.0,)),
    "strategy": Choice(("fine-tune", "feature-extraction")),
    "fine_tune_layers": Choice((0, 10, 30), when=("strategy", ("fine-tune",)), grid=(0,)),
    "fine_tune_lr_factor": Float(0.01, 0.3, sampling="log", when=("strategy", ("fine-tune",)),
                               grid=(0.1,)),
    "dropout": Float(0.0, 0.5, grid=(0.2,)),
    "augment": Choice(("none", "light", "strong"), grid=("light",)),
    "optimizer": Choice(("adam", "adamw"), grid=("adam",)),
    "learning_rate": Float(1e-4, 3e-3, sampling="log", grid=(3e-4, 1e-3)),
    "schedule": Choice(("constant", "cosine"), grid=("constant",)),
    "batch_size": Choice((16, 32, 64), grid=(32,)),
}

# Fields `load_data` reads: a tuning trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "data_dir", "image_size", "classes",
               "label_fraction", "val_fraction", "batch_size", "seed",
               "backbone")


@register_recipe
class TransferLearning(Recipe):
    name = "transfer-learning"
    config_class = TransferLearningConfig
    description = 'Feature extraction or fine-tuning of a keras.applications backbone or any saved .keras model.'
    objective = OBJECTIVE
    smoke = SMOKE
    search_space = SEARCH_SPACE
    data_fields = DATA_FIELDS
    datasets = DATASETS
    tfds_datasets = tuple(TFDS_DATASETS)

    def load_data(self, config):
        return load_data(config)

    def build_model(self, config, data):
        return build_model(config, data)

    def compile(self, model, config, data, optimizer, **options):
        model.compile(optimizer=optimizer, **compile_kwargs(config, data),
                      **options)

    def phases(self, config):
        return phases(config)

    def report(self, model, data, run_dir, config):
        return report(model, data, run_dir, config)


def main(argv=None):
    from dlrecipes.cli import run_recipe_main

    return run_recipe_main("transfer-learning", argv)


if __name__ == "__main__":
    raise SystemExit(main())
