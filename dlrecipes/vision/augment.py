"""Augmentation presets: Keras preprocessing layers that a model applies
to its raw input in training only (they are the identity in inference, so
a saved model needs no separate preprocessing).

- `none`: nothing;
- `light` (and `auto`, which picks `light`): random translation (10%) and
  rotation (+-0.04 turns), plus a horizontal flip where the dataset allows
  it (`Data.flip`: not for digits);
- `strong`: `light`, then random contrast, random erasing and Gaussian
  noise.

Keras loads on the first call (`AUGMENTS` is read while flags parse).
"""

from dlrecipes.lazy import keras

AUGMENTS = ("auto", "none", "light", "strong")


def augmentation(level, flip=False, seed=None):
    """The preprocessing layers of preset `level` (one of `AUGMENTS`), in
    order, seeded with `seed`."""
    if level not in AUGMENTS:
        raise ValueError(f"augmentation level must be one of "
                         f"{', '.join(AUGMENTS)}. Received: level={level!r}")
    level = "light" if level == "auto" else level
    layers = []
    if level in ("light", "strong"):
        layers.append(keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="constant", seed=seed))
        layers.append(keras.layers.RandomRotation(
            0.04, fill_mode="constant", seed=seed))
        if flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if level == "strong":
        layers.append(keras.layers.RandomContrast(0.2, seed=seed))
        layers.append(keras.layers.RandomErasing(
            factor=0.5, scale=(0.02, 0.15), seed=seed))
        layers.append(keras.layers.GaussianNoise(0.05, seed=seed))
    return layers


def augment(x, level, flip=False, seed=None):
    """`x` through the layers of preset `level`."""
    for layer in augmentation(level, flip=flip, seed=seed):
        x = layer(x)
    return x
