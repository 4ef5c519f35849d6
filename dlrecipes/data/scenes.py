"""Segmentation datasets (an image and a class per pixel), as typed
`SegmentationData`:

- `digit_scenes`: generated from the embedded 8x8 digits, offline and
  deterministic: a `size` x `size` canvas (24 by default) with 3 digits at
  random offsets, overlap allowed; each pixel is labelled background (0)
  or 1 + the digit of the brightest digit whose ink covers it (ink: a raw
  value of at least `INK` of 16), 11 classes. Training scenes are made
  of training digits, validation and test scenes of the validation and
  test digits (the digits split of `images.digits_data`), so no test digit
  was ever seen in training. NumPy only (no TensorFlow).
- `folder_scenes`: `folder:PATH` with `images/` and `masks/`, one mask per
  image with the same file stem; a mask holds a class index per pixel (a
  single-channel or palette PNG). Decoded once, up front, with Pillow.
- `pets_data`: tensorflow-datasets' `oxford_iiit_pet` (trimaps: pet,
  background, border), batched `tf.data` splits resized to `image_size`.

`check_dataset` is the recipe's `--dataset` check. NumPy at import.
"""

import dataclasses
import math
import os
import typing

import numpy as np

from dlrecipes.data import images as image_data
from dlrecipes.data.description import Data
from dlrecipes.data.embedded import load_digits, stratified_split
from dlrecipes.errors import UsageError, choices_message

# (tfds-style, like the other dataset names: tests/test_tfds_real.py asks
# tfds about every name a recipe lists, and tfds cannot parse a hyphen.)
DIGIT_SCENES = "digit_scenes"
PETS = "oxford_iiit_pet"
NAMES = (DIGIT_SCENES, PETS)  # besides folder:PATH
SCENE_SIZE = 24  # the default canvas
DIGITS_PER_SCENE = 3
DIGIT_SIZE = 8
INK = 4.0  # raw digit value (0..16) from which a pixel is a digit's
SCENES = 4000  # training scenes by default
TEST_SCENES_PER_TRAIN = 0.25  # test scenes per training scene
DIGIT_CLASSES = ("background",) + tuple(str(d) for d in range(10))
PET_CLASSES = ("background", "pet", "border")
PET_IMAGE_SIZE = 128
# tfds' trimap values (1 pet, 2 background, 3 border) -> classes; 0 and
# anything above 3 (never in the real data; random under mock data) are
# clipped into that table.
PET_TRIMAP = (0, 1, 0, 2)
# Datasets of the other tasks: named in the error, not "unknown".
TEXT_DATASETS = ("imdb_reviews", "toy")
SERIES_DATASETS = ("sunspots", "co2")
FOLDER_TEST_FRACTION = 0.2
IMAGES, MASKS = "images", "masks"
MASK_MODES = ("1", "L", "P", "I", "I;16")  # single-channel PIL modes


@dataclasses.dataclass
class SegmentationData(Data):
    """`Data` of a segmentation task: `y` holds a class per pixel,
    `(n, *spatial)` integers.

    Attributes:
        digits: `(x, y)` of the labelled 8x8 digits the training scenes
            are made of (digit_scenes only, else None): what the classical
            baseline's classifier learns from.
        ink: the raw value from which a digit_scenes pixel is ink (the
            threshold of the classical baseline), or None.
    """

    digits: typing.Optional[tuple] = None
    ink: typing.Optional[float] = None


# ------------------------------------------------------------------ checks


def check_dataset(dataset):
    """`--dataset` is digit_scenes, oxford_iiit_pet or `folder:PATH` of an
    existing folder; a text or series dataset, or anything else, is a
    `UsageError`."""
    kind = ("text" if dataset in TEXT_DATASETS else "series" if (
        dataset in SERIES_DATASETS or dataset.startswith("csv:")) else None)
    if kind:
        raise UsageError(
            f"--dataset {dataset} is a {kind} dataset; segmentation needs "
            "images with a class per pixel: "
            f"{', '.join(NAMES)} or folder:PATH (images/ and masks/). "
            f"Received: dataset={dataset!r}")
    image_data.check_dataset(dataset, NAMES)


def native_size(dataset, image_size):
    """The (height, width) the model sees, or None where only the files
    tell (a folder without `--image-size`)."""
    if image_size:
        return image_size, image_size
    if dataset == DIGIT_SCENES:
        return SCENE_SIZE, SCENE_SIZE
    if dataset == PETS:
        return PET_IMAGE_SIZE, PET_IMAGE_SIZE
    return None


# ------------------------------------------------------------ digit_scenes


def make_scenes(digits, labels, count, size, rng):
    """`count` scenes of `DIGITS_PER_SCENE` digits drawn from `digits`.

    Args:
        digits: `(m, 8, 8)` raw digit images (0..16).
        labels: `(m,)` their digits 0..9.
        count: scenes to make.
        size: canvas side (>= 8).
        rng: a `np.random.Generator` (the only source of randomness).

    Returns:
        `(x, y)`: float32 `(count, size, size, 1)` canvases (the brightest
        digit at each pixel, raw 0..16) and int32 `(count, size, size)`
        masks (0 background, 1 + digit).
    """
    k, d = DIGITS_PER_SCENE, DIGIT_SIZE
    pick = rng.integers(0, len(digits), size=(count, k))
    offsets = rng.integers(0, size - d + 1, size=(count, k, 2))
    layers = np.zeros((count, k, size, size), dtype="float32")
    grid = np.arange(d)
    n_idx = np.arange(count)[:, None, None, None]
    k_idx = np.arange(k)[None, :, None, None]
    rows = offsets[:, :, 0, None, None] + grid[None, None, :, None]
    cols = offsets[:, :, 1, None, None] + grid[None, None, None, :]
    layers[n_idx, k_idx, rows, cols] = digits[pick]
    brightest = np.argmax(layers, axis=1)  # ties: the first digit
    x = np.max(layers, axis=1)
    classes = 1 + labels[pick]  # (count, k)
    owner = classes[np.arange(count)[:, None, None], brightest]
    y = np.where(x >= INK, owner, 0).astype("int32")
    return x[..., None], y


def digit_scenes(seed=0, scenes=SCENES, size=SCENE_SIZE, val_fraction=0.1):
    """The digit_scenes dataset (see the module docstring).

    Args:
        seed: draws the scenes (each split from its own stream of it).
        scenes: training scenes; validation holds `ceil(scenes *
            val_fraction)` (none for 0), test `ceil(scenes / 4)`.
        size: the canvas side, at least 8.
        val_fraction: as for the digits: the fraction of the training
            digits held out to compose the validation scenes.

    Returns:
        `SegmentationData` of arrays, `digits` the training digits.
    """
    if size < DIGIT_SIZE:
        raise UsageError(f"--image-size must be at least {DIGIT_SIZE} for "
                         f"{DIGIT_SCENES} (the digits are {DIGIT_SIZE} x "
                         f"{DIGIT_SIZE}). Received: image_size={size}")
    x, y = load_digits()
    train, val, test = stratified_split(x[..., 0], y, test_fraction=0.2,
                                        val_fraction=val_fraction)
    counts = (scenes, math.ceil(scenes * val_fraction),
              math.ceil(scenes * TEST_SCENES_PER_TRAIN))
    parts = []
    for index, (part, count) in enumerate(zip((train, val, test), counts)):
        if part is None:
            parts.append(None)
            continue
        rng = np.random.default_rng([seed, index])
        parts.append(make_scenes(part[0], part[1], count, size, rng))
    return SegmentationData(
        parts[0], parts[1], parts[2], input_shape=(size, size, 1),
        num_classes=len(DIGIT_CLASSES), class_names=DIGIT_CLASSES,
        scale=1 / 16, flip=False, source=DIGIT_SCENES, digits=train,
        ink=INK)


# ----------------------------------------------------------------- folders


def _pillow(path):
    try:
        from PIL import Image
    except ImportError:
        raise UsageError(f"--dataset folder:{path} needs Pillow to read "
                         "images (pip install pillow)") from None
    return Image


def list_pairs(path):
    """`[(stem, image file, mask file)]` of a folder with `images/` and
    `masks/` (files matched by stem, sorted; hidden files skipped)."""
    where = f"--dataset folder:{path}"
    missing = [d for d in (IMAGES, MASKS)
               if not os.path.isdir(os.path.join(path, d))]
    if missing:
        try:
            found = sorted(n for n in os.listdir(path)
                           if not n.startswith("."))
        except OSError as e:
            found = [f"({e.strerror})"]
        raise UsageError(
            f"{where} needs the sub-folders images/ and masks/ (a mask per "
            "image, same file stem); missing: "
            f"{', '.join(d + '/' for d in missing)} (found: "
            f"{', '.join(found[:5]) or 'nothing'}"
            f"{', ...' if len(found) > 5 else ''})")
    files = {}
    for sub in (IMAGES, MASKS):
        by_stem = {}
        folder = os.path.join(path, sub)
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or not name.lower().endswith(
                    image_data.IMAGE_EXTENSIONS):
                continue
            stem = os.path.splitext(name)[0]
            if stem in by_stem:
                raise UsageError(
                    f"{where}: {sub}/ holds two files with the stem "
                    f"{stem!r} ({by_stem[stem]}, {name})")
            by_stem[stem] = name
        files[sub] = by_stem
    images, masks = files[IMAGES], files[MASKS]
    lonely = sorted(set(images) - set(masks))
    orphans = sorted(set(masks) - set(images))
    if lonely or orphans:
        parts = []
        if lonely:
            parts.append(f"{len(lonely)} image{'s' * (len(lonely) > 1)} "
                         f"without a mask (first: images/{images[lonely[0]]})")
        if orphans:
            parts.append(f"{len(orphans)} mask{'s' * (len(orphans) > 1)} "
                         "without an image (first: "
                         f"masks/{masks[orphans[0]]})")
        raise UsageError(f"{where}: unmatched file stems: "
                         f"{'; '.join(parts)}")
    if not images:
        raise UsageError(f"{where}: images/ holds no image files "
                         f"({', '.join(image_data.IMAGE_EXTENSIONS)})")
    return [(stem, os.path.join(path, IMAGES, images[stem]),
             os.path.join(path, MASKS, masks[stem]))
            for stem in sorted(images)]


def _open(Image, file, where):
    try:
        image = Image.open(file)
        image.load()
    except Exception as e:  # noqa: BLE001 (PIL raises many kinds)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"{where}: cannot read {file} ({first[:120]})") \
            from None
    return image


def _mask_array(image, file, where):
    if image.mode in MASK_MODES:
        return np.asarray(image).astype("int64")
    rgb = np.asarray(image.convert("RGB"))
    if not (np.array_equal(rgb[..., 0], rgb[..., 1])
            and np.array_equal(rgb[..., 0], rgb[..., 2])):
        raise UsageError(
            f"{where}: mask {file} is a colour image (mode {image.mode}); a "
            "mask holds one class index per pixel (a single-channel or "
            "palette PNG)")
    return rgb[..., 0].astype("int64")


def read_pairs(path, pairs, image_size=0):
    """Decode every image (RGB, uint8) and mask (int32 class indices).

    Args:
        path: the folder (for messages).
        pairs: `list_pairs(path)`.
        image_size: resize both to N x N (images bilinear, masks nearest),
            or 0: every pair must have one common size.

    Returns:
        `(x, y)`: uint8 `(n, h, w, 3)` and int32 `(n, h, w)`.
    """
    Image = _pillow(path)
    where = f"--dataset folder:{path}"
    xs, ys, first = [], [], None
    for stem, image_file, mask_file in pairs:
        image = _open(Image, image_file, where)
        mask = _open(Image, mask_file, where)
        if image.size != mask.size:
            raise UsageError(
                f"{where}: image {os.path.basename(image_file)} is "
                f"{image.size[0]} x {image.size[1]} but its mask "
                f"{os.path.basename(mask_file)} is {mask.size[0]} x "
                f"{mask.size[1]} (width x height); a mask has its image's "
                "size")
        if image_size:
            image = image.convert("RGB").resize((image_size, image_size),
                                                Image.BILINEAR)
            mask = mask.resize((image_size, image_size), Image.NEAREST)
        elif first is None:
            first = (os.path.basename(image_file), image.size)
        elif image.size != first[1]:
            raise UsageError(
                f"{where}: images differ in size ({first[0]}: "
                f"{first[1][0]} x {first[1][1]}, "
                f"{os.path.basename(image_file)}: {image.size[0]} x "
                f"{image.size[1]}); pass --image-size N to resize them all")
        xs.append(np.asarray(image.convert("RGB"), dtype="uint8"))
        values = _mask_array(mask, mask_file, where)
        if values.min() < 0:
            raise UsageError(f"{where}: mask {mask_file} holds negative "
                             f"values (min {values.min()})")
        ys.append(values)
    return np.stack(xs), np.stack(ys)


def check_mask_values(y, num_classes, where, files=None):
    """Every mask value is below `num_classes`; a `UsageError` naming the
    first offending mask otherwise."""
    per_mask = y.reshape(len(y), -1).max(axis=1)
    bad = np.flatnonzero(per_mask >= num_classes)
    if len(bad):
        i = int(bad[0])
        name = f"mask {files[i]}" if files else f"mask {i}"
        raise UsageError(
            f"{where}: {name} holds the value {int(per_mask[i])}, but there "
            f"are {num_classes} classes (values 0..{num_classes - 1}); "
            f"{len(bad)} mask{'s' * (len(bad) > 1)} out of range. "
            f"Received: num_classes={num_classes}")


def folder_scenes(path, image_size=0, val_fraction=0.1, num_classes=0):
    """A folder of images and masks as `SegmentationData` of arrays.

    Args:
        path: a folder with `images/` and `masks/` (matching file stems).
        image_size: resize to N x N, or 0 (all pairs share one size).
        val_fraction: fraction of the non-test pairs for validation.
        num_classes: the number of classes (every mask value below it), or
            0: one more than the largest mask value.

    The split is random with a fixed seed (0): `FOLDER_TEST_FRACTION` of
    the pairs (rounded up) for testing, then `val_fraction` of the rest
    for validation, each at least one pair.
    """
    where = f"--dataset folder:{path}"
    pairs = list_pairs(path)
    need = 3 if val_fraction else 2
    if len(pairs) < need:
        raise UsageError(
            f"{where} needs at least {need} image/mask pairs (training, "
            f"{'validation, ' if val_fraction else ''}test). "
            f"Received: {len(pairs)}")
    x, y = read_pairs(path, pairs, image_size)
    if num_classes:
        check_mask_values(y, num_classes, where,
                          [os.path.relpath(m, path) for _, _, m in pairs])
    else:
        num_classes = int(y.max()) + 1
        if num_classes < 2:
            raise UsageError(f"{where}: every mask is all 0 (one class); "
                             "a segmentation needs at least two")
    n = len(y)
    order = np.random.default_rng(0).permutation(n)
    n_test = max(1, math.ceil(FOLDER_TEST_FRACTION * n))
    n_val = max(1, math.ceil(val_fraction * (n - n_test))) \
        if val_fraction else 0
    test, val, train = (order[:n_test], order[n_test:n_test + n_val],
                        order[n_test + n_val:])
    y = y.astype("int32")
    h, w = y.shape[1:]
    return SegmentationData(
        (x[train], y[train]), (x[val], y[val]) if n_val else None,
        (x[test], y[test]), input_shape=(h, w, 3), num_classes=num_classes,
        class_names=tuple(str(c) for c in range(num_classes)),
        scale=1 / 255, flip=True, source=f"folder:{path}")


# -------------------------------------------------------------------- tfds


def pets_data(*, batch_size, seed, image_size=PET_IMAGE_SIZE, data_dir=None,
              val_fraction=0.1, shuffle_buffer=1000):
    """tensorflow-datasets' oxford_iiit_pet as batched `tf.data` splits:
    images resized to `image_size` (raw 0..255, cached as uint8), masks
    resized by nearest neighbour and mapped to background 0, pet 1,
    border 2. Validation is the end of tfds' "train" split
    (`tfds_loader.load_tfds_splits`); the test set is its "test" split."""
    import tensorflow as tf

    from dlrecipes.data.tfds_loader import load_tfds_splits

    splits = load_tfds_splits(PETS, data_dir=data_dir,
                              val_fraction=val_fraction, as_supervised=False)
    size = (image_size, image_size)
    table = tf.constant(PET_TRIMAP, dtype=tf.int32)

    def prepare(example):
        image = tf.image.resize(example["image"], size, antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        mask = tf.image.resize(example["segmentation_mask"], size,
                               method="nearest")[..., 0]
        mask = tf.clip_by_value(tf.cast(mask, tf.int32), 0,
                                len(PET_TRIMAP) - 1)
        return image, tf.gather(table, mask)

    def to_float(image, mask):
        return tf.cast(image, tf.float32), mask

    def pipeline(ds, training):
        if ds is None:
            return None
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed)
        return ds.map(to_float).batch(batch_size).prefetch(tf.data.AUTOTUNE)

    return SegmentationData(
        pipeline(splits.train, True), pipeline(splits.val, False),
        pipeline(splits.test, False), input_shape=(image_size, image_size, 3),
        num_classes=len(PET_CLASSES), class_names=PET_CLASSES,
        scale=1 / 255, flip=True, num_train=splits.num_train or None,
        source=PETS)


def load(dataset, *, seed=0, scenes=SCENES, image_size=0, val_fraction=0.1,
         num_classes=0, batch_size=32, data_dir=""):
    """The segmentation dataset named by `--dataset`."""
    if dataset == DIGIT_SCENES:
        return digit_scenes(seed, scenes, image_size or SCENE_SIZE,
                            val_fraction)
    if dataset == PETS:
        return pets_data(batch_size=batch_size, seed=seed,
                         image_size=image_size or PET_IMAGE_SIZE,
                         data_dir=data_dir or None, val_fraction=val_fraction)
    folder = image_data.folder_of(dataset)
    if folder is None:
        raise UsageError("--dataset: " + choices_message(
            "dataset", dataset, NAMES + ("folder:PATH",)))
    return folder_scenes(folder, image_size, val_fraction, num_classes)
