"""Images read as sequences: embedded digits and MNIST (tensorflow-datasets)
for sequence classifiers.

`sequence="rows"` reads an image top to bottom, one row per step (8 steps
of 8 features for digits, 28 x 28 for MNIST); `sequence="pixels"` one pixel
per step (64 steps of 1 feature, or 784: "sequential MNIST", Le et al.
2015). Values stay raw (0..16 for digits, 0..255 for MNIST); `Data.scale`
says how a model rescales them.
"""

from dlrecipes.data.description import Data
from dlrecipes.data.embedded import load_digits, stratified_split
from dlrecipes.data.tfdata import batched

SOURCES = ("digits", "mnist")  # the image datasets read as sequences
SEQUENCES = ("rows", "pixels")  # how an image is read


def sequence_shape(height, width, sequence):
    """One image of `height x width` pixels read as `sequence`:
    `(height, width)` (rows) or `(height * width, 1)` (pixels)."""
    return (height, width) if sequence == "rows" else (height * width, 1)


def as_sequences(images, sequence):
    """`(N, H, W, 1)` images -> `(N, H, W)` rows or `(N, H * W, 1)`
    pixels."""
    n, height, width = images.shape[:3]
    return images.reshape(n, *sequence_shape(height, width, sequence))


def digit_sequences(sequence, val_fraction=0.1):
    """The embedded digits as sequences: a stratified 80/20 split (360 test
    digits), `val_fraction` of the training part for validation; raw
    0..16 values (`scale` 1/16)."""
    images, labels = load_digits()  # (N, 8, 8, 1)
    train, val, test = stratified_split(
        as_sequences(images, sequence), labels, test_fraction=0.2,
        val_fraction=val_fraction)
    return Data(train, val, test, input_shape=train[0].shape[1:],
                num_classes=10, class_names=tuple(str(i) for i in range(10)),
                scale=1 / 16, source="digits")


def mnist_sequences(sequence, val_fraction, batch_size, seed, data_dir=""):
    """MNIST as batched `tf.data` sequences (sequential MNIST with
    `sequence="pixels"`): the last `val_fraction` of tfds' train split
    validates, its test split tests; raw 0..255 values (`scale` 1/255)."""
    import tensorflow as tf

    from dlrecipes.data.tfds_loader import load_tfds_splits

    splits = load_tfds_splits("mnist", data_dir, val_fraction)
    shape = sequence_shape(28, 28, sequence)

    def to_sequence(image, label):
        return tf.reshape(tf.cast(image, "float32"), shape), label

    train, val, test = (
        None if ds is None else batched(
            ds.map(to_sequence, num_parallel_calls=tf.data.AUTOTUNE),
            batch_size, seed, training=i == 0)
        for i, ds in enumerate(splits[:3]))
    labels = splits.info.features["label"]
    return Data(train, val, test, input_shape=shape,
                num_classes=labels.num_classes,
                class_names=tuple(labels.names), scale=1 / 255,
                num_train=splits.num_train, source="mnist")
