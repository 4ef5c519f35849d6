"""Augmentation presets and extra operations: Keras preprocessing layers
that a model applies to its raw input in training only (they are the
identity in inference, so a saved model needs no separate preprocessing).

`--augment` is a preset, optionally followed by operations, comma
separated (`light,crop,blur`; an operation alone, `zoom,color`, adds to
`none`):

- `none`: nothing;
- `light` (and `auto`, which picks `light`): random translation (10%) and
  rotation (+-0.04 turns), plus a horizontal flip where the dataset allows
  it (`Data.flip`: not for digits);
- `strong`: `light`, then random contrast, random erasing and Gaussian
  noise;
- `crop`: a random crop of 80% of each side, resized back to the input's
  size: a random shift of up to 10% (`RandomTranslation`), then the
  central 80% enlarged (`RandomZoom` by a fixed -20%), so the window stays
  inside the image (Keras' `RandomCrop` changes the shape between
  training and inference and does not trace under JAX);
- `zoom`: random zoom in or out by up to 15% (`RandomZoom`);
- `rot90`: a random multiple of 90 degrees per image
  (`dlrecipes.layers.RandomRot90`; square images only);
- `blur`: Gaussian blur with a random strength (`RandomGaussianBlur`);
- `color`: brightness, contrast, saturation and hue jitter
  (`RandomColorJitter`; three-channel images only).

Keras loads on the first call (`AUGMENTS` and `parse` are read while flags
parse).
"""

from dlrecipes.errors import UsageError
from dlrecipes.lazy import dl_layers, keras

AUGMENTS = ("auto", "none", "light", "strong")
OPERATIONS = ("crop", "zoom", "rot90", "blur", "color")
CROP_FRACTION = 0.8


def parse(value):
    """`(preset, operations)` from an `--augment` value such as
    `light,crop,blur`; `UsageError` (one line) for an unknown name, a
    second preset or a name given twice."""
    names = [n.strip() for n in str(value).split(",") if n.strip()]
    if not names:
        raise UsageError("--augment is empty; valid: a preset ("
                         f"{', '.join(AUGMENTS)}) and/or operations ("
                         f"{', '.join(OPERATIONS)}), comma separated")
    presets = [n for n in names if n in AUGMENTS]
    for name in names:
        if name not in AUGMENTS and name not in OPERATIONS:
            raise UsageError(
                f"--augment: unknown name {name!r}; valid: a preset ("
                f"{', '.join(AUGMENTS)}) and/or operations ("
                f"{', '.join(OPERATIONS)}), comma separated. Received: "
                f"augment={value}")
        if names.count(name) > 1:
            raise UsageError(f"--augment names {name} twice. Received: "
                             f"augment={value}")
    if len(presets) > 1:
        raise UsageError(f"--augment takes one preset; {presets[0]} and "
                         f"{presets[1]} are two. Received: augment={value}")
    preset = presets[0] if presets else "none"
    return preset, tuple(n for n in names if n in OPERATIONS)


def check_shape(value, shape):
    """`UsageError` where an operation of `--augment` cannot take images
    of `shape` (height, width, channels): `color` on other than three
    channels, `rot90` on non-square images."""
    _, operations = parse(value)
    height, width, channels = tuple(shape)[-3:]
    if "color" in operations and channels != 3:
        raise UsageError(f"--augment color needs three-channel (RGB) "
                         f"images; these have {channels}. Received: "
                         f"augment={value}")
    if "rot90" in operations and height != width:
        raise UsageError(f"--augment rot90 needs square images; these are "
                         f"{height} x {width}. Received: augment={value}")


def augmentation(level, flip=False, seed=None, shape=None,
                 value_range=(0, 1)):
    """The preprocessing layers of `--augment` value `level` (a preset of
    `AUGMENTS` and/or `OPERATIONS`, comma separated), in order, seeded
    with `seed`. `shape` (height, width, channels) is needed for `crop`,
    `rot90` and `color`; `value_range` is the pixels' range where the
    layers sit (`blur`, `color`)."""
    preset, operations = parse(level)
    preset = "light" if preset == "auto" else preset
    layers = []
    if preset in ("light", "strong"):
        layers.append(keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="constant", seed=seed))
        layers.append(keras.layers.RandomRotation(
            0.04, fill_mode="constant", seed=seed))
        if flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if preset == "strong":
        layers.append(keras.layers.RandomContrast(0.2, seed=seed))
        layers.append(keras.layers.RandomErasing(
            factor=0.5, scale=(0.02, 0.15), seed=seed))
        layers.append(keras.layers.GaussianNoise(0.05, seed=seed))
    if operations and shape is None:
        raise ValueError("`shape` is needed for the operations "
                         f"{', '.join(operations)}. Received: shape=None")
    if operations:
        check_shape(level, shape)
    for name in operations:
        if name == "crop":
            slack = (1 - CROP_FRACTION) / 2
            layers.append(keras.layers.RandomTranslation(
                slack, slack, fill_mode="constant", seed=seed))
            layers.append(keras.layers.RandomZoom(
                (CROP_FRACTION - 1, CROP_FRACTION - 1), fill_mode="constant",
                seed=seed))
        elif name == "zoom":
            layers.append(keras.layers.RandomZoom(
                (-0.15, 0.15), fill_mode="constant", seed=seed))
        elif name == "rot90":
            layers.append(dl_layers.RandomRot90(seed=seed))
        elif name == "blur":
            layers.append(keras.layers.RandomGaussianBlur(
                factor=1.0, kernel_size=3, sigma=1.0,
                value_range=value_range, seed=seed))
        elif name == "color":
            layers.append(keras.layers.RandomColorJitter(
                value_range=value_range, brightness_factor=0.2,
                contrast_factor=0.2, saturation_factor=0.2, hue_factor=0.05,
                seed=seed))
    return layers


def augment(x, level, flip=False, seed=None, value_range=(0, 1)):
    """`x` (a symbolic image tensor) through the layers of `level`."""
    for layer in augmentation(level, flip=flip, seed=seed,
                              shape=tuple(x.shape[1:]),
                              value_range=value_range):
        x = layer(x)
    return x
