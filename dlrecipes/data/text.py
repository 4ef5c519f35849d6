"""Text data: raw strings for a model that vectorizes them itself.

`load_text` returns a `TextData`: batched `tf.data` `(text, label)` splits
of imdb_reviews (tensorflow-datasets), a folder of .txt files (one
sub-folder per class) or a generated toy corpus, and the vocabulary of the
training texts for the model's `TextVectorization` layer. TensorFlow is
imported inside the loaders; `check_text_folder` validates a folder in
plain Python before TensorFlow reads it, so bad input is a one-line
`UsageError`.
"""

import dataclasses
import os

import numpy as np

from dlrecipes.data.description import Data
from dlrecipes.data.embedded import stratified_split
from dlrecipes.data.tfdata import batched
from dlrecipes.data.tfds_loader import count_examples, load_tfds_splits
from dlrecipes.errors import UsageError, choices_message
from dlrecipes.lazy import keras

SOURCES = ("imdb_reviews", "toy", "folder:PATH")  # what `load_text` takes


@dataclasses.dataclass(kw_only=True)
class TextData(Data):
    """`Data` of raw strings: `input_shape` is `()` (one string per
    example) and the splits are batched `tf.data` datasets.

    Attributes:
        vocabulary: the `TextVectorization` vocabulary adapted on the
            training texts only: "" (padding), "[UNK]", then tokens by
            frequency.
    """

    vocabulary: list


def require_tensorflow(what):
    """UsageError unless TensorFlow is Keras' backend: `what` (a recipe)
    processes strings inside its model, which only TensorFlow can."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UsageError(
            f"{what} needs TensorFlow (its TextVectorization runs inside the "
            "model on raw strings): pip install tensorflow and set "
            f"KERAS_BACKEND=tensorflow. Received: backend={backend}")


def check_source(dataset):
    """UsageError unless `load_text` takes `dataset` (one of `SOURCES`; a
    folder must exist). Checks the flag before anything is read."""
    if dataset.startswith("folder:"):
        path = dataset[len("folder:"):]
        if not os.path.isdir(path):
            raise UsageError(f"--dataset folder:{path}: folder not found")
    elif dataset not in ("imdb_reviews", "toy"):
        raise UsageError("--dataset: " + choices_message(
            "dataset", dataset, SOURCES))


def load_text(dataset, *, max_tokens, batch_size, seed, val_fraction=0.1,
              data_dir=""):
    """The `TextData` of `dataset`, batched by `batch_size`.

    Args:
        dataset: "imdb_reviews" (tensorflow-datasets: the last
            `val_fraction` of its train split validates, its test split
            tests), "folder:PATH" (`keras.utils.text_dataset_from_directory`,
            70% train, 15% validation, 15% test, shuffled with `seed`) or
            "toy" (`toy_corpus`, stratified 80/20 then `val_fraction`).
        max_tokens: vocabulary size, padding and "[UNK]" included.
        batch_size, seed: batches; the training split is shuffled with
            `seed`.
        val_fraction: see `dataset`.
        data_dir: the tensorflow-datasets data directory.
    """
    import tensorflow as tf

    if dataset == "toy":
        texts, labels, names = toy_corpus(seed=0)
        parts = stratified_split(texts, labels, test_fraction=0.2,
                                 val_fraction=val_fraction)
        splits = [None if p is None else tf.data.Dataset.from_tensor_slices(
            (p[0].astype(str), p[1])) for p in parts]
    elif dataset.startswith("folder:"):
        splits, names = _folder_splits(dataset[len("folder:"):], seed)
    else:
        splits = load_tfds_splits(dataset, data_dir, val_fraction)
        names = splits.info.features["label"].names
        splits = splits[:3]
    num_train = count_examples(splits[0])
    vocabulary = adapt_vocabulary(splits[0], max_tokens)
    train, val, test = (batched(ds, batch_size, seed, training=i == 0)
                        for i, ds in enumerate(splits))
    return TextData(train, val, test, input_shape=(), num_classes=len(names),
                    class_names=tuple(names), num_train=num_train,
                    source=dataset, vocabulary=vocabulary)


def adapt_vocabulary(train, max_tokens):
    """The `TextVectorization` vocabulary of the `(text, label)` dataset
    `train` (a list of str: "", "[UNK]", then tokens by frequency)."""
    vectorizer = keras.layers.TextVectorization(max_tokens=max_tokens)
    vectorizer.adapt(train.map(lambda text, label: text).batch(1024))
    return [str(t) for t in vectorizer.get_vocabulary()]


def _folder_splits(path, seed):
    names = check_text_folder(path)
    try:
        train, rest = keras.utils.text_dataset_from_directory(
            path, validation_split=0.3, subset="both", seed=seed,
            batch_size=None)
    except ValueError as e:
        raise UsageError(f"--dataset folder:{path}: "
                         f"{str(e).splitlines()[0]}") from None
    return [train, rest.shard(2, 0), rest.shard(2, 1)], names


_TOY_CLASSES = ("negative", "positive")
_TOY_WORDS = {
    "negative": ("awful", "boring", "dull", "poor", "terrible", "weak",
                 "bland", "tedious", "clumsy", "messy", "flat", "tiresome"),
    "positive": ("great", "brilliant", "superb", "lovely", "moving", "sharp",
                 "vivid", "charming", "clever", "fresh", "gripping",
                 "delightful"),
}
_TOY_FILLER = ("the", "a", "film", "movie", "story", "plot", "acting", "it",
               "was", "and", "very", "really", "quite", "this", "of", "cast",
               "ending", "scenes", "with", "an")


def toy_corpus(num_per_class=100, length=12, class_words=3, seed=0):
    """A generated two-class corpus ("negative" / "positive" reviews).

    Each text is `length` words: `class_words` drawn from its class's
    vocabulary, the rest from a shared filler vocabulary, shuffled. It is
    offline smoke-test data, not a benchmark: a bag of words separates the
    classes perfectly.

    Returns:
        `(texts, labels, class_names)`: an object array of str, int32
        labels, and the class names.
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, name in enumerate(_TOY_CLASSES):
        for _ in range(num_per_class):
            words = list(rng.choice(_TOY_WORDS[name], class_words))
            words += list(rng.choice(_TOY_FILLER, length - class_words))
            rng.shuffle(words)
            texts.append(" ".join(words))
            labels.append(label)
    return (np.array(texts, dtype=object), np.array(labels, dtype="int32"),
            _TOY_CLASSES)


def check_text_folder(path):
    """Validate `path` for `keras.utils.text_dataset_from_directory`.

    Requires at least two class sub-folders, each with at least one .txt
    file (searched recursively, as Keras does), and no empty .txt file.

    Returns:
        The class names (sub-folder names, sorted).

    Raises:
        UsageError: naming the folder or file at fault.
    """
    where = f"--dataset folder:{path}"
    if not os.path.isdir(path):
        raise UsageError(f"{where}: folder not found")
    classes = sorted(d for d in os.listdir(path)
                     if not d.startswith(".")
                     and os.path.isdir(os.path.join(path, d)))
    if len(classes) < 2:
        raise UsageError(f"{where} needs at least two class sub-folders, "
                         "one per class, holding .txt files. Received: "
                         f"{len(classes)} ({', '.join(classes) or 'none'})")
    for name in classes:
        count = 0
        for root, _, files in os.walk(os.path.join(path, name),
                                      followlinks=True):
            for fname in sorted(files):
                if not fname.lower().endswith(".txt"):
                    continue
                count += 1
                fpath = os.path.join(root, fname)
                size = os.path.getsize(fpath)
                if size == 0 or (size < 4096 and not _read(fpath).strip()):
                    raise UsageError(f"{where}: empty file {fpath}")
        if not count:
            raise UsageError(f"{where}: class folder {name!r} has no .txt "
                             "files")
    return tuple(classes)


def _read(path):
    with open(path, "rb") as f:
        return f.read()
