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

import io
import json
import math
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import zipfile
import zlib

import keras

from dlrecipes.errors import UsageError
from dlrecipes.paths import path_kind

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

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

_CONVERT_HINT = ("load it in the Keras/TensorFlow version that wrote it and "
                 "save it again with `model.save(\"model.keras\")`")

# class_name values refused wherever they appear (arbitrary code, or a file
# or module from outside the archive).
_FORBIDDEN_CLASSES = {
    "Lambda": "a Lambda layer (arbitrary Python code)",
    "__lambda__": "a Python lambda (arbitrary code)",
    "TFSMLayer": "a TFSMLayer (loads a SavedModel from outside the archive)",
    "TorchModuleWrapper": "a TorchModuleWrapper (a pickled torch module)",
    "JaxLayer": "a JaxLayer (arbitrary JAX functions)",
    "FlaxLayer": "a FlaxLayer (arbitrary Flax modules)",
    "__typespec__": "a TensorFlow TypeSpec",
}
# Data markers that Keras decodes itself without looking anything up.
_DATA_CLASSES = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__",
                 "__ellipsis__", "__slice__"}
# Functions: the Keras modules a function may come from; with module
# "builtins" Keras searches `keras.<name>` for these (its BUILTIN_MODULES).
_FUNCTION_MODULES = {"keras.activations", "keras.losses", "keras.metrics",
                     "keras.initializers", "keras.regularizers",
                     "keras.constraints", "keras.ops", "keras.ops.nn",
                     "keras.ops.numpy", "keras.ops.math", "keras.ops.image",
                     "keras.ops.linalg"}
_BUILTIN_FUNCTION_MODULES = ("activations", "constraints", "initializers",
                             "losses", "metrics", "optimizers", "regularizers")
# The (de)serialization helpers of those modules are no model functions.
_NOT_MODEL_FUNCTIONS = {"get", "serialize", "deserialize"}
# Config keys whose string value Keras (or a Keras-style library) reads as a
# file path; a vocabulary must be stored inline or in the archive's assets.
_PATH_KEYS = {"vocabulary", "idf_weights", "vocabulary_file", "vocab_file",
              "filepath", "file_path", "merges", "proto", "spm_proto"}
_PATHLIKE = re.compile(r"^(?:[/\\~]|[A-Za-z]:[/\\]|file:)|://|"
                       r"(?:^|[/\\])\.\.(?:[/\\]|$)")

# HDF5 filters built into every HDF5/h5py; anything else would load a plugin.
_H5_FILTERS = {1, 2, 3, 32000}  # deflate, shuffle, fletcher32, lzf


class UnsafeModelError(UsageError):
    """A model file that would run code or reach outside its archive."""


class ModelFormatError(UsageError):
    """A file that is not a readable Keras `.keras` archive."""


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
    _register_dlrecipes_objects()  # (check_config does too; explicit here)
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
                               f"{type(e).__name__}: {_first_line(e)}") from e
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
    return _inspect(path, _check_archive)


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
                f"only .keras files: {_CONVERT_HINT}")
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


# --------------------------------------------------------------- archive


def _check_archive(f, size):
    magic = f.read(8)
    if magic.startswith(_HDF5_MAGIC):
        raise ModelFormatError("a legacy HDF5 (.h5) Keras model, not a "
                               ".keras archive (the only format dlrecipes "
                               f"loads): {_CONVERT_HINT}")
    if magic.startswith(_EMPTY_ZIP_MAGIC):
        raise ModelFormatError("empty zip archive, not a .keras model")
    if not magic.startswith(_ZIP_MAGIC):
        raise ModelFormatError("not a .keras model (a .keras file is a zip "
                               "archive)")
    cd_offset = _check_end_record(f, size)
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError,
            NotImplementedError, struct.error) as e:
        raise ModelFormatError(f"truncated or corrupt archive "
                               f"({_first_line(e)})") from None
    with archive:
        infos = _check_entries(f, archive.infolist(), cd_offset, size)
        metadata = _read_json(archive, infos[METADATA_NAME],
                              MAX_METADATA_BYTES)
        if not isinstance(metadata, dict):
            raise ModelFormatError(f"{METADATA_NAME} is not a JSON object")
        config = _read_json(archive, infos[CONFIG_NAME], MAX_CONFIG_BYTES)
        if not isinstance(config, dict):
            raise ModelFormatError(f"{CONFIG_NAME} is not a JSON object")
        check_config(config)
        _check_weights(f, archive, infos[WEIGHTS_NAME])
    return config


def _check_end_record(f, size):
    """Bound the central directory before zipfile parses it; its offset."""
    tail_size = min(size, 22 + 0xFFFF)
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    pos = tail.rfind(_EMPTY_ZIP_MAGIC)
    # The end record is the last thing in the file, after its comment.
    while pos >= 0 and (len(tail) - pos < 22 or pos + 22 + struct.unpack(
            "<H", tail[pos + 20:pos + 22])[0] != len(tail)):
        pos = tail.rfind(_EMPTY_ZIP_MAGIC, 0, pos)
    if pos < 0:
        raise ModelFormatError("truncated or corrupt archive (no zip end "
                               "record)")
    entries, cd_size, cd_offset = struct.unpack("<xxxxxxxxxxHII",
                                                tail[pos:pos + 20])
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        locator = tail[pos - 20:pos] if pos >= 20 else b""
        if not locator.startswith(b"PK\x06\x07"):
            raise ModelFormatError("truncated or corrupt archive (bad zip64 "
                                   "locator)")
        (record_offset,) = struct.unpack("<Q", locator[8:16])
        f.seek(record_offset)
        record = f.read(56)
        if len(record) < 56 or not record.startswith(b"PK\x06\x06"):
            raise ModelFormatError("truncated or corrupt archive (bad zip64 "
                                   "end record)")
        entries, cd_size, cd_offset = struct.unpack("<QQQ", record[32:56])
    if entries > MAX_ENTRIES:
        raise UnsafeModelError(f"the archive has {entries} entries (at most "
                               f"{MAX_ENTRIES} allowed)")
    if cd_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise UnsafeModelError(f"the zip directory is {cd_size} bytes (at "
                               f"most {MAX_CENTRAL_DIRECTORY_BYTES} allowed)")
    if cd_offset + cd_size > size:
        raise ModelFormatError("truncated or corrupt archive (the zip "
                               "directory lies past the end of the file)")
    return cd_offset


def _check_entries(f, infos, cd_offset, size):
    """Names, flags, sizes and layout of every entry; the named entries."""
    by_name, total, spans = {}, 0, []
    for info in infos:
        name = info.filename
        _check_entry_name(name)
        if name in by_name:
            raise UnsafeModelError(f"the archive holds {name!r} twice")
        by_name[name] = info
        if info.flag_bits & 0x1:
            raise UnsafeModelError(f"entry {name!r} is encrypted")
        if (info.external_attr >> 16) & 0o170000 == stat.S_IFLNK:
            raise UnsafeModelError(f"entry {name!r} is a symbolic link")
        if info.compress_type not in (zipfile.ZIP_STORED,
                                      zipfile.ZIP_DEFLATED):
            raise ModelFormatError(f"entry {name!r} uses an unsupported "
                                   f"compression (method "
                                   f"{info.compress_type})")
        if (info.compress_type == zipfile.ZIP_STORED
                and info.file_size != info.compress_size):
            raise UnsafeModelError(f"entry {name!r} declares {info.file_size}"
                                   f" bytes but stores {info.compress_size}")
        if (info.file_size > 1 << 20
                and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
            raise UnsafeModelError(
                f"entry {name!r} expands {info.compress_size} bytes to "
                f"{info.file_size} (a decompression bomb)")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise UnsafeModelError(f"the archive declares more than "
                                   f"{MAX_TOTAL_BYTES >> 30} GiB of content")
        if total > MAX_RATIO * size + (64 << 20):
            raise UnsafeModelError(f"the archive expands {size} bytes to more "
                                   f"than {total} (a decompression bomb)")
        spans.append((info.header_offset, _data_span(f, info), name))
    _check_layout(spans, cd_offset)
    for required in (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME):
        if required not in by_name:
            raise ModelFormatError(f"not a .keras model: the archive has no "
                                   f"{required}")
    for name, limit in ((CONFIG_NAME, MAX_CONFIG_BYTES),
                        (METADATA_NAME, MAX_METADATA_BYTES)):
        if by_name[name].file_size > limit:
            raise UnsafeModelError(f"{name} declares {by_name[name].file_size}"
                                   f" bytes (at most {limit} allowed)")
    return by_name


def _check_entry_name(name):
    shown = repr(name[:80])
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeModelError(f"entry name {shown} is not a plain path")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeModelError(f"entry name {shown} is an absolute path")
    parts = name.split("/")
    if ".." in parts or "." in parts or "" in parts[:-1]:
        raise UnsafeModelError(f"entry name {shown} leaves its folder")
    if name not in (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME) and not (
            name.startswith(ASSETS_PREFIX)):
        raise UnsafeModelError(f"unexpected entry {shown} (a .keras archive "
                               f"holds {CONFIG_NAME}, {METADATA_NAME}, "
                               f"{WEIGHTS_NAME} and assets/)")


def _data_span(f, info):
    """(start, end) of an entry's stored data, from its local header."""
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) < 30 or not header.startswith(_ZIP_MAGIC):
        raise ModelFormatError(f"truncated or corrupt archive (entry "
                               f"{info.filename!r} has no local header)")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if f.read(name_len) != info.orig_filename.encode(encoding):
        raise UnsafeModelError(f"entry {info.filename!r} has a different name"
                               f" in its local header")
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.compress_size


def _check_layout(spans, cd_offset):
    """Entries must not overlap each other or the central directory."""
    spans.sort()
    end = 0
    for header_offset, (start, stop), name in spans:
        if header_offset < end:
            raise UnsafeModelError(f"entry {name!r} overlaps another entry "
                                   f"(a zip bomb)")
        end = stop
    if end > cd_offset:
        raise ModelFormatError("truncated or corrupt archive (entries run "
                               "into the zip directory)")


def _read_capped(archive, info, limit):
    """An entry's bytes, read in 1 MiB steps: a lying size header costs at
    most `limit` bytes (zipfile stops at the declared size and then fails
    the CRC check)."""
    chunks, total = [], 0
    try:
        with archive.open(info) as stream:
            while total <= limit:
                chunk = stream.read(min(1 << 20, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError,
            NotImplementedError) as e:
        raise ModelFormatError(
            f"truncated or corrupt entry {info.filename!r} "
            f"({_first_line(e)})") from None
    if total > limit:
        raise UnsafeModelError(f"{info.filename} is larger than {limit} "
                               f"bytes")
    return b"".join(chunks)


def _read_json(archive, info, limit):
    data = _read_capped(archive, info, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"{info.filename} is not valid JSON "
                               f"({_first_line(e)})") from None
    except RecursionError:
        raise UnsafeModelError(f"{info.filename} is nested too deeply") \
            from None


# ---------------------------------------------------------------- config


def check_config(config):
    """Refuse a model config (`config.json`, parsed) that is not safe.

    Walks the whole JSON before any Keras deserialization; see the module
    docstring for the rules. Raises `UnsafeModelError`.
    """
    _register_dlrecipes_objects()
    stack = [(config, None, 0, False)]
    while stack:
        value, key, depth, is_data = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise UnsafeModelError(f"{CONFIG_NAME} is nested more than "
                                   f"{MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str):
            _check_string(value, key, is_data)
        elif isinstance(value, list):
            stack.extend((item, None, depth + 1, is_data) for item in value)
        elif isinstance(value, dict):
            if {"class_name", "module", "registered_name"} & value.keys():
                _check_object(value)
            data = is_data or value.get("class_name") in _DATA_CLASSES
            for k, v in value.items():
                if k in _PATH_KEYS:
                    _check_path_value(k, v)
                stack.append((v, k, depth + 1, data))


def _register_dlrecipes_objects():
    """Import the modules that register the dlrecipes classes a model can
    hold (layers, learning-rate schedules) with Keras (`import dlrecipes`
    does not), so that their `dlrecipes>Name` entries are known to the
    checks and to Keras. Our own modules, imported whatever the file."""
    from dlrecipes import layers, schedules  # noqa: F401


def declared_input_shapes(config):
    """The input shapes that a model's config (`check_model_file`'s
    return value) declares, without building the model.

    Returns:
        A list of shape tuples (batch axis first, `None` for unknown
        sizes), one per input, or `None` where the config does not say
        (a subclassed model, an unbuilt Sequential model, an unknown
        layout): then only the built model can tell.
    """
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"),
                                                     list):
        return None
    layers = inner["layers"]
    if config.get("class_name") == "Sequential":
        first = layers[0] if layers and isinstance(layers[0], dict) else {}
        shape = _shape_tuple(
            _batch_shape(first) if first.get("class_name") == "InputLayer"
            else inner.get("build_input_shape"))
        return None if shape is None else [shape]
    if config.get("class_name") != "Functional":
        return None
    names = _input_names(inner.get("input_layers"))
    shapes = {layer.get("name"): _shape_tuple(_batch_shape(layer))
              for layer in layers if isinstance(layer, dict)
              and layer.get("class_name") == "InputLayer"}
    found = [shapes.get(name) for name in names or ()]
    return found if names and None not in found else None


def _input_names(value):
    """Layer names of a Functional config's `input_layers`: one
    `[name, node, tensor]` triple, or a list or dict of them."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        return None
    if len(value) == 3 and isinstance(value[0], str):
        return [value[0]]
    if all(isinstance(v, list) and v and isinstance(v[0], str)
           for v in value):
        return [v[0] for v in value]
    return None


def _batch_shape(layer):
    inner = layer.get("config")
    if not isinstance(inner, dict):
        return None
    return inner.get("batch_shape", inner.get("batch_input_shape"))


def _shape_tuple(shape):
    if not isinstance(shape, (list, tuple)) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool))
            for d in shape):
        return None
    return tuple(shape)


def _check_object(obj):
    class_name = obj.get("class_name")
    module = obj.get("module")
    registered = obj.get("registered_name")
    if not isinstance(class_name, str):
        raise UnsafeModelError(f"object with module {_show(module)} has no "
                               f"class_name")
    if class_name in _FORBIDDEN_CLASSES:
        raise UnsafeModelError(f"the model contains "
                               f"{_FORBIDDEN_CLASSES[class_name]}")
    if class_name in _DATA_CLASSES:
        return
    if class_name.startswith("__"):
        raise UnsafeModelError(f"unknown special object {_show(class_name)}")
    if not (module is None or isinstance(module, str)) or not (
            registered is None or isinstance(registered, str)):
        raise UnsafeModelError(f"malformed object {_show(class_name)}")
    if class_name == "function":
        _check_function(obj.get("config"), module, registered)
        return
    if registered is not None and ">" in registered:
        _check_registered(registered)
        if module is not None and not _is_dlrecipes_module(module):
            raise UnsafeModelError(f"{_show(registered)} names module "
                                   f"{_show(module)}")
        return
    if registered is not None and registered != class_name:
        raise UnsafeModelError(f"registered_name {_show(registered)} does "
                               f"not match class {_show(class_name)}")
    owner = _keras_module(module)
    if owner is None:
        raise UnsafeModelError(
            f"class {_show(class_name)} from module {_show(module)} (only "
            f"Keras and dlrecipes classes load)")
    if not isinstance(getattr(owner, class_name, None), type):
        raise UnsafeModelError(f"{module}.{class_name} is not a Keras class")


def _check_function(name, module, registered):
    if not isinstance(name, str):
        raise UnsafeModelError("a function object without a name")
    if ">" in name or (registered is not None and ">" in registered):
        # A registered function: Keras looks the name up in the registry.
        _check_registered(name)
        if registered not in (None, name):
            _check_registered(registered)
        if module not in (None, "builtins") and not _is_dlrecipes_module(
                module):
            raise UnsafeModelError(f"function {_show(name)} names module "
                                   f"{_show(module)}")
        return
    if registered not in (None, name, "function"):
        raise UnsafeModelError(f"function {_show(name)} has registered_name "
                               f"{_show(registered)}")
    if name in _NOT_MODEL_FUNCTIONS:
        found = False
    elif module == "builtins":
        found = any(callable(getattr(getattr(keras, m), name, None))
                    for m in _BUILTIN_FUNCTION_MODULES)
    else:
        owner = sys.modules.get(module) if module in _FUNCTION_MODULES \
            else None
        found = owner is not None and callable(getattr(owner, name, None))
    if not found:
        raise UnsafeModelError(
            f"function {_show(name)} from module {_show(module)} is not a "
            f"Keras built-in (activations, losses, metrics, ops ...)")


def _check_registered(name):
    """`dlrecipes>Name`, registered by a class defined in dlrecipes."""
    package = name.partition(">")[0]
    if package != "dlrecipes":
        raise UnsafeModelError(f"registered object {_show(name)} is not from "
                               f"dlrecipes (only Keras and dlrecipes classes "
                               f"load)")
    obj = keras.saving.get_registered_object(name)
    if obj is None:
        raise UnsafeModelError(f"unknown dlrecipes object {_show(name)} (saved"
                               f" by a newer dlrecipes?)")
    if not _is_dlrecipes_module(getattr(obj, "__module__", None)):
        raise UnsafeModelError(f"{_show(name)} is registered by module "
                               f"{_show(getattr(obj, '__module__', None))}, "
                               f"not by dlrecipes")


def _check_string(value, key, is_data):
    if ">" in value and value in keras.saving.get_custom_objects():
        # Keras resolves registered names given as plain strings.
        _check_registered(value)
    if key is not None and not is_data and _PATHLIKE.search(value):
        raise UnsafeModelError(f"config entry {key!r} holds a file path or "
                               f"URL {_show(value)}")


def _check_path_value(key, value):
    """A vocabulary (or the like) must be inline, never a file name."""
    if isinstance(value, dict) and value.get("class_name") in (
            "__numpy__", "__tensor__"):
        inner = value.get("config")
        value = inner.get("value") if isinstance(inner, dict) else inner
    if value is None or isinstance(value, list):
        return
    raise UnsafeModelError(f"config entry {key!r} holds {_show(value)}, not "
                           f"an inline list (Keras would read it as a file "
                           f"path)")


def _keras_module(name):
    """An already imported `keras` module (so nothing gets imported)."""
    if not isinstance(name, str) or not (name == "keras"
                                         or name.startswith("keras.")):
        return None
    return sys.modules.get(name)


def _is_dlrecipes_module(name):
    return isinstance(name, str) and (name == "dlrecipes"
                                      or name.startswith("dlrecipes."))


# --------------------------------------------------------------- weights


class _EntryReader(io.RawIOBase):
    """A read-only, seekable view of a stored zip entry (no copy)."""

    def __init__(self, f, start, size):
        super().__init__()
        self._f, self._start, self._size, self._pos = f, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos,
                io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _check_weights(f, archive, info):
    if info.compress_type == zipfile.ZIP_STORED:
        start, _ = _data_span(f, info)
        stream = _EntryReader(f, start, info.file_size)
    elif info.file_size <= MAX_COMPRESSED_WEIGHTS_BYTES:
        stream = io.BytesIO(_read_capped(archive, info, info.file_size))
    else:
        raise UnsafeModelError(f"{WEIGHTS_NAME} is compressed and larger than"
                               f" {MAX_COMPRESSED_WEIGHTS_BYTES >> 30} GiB")
    _check_hdf5(stream, info.file_size, WEIGHTS_NAME)


def _check_weights_or_archive(f, size):
    """A standalone weights file: HDF5, or a whole `.keras` archive."""
    magic = f.read(8)
    f.seek(0)
    if magic.startswith(_ZIP_MAGIC):
        return _check_archive(f, size)
    if not magic.startswith(_HDF5_MAGIC):
        raise ModelFormatError("not a weights file (an HDF5 file such as "
                               "model.save_weights('x.weights.h5') writes, "
                               "or a .keras archive)")
    return _check_hdf5(f, size, "the weights file")


def _check_hdf5(stream, size, what):
    """Links, storage, filters and declared sizes of the HDF5 file in the
    seekable binary `stream` (`size` bytes); `what` names it."""
    if stream.read(8) != _HDF5_MAGIC:
        raise ModelFormatError(f"{what} is not an HDF5 file")
    stream.seek(0)
    import h5py

    try:
        h5 = h5py.File(stream, "r")
    except Exception as e:  # h5py raises OSError and others on bad files
        raise ModelFormatError(f"{what} is not a readable HDF5 file "
                               f"({_first_line(e)})") from None
    with h5:
        try:
            _check_h5(h5, 4 * size + (64 << 20), what)
        except UsageError:
            raise
        except Exception as e:
            raise ModelFormatError(f"{what} is corrupt "
                                   f"({_first_line(e)})") from None


def _check_h5(h5, limit, what):
    import h5py

    stack, links, declared = [(h5, 0)], 0, 0
    while stack:
        group, depth = stack.pop()
        if depth > MAX_H5_DEPTH:
            raise UnsafeModelError(f"{what} is nested more than "
                                   f"{MAX_H5_DEPTH} groups deep")
        for name in group:
            links += 1
            if links > MAX_H5_LINKS:
                raise UnsafeModelError(f"{what} has more than "
                                       f"{MAX_H5_LINKS} objects")
            link = group.get(name, getlink=True)
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                raise UnsafeModelError(f"{what} holds an HDF5 "
                                       f"{type(link).__name__} ({name!r})")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((obj, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                declared += _check_dataset(obj, name)
                if declared > limit:
                    raise UnsafeModelError(
                        f"{what} declares {declared} bytes of "
                        f"weights but stores far less (a shape bomb)")


def _check_dataset(dataset, name):
    if dataset.external:
        raise UnsafeModelError(f"weight {name!r} is stored in an external "
                               f"file {_show(dataset.external[0][0])}")
    if dataset.is_virtual:
        raise UnsafeModelError(f"weight {name!r} is a virtual dataset "
                               f"(reads other files)")
    plist = dataset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _H5_FILTERS:
            raise UnsafeModelError(f"weight {name!r} uses HDF5 filter {code}"
                                   f" (a plugin)")
    shape = dataset.shape or ()
    return math.prod(shape) * dataset.dtype.itemsize


# --------------------------------------------------------------- helpers


def _show(value, width=80):
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _first_line(e):
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."
