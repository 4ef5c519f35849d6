"""Datasets: embedded (offline), tensorflow-datasets, folders and CSV files.

TensorFlow and tensorflow-datasets are imported only inside the loaders
that need them, so embedded data loads under JAX with no TensorFlow.
"""

from dlrecipes.data.embedded import (  # noqa: F401
    load_digits, split_arrays, stratified_split)
