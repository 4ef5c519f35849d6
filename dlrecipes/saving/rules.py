"""What a safe model file may hold: limits, names, the refused classes and
functions, and the two errors (shared by the saving modules)."""

import re

from dlrecipes.errors import UsageError

# Archive limits. Keras stores entries uncompressed, so genuine archives have
# a ratio of 1; DEFLATE cannot exceed ~1032:1, bombs sit near that.
MAX_CONFIG_BYTES = 64 << 20
MAX_METADATA_BYTES = 1 << 20
MAX_ENTRIES = 10_000
MAX_CENTRAL_DIRECTORY_BYTES = 16 << 20
MAX_TOTAL_BYTES = 64 << 30  # declared uncompressed size of all entries
MAX_RATIO = 100  # uncompressed / compressed: entries over 1 MiB, and
# the whole archive beyond the first 64 MiB (many small bombs add up)
MAX_COMPRESSED_WEIGHTS_BYTES = 2 << 30  # inspected in memory
MAX_JSON_DEPTH = 256
MAX_H5_LINKS = 1_000_000
MAX_H5_DEPTH = 64

CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "model.weights.h5"
ASSETS_PREFIX = "assets/"

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

CONVERT_HINT = ("load it in the Keras/TensorFlow version that wrote it and "
                 "save it again with `model.save(\"model.keras\")`")

# class_name values refused wherever they appear (arbitrary code, or a file
# or module from outside the archive).
FORBIDDEN_CLASSES = {
    "Lambda": "a Lambda layer (arbitrary Python code)",
    "__lambda__": "a Python lambda (arbitrary code)",
    "TFSMLayer": "a TFSMLayer (loads a SavedModel from outside the archive)",
    "TorchModuleWrapper": "a TorchModuleWrapper (a pickled torch module)",
    "JaxLayer": "a JaxLayer (arbitrary JAX functions)",
    "FlaxLayer": "a FlaxLayer (arbitrary Flax modules)",
    "__typespec__": "a TensorFlow TypeSpec",
}
# Data markers that Keras decodes itself without looking anything up.
DATA_CLASSES = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__",
                 "__ellipsis__", "__slice__"}
# Functions: the Keras modules a function may come from; with module
# "builtins" Keras searches `keras.<name>` for these (its BUILTIN_MODULES).
FUNCTION_MODULES = {"keras.activations", "keras.losses", "keras.metrics",
                     "keras.initializers", "keras.regularizers",
                     "keras.constraints", "keras.ops", "keras.ops.nn",
                     "keras.ops.numpy", "keras.ops.math", "keras.ops.image",
                     "keras.ops.linalg"}
BUILTIN_FUNCTION_MODULES = ("activations", "constraints", "initializers",
                             "losses", "metrics", "optimizers", "regularizers")
# The (de)serialization helpers of those modules are no model functions.
NOT_MODEL_FUNCTIONS = {"get", "serialize", "deserialize"}
# Config keys whose string value Keras (or a Keras-style library) reads as a
# file path; a vocabulary must be stored inline or in the archive's assets.
PATH_KEYS = {"vocabulary", "idf_weights", "vocabulary_file", "vocab_file",
              "filepath", "file_path", "merges", "proto", "spm_proto"}
PATHLIKE = re.compile(r"^(?:[/\\~]|[A-Za-z]:[/\\]|file:)|://|"
                       r"(?:^|[/\\])\.\.(?:[/\\]|$)")

# HDF5 filters built into every HDF5/h5py; anything else would load a plugin.
H5_FILTERS = {1, 2, 3, 32000}  # deflate, shuffle, fletcher32, lzf



class UnsafeModelError(UsageError):
    """A model file that would run code or reach outside its archive."""


class ModelFormatError(UsageError):
    """A file that is not a readable Keras `.keras` archive."""




def show(value, width=80):
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def first_line(e):
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."
