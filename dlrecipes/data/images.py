"""Image datasets for the image recipes, as typed `Data`.

- `digits_data`: the embedded 8x8 digits, optionally some classes only
  (`parse_classes`, relabelled 0..k-1) and a stratified fraction of the
  training labels;
- `load_folder`: a folder with one sub-folder of images per class
  (`folder:PATH`), decoded once, up front, into uint8 arrays: unreadable
  files skipped with one warning, a stratified split with a fixed seed;
- `tfds_image_data`: a tensorflow-datasets image dataset, batched
  `tf.data` splits (cut by `tfds_loader.load_tfds_splits`);
  `tfds_image_arrays` the same splits read whole into uint8 arrays;
- `repeat_small_train`, `small_data_hint`: what a tiny training set needs.

`check_dataset` is the `--dataset` check both image recipes make before a
run. NumPy at import; TensorFlow only inside the loaders that need it.
"""

import math
import os
import sys
import warnings

import numpy as np

from dlrecipes.data.description import Data
from dlrecipes.data.embedded import (load_digits, split_arrays,
                                     stratified_indices, stratified_split)
from dlrecipes.errors import UsageError, choices_message

FOLDER = "folder:"
# As Keras' image_dataset_from_directory.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
FOLDER_IMAGE_SIZE = 32
FOLDER_TEST_FRACTION = 0.2
SMALL_PER_CLASS = 100  # fewer training images per class: a hint
MIN_EPOCH_STEPS = 16  # a smaller training set is repeated within an epoch


def check_dataset(dataset, names):
    """`--dataset` is one of `names` or `folder:PATH` of an existing
    folder; a `UsageError` otherwise."""
    if dataset.startswith(FOLDER):
        path = dataset[len(FOLDER):]
        if not os.path.isdir(path):
            raise UsageError(f"--dataset: folder not found: {path!r}")
    elif dataset not in names:
        raise UsageError("--dataset: " + choices_message(
            "dataset", dataset, tuple(names) + (FOLDER + "PATH",)))


def folder_of(dataset):
    """The folder of a `folder:PATH` dataset, else None."""
    return dataset[len(FOLDER):] if dataset.startswith(FOLDER) else None


# ------------------------------------------------------------------- digits


def parse_classes(text, num_classes):
    """'0-4' or '1,3,5' -> sorted tuple of labels; UsageError otherwise."""
    labels = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                labels.update(range(lo, hi + 1))
            else:
                labels.add(int(part))
    except ValueError:
        labels = set()
    if len(labels) < 2 or min(labels) < 0 or max(labels) >= num_classes:
        raise UsageError(f"--classes must name at least two labels in "
                         f"0..{num_classes - 1}, like '0-4' or '1,3,5'. "
                         f"Received: classes={text!r}")
    return tuple(sorted(labels))


def digits_data(classes="", val_fraction=0.1, label_fraction=1.0):
    """The embedded digits: a stratified 80/20 split (seed 0), then
    `val_fraction` of the training part for validation.

    Args:
        classes: keep only these labels ('0-4', '1,3,5'; relabelled
            0..k-1), or "" for all ten.
        val_fraction: fraction of the training part held out (0: none).
        label_fraction: keep this stratified fraction of the training
            examples (validation and test stay whole).
    """
    x, y = load_digits()
    names = tuple(str(i) for i in range(10))
    if classes:
        keep = parse_classes(classes, 10)
        mask = np.isin(y, keep)
        remap = np.zeros(10, dtype="int32")
        remap[list(keep)] = np.arange(len(keep))
        x, y, names = x[mask], remap[y[mask]], tuple(str(k) for k in keep)
    train, val, test = stratified_split(
        x, y, test_fraction=0.2, val_fraction=val_fraction)
    if label_fraction < 1.0:
        xt, _, yt, _ = split_arrays(*train, train_size=label_fraction,
                                    seed=0)
        train = (xt, yt)
    return Data(train, val, test, input_shape=(8, 8, 1),
                num_classes=len(names), class_names=names, scale=1 / 16,
                flip=False, source="digits")


# -------------------------------------------------------------------- tfds


def tfds_image_data(name, *, batch_size, seed, flip, data_dir=None,
                    val_fraction=0.1, test_fraction=None, image_size=None,
                    cache=True, shuffle_buffer=10_000):
    """A tensorflow-datasets image dataset as batched `tf.data` splits of
    raw pixels (0..255).

    Args:
        name, data_dir, val_fraction, test_fraction: as
            `tfds_loader.load_tfds_splits`.
        batch_size: examples per batch.
        seed: shuffles the training split (each epoch anew).
        flip: a horizontal flip keeps the label (`Data.flip`).
        image_size: resize every image to N x N (float32), or None.
        cache: cache the decoded splits in memory.
        shuffle_buffer: the training split's shuffle buffer.
    """
    import tensorflow as tf

    from dlrecipes.data.tfds_loader import load_tfds_splits

    splits = load_tfds_splits(name, data_dir=data_dir,
                              val_fraction=val_fraction,
                              test_fraction=test_fraction)

    def resize(image, label):  # (h, w, c) uint8 -> (n, n, c) float32
        return tf.image.resize(image, (image_size, image_size)), label

    def pipeline(ds, training):
        if ds is None:
            return None
        if cache:
            ds = ds.cache()
        if training:
            ds = ds.shuffle(shuffle_buffer, seed=seed)
        if image_size:
            ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    shape = tuple(splits.info.features["image"].shape)
    if image_size:
        shape = (image_size, image_size, shape[-1])
    labels = splits.info.features["label"]
    return Data(pipeline(splits.train, True), pipeline(splits.val, False),
                pipeline(splits.test, False), input_shape=shape,
                num_classes=labels.num_classes,
                class_names=tuple(labels.names), scale=1 / 255, flip=flip,
                num_train=splits.num_train or None, source=name)


def tfds_image_arrays(name, *, data_dir=None, val_fraction=0.1,
                      test_fraction=None, chunk=4096):
    """A tensorflow-datasets image dataset read whole into uint8 arrays
    (for tasks that need every image at once, such as the autoencoder's
    PCA baseline): the splits of `tfds_loader.load_tfds_splits`.

    Returns:
        `Data` of `(images, labels)` arrays (raw pixels 0..255, scale
        1/255; `val` None when `val_fraction` is 0).
    """
    from dlrecipes.data.tfds_loader import load_tfds_splits

    splits = load_tfds_splits(name, data_dir=data_dir,
                              val_fraction=val_fraction,
                              test_fraction=test_fraction)
    shape = tuple(splits.info.features["image"].shape)

    def arrays(ds):
        if ds is None:
            return None
        xs, ys = [np.zeros((0, *shape), "uint8")], [np.zeros(0, "int32")]
        for x, y in ds.batch(chunk).as_numpy_iterator():
            xs.append(np.asarray(x, "uint8"))
            ys.append(np.asarray(y, "int32"))
        return np.concatenate(xs), np.concatenate(ys)

    labels = splits.info.features["label"]
    return Data(arrays(splits.train), arrays(splits.val),
                arrays(splits.test), input_shape=shape,
                num_classes=labels.num_classes,
                class_names=tuple(labels.names), scale=1 / 255,
                source=name)


# ------------------------------------------------------------------ folders


def load_folder(path, image_size=FOLDER_IMAGE_SIZE, val_fraction=0.1):
    """A folder with one sub-folder of images per class, as uint8 arrays.

    Every file is decoded once, up front, and resized to `image_size`: an
    unreadable file (corrupt or truncated) is skipped with one warning line
    that counts them and names the first, instead of failing mid-training.
    The split is stratified with a fixed seed, as for digits: 20% test,
    then `val_fraction` of the rest for validation, each holding at least
    one image of every class.

    Returns:
        `Data` of `(x, y)` arrays (raw pixels, 0..255).
    """
    class_names, files, labels = list_images(path)
    x, readable = read_images(files, image_size)
    x, labels = _drop_unreadable(path, class_names, files, labels, x,
                                 readable)
    train, val, test = _split_folder(path, class_names, x, labels,
                                     val_fraction)
    return Data(train, val, test, input_shape=(image_size, image_size, 3),
                num_classes=len(class_names), class_names=class_names,
                scale=1 / 255, flip=True, source=FOLDER + path)


def list_images(path):
    """`(class_names, files, labels)` of a folder with one sub-folder per
    class (sorted; hidden ones skipped), its images found recursively by
    extension, as Keras' `image_dataset_from_directory` does."""
    try:
        class_names = tuple(sorted(
            d for d in os.listdir(path) if not d.startswith(".")
            and os.path.isdir(os.path.join(path, d))))
    except OSError as e:
        raise UsageError(f"--dataset folder:{path}: cannot list the folder "
                         f"({e.strerror})") from None
    if len(class_names) < 2:
        raise UsageError(f"--dataset folder:{path} needs at least two class "
                         f"sub-folders. Received: {len(class_names)}")
    files, labels = [], []
    for label, name in enumerate(class_names):
        found = _image_files(os.path.join(path, name))
        if not found:
            raise UsageError(
                f"--dataset folder:{path}: class {name!r} has no image "
                f"files ({', '.join(IMAGE_EXTENSIONS)})")
        files += found
        labels += [label] * len(found)
    return class_names, files, np.asarray(labels, dtype="int32")


def _image_files(folder):
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in sorted(names)
                  if n.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def read_images(files, size):
    """Decode `files` (in parallel, with tf.data) and resize them to
    `size` x `size` RGB.

    Returns:
        `(images, readable)`: uint8 `(n, size, size, 3)` and a boolean mask
        of the files that decoded (the others' images are zeros).
    """
    import tensorflow as tf

    from dlrecipes._quiet import quiet_native_stderr

    def decode(index, file):
        image = tf.io.decode_image(tf.io.read_file(file), channels=3,
                                   expand_animations=False)
        image = tf.image.resize(image, (size, size), antialias=True)
        return index, tf.cast(tf.clip_by_value(tf.round(image), 0, 255),
                              tf.uint8)

    images = np.zeros((len(files), size, size, 3), dtype="uint8")
    readable = np.zeros(len(files), dtype=bool)
    ds = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(files)), np.asarray(files, dtype=object)))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=False).ignore_errors()
    with quiet_native_stderr():  # libjpeg prints its complaints itself
        for index, image in ds.as_numpy_iterator():
            images[index], readable[index] = image, True
    return images, readable


def _drop_unreadable(path, class_names, files, labels, x, readable):
    """Warn once about unreadable files and drop them; a class left with
    no readable image is a UsageError."""
    bad = np.flatnonzero(~readable)
    if not len(bad):
        return x, labels
    for label, name in enumerate(class_names):
        if not np.any(readable & (labels == label)):
            first = files[bad[labels[bad] == label][0]]
            raise UsageError(
                f"--dataset folder:{path}: class {name!r} has no readable "
                f"image (first unreadable file: {first})")
    warnings.warn(f"--dataset folder:{path}: skipped {len(bad)} "
                  f"unreadable image file{'s' * (len(bad) > 1)} (first: "
                  f"{files[bad[0]]})", stacklevel=3)
    return x[readable], labels[readable]


def _split_folder(path, class_names, x, y, val_fraction):
    """Stratified train / validation / test split with every class in each
    part (fixed seed: every run and the baseline see the same test set).

    Returns:
        `((x_train, y_train), (x_val, y_val) or None, (x_test, y_test))`.
    """
    counts = np.bincount(y, minlength=len(class_names))
    need = 3 if val_fraction else 2
    if counts.min() < need:
        few = [f"{name}={int(n)}" for name, n in zip(class_names, counts)
               if n < need]
        raise UsageError(
            f"--dataset folder:{path}: every class needs at least {need} "
            "readable images (one each for training, "
            f"{'validation, ' if val_fraction else ''}test). Received: "
            f"{', '.join(few)}")
    rest, test = _stratified(y, FOLDER_TEST_FRACTION, len(class_names))
    val = None
    if val_fraction:
        train, val = _stratified(y[rest], val_fraction, len(class_names))
        train, val = rest[train], rest[val]
        val = (x[val], y[val])
    else:
        train = rest
    return (x[train], y[train]), val, (x[test], y[test])


def _stratified(y, fraction, num_classes):
    """Indices `(kept, held_out)`: `fraction` of `y` held out (rounded up,
    at least one per class), stratified, seed 0."""
    held_out = max(math.ceil(fraction * len(y)), num_classes)
    return stratified_indices(y, len(y) - held_out, held_out, seed=0)


# --------------------------------------------------------------- small data


def repeat_small_train(data, batch_size, min_steps=MIN_EPOCH_STEPS):
    """Repeat a small training set (arrays) within each epoch, so that an
    epoch holds at least `min_steps` batches; returns `data`.

    An epoch of 86 images is 3 steps of 32: 40 epochs would train for 120
    steps, too few to learn anything from scratch. Each copy is shuffled
    and augmented on its own; `data.train_repeats` records the factor.
    """
    x, y = data.train
    repeats = math.ceil(min_steps * batch_size / len(y))
    if repeats > 1:
        data.train = (np.concatenate([x] * repeats),
                      np.concatenate([y] * repeats))
        data.train_repeats = repeats
    return data


def small_data_hint(data, dataset):
    """One line on stderr when the training set is tiny (fewer than
    `SMALL_PER_CLASS` images per class): a pretrained backbone is the
    usual answer."""
    n = data.num_examples("train")
    if n >= SMALL_PER_CLASS * data.num_classes:
        return
    print(f"note: {n} training images ({n // data.num_classes} per class) "
          "are few for a network trained from scratch; a pretrained "
          "backbone usually does much better: dlrecipes run "
          f"transfer-learning --dataset {dataset}", file=sys.stderr)
