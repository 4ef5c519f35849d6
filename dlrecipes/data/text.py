"""Text data: a generated toy corpus and folders of .txt files.

`check_text_folder` validates a folder in plain Python before TensorFlow
reads it, so bad input is a one-line `UsageError`.
"""

import os

import numpy as np

from dlrecipes.errors import UsageError

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
