"""Safe loading of saved models: `load_model(path)`.

Every dlrecipes command that reads a model (transfer `--backbone`, a run's
evaluation of its best `model.keras`) goes through `load_model`, and a
weights file (transfer `--weights`) through `check_weights_file` before
Keras reads it. `load_model` accepts one format, the Keras v3
`.keras` zip archive, recognised by its content (zip magic plus
`config.json`, `metadata.json` and `model.weights.h5` inside), never by the
file name. Before Keras sees the file, `check_model_file` inspects it
without extracting, importing or opening anything else:

- the archive: entry names (no `..`, absolute names, backslashes or
  symlinks), entry count, declared sizes and compression ratios from the
  central directory, overlapping entries, encryption; `config.json` is read
  with a size cap, so a lying size header cannot blow up memory;
- `config.json`: every serialized object must be a Keras class from an
  already imported `keras` module or a class registered by dlrecipes
  (`dlrecipes>Name`, defined in a `dlrecipes` module); every function a
  Keras built-in (activations, losses, metrics, ops ...); no `Lambda`,
  `TFSMLayer`, `TorchModuleWrapper`, `JaxLayer` or Python lambda; no
  vocabulary given as a file path, and no path-like string (absolute,
  `~`, URL, `..`) anywhere in the config;
- `model.weights.h5`: no external or soft links, no external or virtual
  datasets, only the standard HDF5 filters, and datasets that declare no
  more data than the file stores.

A path that is not a regular file (a directory, FIFO or device, found with
`dlrecipes.paths.path_kind`) is refused without being opened. Only then
`keras.saving.load_model(path, safe_mode=True)` builds the model.
These checks cover everything that Keras' safe mode guards against, so they
hold even where `keras.config.enable_unsafe_deserialization()` was called.

A refusal is a `UsageError` (one line, exit code 2 in the CLI):
`UnsafeModelError` for a file that tries something unsafe, `ModelFormatError`
for one that is not a readable `.keras` archive (legacy `.h5` files and
SavedModel folders included, with how to convert them).
"""

import os
import shutil
import stat
import tempfile

import keras

from dlrecipes.errors import UsageError
from dlrecipes.paths import path_kind
from dlrecipes.saving.archive import check_archive
from dlrecipes.saving.config import (check_config, declared_input_shapes,
                                     register_dlrecipes_objects)
from dlrecipes.saving.hdf5 import check_hdf5
from dlrecipes.saving.rules import (  # noqa: F401  (the limits, public)
    CONVERT_HINT, HDF5_MAGIC, MAX_CENTRAL_DIRECTORY_BYTES,
    MAX_COMPRESSED_WEIGHTS_BYTES, MAX_CONFIG_BYTES, MAX_ENTRIES,
    MAX_H5_DEPTH, MAX_H5_LINKS, MAX_JSON_DEPTH, MAX_METADATA_BYTES,
    MAX_RATIO, MAX_TOTAL_BYTES, ZIP_MAGIC, ModelFormatError,
    UnsafeModelError, first_line)

__all__ = ["load_model", "check_model_file", "check_weights_file",
           "check_config", "declared_input_shapes", "UnsafeModelError",
           "ModelFormatError"]


def load_model(path, compile=True):
    """Load a `.keras` model after checking it is safe to load.

    Args:
        path: a `.keras` zip archive (any file name).
        compile: whether to restore the optimizer, loss and metrics from
            the archive (`False` for a backbone that is compiled again).

    Returns:
        The `keras.Model`.

    Raises:
        UnsafeModelError: the file would run code, import a module or
            read a file outside the archive, or is a decompression bomb.
        ModelFormatError: the file is not a readable `.keras` archive
            (a legacy `.h5` file or a SavedModel folder included).

    Example:

    >>> model = load_model("runs/image-classification/<time>/model.keras")
    """
    path = os.fspath(path)
    register_dlrecipes_objects()  # (check_config does too; explicit here)
    check_model_file(path)
    keras_path, tmp_dir = _keras_name(path)
    try:
        return keras.saving.load_model(keras_path, compile=compile,
                                       safe_mode=True)
    except UsageError:
        raise
    except (MemoryError, RecursionError):
        raise
    except Exception as e:
        raise ModelFormatError(f"{path}: Keras cannot load this model: "
                               f"{type(e).__name__}: {first_line(e)}") from e
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def check_model_file(path):
    """Check a `.keras` archive without loading it; return its config.

    Raises `UnsafeModelError` or `ModelFormatError` (both `UsageError`)
    with a one-line message that starts with the path; see the module
    docstring for what is checked. Nothing is extracted, imported or
    written, and only a regular file is opened (never a FIFO or device).
    """
    return _inspect(path, check_archive)


def check_weights_file(path):
    """Check a weights file before Keras reads it (`--weights PATH`).

    Accepts, by content, an HDF5 file (`model.save_weights(
    "x.weights.h5")`, a keras-applications `.h5`), checked as the
    `model.weights.h5` of an archive (no links or external storage, no
    plugin filters, no shape bomb), or a `.keras` archive
    (`check_model_file`).

    Raises:
        UnsafeModelError: the file reaches outside itself or is a bomb.
        ModelFormatError: it is neither HDF5 nor a `.keras` archive.
    """
    return _inspect(path, _check_weights_or_archive)


def _inspect(path, check):
    """`check(f, size)` on the opened regular file `path`, its errors made
    one line that starts with the path."""
    path = os.fspath(path)
    try:
        kind = path_kind(path)
    except UsageError as e:
        raise ModelFormatError(str(e)) from None
    if kind is None:
        raise ModelFormatError(f"{path}: file not found")
    if kind == "a directory":
        raise ModelFormatError(_directory_message(path))
    if kind != "a file":
        raise ModelFormatError(f"{path} is {kind}, not a model file")
    try:
        # O_NONBLOCK: a FIFO swapped in since the check cannot block us.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ModelFormatError("changed into something that is not "
                                       "a file while being read")
            return check(f, st.st_size)
    except UnsafeModelError as e:
        raise UnsafeModelError(f"{path}: refused: {e}") from None
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    except OSError as e:
        raise ModelFormatError(f"cannot read {path}: {e}") from None


def _directory_message(path):
    if any(os.path.isfile(os.path.join(path, name))
           for name in ("saved_model.pb", "saved_model.pbtxt")):
        return (f"{path} is a TensorFlow SavedModel folder; dlrecipes loads "
                f"only .keras files: {CONVERT_HINT}")
    return f"{path} is a directory, not a .keras model file"


def _keras_name(path):
    """Keras wants the `.keras` suffix; link other names from a temp dir."""
    if path.endswith(".keras"):
        return path, None
    tmp_dir = tempfile.mkdtemp(prefix="dlrecipes-load-")
    target = os.path.join(tmp_dir, "model.keras")
    try:
        os.symlink(os.path.abspath(path), target)
    except OSError:
        shutil.copyfile(path, target)
    return target, tmp_dir



def _check_weights_or_archive(f, size):
    """A standalone weights file: HDF5, or a whole `.keras` archive."""
    magic = f.read(8)
    f.seek(0)
    if magic.startswith(ZIP_MAGIC):
        return check_archive(f, size)
    if not magic.startswith(HDF5_MAGIC):
        raise ModelFormatError("not a weights file (an HDF5 file such as "
                               "model.save_weights('x.weights.h5') writes, "
                               "or a .keras archive)")
    return check_hdf5(f, size, "the weights file")
