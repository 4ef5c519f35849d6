"""Run directories: `runs/<recipe>/<timestamp>/`, atomic files, resume.

A run directory is finished when `metrics.json` exists: it is written last,
atomically. A directory without it is an interrupted run; the same command
run again (same resolved config) finds it and resumes from its
`backup/` (Keras' `BackupAndRestore`). A `run.lock` holding the owner's pid
keeps a running directory from being picked up by a second process.
"""

import datetime
import json
import os
import tempfile

from dlrecipes.errors import UsageError

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


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked_by_live_process(run_dir):
    try:
        with open(os.path.join(run_dir, LOCK)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    return pid > 0 and pid != os.getpid() and _pid_alive(pid)


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
        if _locked_by_live_process(run_dir):
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
            lock(found)
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
    lock(run_dir)
    atomic_write_json(os.path.join(run_dir, "config.json"),
                      {"recipe": recipe_name, **config_dict})
    return run_dir, False


def lock(run_dir):
    atomic_write_text(os.path.join(run_dir, LOCK), str(os.getpid()))


def unlock(run_dir):
    try:
        os.unlink(os.path.join(run_dir, LOCK))
    except FileNotFoundError:
        pass
