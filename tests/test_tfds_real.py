"""tensorflow-datasets without mocks and without network (issue 11).

Every tfds dataset a recipe lists goes through the code a real load runs
(the builder, its checksums via `url_infos`, the loader's offline check),
with the network blocked at the socket level so nothing can download even on
a connected machine. Tiny builders defined here stand for a dataset already
prepared in the data directory and for a download that fails midway.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from conftest import RECIPES, ROOT  # noqa: E402
from dlrecipes.data import tfds_loader  # noqa: E402
from dlrecipes.errors import RunError  # noqa: E402
from dlrecipes.registry import get_recipe  # noqa: E402


def _is_tfds_name(name):
    try:
        tfds.builder_cls(name)
    except tfds.core.registered.DatasetNotFoundError:
        return False
    return True


def recipe_tfds_datasets():
    """Every tfds dataset a registered recipe lists: its `tfds_datasets`,
    and the names in its `datasets` that tfds knows (a recipe may leave
    `tfds_datasets` empty)."""
    names = set()
    for name in RECIPES:
        recipe = get_recipe(name)
        names.update(recipe.tfds_datasets)
        names.update(d for d in recipe.datasets
                     if ":" not in d and _is_tfds_name(d))
    return sorted(names)


TFDS_NAMES = recipe_tfds_datasets()


@pytest.fixture
def offline(monkeypatch):
    """No network: every connection attempt is recorded and refused."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return attempts


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, n), path)
                  for d, dirs, files in os.walk(path) for n in dirs + files)


class DlrecipesTestLocal(tfds.core.GeneratorBasedBuilder):
    """Two-example dataset generated locally; says it downloads from a host,
    so that loading it unprepared would check the network."""

    VERSION = tfds.core.Version("1.0.0")
    url_infos = {"https://data.example.invalid/local.bin": None}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "x": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                "label": tfds.features.ClassLabel(num_classes=2)}),
            supervised_keys=("x", "label"))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(2):
            yield i, {"x": np.full((2,), i, np.float32), "label": i}


class DlrecipesTestBrokenDownload(DlrecipesTestLocal):
    """A download that writes part of a file, then loses the connection."""

    url_infos = None  # no hosts to check: tfds starts the download

    def _split_generators(self, dl_manager):
        folder = dl_manager.download_dir / self.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.bin.tmp.0123").write_bytes(b"partial")
        raise ConnectionResetError("connection reset by peer")


def test_collects_every_recipe_dataset():
    assert {"mnist", "cifar10", "tf_flowers", "imdb_reviews"} <= set(
        TFDS_NAMES)


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_offline_is_one_fast_line(name, tmp_path, offline):
    """Offline: one line within seconds that says how to get the data, no
    tfds download started, nothing left in the data directory."""
    # The lookup that failed on a fresh install (importlib_resources).
    url_infos = tfds.builder(name, data_dir=str(tmp_path)).url_infos
    hosts = {urllib.parse.urlsplit(url).hostname for url in url_infos}
    start = time.monotonic()
    with pytest.raises(RunError) as info:
        tfds_loader.load(name, ["train"], data_dir=str(tmp_path))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    assert repr(name) in message and "--data-dir" in message
    assert "no network" in message and any(h in message for h in hosts)
    assert files_under(tmp_path) == []
    # One connection attempt per host (the check), none by tfds itself.
    assert sorted(host for host, _ in offline) == sorted(hosts)


def test_prepared_dataset_loads_without_network_check(tmp_path, offline):
    DlrecipesTestLocal(data_dir=str(tmp_path)).download_and_prepare()
    assert not offline
    (train,), info = tfds_loader.load("dlrecipes_test_local", ["train"],
                                      data_dir=str(tmp_path))
    assert sorted(int(y) for _, y in train) == [0, 1]
    assert info.features["label"].num_classes == 2
    assert not offline


def test_failed_download_leaves_nothing(tmp_path, offline):
    keep = tmp_path / "downloads" / "earlier.zip"
    keep.parent.mkdir()
    keep.write_bytes(b"finished earlier")
    with pytest.raises(RunError) as info:
        tfds_loader.load("dlrecipes_test_broken_download", ["train"],
                         data_dir=str(tmp_path))
    assert "connection reset by peer" in str(info.value)
    assert files_under(tmp_path) == ["downloads", "downloads/earlier.zip"]


def test_mock_data_is_prepared(tmp_path, offline):
    builder = tfds.builder("mnist", data_dir=str(tmp_path))
    assert tfds_loader._needs_download(tfds, builder)
    with tfds.testing.mock_data(num_examples=4):
        builder = tfds.builder("mnist", data_dir=str(tmp_path))
        assert not tfds_loader._needs_download(tfds, builder)
    assert not offline


def test_network_check_gives_up_on_time(monkeypatch):
    monkeypatch.setattr(socket, "create_connection",
                        lambda *args, **kwargs: time.sleep(30))
    start = time.monotonic()
    assert not tfds_loader._reachable({("a.invalid", 443),
                                       ("b.invalid", 80)}, timeout=0.3)
    assert time.monotonic() - start < 1.5


def test_network_check_goes_through_the_proxy(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "mirror.internal")
    assert tfds_loader._address("https://ai.stanford.edu/x.tar.gz") == (
        "proxy.internal", 3128)
    assert tfds_loader._address("https://mirror.internal/x") == (
        "mirror.internal", 443)
    assert tfds_loader._address("http://a.example.org:8080/x") == (
        "a.example.org", 8080)


BROKEN_INSTALL = textwrap.dedent("""
    import socket, sys
    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")
    socket.create_connection = socket.getaddrinfo = refuse
    sys.modules["importlib_resources"] = None  # as if not installed
    from dlrecipes.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_missing_dependency_is_a_broken_install(tmp_path):
    """A fresh process: tfds imports importlib_resources once, lazily."""
    data = tmp_path / "data"
    data.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN_INSTALL, "run", "image-classification",
         "--dataset", "cifar10", "--data-dir", str(data),
         "--output-dir", str(tmp_path / "runs"), "--epochs", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "importlib_resources" in errors[0]
    assert "pip install -e ." in errors[0] and "broken install" in errors[0]
    assert "--data-dir" not in errors[0]
    assert "Traceback" not in proc.stderr
    assert files_under(data) == []
