"""Datasets: embedded (offline), tensorflow-datasets, folders and CSV files.

TensorFlow and tensorflow-datasets are imported only inside the loaders
that need them, so embedded data loads under JAX with no TensorFlow.
"""

from dlrecipes.data.embedded import load_digits, stratified_split  # noqa: F401
