"""Run directories: `runs/<recipe>/<timestamp>/`, atomic files, resume.

A run directory is finished when `metrics.json` exists: it is written last,
atomically. A directory without it is an interrupted run; the same command
run again (same resolved config) finds it and resumes from its
`backup/` (`dlrecipes.training.resume.EpochBackup`). A `run.lock` (an
`flock`ed file holding the owner's pid, see `locks`) keeps a running
directory from being picked up by a second process.
"""

import csv
import dataclasses
import datetime
import glob
import json
import os
import secrets
import shutil

from dlrecipes.config import PRESENTATION_FIELDS
from dlrecipes.errors import UsageError
from dlrecipes.training import locks

FINISHED_MARKER = "metrics.json"
LOCK = "run.lock"


def _create_temporary(directory, suffix):
    """An exclusive new `.tmp-*` file in `directory`: `(fd, path)`.

    Unlike `tempfile.mkstemp` (always 0600) the file gets the mode any new
    file gets, 0666 less the user's umask, like `model.keras` (which Keras
    writes): every file of a run directory follows one policy.
    """
    while True:
        path = os.path.join(directory,
                            f".tmp-{secrets.token_hex(6)}-{suffix}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                           0o666), path
        except FileExistsError:
            continue


def atomic_write_bytes(path, data):
    """Write `data` to `path` via a temporary file and `os.replace`.

    The file's mode follows the umask (0666 & ~umask), as for any new file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True,
                                       default=str) + "\n")


def is_finished(run_dir):
    return os.path.isfile(os.path.join(run_dir, FINISHED_MARKER))


def _training_settings(config_dict, ignore):
    """`config_dict` as JSON would store it, without the `recipe` key and
    the fields in `ignore`."""
    values = json.loads(json.dumps(config_dict, default=str))
    return {k: v for k, v in values.items()
            if k != "recipe" and k not in ignore}


def _read_config(run_dir):
    """A run directory's `config.json` as a dict, or None if unreadable."""
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def find_resumable(recipe_dir, config_dict, ignore=PRESENTATION_FIELDS,
                   defaults=None):
    """The newest unfinished, unlocked run of the same config, or None.

    Args:
        recipe_dir: `runs/<recipe>`.
        config_dict: the new run's resolved config.
        ignore: fields that do not change the trained model (verbosity,
            output directory): a run killed under one value resumes under
            another.
        defaults: the config class's default values: a field a run saved
            by an earlier version lacks is taken as its default (so a run
            interrupted before an upgrade that added a field resumes).
    """
    if not os.path.isdir(recipe_dir):
        return None
    wanted = _training_settings(config_dict, ignore)
    for name in sorted(os.listdir(recipe_dir), reverse=True):
        run_dir = os.path.join(recipe_dir, name)
        if not os.path.isfile(os.path.join(run_dir, "config.json")) or \
                is_finished(run_dir):
            continue
        if locks.held_by_other(os.path.join(run_dir, LOCK)):
            continue
        saved = _read_config(run_dir)
        if saved is not None and defaults:
            saved = {**{k: v for k, v in defaults.items() if k != "recipe"},
                     **saved}
        if saved is not None and \
                _training_settings(saved, ignore) == wanted:
            return run_dir
    return None


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """What `dlrecipes report` says about a run directory.

    Attributes:
        path: the run directory.
        recipe: its recipe (from `config.json`, else the parent folder).
        finished: `metrics.json` exists.
        epochs_done: rows of `history.csv` (epochs trained so far).
        owner: pid of the live process training it, 0 if that process is
            unknown, None if no live process holds its lock.
    """

    path: str
    recipe: str
    finished: bool
    epochs_done: int
    owner: int = None


def _epochs_done(run_dir):
    try:
        with open(os.path.join(run_dir, "history.csv"), newline="") as f:
            return max(sum(1 for row in csv.reader(f) if row) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0


def run_status(run_dir):
    """The `RunStatus` of a directory holding `config.json`."""
    saved = _read_config(run_dir) or {}
    recipe = saved.get("recipe")
    if not isinstance(recipe, str):
        recipe = os.path.basename(os.path.dirname(os.path.abspath(run_dir)))
    lock_path = os.path.join(run_dir, LOCK)
    owner = None
    if locks.held_by_other(lock_path):
        owner = locks.owner_pid(lock_path)  # the pid the owner wrote
    return RunStatus(run_dir, recipe, is_finished(run_dir),
                     _epochs_done(run_dir), owner)


def runs_under(root):
    """`RunStatus` of every run directory one or two levels below `root`
    (a recipe directory `runs/<recipe>` or a runs root `runs`), by path."""
    found = set()
    for depth in (1, 2):
        pattern = [glob.escape(root)] + ["*"] * depth + ["config.json"]
        found.update(os.path.dirname(p) for p in
                     glob.glob(os.path.join(*pattern)))
    return [run_status(d) for d in sorted(found)]


def _check_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output directory {path}: "
                         f"{e.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"output directory is not writable: {path}")


def create_run_dir(output_dir, recipe_name, config_dict, resume=True,
                   defaults=None):
    """Create (or, with `resume`, reuse) a run directory; returns (path, resumed).

    Two runs started in the same second get different directories: the
    name is taken with an exclusive `mkdir`, adding `-2`, `-3` ... on clash.
    """
    recipe_dir = os.path.join(output_dir, recipe_name)
    _check_writable(recipe_dir)
    if resume:
        found = find_resumable(recipe_dir, config_dict, defaults=defaults)
        if found:
            try:
                lock(found)
            except UsageError:  # taken by a run started at the same time
                found = None
            if found and (is_finished(found) or not os.path.isfile(
                    os.path.join(found, "config.json"))):
                unlock(found)  # finished (or discarded) meanwhile
                found = None
            if found:
                _remove_temporaries(found)
                return found, True
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        name = stamp if i == 1 else f"{stamp}-{i}"
        run_dir = os.path.join(recipe_dir, name)
        try:
            os.mkdir(run_dir)
        except FileExistsError:
            continue
        break
    try:
        lock(run_dir)
        atomic_write_json(os.path.join(run_dir, "config.json"),
                          {"recipe": recipe_name, **config_dict})
    except BaseException:  # e.g. a full disk: leave nothing behind
        discard(run_dir)
        raise
    return run_dir, False


def discard(run_dir):
    """Remove a run directory that never trained an epoch. Its config goes
    first and its lock last, so no other run picks it up meanwhile."""
    try:
        os.unlink(os.path.join(run_dir, "config.json"))
    except FileNotFoundError:
        pass
    shutil.rmtree(run_dir, ignore_errors=True)
    unlock(run_dir)


def _remove_temporaries(run_dir):
    """Temporary files a killed run left behind (atomic writes that never
    reached their rename)."""
    for name in os.listdir(run_dir):
        if name.startswith(".tmp-"):
            path = os.path.join(run_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def lock(run_dir):
    locks.acquire(os.path.join(run_dir, LOCK), f"run directory {run_dir}")


def unlock(run_dir):
    locks.release(os.path.join(run_dir, LOCK))
