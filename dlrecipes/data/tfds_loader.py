"""tensorflow-datasets loaders, with one-line errors when offline.

`load_tfds_splits` cuts a dataset into train / validation / test splits for
the recipes (the one place that does).

`load` reads a dataset that is already prepared in the data directory
without touching the network. Otherwise it first checks, once and within
`PROBE_TIMEOUT_S` seconds, that one of the hosts the dataset downloads from
answers (tfds itself would retry each file for minutes), then lets tfds
download and prepare it; a download that fails leaves nothing behind. An
ImportError inside tfds is reported as a broken install, not as a network
problem.
"""

import contextlib
import os
import queue
import shutil
import socket
import threading
import time
import typing
import urllib.parse
import urllib.request

from dlrecipes.errors import RunError, UsageError

# Seconds to wait, in all, for any download host of a dataset to answer.
PROBE_TIMEOUT_S = 3.0
_NOT_INSTALLED = ("tensorflow", "tensorflow_datasets")


def _requires_tensorflow(what):
    try:
        import tensorflow as tf  # noqa: F401
        import tensorflow_datasets as tfds  # noqa: F401
    except ImportError as e:
        if e.name not in _NOT_INSTALLED:  # installed, but a dependency is not
            raise _broken_install(what, e) from None
        raise UsageError(f"{what} needs TensorFlow and tensorflow-datasets "
                         "(pip install tensorflow tensorflow-datasets); "
                         "use an embedded dataset under JAX/PyTorch") from None


def _broken_install(what, error):
    """The RunError for an ImportError raised inside tensorflow-datasets."""
    module = error.name or str(error).strip()
    package = module.split(".")[0]
    return RunError(
        f"cannot load {what}: tensorflow-datasets cannot import {module!r} "
        "(a broken install, not a network problem); run `pip install -e .` "
        f"in the dlrecipes checkout, or `pip install {package}`")


def load(name, splits, data_dir=None, as_supervised=True):
    """Loads splits of a tensorflow-datasets dataset, downloading if needed.

    Args:
        name: the tfds dataset name, e.g. "mnist".
        splits: list of split strings, e.g.
            `["train[:90%]", "train[90%:]", "test"]`.
        data_dir: the tfds data directory (tfds' default when None).
        as_supervised: return `(input, label)` pairs.

    Returns:
        `(datasets, info)`: a list of `tf.data.Dataset`, one per split, and
        the `tfds.core.DatasetInfo`.

    Raises:
        UsageError: TensorFlow or tensorflow-datasets is not installed, or
            `data_dir` does not exist.
        RunError: a dependency of tensorflow-datasets is missing; or the
            dataset is not prepared in `data_dir` and no download host
            answers; or the download or the loading fails.
    """
    what = f"dataset {name!r}"
    _requires_tensorflow(what)
    import tensorflow_datasets as tfds

    if data_dir and not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir does not exist: {data_dir}")
    with _one_line_errors(what):
        builder = tfds.builder(name, data_dir=data_dir)
        if _needs_download(tfds, builder):
            _require_network(name, builder)
        with _removing_partial_download(builder):
            return tfds.load(name, split=splits, data_dir=data_dir,
                             as_supervised=as_supervised, with_info=True,
                             shuffle_files=False)


@contextlib.contextmanager
def _one_line_errors(what):
    """Turns what tfds raises into a one-line RunError."""
    try:
        yield
    except (UsageError, RunError):
        raise
    except ImportError as e:
        raise _broken_install(what, e) from None
    except Exception as e:  # checksum, disk, missing builder ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunError(
            f"cannot load {what} with tensorflow-datasets ({first[:160]}); "
            "download it on a machine with network and pass --data-dir, or "
            "use an embedded dataset") from None


def _needs_download(tfds, builder):
    """Whether tfds would download: the dataset is not prepared and
    `download_and_prepare` is tfds' own (`tfds.testing.mock_data` replaces it
    with a no-op and serves random data)."""
    own = tfds.core.DatasetBuilder
    if own.download_and_prepare.__module__ != own.__module__:
        return False
    # (is_prepared warns about a missing dataset_info.json: check the folder)
    return not (os.path.isdir(os.fspath(builder.data_dir))
                and builder.is_prepared())


# ------------------------------------------------------------------ network


def _require_network(name, builder):
    """Raises RunError unless a download host of `builder` answers."""
    # `url_infos` reads the dataset's checksums: ImportError if tfds is broken.
    addresses = {_address(url) for url in builder.url_infos or ()}
    if not addresses or _reachable(addresses, PROBE_TIMEOUT_S):
        return
    hosts = ", ".join(sorted(host for host, _ in addresses))
    root = os.fspath(builder.data_dir_root)
    raise RunError(
        f"cannot load dataset {name!r}: it is not prepared in {root} and "
        f"there is no network (no answer from {hosts} within "
        f"{PROBE_TIMEOUT_S:g} s); on a machine with network run `python -c "
        f"\"import tensorflow_datasets as tfds; tfds.load('{name}', "
        "data_dir='DIR')\"`, copy DIR here and pass --data-dir DIR, or use "
        "an embedded dataset")


def _address(url):
    """The (host, port) a download of `url` connects to: the proxy that
    `requests` would use for it, or the URL's own host."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy
                                      else f"http://{proxy}")
    default_port = 443 if parts.scheme == "https" else 80
    return parts.hostname, parts.port or default_port


def _reachable(addresses, timeout):
    """Whether any (host, port) accepts a TCP connection within `timeout`
    seconds in all (name resolution included: each try runs in a thread)."""
    answers = queue.Queue()

    def connect(address):
        try:
            socket.create_connection(address, timeout=timeout).close()
            answers.put(True)
        except Exception:  # noqa: BLE001 (resolution, refusal, timeout ...)
            answers.put(False)

    for address in addresses:
        threading.Thread(target=connect, args=(address,), daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        for _ in addresses:
            if answers.get(timeout=max(0, deadline - time.monotonic())):
                return True
    except queue.Empty:
        pass
    return False


# ----------------------------------------------------------------- download


@contextlib.contextmanager
def _removing_partial_download(builder):
    """On any failure inside (Ctrl-C included), removes what was written
    under the data directory's `downloads/` and the dataset's folder."""
    root = os.fspath(builder.data_dir_root)
    watched = [os.path.join(root, "downloads"),
               os.path.join(root, builder.name)]
    root_existed = os.path.isdir(root)
    before = _snapshot(watched)
    try:
        yield
    except BaseException:
        if not root_existed:
            shutil.rmtree(root, ignore_errors=True)
        for path in watched:
            _remove_new(path, before)
        raise


def _snapshot(paths):
    """Every path that exists under (and including) each of `paths`."""
    seen = set()
    for top in paths:
        if os.path.lexists(top):
            seen.add(top)
        for folder, dirs, files in os.walk(top):
            seen.update(os.path.join(folder, n) for n in dirs + files)
    return seen


def _remove_new(path, before):
    """Removes `path`, or what lies under it, that is not in `before`."""
    if not os.path.lexists(path):
        return
    is_dir = os.path.isdir(path) and not os.path.islink(path)
    if path in before:
        if is_dir:
            for entry in os.listdir(path):
                _remove_new(os.path.join(path, entry), before)
    elif is_dir:
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


# ------------------------------------------------------------------- splits


class TfdsSplits(typing.NamedTuple):
    """What `load_tfds_splits` returns: unbatched splits (`val` may be
    None), the number of training examples and tfds' `DatasetInfo`."""

    train: object
    val: object
    test: object
    num_train: int
    info: object


def load_tfds_splits(name, data_dir=None, val_fraction=0.1,
                     test_fraction=None, as_supervised=True):
    """Train, validation and test splits of a tensorflow-datasets dataset,
    unbatched, and what tfds knows about it: the one place where the
    recipes cut tfds splits.

    Validation is the last `val_fraction` of tfds' "train" split (rounded
    to whole percents, as tfds slices); the test set is tfds' "test" split
    or, for a dataset that has only "train" (tf_flowers, cats_vs_dogs), its
    last `test_fraction`. So `val_fraction` is a fraction of all training
    examples either way: `train[:70%]`, `train[70%:80%]`, `train[80%:]` for
    0.1 and 0.2. tfds slices are deterministic: the seed shuffles batches,
    it never moves an example between splits.

    Args:
        name: the tfds dataset name, e.g. "mnist".
        data_dir: the tfds data directory ("" or None: tfds' default).
        val_fraction: fraction of "train" held out for validation (0: no
            validation split).
        test_fraction: None: the dataset's "test" split; a fraction: the
            end of "train" held out as the test set.
        as_supervised: `(input, label)` pairs.

    Returns:
        `TfdsSplits(train, val, test, num_train, info)`: unbatched
        `tf.data.Dataset`s (`val` None when `val_fraction` is 0), the
        number of training examples (counted once where tfds does not know
        it, e.g. under `tfds.testing.mock_data`) and the
        `tfds.core.DatasetInfo`.

    Raises:
        UsageError, RunError: as `load`.
    """
    val_pct = int(round(val_fraction * 100))
    if test_fraction is None:
        end, test = 100, "test"
    else:
        end = 100 - int(round(test_fraction * 100))
        test = f"train[{end}%:]"
    train = "train" if end == 100 else f"train[:{end}%]"
    if val_pct:
        splits = [f"train[:{end - val_pct}%]",
                  f"train[{end - val_pct}%:{end}%]"
                  if end < 100 else f"train[{end - val_pct}%:]", test]
    else:
        splits = [train, test]
    datasets, info = load(name, splits, data_dir=data_dir or None,
                          as_supervised=as_supervised)
    if not val_pct:
        datasets = [datasets[0], None, datasets[1]]
    return TfdsSplits(*datasets, num_train=count_examples(datasets[0]),
                      info=info)


def count_examples(dataset):
    """Examples in an unbatched `tf.data.Dataset` (counted once when its
    cardinality is unknown, e.g. tfds mock data or some builders)."""
    n = int(dataset.cardinality())
    if n < 0:
        n = int(dataset.reduce(0, lambda count, _: count + 1))
    return n
