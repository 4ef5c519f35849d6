"""Directory locks: a lock file holding the owner's pid, held with `flock`.

The kernel drops an `flock` when its process dies (SIGKILL included), so a
lock left behind by a crashed run is stale by construction: the next
`acquire` takes it over. The pid in the file is there for the message that
names the owner. Used for run directories (`run.lock`) and tuning
directories (`search.lock`).
"""

import os

from dlrecipes.errors import UsageError

try:
    import fcntl
except ImportError:  # not POSIX: fall back to the pid check alone
    fcntl = None

_held = {}  # absolute path -> open file descriptor


def owner_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(path, what):
    """Take the lock at `path` for this process, or raise `UsageError`
    naming `what` and the owner's pid when a live process holds it.
    Taking a lock this process already holds is a no-op."""
    path = os.path.abspath(path)
    if path in _held:
        return
    if fcntl is None:
        pid = owner_pid(path)
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise _in_use(what, pid)
        _write_pid_file(path)
        _held[path] = None
        return
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _in_use(what, owner_pid(path)) from None
        # The file may have been unlinked by its previous owner between our
        # open and flock: then we hold a lock on a dead inode. Retry.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        _held[path] = fd
        return
    raise _in_use(what, owner_pid(path))


def release(path):
    """Release (and remove) a lock this process holds; no-op otherwise."""
    path = os.path.abspath(path)
    if path not in _held:
        return
    fd = _held.pop(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    if fd is not None:
        os.close(fd)


def held_by_other(path):
    """Whether another live process holds the lock at `path`."""
    path = os.path.abspath(path)
    if path in _held or not os.path.exists(path):
        return False
    if fcntl is None:
        pid = owner_pid(path)
        return bool(pid) and pid != os.getpid() and _pid_alive(pid)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock
    return False


def _write_pid_file(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))


def _in_use(what, pid):
    owner = f"process {pid}" if pid else "another process"
    return UsageError(f"{what} is in use by {owner}; wait for it to finish "
                      "or stop it")
