"""Runs that fail after a valid start: a loss that diverges, a disk that
fills. Each ends with one `error: ...` line and exit 1, and leaves either
nothing (no model was saved) or a directory that the same command resumes.

The full-disk tests write on a small tmpfs mounted under `tmp_path` (needs
root, as in CI; skipped with the reason elsewhere): HDF5 failing on a real
full disk is what crashed the interpreter, a faked `os.fsync` never gets
there.
"""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from dlrecipes.cli import main
from dlrecipes.errors import RunError
from dlrecipes.training import loop
from dlrecipes.training.callbacks import BestCheckpoint
from dlrecipes.training.resume import EpochBackup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smallest run of the main recipe: a few seconds per epoch.
ARGS = ["run", "image-classification", "--model", "mlp", "--width", "8",
        "--epochs", "2", "--verbose", "0"]


def _run_dirs(output_dir):
    return sorted(glob.glob(os.path.join(str(output_dir),
                                         "image-classification", "*")))


@pytest.fixture
def no_report(monkeypatch):
    """image-classification without its report (plots, a baseline): half
    the run's time, and not what these tests check."""
    import recipes  # noqa: F401  (registers the recipes)
    from dlrecipes.registry import get_recipe

    recipe = get_recipe("image-classification")
    monkeypatch.setattr(type(recipe), "report", lambda *args: {})


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---------------------------------------------------------------- diverging


def test_loss_diverging_in_the_first_epoch_fails_and_leaves_nothing(
        tmp_path, capsys):
    code = main(ARGS + ["--optimizer", "sgd", "--schedule", "constant",
                        "--learning-rate", "1e12",
                        "--output-dir", str(tmp_path)])
    line = _error_line(capsys)
    assert code == 1
    assert "diverged" in line and "at epoch 1" in line, line
    assert "--learning-rate" in line and "--clipnorm" in line, line
    # No metrics.json, and no backup a later run would resume into.
    assert _run_dirs(tmp_path) == []


def test_loss_diverging_after_a_saved_epoch_warns_and_evaluates_it(
        tmp_path, monkeypatch, recwarn, no_report):
    class PoisonSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for v in self.model.trainable_variables:
                    v.assign(keras.ops.full(v.shape, np.nan, v.dtype))

    make_callbacks = loop._callbacks

    def with_poison(*args, **kwargs):
        cbs, best, backup = make_callbacks(*args, **kwargs)
        return [PoisonSecondEpoch(), *cbs], best, backup

    monkeypatch.setattr(loop, "_callbacks", with_poison)
    assert main(ARGS + ["--output-dir", str(tmp_path)]) == 0
    notes = [str(w.message) for w in recwarn if "diverged" in str(w.message)]
    assert len(notes) == 1 and "\n" not in notes[0], notes
    assert "at epoch 2" in notes[0] and "model of epoch 1" in notes[0]
    (run_dir,) = _run_dirs(tmp_path)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["best_epoch"] == 0 and metrics["epochs_run"] == 2
    assert np.isfinite(metrics["test_loss"])


# ---------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted at `tmp_path / "disk"`, unmounted afterwards."""
    path = tmp_path / "disk"
    path.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m",
                               "tmpfs", str(path)], capture_output=True,
                              text=True, timeout=30)
    except OSError as e:
        pytest.skip(f"cannot run mount: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield path
    if subprocess.run(["umount", str(path)]).returncode != 0:
        subprocess.run(["umount", "-l", str(path)])


@pytest.fixture
def hdf5_in_memory(monkeypatch):
    """Fails a test at once where HDF5 would write a file on disk: on a full
    disk that write crashes Python (in `h5py.File.close`, or at exit),
    which would take the whole test session down."""
    import h5py

    class InMemoryOnly(h5py.File):
        def __init__(self, name, mode="r", *args, **kwargs):
            if isinstance(name, (str, bytes, os.PathLike)) and mode != "r":
                raise AssertionError(f"HDF5 writes {name} itself; on a full "
                                     "disk that crashes Python")
            super().__init__(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", InMemoryOnly)


def fill(directory, keep):
    """Writes `directory/ballast`, leaving `keep` bytes free there."""
    stat = os.statvfs(directory)
    with open(os.path.join(directory, "ballast"), "wb") as f:
        f.write(bytes(stat.f_bavail * stat.f_frsize - keep))


_DRIVER = r"""
import json, sys
from dlrecipes.lazy import import_keras
keras = import_keras()  # quietly, as the CLI does: stderr is checked
from dlrecipes.cli import main
from dlrecipes.training import loop
from test_failures import fill

disk, argv = sys.argv[1], json.loads(sys.argv[2])

class FillDisk(keras.callbacks.Callback):
    # The disk fills up at the end of epoch 2, just before its backup.
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            fill(disk, keep=8192)

make_callbacks = loop._callbacks
def with_filler(*args, **kwargs):
    cbs, best, backup = make_callbacks(*args, **kwargs)
    cbs.insert(cbs.index(backup), FillDisk())
    return cbs, best, backup
loop._callbacks = with_filler
sys.exit(main(argv))
"""


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(64)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_full_disk_while_saving_a_backup_keeps_the_last_whole_one(
        small_disk, hdf5_in_memory):
    model = _tiny_model()
    backup = EpochBackup(str(small_disk / "backup"))
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    saved = model.get_weights()
    model.set_weights([w + 1 for w in saved])
    fill(small_disk, keep=4096)
    with pytest.raises(RunError, match="disk full while writing .*epoch-0002"
                       "; free space and run the same command again"):
        backup.on_epoch_end(1, {"loss": 1.0})
    assert os.listdir(small_disk / "backup") == ["epoch-0001"]
    os.unlink(small_disk / "ballast")
    restored = _tiny_model()
    again = EpochBackup(str(small_disk / "backup"))
    again.set_model(restored)
    again.on_train_begin()
    assert again.start_epoch(5) == 1
    for got, want in zip(restored.get_weights(), saved):
        np.testing.assert_array_equal(got, want)


def test_full_disk_while_saving_the_model_names_it_and_cleans_up(
        small_disk, hdf5_in_memory):
    best = BestCheckpoint(str(small_disk / "model.keras"), "loss", "min")
    best.set_model(_tiny_model())
    fill(small_disk, keep=4096)
    with pytest.raises(RunError, match="disk full while writing .*model.keras"
                       "; free space and run the same command again"):
        best.on_epoch_end(0, {"loss": 1.0})
    assert os.listdir(small_disk) == ["ballast"]  # no temporary left


@pytest.mark.slow  # about 25 s: a subprocess, then a resumed run
def test_full_disk_while_saving_the_backup_fails_cleanly_then_resumes(
        small_disk, capsys, no_report):
    argv = ARGS + ["--output-dir", str(small_disk / "runs")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [ROOT, os.path.join(ROOT, "tests")])}
    # A subprocess: HDF5 writing a file on a full disk crashed Python.
    full = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(small_disk), json.dumps(argv)],
        capture_output=True, text=True, env=env, timeout=300)
    assert full.returncode == 1, full.stderr[-3000:]
    err = full.stderr.strip().splitlines()
    assert len(err) == 1, full.stderr[-3000:]
    assert err[0].startswith("error: disk full while writing "), err
    assert "backup" in err[0] and "run the same command again" in err[0]
    (run_dir,) = _run_dirs(small_disk / "runs")
    backups = os.listdir(os.path.join(run_dir, "backup"))
    assert backups == ["epoch-0001"], backups  # whole, nothing half-written

    os.unlink(small_disk / "ballast")  # free space, run the same command
    assert main(argv) == 0, capsys.readouterr().err
    assert _run_dirs(small_disk / "runs") == [run_dir]
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["resumed"] is True and metrics["epochs_run"] == 2
    assert not os.path.exists(os.path.join(run_dir, "backup"))

