"""Run directories: `runs/<recipe>/<timestamp>/`, atomic files, resume.

A run directory is finished when `metrics.json` exists: it is written last,
atomically. A directory without it is an interrupted run; the same command
run again (same resolved config) finds it and resumes from its
`backup/` (`dlrecipes.training.resume.EpochBackup`). A `run.lock` (an
`flock`ed file holding the owner's pid, see `locks`) keeps a running
directory from being picked up by a second process.
"""

import datetime
import json
import os
import shutil
import tempfile

from dlrecipes.errors import UsageError
from dlrecipes.training import locks

FINISHED_MARKER = "metrics.json"
LOCK = "run.lock"


def atomic_write_bytes(path, data):
    """Write `data` to `path` via a temporary file and `os.replace`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                               suffix=os.path.basename(path))
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


def find_resumable(recipe_dir, config_dict):
    """The newest unfinished, unlocked run of the same config, or None."""
    if not os.path.isdir(recipe_dir):
        return None
    for name in sorted(os.listdir(recipe_dir), reverse=True):
        run_dir = os.path.join(recipe_dir, name)
        cfg_path = os.path.join(run_dir, "config.json")
        if not os.path.isfile(cfg_path) or is_finished(run_dir):
            continue
        if locks.held_by_other(os.path.join(run_dir, LOCK)):
            continue
        try:
            with open(cfg_path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            continue
        saved.pop("recipe", None)
        if saved == json.loads(json.dumps(config_dict, default=str)):
            return run_dir
    return None


def _check_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output directory {path}: "
                         f"{e.strerror}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"output directory is not writable: {path}")


def create_run_dir(output_dir, recipe_name, config_dict, resume=True):
    """Create (or, with `resume`, reuse) a run directory; returns (path, resumed).

    Two runs started in the same second get different directories: the
    name is taken with an exclusive `mkdir`, adding `-2`, `-3` ... on clash.
    """
    recipe_dir = os.path.join(output_dir, recipe_name)
    _check_writable(recipe_dir)
    if resume:
        found = find_resumable(recipe_dir, config_dict)
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
