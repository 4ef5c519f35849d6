"""`dlrecipes.saving.load_model`: hostile files refused, genuine ones load.

Every hostile file must be refused with a one-line `UsageError` and no side
effect: nothing written (cwd and the temp dir stay empty), nothing imported,
no code unmarshalled or run, no file opened but the model itself (checked
with a Python audit hook), in bounded time and memory. The same files
given to `dlrecipes run transfer-learning --backbone` are refused through
the CLI in tests/test_transfer.py, which imports `HOSTILE` from here.

The tests that load or refuse models through Keras are marked `backends`
(run again under JAX); the backend-free checks (paths, weights files,
declared input shapes) run once.
"""

import contextlib
import io
import json
import os
import stat
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest

import dlrecipes  # noqa: F401  (registers the dlrecipes classes)
from dlrecipes.errors import UsageError
from dlrecipes.layers import ResidualBlock
from dlrecipes.paths import check_file, path_kind
from dlrecipes.saving.config import register_dlrecipes_objects
from dlrecipes.saving import (
    MAX_CONFIG_BYTES,
    MAX_ENTRIES,
    ModelFormatError,
    UnsafeModelError,
    check_model_file,
    check_weights_file,
    declared_input_shapes,
    load_model,
)
from dlrecipes.schedules import InverseSqrtDecay

backends = pytest.mark.backends

PROBE = "dlrecipes_evil_probe"
FOREIGN = "safe_loading_test"  # a package registered here, not dlrecipes
IMPOSTOR = "dlrecipes>SafeLoadingImpostor"  # registered here, not dlrecipes


@keras.saving.register_keras_serializable(package=FOREIGN)
class Foreign(keras.layers.Layer):
    """A registered class from another package: must not load."""


@keras.saving.register_keras_serializable(package=FOREIGN)
def foreign_activation(x):
    return x


# ------------------------------------------------------- audit of effects

_EVENTS = {"open", "import", "exec", "marshal.loads", "os.system",
           "subprocess.Popen", "os.mkdir", "os.symlink", "os.remove",
           "os.rename", "shutil.rmtree", "tempfile.mkdtemp",
           "tempfile.mkstemp", "socket.connect", "urllib.Request"}
_RECORD = {"events": None}


def _audit(event, args):
    events = _RECORD["events"]
    if events is not None and event in _EVENTS:
        events.append((event, args[0] if args else None))


sys.addaudithook(_audit)  # permanent, but records only inside _recorded()


@contextlib.contextmanager
def _recorded():
    """Record the audit events of the block into the yielded list."""
    _RECORD["events"] = events = []
    try:
        yield events
    finally:
        _RECORD["events"] = None


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Empty cwd and temp dir, and importable probes that leave a marker."""
    cwd, tmp, probes = (tmp_path / n for n in ("cwd", "tmp", "probes"))
    for d in (cwd, tmp, probes / "keras_nlp"):
        d.mkdir(parents=True)
    marker = tmp_path / "IMPORTED"
    code = f"open({str(marker)!r}, 'w').write(__name__)\n"
    for path in (probes / f"{PROBE}.py", probes / "keras_nlp" / "__init__.py",
                 probes / "keras_nlp" / "evil.py"):
        path.write_text(code)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.syspath_prepend(str(probes))
    yield {"dir": tmp_path, "cwd": cwd, "tmp": tmp, "marker": marker}
    for name in [m for m in sys.modules
                 if m.split(".")[0] in (PROBE, "keras_nlp")]:
        del sys.modules[name]  # a failure here must not leak to later tests


def _assert_refused(path, sandbox, error=UsageError, match=None):
    before = sorted(os.listdir(os.path.dirname(path) or "."))
    # Our own classes' modules load with the first model whatever the
    # file: not what this checks.
    register_dlrecipes_objects()
    modules = set(sys.modules)
    started = time.perf_counter()
    with _recorded() as events, pytest.raises(error) as info:
        load_model(path)
    elapsed = time.perf_counter() - started
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    assert message.startswith(str(path)), message
    if match is not None:
        assert match.lower() in message.lower(), message
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    # Nothing written, imported, run or opened besides the model file.
    assert os.listdir(sandbox["cwd"]) == []
    assert os.listdir(sandbox["tmp"]) == []
    assert sorted(os.listdir(os.path.dirname(path) or ".")) == before
    assert not sandbox["marker"].exists()
    assert PROBE not in sys.modules and "keras_nlp" not in sys.modules
    assert set(sys.modules) <= modules | {m for m in sys.modules
                                          if m.startswith("encodings.")}
    imports = [a for e, a in events
               if e == "import" and not str(a).startswith("encodings.")]
    assert imports == []
    opened = {os.fspath(a) for e, a in events
              if e == "open" and isinstance(a, (str, bytes, os.PathLike))}
    assert opened <= {os.fspath(path)}, opened
    others = [(e, a) for e, a in events if e not in ("open", "import")]
    assert others == []
    return message


# ------------------------------------------------------ archive builders


def _small_model():
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, activation="relu", name="hidden"),
        keras.layers.Dense(2, name="out"),
    ])
    model.compile(optimizer="adam", loss="mse")
    return model


def _entries_of(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The entries of a genuine small `.keras` archive."""
    path = str(tmp_path_factory.mktemp("base") / "model.keras")
    _small_model().save(path)
    return _entries_of(path)


def _zip(entries, compression=zipfile.ZIP_STORED):
    """Archive bytes; entries: (name or ZipInfo, bytes) pairs."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(buffer, "w", compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return buffer.getvalue()


def _archive(base, config=None, weights=None, extra=(), drop=(),
             compression=zipfile.ZIP_STORED):
    entries = dict(base)
    if config is not None:
        entries["config.json"] = json.dumps(config).encode()
    if weights is not None:
        entries["model.weights.h5"] = weights
    pairs = [(n, d) for n, d in entries.items() if n not in drop]
    return _zip(pairs + list(extra), compression)


def _with_config(mutate):
    def build(base):
        config = json.loads(base["config.json"])
        mutate(config)
        return _archive(base, config=config)
    return build


def _hidden(config):
    return config["config"]["layers"][1]


def _set_activation(value):
    return _with_config(lambda c: _hidden(c)["config"].update(
        activation=value))


def _set_layer(layer):
    """Replace the hidden layer by `layer` (a dict, or a callable)."""
    return _with_config(lambda c: c["config"]["layers"].__setitem__(
        1, layer() if callable(layer) else layer))


def _set_key(key, value):
    return _with_config(lambda c: _hidden(c)["config"].update({key: value}))


def _object(module, class_name, config=None, registered_name=None):
    return {"module": module, "class_name": class_name,
            "config": {} if config is None else config,
            "registered_name": registered_name}


def _function(module, name, registered_name=None):
    return {"module": module, "class_name": "function", "config": name,
            "registered_name": registered_name or name}


def _lookup(class_name, **overrides):
    """A genuine lookup layer's config with `overrides` (built lazily)."""
    def make():
        vocabulary = [1, 2] if class_name == "IntegerLookup" else ["a", "b"]
        config = getattr(keras.layers, class_name)(
            vocabulary=vocabulary).get_config()
        config.update(overrides)
        return _object("keras.layers", class_name, config)
    return make


def _lambda_model(base):
    """A genuine Keras save of a Lambda layer (its bytecode is in the config;
    the audit hook shows it is never unmarshalled)."""
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Lambda(lambda x: x * 2.0),
        keras.layers.Dense(2),
    ])
    with tempfile.TemporaryDirectory() as d:
        model.save(os.path.join(d, "m.keras"))
        return open(os.path.join(d, "m.keras"), "rb").read()


def _python_lambda(base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "includes a `lambda`": intended
        fn = keras.saving.serialize_keras_object(lambda x: x)
    return _set_activation(fn)(base)


def _h5(build):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        build(f)
    return buffer.getvalue()


def _h5_weights(build):
    return lambda base: _archive(base, weights=_h5(build))


def _external_storage(f):
    f.create_dataset("vars/0", shape=(4,), dtype="u1",
                     external=[("/etc/hostname", 0, 4)])


def _virtual(f):
    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
    layout[:] = h5py.VirtualSource("/tmp/other.h5", "data", shape=(4,))
    f.create_virtual_dataset("vars/0", layout)


def _patch_central(data, name, **fields):
    """Rewrite central-directory fields of entry `name`."""
    offsets = {"flags": (8, "<H"), "compress_size": (20, "<I"),
               "file_size": (24, "<I"), "header_offset": (42, "<I")}
    data = bytearray(data)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46:pos + 46 + name_len] == name.encode():
            for field, value in fields.items():
                offset, fmt = offsets[field]
                if callable(value):
                    old = struct.unpack_from(fmt, data, pos + offset)[0]
                    value = value(old)
                struct.pack_into(fmt, data, pos + offset, value)
            return bytes(data)
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name} not in the archive")


def _lying_size(base):
    big = b" " * (48 << 20) + base["config.json"]
    data = _zip([(n, d) for n, d in base.items() if n != "config.json"]
                + [("config.json", big)], zipfile.ZIP_DEFLATED)
    return _patch_central(data, "config.json", file_size=1000)


def _overlapping(base):
    data = _archive(base)  # metadata.json is the first entry
    return _patch_central(data, "metadata.json",
                          compress_size=lambda v: v + 100,
                          file_size=lambda v: v + 100)


def _symlink(base):
    info = zipfile.ZipInfo("assets/link")
    info.external_attr = (0o120777 << 16)
    return _archive(base, extra=[(info, b"/etc/passwd")])


def _bzip2(base):
    return _archive(base, compression=zipfile.ZIP_BZIP2)


# group -> name -> (builder(base) -> archive bytes, error class, message
# fragment); grouped to keep the test count (and conftest's per-test
# clear_session) low.
HOSTILE = {
    "code": {
        "lambda_layer": (_lambda_model, UnsafeModelError, "Lambda layer"),
        "python_lambda": (_python_lambda, UnsafeModelError, "Python lambda"),
        "os_system_class": (
            _set_layer(_object("os", "system", {"command": "touch pwned"})),
            UnsafeModelError, "module 'os'"),
        "os_system_function": (_set_activation(_function("os", "system")),
                               UnsafeModelError, "not a Keras built-in"),
        "probe_module": (_set_layer(_object(PROBE, "Evil")), UnsafeModelError,
                         PROBE),
        "probe_registered_name": (
            _set_layer(_object(PROBE, "Evil",
                               registered_name=f"{PROBE}>Evil")),
            UnsafeModelError, "not from dlrecipes"),
        "keras_nlp_module": (_set_layer(_object("keras_nlp.evil", "Evil")),
                             UnsafeModelError, "keras_nlp.evil"),
        "unimported_keras_module": (
            _set_layer(_object("keras.src.backend.torch.layer", "TorchLayer")),
            UnsafeModelError, "keras.src.backend.torch"),
        "enable_unsafe_deserialization": (
            _set_activation(_function("keras.config",
                                      "enable_unsafe_deserialization")),
            UnsafeModelError, "enable_unsafe_deserialization"),
        "enable_unsafe_deserialization_builtins": (
            _set_activation(_function("builtins",
                                      "enable_unsafe_deserialization")),
            UnsafeModelError, "not a Keras built-in"),
        "keras_get_file": (
            _set_activation(_function("keras.utils", "get_file")),
            UnsafeModelError, "not a Keras built-in"),
        "keras_deserialize": (
            _set_activation(_function("keras.activations", "deserialize")),
            UnsafeModelError, "not a Keras built-in"),
        "foreign_registered_class": (
            _set_layer(_object(__name__, "Foreign",
                               registered_name=f"{FOREIGN}>Foreign")),
            UnsafeModelError, "not from dlrecipes"),
        "foreign_registered_string": (
            _set_activation(f"{FOREIGN}>foreign_activation"),
            UnsafeModelError, "not from dlrecipes"),
        "impostor_dlrecipes_class": (
            _set_layer(_object(__name__, "Impostor",
                               registered_name=IMPOSTOR)),
            UnsafeModelError, "not by dlrecipes"),
        "unknown_dlrecipes_class": (
            _set_layer(_object("dlrecipes.layers", "Nope",
                               registered_name="dlrecipes>Nope")),
            UnsafeModelError, "unknown dlrecipes object"),
        "tfsm_layer": (
            _set_layer(_object("keras.layers", "TFSMLayer",
                               {"filepath": "/tmp/saved_model"})),
            UnsafeModelError, "TFSMLayer"),
        "torch_module_wrapper": (
            _set_layer(_object("keras.layers", "TorchModuleWrapper",
                               {"module": "gASVAAAAAAAAAACMAm9zlC4="})),
            UnsafeModelError, "TorchModuleWrapper"),
        "typespec": (_set_activation({"class_name": "__typespec__",
                                      "spec_name": "X", "module": "os",
                                      "registered_name": None, "config": []}),
                     UnsafeModelError, "TypeSpec"),
        "hostile_loss_in_compile_config": (
            _with_config(lambda c: c["compile_config"].update(
                loss=_function("os", "system"))),
            UnsafeModelError, "not a Keras built-in"),
    },
    "outside_files": {
        "string_lookup_passwd": (
            _set_layer(_lookup("StringLookup", vocabulary="/etc/passwd")),
            UnsafeModelError, "/etc/passwd"),
        "text_vectorization_dotdot": (
            _set_layer(_lookup("TextVectorization",
                               vocabulary="../../etc/passwd")),
            UnsafeModelError, "etc/passwd"),
        "integer_lookup_relative": (
            _set_layer(_lookup("IntegerLookup", vocabulary="vocab.txt")),
            UnsafeModelError, "vocab.txt"),
        "vocabulary_numpy_string": (
            _set_layer(_lookup("StringLookup", vocabulary={
                "class_name": "__numpy__",
                "config": {"value": "/etc/passwd", "dtype": "str"}})),
            UnsafeModelError, "/etc/passwd"),
        "idf_weights_path": (
            _set_layer(_lookup("StringLookup", idf_weights="/etc/passwd")),
            UnsafeModelError, "idf_weights"),
        "home_path_in_config": (_set_key("cache_dir", "~/.ssh/id_rsa"),
                                UnsafeModelError, "id_rsa"),
        "url_in_config": (_set_key("origin", "https://example.com/x.txt"),
                          UnsafeModelError, "example.com"),
        "deep_json": (
            lambda b: _zip([(n, d if n != "config.json"
                             else b"[" * 50_000 + b"]" * 50_000)
                            for n, d in b.items()]),
            UnsafeModelError, "nested"),
        "deep_config": (_set_key("payload", json.loads("[" * 300 + "]" * 300)),
                        UnsafeModelError, "nested"),
    },
    "archive": {
        "dotdot_entry": (lambda b: _archive(b, extra=[("../evil.txt", b"x")]),
                         UnsafeModelError, "leaves its folder"),
        "assets_dotdot_entry": (
            lambda b: _archive(b, extra=[("assets/../../evil.txt", b"x")]),
            UnsafeModelError, "leaves its folder"),
        "absolute_entry": (
            lambda b: _archive(b, extra=[("/tmp/evil.txt", b"x")]),
            UnsafeModelError, "absolute"),
        "drive_entry": (lambda b: _archive(b, extra=[("C:/evil.txt", b"x")]),
                        UnsafeModelError, "absolute"),
        "backslash_entry": (
            lambda b: _archive(b, extra=[("..\\evil.txt", b"x")]),
            UnsafeModelError, "not a plain path"),
        "unexpected_entry": (lambda b: _archive(b, extra=[("evil.py", b"x")]),
                             UnsafeModelError, "unexpected entry"),
        "symlink_entry": (_symlink, UnsafeModelError, "symbolic link"),
        "duplicate_config": (
            lambda b: _archive(b, extra=[("config.json", b"{}")]),
            UnsafeModelError, "twice"),
        "encrypted_entry": (
            lambda b: _patch_central(_archive(b), "config.json", flags=1),
            UnsafeModelError, "encrypted"),
        "stored_size_mismatch": (
            lambda b: _patch_central(_archive(b), "config.json",
                                     file_size=lambda v: v + 1),
            UnsafeModelError, "declares"),
        "overlapping_entries": (_overlapping, UnsafeModelError, "overlaps"),
        "moved_local_header": (
            lambda b: _patch_central(_archive(b), "config.json",
                                     header_offset=0),
            UnsafeModelError, "different name"),
        "bzip2_entries": (_bzip2, ModelFormatError, "compression"),
        "truncated_half": (lambda b: _archive(b)[: len(_archive(b)) // 2],
                           ModelFormatError, "truncated"),
        "truncated_tail": (lambda b: _archive(b)[:-10], ModelFormatError,
                           "truncated"),
        "missing_weights": (lambda b: _archive(b, drop=("model.weights.h5",)),
                            ModelFormatError, "no model.weights.h5"),
        "missing_metadata": (lambda b: _archive(b, drop=("metadata.json",)),
                             ModelFormatError, "no metadata.json"),
        "missing_config": (lambda b: _archive(b, drop=("config.json",)),
                           ModelFormatError, "no config.json"),
        "config_not_json": (
            lambda b: _zip([(n, d if n != "config.json" else b"\xff{]")
                            for n, d in b.items()]),
            ModelFormatError, "not valid JSON"),
        "config_not_object": (
            lambda b: _archive(b, config=[]),
            ModelFormatError, "not a JSON object"),
    },
    "bombs": {
        "config_bomb": (
            lambda b: _zip([(n, d) for n, d in b.items() if n != "config.json"]
                           + [("config.json", b" " * (MAX_CONFIG_BYTES + 1)
                               + b"{}")], zipfile.ZIP_DEFLATED),
            UnsafeModelError, "bomb"),
        "weights_bomb": (
            lambda b: _zip([(n, d) for n, d in b.items()
                            if n != "model.weights.h5"]
                           + [("model.weights.h5", bytes(64 << 20))],
                           zipfile.ZIP_DEFLATED),
            UnsafeModelError, "bomb"),
        "many_small_bombs": (
            lambda b: _zip(list(b.items()) + [(f"assets/{i}", bytes(1 << 20))
                                              for i in range(100)],
                           zipfile.ZIP_DEFLATED),
            UnsafeModelError, "bomb"),
        "lying_size_header": (_lying_size, ModelFormatError, "corrupt"),
        "too_many_entries": (
            lambda b: _archive(b, extra=[(f"assets/{i}", b"")
                                         for i in range(MAX_ENTRIES)]),
            UnsafeModelError, "entries"),
    },
    "weights": {
        "weights_not_hdf5": (lambda b: _archive(b, weights=b"not hdf5" * 10),
                             ModelFormatError, "not an HDF5 file"),
        "h5_external_link": (
            _h5_weights(lambda f: f.__setitem__(
                "vars", h5py.ExternalLink("/etc/other.h5", "/vars"))),
            UnsafeModelError, "ExternalLink"),
        "h5_soft_link": (
            _h5_weights(lambda f: (f.create_group("a"),
                                   f.__setitem__("vars",
                                                 h5py.SoftLink("/a")))),
            UnsafeModelError, "SoftLink"),
        "h5_external_storage": (_h5_weights(_external_storage),
                                UnsafeModelError, "external file"),
        "h5_virtual_dataset": (_h5_weights(_virtual), UnsafeModelError,
                               "virtual"),
        "h5_shape_bomb": (
            _h5_weights(lambda f: f.create_dataset(
                "vars/0", shape=(10 ** 6, 10 ** 5), dtype="f4",
                chunks=(1000, 1000), compression="gzip")),
            UnsafeModelError, "shape bomb"),
        "h5_plugin_filter": (
            _h5_weights(lambda f: f.create_dataset(
                "vars/0", shape=(4,), dtype="f4", compression=307,
                allow_unknown_filter=True)),
            UnsafeModelError, "filter 307"),
    },
}


@pytest.fixture
def impostor():
    """A class registered as `dlrecipes>...` from outside dlrecipes."""
    registry = keras.saving.get_custom_objects()

    class Impostor(keras.layers.Layer):
        pass

    registry[IMPOSTOR] = Impostor
    yield
    registry.pop(IMPOSTOR, None)


def _refuse_case(name, data, sandbox, error, match):
    path = sandbox["dir"] / name / "model.keras"
    path.parent.mkdir()
    path.write_bytes(data)
    if not ("bomb" in name or "lying" in name):
        _assert_refused(str(path), sandbox, error, match)
        return
    tracemalloc.start()
    try:
        _assert_refused(str(path), sandbox, error, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak >> 20} MiB"


@backends
@pytest.mark.parametrize("group", sorted(HOSTILE))
def test_hostile_files_are_refused(group, base, sandbox, impostor):
    failures = []
    for name, (build, error, match) in sorted(HOSTILE[group].items()):
        try:
            _refuse_case(name, build(base), sandbox, error, match)
        except (Exception, pytest.fail.Exception) as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)
    assert sum(len(cases) for cases in HOSTILE.values()) >= 60


@backends
def test_errors_are_usage_errors():
    assert issubclass(UnsafeModelError, UsageError)
    assert issubclass(ModelFormatError, UsageError)


# ------------------------------------------------- other formats and paths


@backends
def test_legacy_h5_refused_with_conversion_hint(sandbox):
    model = _small_model()
    h5_path = str(sandbox["dir"] / "model.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(h5_path)
    disguised = sandbox["dir"] / "renamed.keras"  # content, not name, counts
    disguised.write_bytes(open(h5_path, "rb").read())
    for path in (h5_path, str(disguised)):
        message = _assert_refused(path, sandbox, ModelFormatError, "HDF5")
        assert 'model.save("model.keras")' in message


@backends
def test_savedmodel_folder_refused_with_conversion_hint(sandbox):
    folder = sandbox["dir"] / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    message = _assert_refused(str(folder), sandbox, ModelFormatError,
                              "SavedModel")
    assert 'model.save("model.keras")' in message


@contextlib.contextmanager
def unblocked_fifo(path):
    """Watch the FIFO `path`: if the code under test opens it for reading
    (which blocks until a writer comes), a writer comes and closes it at
    once, so the test fails (the yielded list is not empty) instead of
    hanging. Anything but a FIFO is not watched."""
    opened, done = [], threading.Event()
    if not (os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode)):
        yield opened
        return

    def writer():
        while not done.wait(0.02):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader
                continue
            os.close(fd)
            opened.append(path)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        thread.join()


# what -> (what the message says, or None: just refused)
NON_ARCHIVES = {"keras_folder": "is a directory", "text": None,
                "empty_zip": None, "empty": None, "missing": "not found",
                "fifo": "is a FIFO", "device": "is a device"}


@backends
@pytest.mark.parametrize("what", sorted(NON_ARCHIVES))
def test_other_non_archives_refused(what, base, sandbox):
    path = sandbox["dir"] / "model.keras"
    if what == "keras_folder":  # Keras' own unzipped layout
        path.mkdir()
        for name, data in base.items():
            (path / name).write_bytes(data)
    elif what == "text":
        path.write_text("hello")
    elif what == "empty_zip":
        path.write_bytes(_zip([]))
    elif what == "empty":
        path.write_bytes(b"")
    elif what == "fifo":
        os.mkfifo(path)  # would block a plain open()
    elif what == "device":
        path = "/dev/zero"  # endless: reading it must never start
    with unblocked_fifo(path) as opened, \
            pytest.raises(ModelFormatError) as info:
        load_model(str(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    if NON_ARCHIVES[what]:
        assert NON_ARCHIVES[what] in message, message
    assert opened == []
    assert os.listdir(sandbox["tmp"]) == [] == os.listdir(sandbox["cwd"])


def test_check_file_says_what_a_path_is(tmp_path):
    """One line naming the kind of path, the flag and the value; a FIFO is
    never opened."""
    (tmp_path / "file.toml").write_text("x = 1\n")
    os.mkfifo(tmp_path / "pipe")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    cases = {"file.toml": None, ".": "is a directory",
             "pipe": "is a FIFO (named pipe)", "/dev/zero": "is a device",
             "missing.toml": "file not found",
             "dangling": "file not found"}
    for name, needle in cases.items():
        path = str(tmp_path / name)  # an absolute name stays as it is
        with unblocked_fifo(tmp_path / "pipe") as opened:
            if needle is None:
                assert path_kind(path) == "a file"
                check_file(path, "--space", "a TOML or JSON file")
                continue
            with pytest.raises(UsageError) as info:
                check_file(path, "--space", "a TOML or JSON file")
        message = str(info.value)
        assert message.startswith("--space: ") and needle in message, message
        assert message.endswith(f"Received: space={path!r}"), message
        assert "expected a TOML or JSON file" in message, message
        assert "\n" not in message and opened == []


# ------------------------------------------------------- weights files


def _weights_of(archive):
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return zf.read("model.weights.h5")


def test_weights_files_are_checked_like_archive_weights(base, tmp_path):
    """`check_weights_file` (transfer `--weights`): every hostile
    `model.weights.h5` of HOSTILE is refused as a standalone HDF5 file too,
    and inside a whole archive; genuine weights files pass."""
    model = _small_model()
    genuine = tmp_path / "genuine.weights.h5"
    model.save_weights(genuine)
    renamed = tmp_path / "weights.bin"  # the content, not the name, counts
    renamed.write_bytes(genuine.read_bytes())
    for path in (genuine, renamed, tmp_path / "model.keras"):
        if path.suffix == ".keras":
            model.save(path)
        check_weights_file(path)
    hostile = {n: c for n, c in HOSTILE["weights"].items()
               if n != "weights_not_hdf5"}
    assert len(hostile) >= 6
    for name, (build, error, match) in sorted(hostile.items()):
        archive = build(base)
        for suffix, data in ((".weights.h5", _weights_of(archive)),
                             (".keras", archive)):
            path = tmp_path / (name + suffix)
            path.write_bytes(data)
            with pytest.raises(error, match=match) as info:
                check_weights_file(path)
            assert str(info.value).startswith(str(path)), info.value
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ModelFormatError, match="not a weights file"):
        check_weights_file(text)


# ------------------------------------------------- declared input shapes


def _config_of(model):
    return keras.saving.serialize_keras_object(model)


def test_declared_input_shapes():
    """Read from the config without building the model; None where the
    config does not say."""
    image, aux = keras.Input((8, 8, 3), name="image"), keras.Input((4,))
    out = keras.layers.Dense(2)(keras.layers.Flatten()(image))
    built = keras.Sequential([keras.layers.Dense(2)])
    built.build((None, 5))
    cases = [
        (_small_model(), [(None, 4)]),
        (built, [(None, 5)]),
        (keras.Sequential([keras.layers.Dense(2)]), None),  # unbuilt
        (keras.Model(image, out), [(None, 8, 8, 3)]),
        (keras.Model([image], out), [(None, 8, 8, 3)]),
        (keras.Model([image, aux], out), [(None, 8, 8, 3), (None, 4)]),
    ]
    for model, expected in cases:
        assert declared_input_shapes(_config_of(model)) == expected
    assert declared_input_shapes({"class_name": "MyModel",
                                  "config": {"layers": []}}) is None
    assert declared_input_shapes({"class_name": "Functional",
                                  "config": {"layers": [],
                                             "input_layers": 3}}) is None


# ------------------------------------------------------- genuine models


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _assert_same_outputs(model, loaded, x):
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)), rtol=0,
        atol=1e-6)


@backends
def test_dlrecipes_and_keras_layers_load_with_identical_outputs(
        tmp_path, sandbox):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = ResidualBlock(8, name="block")(x)
    y = keras.layers.Conv2D(8, 1, name="side")(inputs)
    x = keras.ops.add(x, y)  # a keras.ops node in the functional graph
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.1)(x)
    outputs = keras.layers.Dense(3, activation=keras.activations.gelu,
                                 kernel_regularizer=keras.regularizers.L2(
                                     1e-4))(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(InverseSqrtDecay(
        1e-3, warmup_steps=2)), loss=keras.losses.mean_squared_error,
        metrics=["mae", keras.metrics.mean_squared_error])
    x_train = _data((8, 8, 8, 3))
    model.fit(x_train, _data((8, 3), 1), batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)

    config = check_model_file(path)
    assert config["class_name"] == "Functional"
    loaded = load_model(path)
    assert isinstance(loaded.get_layer("block"), ResidualBlock)
    _assert_same_outputs(model, loaded, x_train)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 2
    uncompiled = load_model(path, compile=False)
    assert not uncompiled.compiled
    _assert_same_outputs(model, uncompiled, x_train)
    assert os.listdir(sandbox["tmp"]) == [] == os.listdir(sandbox["cwd"])


@backends
def test_text_vectorization_with_inline_vocabulary_loads(tmp_path):
    pytest.importorskip("tensorflow")  # Keras' lookup layers need it
    lookup = keras.layers.StringLookup(name="lookup")
    lookup.adapt(np.array(["red", "green", "blue", "red"]))  # -> assets/
    inputs = keras.Input((1,), dtype="string")
    vectorized = keras.layers.TextVectorization(
        vocabulary=["the", "cat", "sat", "../etc/passwd"],
        output_mode="int", output_sequence_length=4, name="vectorize")(inputs)
    model = keras.Model(inputs, [vectorized, lookup(inputs)])
    path = str(tmp_path / "text.keras")
    model.save(path)
    assert any(n.startswith("assets/") for n in _entries_of(path))

    loaded = load_model(path)
    x = np.array([["the cat sat"], ["red"], ["a dog"]])
    # Layer by layer: JAX cannot feed strings through a Functional call.
    for name in ("vectorize", "lookup"):
        want, got = model.get_layer(name), loaded.get_layer(name)
        assert got.get_vocabulary() == want.get_vocabulary()
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got(x)),
                                      keras.ops.convert_to_numpy(want(x)))


@backends
def test_content_not_name_decides(tmp_path, sandbox):
    model = _small_model()
    path = str(tmp_path / "model.keras")
    model.save(path)
    other = tmp_path / "backbone.bin"
    other.write_bytes(open(path, "rb").read())
    x = _data((5, 4))
    _assert_same_outputs(model, load_model(str(other), compile=False), x)
    _assert_same_outputs(
        model, load_model(tmp_path / "model.keras", compile=False), x)
    assert os.listdir(sandbox["tmp"]) == []  # the temporary link is gone


@backends
def test_recompressed_archive_loads(tmp_path, base):
    model = _small_model()
    path = str(tmp_path / "model.keras")
    model.save(path)
    deflated = tmp_path / "deflated.keras"
    deflated.write_bytes(_zip(_entries_of(path).items(),
                              zipfile.ZIP_DEFLATED))
    _assert_same_outputs(model, load_model(str(deflated), compile=False),
                         _data((5, 4)))
