"""tensorflow-datasets loaders, with one-line errors when offline."""

import os

from dlrecipes.errors import RunError, UsageError


def _requires_tensorflow(what):
    try:
        import tensorflow as tf  # noqa: F401
        import tensorflow_datasets as tfds  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} needs TensorFlow and tensorflow-datasets "
                         "(pip install tensorflow tensorflow-datasets); "
                         "use an embedded dataset under JAX/PyTorch") from None


def load(name, splits, data_dir=None, as_supervised=True):
    """Load `splits` (e.g. ["train[:90%]", "train[90%:]", "test"]) of a
    tfds dataset; returns (list of tf.data.Dataset, tfds.core.DatasetInfo).

    Raises:
        RunError: the dataset is not in `data_dir` and cannot be downloaded.
    """
    _requires_tensorflow(f"dataset {name!r}")
    import tensorflow_datasets as tfds

    if data_dir and not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir does not exist: {data_dir}")
    try:
        datasets, info = tfds.load(name, split=splits, data_dir=data_dir,
                                   as_supervised=as_supervised, with_info=True,
                                   shuffle_files=False)
    except Exception as e:  # network, checksum, missing builder ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunError(
            f"cannot load dataset {name!r} with tensorflow-datasets "
            f"({first[:160]}); download it on a machine with network and "
            "pass --data-dir, or use an embedded dataset") from None
    return datasets, info
