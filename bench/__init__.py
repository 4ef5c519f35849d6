"""Benchmarks (not tests): `python -m bench`, `python -m bench.layers` ...

The package sets TensorFlow's environment as `import dlrecipes` does
(oneDNN kernels off: they corrupted the heap, see README; C++ logs quiet)
before any benchmark module imports Keras, but without importing Keras
itself, so that `python -m bench` still answers bad input before the slow
backend import.
"""

import os as _os

# The same defaults as dlrecipes/__init__.py (set here too, so that a bad
# `python -m bench` flag is answered without importing dlrecipes, which
# imports NumPy); a value you set yourself wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
