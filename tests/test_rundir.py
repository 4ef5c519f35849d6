"""Run directories: atomic files, unique names, resume lookup, locks."""

import json
import os

import pytest

from dlrecipes.errors import UsageError
from dlrecipes.training import rundir
from test_locks import _fresh_keras_state, hold_lock  # noqa: F401

pytestmark = pytest.mark.backends


def test_same_second_runs_get_different_directories(tmp_path):
    cfg = {"epochs": 1}
    a, resumed_a = rundir.create_run_dir(str(tmp_path), "r", cfg,
                                         resume=False)
    b, resumed_b = rundir.create_run_dir(str(tmp_path), "r", cfg,
                                         resume=False)
    assert a != b and not resumed_a and not resumed_b
    assert json.loads(open(os.path.join(b, "config.json")).read()) == {
        "recipe": "r", "epochs": 1}


def test_resume_finds_unfinished_run_of_same_config_only(tmp_path):
    run, _ = rundir.create_run_dir(str(tmp_path), "r", {"epochs": 3},
                                   resume=False)
    rundir.unlock(run)
    assert rundir.find_resumable(str(tmp_path / "r"), {"epochs": 4}) is None
    assert rundir.find_resumable(str(tmp_path / "r"), {"epochs": 3}) == run
    # A finished run (metrics.json present) is never resumed.
    rundir.atomic_write_json(os.path.join(run, "metrics.json"), {})
    assert rundir.find_resumable(str(tmp_path / "r"), {"epochs": 3}) is None


def test_a_run_saved_before_a_field_existed_resumes_at_its_default(
        tmp_path):
    run, _ = rundir.create_run_dir(str(tmp_path), "r", {"epochs": 3},
                                   resume=False)
    rundir.unlock(run)
    now = {"epochs": 3, "ema": 0.0}  # a field added since
    assert rundir.find_resumable(str(tmp_path / "r"), now) is None
    assert rundir.find_resumable(str(tmp_path / "r"), now,
                                 defaults={"epochs": 10, "ema": 0.0}) == run
    # Asking for another value than the default starts a new run.
    assert rundir.find_resumable(str(tmp_path / "r"), {**now, "ema": 0.9},
                                 defaults={"epochs": 10, "ema": 0.0}) is None


def test_locked_run_is_not_picked_up_by_a_second_process(tmp_path):
    run, _ = rundir.create_run_dir(str(tmp_path), "r", {"epochs": 3},
                                   resume=False)
    rundir.unlock(run)
    with hold_lock(os.path.join(run, rundir.LOCK)) as holder:
        assert rundir.find_resumable(str(tmp_path / "r"),
                                     {"epochs": 3}) is None
        holder.kill()  # SIGKILL: the lock goes stale
        holder.wait()
        assert rundir.find_resumable(str(tmp_path / "r"),
                                     {"epochs": 3}) == run


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    rundir.atomic_write_json(str(path), {"a": 1})

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        rundir.atomic_write_json(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot create output directory"):
        rundir.create_run_dir(str(blocker / "runs"), "r", {}, resume=False)


def test_resume_ignores_fields_that_do_not_change_the_model(tmp_path):
    # Killed with --verbose 1 in `runs`, restarted with --verbose 0 and the
    # same directory spelled `./runs`: the same training, resumed.
    killed = {"epochs": 3, "verbose": 1, "output_dir": "runs"}
    run, _ = rundir.create_run_dir(str(tmp_path), "r", killed, resume=False)
    rundir.unlock(run)
    recipe_dir = str(tmp_path / "r")
    again = {"epochs": 3, "verbose": 0, "output_dir": "./runs"}
    assert rundir.find_resumable(recipe_dir, again) == run
    assert rundir.find_resumable(recipe_dir, {**again, "epochs": 4}) is None


@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_run_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        run, _ = rundir.create_run_dir(str(tmp_path), "r", {}, resume=False)
        rundir.atomic_write_bytes(os.path.join(run, "curves.png"), b"png")
    finally:
        os.umask(old)
    rundir.unlock(run)
    for name in ("config.json", "curves.png"):
        mode = os.stat(os.path.join(run, name)).st_mode & 0o777
        assert mode == 0o666 & ~umask, (name, oct(mode))
