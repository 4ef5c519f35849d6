"""Backbones for transfer learning: the `keras.applications` zoo and any
saved `.keras` image model.

- `BACKBONES`: the `keras.applications` families by name;
  `application(name, ...)` builds one without its top, with ImageNet
  weights, a weights file or none, and turns what goes wrong (no network,
  a file of another architecture) into one-line errors;
- `preprocess_layer(family)`: the family's `preprocess_input` as a frozen
  per-pixel linear layer read off the function itself (so a saved model
  needs no Lambda); None where the model preprocesses inside;
- `check_backbone` / `check_backbone_file`: the `--backbone`, `--weights`
  and `--alpha` checks made while flags are parsed (before a run
  directory exists): a backbone file is checked by the safe loader
  (`dlrecipes.saving.check_model_file`: a regular file, whose content
  decides, not its name) and must declare one image input;
- `load_backbone_file(path)`: a saved functional or Sequential image
  model, read by `dlrecipes.load_model` (`safe_mode` on) and cut by
  `cut_model` at its last pooling layer (at its last layer's input if it
  has none), without its augmentation and noise layers (`Random*`,
  `GaussianNoise`), which would otherwise stay active in training;
- `fit_pixels`, `match_channels`, `classifier_head`: what goes around a
  backbone in a classifier on raw pixels;
- `unfreeze_top(backbone, n)`: fine-tuning's unfreezing, batch norm
  always frozen.

Keras loads on first use: the names and the checks serve the flag parser.
"""

import functools
import math
import os
import warnings

import numpy as np

from dlrecipes.errors import RunError, UsageError, choices_message
from dlrecipes.lazy import keras

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
NEEDED_INPUT = "one image input of shape (batch, height, width, channels)"


# ------------------------------------------------------------------- checks


def is_backbone_path(value):
    """A `--backbone` value names a file (not a keras.applications name)."""
    return value not in BACKBONES and (
        value.endswith(".keras") or os.sep in value or os.path.exists(value))


def check_backbone(backbone, weights="imagenet", alpha=1.0):
    """The `--backbone`, `--weights` and `--alpha` checks before a run:
    a known `keras.applications` name or a checked `.keras` file (which
    brings its own weights), a checked weights file, a width multiplier
    only where the family has one. Raises `UsageError`."""
    if is_backbone_path(backbone):
        check_backbone_file(backbone)
        if weights != "imagenet":
            raise UsageError(
                "--weights applies to keras.applications backbones; a "
                "--backbone PATH.keras brings its own weights. "
                f"Received: weights={weights!r}")
    elif backbone not in BACKBONES:
        raise UsageError("--backbone: " + choices_message(
            "backbone", backbone, tuple(BACKBONES) + ("PATH.keras",)))
    if weights not in ("imagenet", "none"):
        from dlrecipes.paths import check_file
        from dlrecipes.saving import check_weights_file

        check_file(weights, "--weights", "imagenet, none or a weights file")
        flag_errors("--weights", check_weights_file, weights)
    if alpha != 1.0 and backbone not in WIDTH_MULTIPLIER:
        raise UsageError(f"--alpha applies to {', '.join(WIDTH_MULTIPLIER)}"
                         f" only. Received: alpha={alpha}")


def check_backbone_file(path):
    """Checks of a `--backbone` file before a run starts (and before its
    directory exists): the safe loader's checks and, where its config
    declares them, one image input."""
    from dlrecipes.saving import check_model_file, declared_input_shapes

    model_config = flag_errors("--backbone", check_model_file, path)
    shapes = declared_input_shapes(model_config)
    if shapes is not None:
        check_image_inputs(shapes, path)


def flag_errors(flag, fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, its `UsageError` prefixed with `flag`."""
    try:
        return fn(*args, **kwargs)
    except UsageError as e:
        raise type(e)(f"{flag}: {e}") from None


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


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


# -------------------------------------------------------- keras.applications


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


def application(name, image_size, weights="imagenet", alpha=1.0):
    """`keras.applications` backbone `name` without its top, on
    `image_size` x `image_size` RGB input, named "backbone".

    Args:
        weights: "imagenet" (downloaded into the Keras cache on first
            use), None (random initialisation) or the path of a weights
            file of the same architecture.
        alpha: the width multiplier (`WIDTH_MULTIPLIER` families).

    Raises:
        RunError: ImageNet weights cannot be downloaded (offline).
        UsageError: a weights file of another architecture, or an `alpha`
            the family does not offer with these weights.
    """
    kwargs = {"include_top": False, "weights": weights,
              "input_shape": (image_size, image_size, 3)}
    if name in WIDTH_MULTIPLIER:
        kwargs["alpha"] = alpha
    try:
        with warnings.catch_warnings():
            if weights not in (None, "imagenet"):  # Keras warns, then raises
                warnings.simplefilter("ignore")
            model = getattr(keras.applications, BACKBONES[name][0])(**kwargs)
    except Exception as e:
        reason = _first_line(e)
        if weights == "imagenet" and not isinstance(e, ValueError):
            # keras' get_file: "URL fetch failure on URL: errno -- reason"
            reason = reason.split(" -- ", 1)[-1][:200]
            raise RunError(
                f"cannot download ImageNet weights for {name} ({reason}); "
                "offline, pass --weights PATH (a weights file of the same "
                "architecture) or --backbone PATH.keras (a saved Keras "
                "model), or --weights none for random initialisation"
            ) from None
        if weights not in (None, "imagenet"):
            detail = " ".join(str(e).split("Target variable:")[0].split())
            raise UsageError(f"--weights: cannot load {weights!r} into "
                             f"{name} (is it the same architecture, alpha "
                             f"included?): {detail[:300]}") from None
        if isinstance(e, ValueError):  # e.g. an alpha without ImageNet weights
            raise UsageError(f"--backbone {name}: {reason}") from None
        raise
    # Renamed by a wrapper (EfficientNetV2 reads its `name` argument as its
    # variant); the layers and weights are the same objects.
    return keras.Model(model.input, model.output, name="backbone")


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ------------------------------------------------------------- saved models


@functools.lru_cache(maxsize=None)
def pooling_layers():
    """Every Keras pooling layer class (where a backbone is cut)."""
    return tuple(getattr(keras.layers, n) for n in dir(keras.layers)
                 if n.endswith(("Pooling1D", "Pooling2D", "Pooling3D")))


@functools.lru_cache(maxsize=None)
def noise_layers():
    """Layers that only add noise in training and are the identity in
    inference (shape-preserving): a cut backbone drops them; augmentation
    is the recipe's job, in front of the backbone."""
    return tuple(getattr(keras.layers, n) for n in (
        "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom",
        "RandomContrast", "RandomBrightness", "RandomErasing",
        "RandomGaussianBlur", "RandomSaturation", "RandomHue",
        "RandomSharpness", "RandomColorJitter", "RandomGrayscale",
        "RandomPerspective", "GaussianNoise", "GaussianDropout")
        if hasattr(keras.layers, n))


def _drop_noise(layer):
    if isinstance(layer, noise_layers()):
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
                 if isinstance(layer, pooling_layers())]
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
    from dlrecipes.saving import load_model

    model = flag_errors("--backbone", load_model, path, compile=False)
    inputs = getattr(model, "inputs", None)
    if inputs:  # a subclassed model has none: cut_model says so
        check_image_inputs([tuple(t.shape) for t in inputs], path)
    backbone = cut_model(model)
    check_features(backbone, path)
    return backbone


def load_backbone(backbone, image_size, weights="imagenet", alpha=1.0,
                  scratch=False):
    """`(backbone model, preprocess layer or None)` for a `--backbone`
    value: a `keras.applications` name (its preprocessing as a layer) or
    a saved `.keras` file (it takes the pixels it was trained on). With
    `scratch`, the same architecture with fresh initial weights."""
    if is_backbone_path(backbone):
        model = load_backbone_file(backbone)
        if scratch:  # same architecture, fresh initial weights
            model = keras.models.clone_model(model)
        return model, None
    weights = None if scratch or weights == "none" else weights
    return (application(backbone, image_size, weights, alpha),
            preprocess_layer(BACKBONES[backbone][1]))


# ------------------------------------------------------------- the model


def fit_pixels(x, data, backbone, rescale=True):
    """Raw pixels `x` (a `Data`'s input) sized for `backbone`: rescaled to
    0..255 where `rescale` (keras.applications backbones expect 0..255; a
    saved model gets the pixels it was trained on), resized to its input
    size where it has one."""
    _, height, width, _ = backbone.input_shape
    if rescale and not math.isclose(data.scale * 255, 1.0):
        x = keras.layers.Rescaling(data.scale * 255, name="to_255")(x)
    if height and tuple(data.input_shape[:2]) != (height, width):
        x = keras.layers.Resizing(height, width, name="resize")(x)
    return x


def match_channels(x, backbone, preprocess=None):
    """`x` with the channels `backbone` takes (grey repeated to RGB), then
    through `preprocess` (`preprocess_layer`) if given; a `UsageError` for
    other channel counts."""
    have, channels = x.shape[-1], backbone.input_shape[-1]
    if have == 1 and channels == 3:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    elif have != channels:
        raise UsageError(f"the backbone takes {channels} channels but the "
                         f"dataset has {have}. Received: channels={have}")
    return x if preprocess is None else preprocess(x)


def classifier_head(features, num_classes, pooling="avg", dropout=0.2):
    """A new classifier on a backbone's `features` (batch, h, w, c) or
    (batch, features): global pooling (`avg`, `max`) or `flatten` of a
    feature map, dropout, softmax in float32 (also under mixed
    precision)."""
    x = features
    if len(x.shape) == 4 and pooling != "flatten":
        pool = (keras.layers.GlobalAveragePooling2D if pooling == "avg"
                else keras.layers.GlobalMaxPooling2D)
        x = pool(name="pool")(x)
    elif len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax",
                              dtype="float32", name="classifier")(x)


# ------------------------------------------------------------- fine-tuning


def _batch_norms(layer):
    """`layer` and its nested sublayers that are BatchNormalization layers
    (also inside composite blocks such as `ResidualBlock`)."""
    from dlrecipes.training import sublayers

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
