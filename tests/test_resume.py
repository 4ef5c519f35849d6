"""Crash and resume: a run killed with SIGKILL at several points and started
again with the same command finishes with the same weights as an
uninterrupted run, and a complete run directory; same seed, same numbers.

Every killed run is its own subprocess (SIGKILL ends the interpreter); the
kill is injected by wrapping harness functions in the child, not by hooks in
the product code. The kills of the selected tests run side by side with one
more process, the finisher: it trains the uninterrupted baseline (and the
other-seed run), then, once every kill is done, resumes each killed run
directory with the same command, one after another (every `main` call
starts from a fresh Keras session and the seed, as a new process does).
"""

import concurrent.futures
import dataclasses
import functools
import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from dlrecipes.training import rundir

EPOCHS = 3
SEED, OTHER_SEED = 3, 4
TIMEOUT = 1200  # per process; a busy machine runs them slower
# No random layer (no augmentation, no dropout): the result is exact.
# A one-stage ResNet (batch normalization included: its moving statistics
# must come back too); batches of 128: 10 steps per epoch.
ARGS = ["run", "image-classification", "--epochs", str(EPOCHS),
        "--augment", "none", "--dropout", "0", "--width", "8",
        "--stages", "1", "--batch-size", "128", "--verbose", "0"]

# argv: the kill point ("none" in the finisher), the runs to make (JSON
# [[output_dir, seed], ...]), the run's other flags (JSON), and for the
# finisher a file that lists, once every kill is done, the runs to resume
# (same format). Prints the exit codes as one RESULT line.
_DRIVER = r"""
import json, os, signal, sys, time
kill_at = sys.argv[1]
runs, args = json.loads(sys.argv[2]), json.loads(sys.argv[3])
resume_list = sys.argv[4] if len(sys.argv) > 4 else None
import keras
import recipes
from dlrecipes.cli import main
from dlrecipes.registry import get_recipe
from dlrecipes.training import loop, resume

def die():
    os.kill(os.getpid(), signal.SIGKILL)

recipe = get_recipe("image-classification")
# The recipe's report (plots, a classical baseline) is not what resuming
# is about: off in every run, so that the numbers compare like for like.
recipe.report = lambda *args, **kwargs: {}

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
    # Dies while the second epoch's model.keras is put in place, half a
    # file under the temporary name (whether it was saved or, with
    # --checkpoint last, linked from the backup: that link is replaced by a
    # half copy first, so the backup itself stays whole).
    replace = os.replace
    count = [0]
    def replace_half_then_die(src, dst, *args, **kwargs):
        if os.path.basename(str(dst)) == "model.keras":
            count[0] += 1
            if count[0] == 2:
                with open(src, "rb") as f:
                    data = f.read()
                os.unlink(src)
                with open(src, "wb") as f:
                    f.write(data[:len(data) // 2])
                die()
        return replace(src, dst, *args, **kwargs)
    os.replace = replace_half_then_die

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
    def report_dies(*args, **kwargs):
        die()
    recipe.report = report_dies

def run(output_dir, seed):
    return main(args + ["--output-dir", output_dir, "--seed", str(seed)])

codes = {output_dir: run(output_dir, seed) for output_dir, seed in runs}
if resume_list:
    waited = 0
    while not os.path.exists(resume_list):
        if os.getppid() == 1 or waited > 1800:  # pytest is gone
            sys.exit(3)
        time.sleep(0.2)
        waited += 0.2
    with open(resume_list) as f:
        for output_dir, seed in json.load(f):
            codes[output_dir] = run(output_dir, seed)
print("RESULT " + json.dumps(codes))
"""


# Backups: by default (`--backup-every 60` seconds) a 3-epoch run saves its
# state only after its last epoch, so a kill before it resumes from the
# start (into the same directory, with its history and best checkpoint);
# these kill points back up after every epoch and resume from the last one.
EVERY_EPOCH = ("saving-backup", "mid-epoch-0", "epoch-begin-2", "saving-model")


def _command(kill_at, runs, resume_list=None):
    args = ARGS + (["--backup-every", "0"] if kill_at in EVERY_EPOCH
                   else [])
    argv = [sys.executable, "-c", _DRIVER, kill_at,
            json.dumps([[str(out), seed] for out, seed in runs]),
            json.dumps(args)] + ([str(resume_list)] if resume_list else [])
    env = {**os.environ, "PYTHONPATH": ROOT}
    return argv, env


def _run_dirs(output_dir):
    return sorted(glob.glob(os.path.join(str(output_dir),
                                         "image-classification", "*")))


@functools.lru_cache(maxsize=None)
def _weights(run_dir):
    import dlrecipes

    model = dlrecipes.load_model(os.path.join(run_dir, "model.keras"))
    return model.get_weights()


def _numbers(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return {k: v for k, v in metrics.items()
            if k.startswith("test_") or k in ("params", "epochs_run")}


@dataclasses.dataclass
class Killed:
    """A killed run, as it stood before it was resumed."""

    returncode: int
    stderr: str
    run_dirs: list
    finished: bool
    unreadable: list  # JSON files left that do not parse


@dataclasses.dataclass
class Runs:
    baseline: str  # its run directory
    other: str  # the other seed's
    killed: dict  # kill point -> Killed
    codes: dict  # output directory -> exit code, in the finisher
    stderr: str  # the finisher's
    tmp: object


def _kill(kill_at, output_dir):
    argv, env = _command(kill_at, [(output_dir, SEED)])
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=TIMEOUT)
    found = _run_dirs(output_dir)
    unreadable = []
    for run_dir in found:
        for name in ("config.json", "best.json"):
            path = os.path.join(run_dir, name)
            if os.path.exists(path):
                try:
                    with open(path) as f:
                        json.load(f)
                except ValueError:
                    unreadable.append(path)
    finished = any(rundir.is_finished(d) for d in found)
    return Killed(proc.returncode, proc.stderr[-3000:], found, finished,
                  unreadable)


def _selected(request):
    """Kill points of the selected tests, and whether the other-seed test
    is selected: only the runs the selected tests need are made."""
    kill_points, other = [], False
    for item in request.session.items:
        if item.path != request.path:
            continue
        params = getattr(item, "callspec", None)
        if params is not None and "kill_at" in params.params:
            kill_points.append(params.params["kill_at"])
        other |= item.originalname == "test_other_seed_other_numbers"
    return kill_points, other


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    kill_points, other = _selected(request)
    resume_list = tmp / "resume.json"
    finisher_runs = [(tmp / "baseline", SEED)]
    if other:
        finisher_runs.append((tmp / "other", OTHER_SEED))
    argv, env = _command("none", finisher_runs, resume_list)
    # Its output goes to files: a pipe nobody reads while the kills run
    # could fill up and stall it.
    out, err = open(tmp / "finisher.out", "w"), open(tmp / "finisher.err", "w")
    finisher = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
    try:
        # Two kills at a time beside the finisher.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = {k: pool.submit(_kill, k, tmp / k)
                       for k in kill_points}
            killed = {k: f.result() for k, f in futures.items()}
        with open(str(resume_list) + ".tmp", "w") as f:
            json.dump([[str(tmp / k), SEED] for k in kill_points], f)
        os.replace(str(resume_list) + ".tmp", resume_list)
        finisher.wait(timeout=TIMEOUT)
    finally:
        if finisher.poll() is None:
            finisher.kill()
            finisher.wait()
        out.close()
        err.close()
    stdout = (tmp / "finisher.out").read_text()
    stderr = (tmp / "finisher.err").read_text()
    lines = [line for line in stdout.splitlines()
             if line.startswith("RESULT ")]
    assert lines, f"the finisher printed no result:\n{stderr[-3000:]}"
    codes = json.loads(lines[-1][len("RESULT "):])
    dirs = {name: _run_dirs(tmp / name) for name in ("baseline", "other")}
    return Runs(dirs["baseline"][0] if dirs["baseline"] else None,
                dirs["other"][0] if dirs["other"] else None,
                killed, codes, stderr[-3000:], tmp)


def _check_complete(run_dir):
    names = set(os.listdir(run_dir))
    assert {"config.json", "history.csv", "model.keras", "metrics.json",
            "curves.png"} <= names
    assert "backup" not in names and rundir.LOCK not in names
    assert not [n for n in names if n.startswith(".tmp-")], names
    with open(os.path.join(run_dir, "history.csv")) as f:
        epochs = [line.split(",")[0] for line in f.read().split()[1:]]
    assert epochs == [str(e) for e in range(EPOCHS)]


# The default suite kills mid-epoch (under each backend; no backup yet),
# while saving the backup (of every epoch) and while writing metrics.json
# (the last epoch's backup); the others are marked slow.
SLOW = pytest.mark.slow
KILL_POINTS = [pytest.param("mid-epoch-2", marks=pytest.mark.backends),
               "saving-backup", "saving-metrics",
               pytest.param("mid-epoch-0", marks=SLOW),
               pytest.param("epoch-begin-2", marks=SLOW),
               pytest.param("saving-model", marks=SLOW),
               pytest.param("report", marks=SLOW)]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_killed_run_resumes_to_the_same_weights(kill_at, runs):
    killed = runs.killed[kill_at]
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (run_dir,) = killed.run_dirs
    # Interrupted: never reported as finished, nothing truncated to trust.
    assert not killed.finished
    assert killed.unreadable == []

    output_dir = runs.tmp / kill_at
    assert runs.codes[str(output_dir)] == 0, runs.stderr
    assert _run_dirs(output_dir) == [run_dir]  # the same directory, resumed
    _check_complete(run_dir)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert json.load(f)["resumed"] is True
    assert runs.codes[str(runs.tmp / "baseline")] == 0, runs.stderr
    assert _numbers(run_dir) == _numbers(runs.baseline)
    for got, want in zip(_weights(run_dir), _weights(runs.baseline)):
        np.testing.assert_array_equal(got, want)


def test_other_seed_other_numbers(runs):
    """Same seed, same numbers is what every kill-and-resume test above
    checks (a killed process's backups, resumed in another, end
    bit-identical to the baseline); a different seed must give different
    numbers."""
    assert runs.codes[str(runs.tmp / "other")] == 0, runs.stderr
    assert runs.codes[str(runs.tmp / "baseline")] == 0, runs.stderr
    assert _numbers(runs.other) != _numbers(runs.baseline)
