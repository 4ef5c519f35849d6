"""Directory locks: flock'ed pid files, stale after a crash, exclusive
between processes (run directories and tuning directories)."""

import contextlib
import os
import subprocess
import sys

import pytest

from dlrecipes.errors import UsageError
from dlrecipes.training import locks

pytestmark = pytest.mark.backends


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides conftest's fixture: these tests use no Keras, and its
    `clear_session()` costs 1-2 s a test."""
    yield

# Holds a lock as `locks.acquire` does (an flock, then the pid in the
# file) without importing dlrecipes, whose Keras import costs seconds.
_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
time.sleep(120)
"""


@contextlib.contextmanager
def hold_lock(path):
    """A child process holding the lock at `path` until the block ends."""
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child
    finally:
        child.kill()
        child.wait()


def test_second_holder_is_refused_with_the_owner_pid(tmp_path):
    path = tmp_path / "run.lock"
    with hold_lock(path) as holder:
        with pytest.raises(UsageError, match=f"in use by process "
                                             f"{holder.pid}"):
            locks.acquire(path, "run directory x")
        assert locks.held_by_other(path)
    # The holder is gone (killed): the lock is stale and can be taken.
    assert not locks.held_by_other(path)
    locks.acquire(path, "run directory x")
    try:
        assert path.read_text() == str(os.getpid())
    finally:
        locks.release(path)
    assert not path.exists()


def test_pid_file_without_flock_is_stale(tmp_path):
    # A crash leaves the file; its pid may even belong to a live process
    # (pid reuse, here our parent). Only the flock counts.
    path = tmp_path / "search.lock"
    path.write_text(str(os.getppid()))
    assert not locks.held_by_other(path)
    locks.acquire(path, "tuning directory t")
    locks.release(path)


def test_acquire_is_reentrant_and_release_is_idempotent(tmp_path):
    path = tmp_path / "run.lock"
    locks.acquire(path, "x")
    locks.acquire(path, "x")
    assert not locks.held_by_other(path)
    locks.release(path)
    locks.release(path)
    assert not path.exists()


def test_tune_refuses_a_directory_another_search_holds(tmp_path, capsys):
    from dlrecipes.cli import main

    directory = tmp_path / "search"
    directory.mkdir()
    with hold_lock(directory / "search.lock") as holder:
        code = main(["tune", "image-classification", "--directory", str(directory),
                     "--max-trials", "1", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:")
    assert f"in use by process {holder.pid}" in err[0]
    assert os.listdir(directory) == ["search.lock"]  # nothing else written
