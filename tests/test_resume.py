"""Crash and resume: a run killed with SIGKILL at several points and started
again with the same command finishes with the same weights as an
uninterrupted run, and a complete run directory; same seed, same numbers.

Each run is a subprocess (SIGKILL ends the interpreter); the kill is
injected by wrapping harness functions in the child, not by hooks in the
product code.
"""

import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from dlrecipes.training import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
# No random layer (no augmentation, no dropout): the result is exact.
# Batches of 128: 10 steps per epoch.
ARGS = ["run", "image-classification", "--epochs", str(EPOCHS),
        "--augment", "none", "--dropout", "0", "--width", "8",
        "--batch-size", "128", "--verbose", "0"]

_DRIVER = r"""
import json, os, signal, sys
kill_at = sys.argv[1]
argv = json.loads(sys.argv[2])
import keras
from dlrecipes.cli import main
from dlrecipes.training import loop, resume

def die():
    os.kill(os.getpid(), signal.SIGKILL)

class Killer(keras.callbacks.Callback):
    epoch = 0
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if kill_at == "epoch-begin-2" and epoch == 2:
            die()
    def on_train_batch_end(self, batch, logs=None):
        if kill_at == f"mid-epoch-{self.epoch}" and batch == 3:
            die()

if kill_at != "none":
    make_callbacks = loop._callbacks
    def with_killer(*args, **kwargs):
        cbs, best, backup = make_callbacks(*args, **kwargs)
        return [Killer(), *cbs], best, backup
    loop._callbacks = with_killer

if kill_at == "saving-backup":
    # Dies with epoch 2's backup written in its temporary folder, not yet
    # renamed into place.
    write_json = resume.atomic_write_json
    def write_then_die(path, obj):
        write_json(path, obj)
        if obj.get("epoch") == 2:
            die()
    resume.atomic_write_json = write_then_die

if kill_at == "saving-model":
    # Dies in the middle of writing the second epoch's model.keras (half a
    # file under the temporary name; the backups are `.keras` files too).
    save = keras.Model.save
    count = [0]
    def save_half_then_die(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        if os.path.basename(path) != ".tmp-model.keras":
            return
        count[0] += 1
        if count[0] == 2:
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            die()
    keras.Model.save = save_half_then_die

if kill_at == "saving-metrics":
    # Dies with metrics.json half written to its temporary file.
    write_json = loop.atomic_write_json
    def half_then_die(path, obj):
        if path.endswith("metrics.json"):
            tmp = os.path.join(os.path.dirname(path), ".tmp-x1metrics.json")
            with open(tmp, "w") as f:
                f.write(json.dumps(obj)[:20])
            die()
        write_json(path, obj)
    loop.atomic_write_json = half_then_die

if kill_at == "report":
    from dlrecipes.registry import get_recipe
    import recipes
    recipe = get_recipe("image-classification")
    def report_dies(*args, **kwargs):
        die()
    recipe.module.report = report_dies

sys.exit(main(argv))
"""


def _run(output_dir, kill_at="none", seed=3):
    argv = ARGS + ["--output-dir", str(output_dir), "--seed", str(seed)]
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-c", _DRIVER, kill_at, json.dumps(argv)],
        capture_output=True, text=True, env=env, timeout=600)


def _run_dirs(output_dir):
    return sorted(glob.glob(os.path.join(str(output_dir),
                                         "image-classification", "*")))


def _weights(run_dir):
    import dlrecipes

    model = dlrecipes.load_model(os.path.join(run_dir, "model.keras"))
    return model.get_weights()


def _numbers(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return {k: v for k, v in metrics.items()
            if k.startswith("test_") or k in ("params", "epochs_run")}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    done = _run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = _run_dirs(out)
    return run_dir


def _check_complete(run_dir):
    names = set(os.listdir(run_dir))
    assert {"config.json", "history.csv", "model.keras", "metrics.json",
            "curves.png"} <= names
    assert "backup" not in names and rundir.LOCK not in names
    assert not [n for n in names if n.startswith(".tmp-")], names
    with open(os.path.join(run_dir, "history.csv")) as f:
        epochs = [line.split(",")[0] for line in f.read().split()[1:]]
    assert epochs == [str(e) for e in range(EPOCHS)]


# The default suite kills mid-epoch (under each backend), while saving the
# backup and while writing metrics.json; the others are marked slow.
SLOW = pytest.mark.slow
KILL_POINTS = ["saving-backup", "saving-metrics",
               pytest.param("mid-epoch-0", marks=SLOW),
               pytest.param("epoch-begin-2", marks=SLOW),
               pytest.param("saving-model", marks=SLOW),
               pytest.param("report", marks=SLOW)]


@pytest.mark.backends
def test_mid_epoch_kill_resumes_to_the_same_weights(baseline, tmp_path):
    check_kill_and_resume("mid-epoch-2", baseline, tmp_path)


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_killed_run_resumes_to_the_same_weights(kill_at, baseline, tmp_path):
    check_kill_and_resume(kill_at, baseline, tmp_path)


def check_kill_and_resume(kill_at, baseline, tmp_path):
    killed = _run(tmp_path, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (run_dir,) = _run_dirs(tmp_path)
    # Interrupted: never reported as finished, nothing truncated to trust.
    assert not rundir.is_finished(run_dir)
    for name in ("config.json", "best.json"):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            with open(path) as f:
                json.load(f)

    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _run_dirs(tmp_path) == [run_dir]  # the same directory, resumed
    _check_complete(run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["resumed"] is True
    assert _numbers(run_dir) == _numbers(baseline)
    for got, want in zip(_weights(run_dir), _weights(baseline)):
        np.testing.assert_array_equal(got, want)


def test_other_seed_other_numbers(baseline, tmp_path):
    """Same seed, same numbers is what every kill-and-resume test above
    checks (a second process with the baseline's seed ends bit-identical to
    it); a different seed must give different numbers."""
    other = _run(tmp_path / "other", seed=4)
    assert other.returncode == 0, other.stderr[-3000:]
    (other_dir,) = _run_dirs(tmp_path / "other")
    assert _numbers(other_dir) != _numbers(baseline)
