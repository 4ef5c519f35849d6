"""`dlrecipes tune --workers 2`: a KerasTuner chief and two workers on
loopback run every trial of a grid exactly once, then stop."""

import json
import os
import sys

import pytest

import recipes  # noqa: F401
from dlrecipes.cli import main
from tuning.distributed import core_shares, thread_env
from tuning.results import read_trials

IMAGE = "image-classification"
SPACE = """\
width = [8, 12, 16]
dropout = [0.0, 0.1]
depth = 1
augment = "none"
optimizer = "adam"
learning_rate = 0.003
weight_decay = 0.0
schedule = "constant"
batch_size = 64
"""


def test_core_shares_are_disjoint_and_fair():
    assert core_shares(2, [0, 1, 2, 3]) == [[0, 1], [2, 3]]
    assert core_shares(3, [0, 1, 2, 3, 4, 5, 6]) == [[0, 1], [2, 3], [4, 5]]
    assert core_shares(3, [0, 1]) == [[0], [1], [0]]
    env = thread_env(2)
    assert env["OMP_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "2"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")
def test_chief_and_two_workers_run_every_trial_once(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    directory = tmp_path / "search"
    code = main(["tune", IMAGE, "--tuner", "grid", "--space", str(space),
                 "--model", "mlp", "--epochs", "1", "--verbose", "1",
                 "--tensorboard", "off", "--workers", "2", "--directory",
                 str(directory), "--output-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = read_trials(str(directory / "kt"))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 6
    combos = {(r["values"]["width"], r["values"]["dropout"]) for r in rows}
    assert len(combos) == 6
    tuners = set()
    for row in rows:
        path = directory / "trials" / row["trial"] / "attempts.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        assert len(lines) == 1, (row["trial"], lines)  # exactly once
        tuners.add(lines[0]["tuner"])
    assert tuners <= {"worker0", "worker1"} and tuners
    # Logs were collected, and no chief or worker outlives the command.
    for name in ("chief", "worker0", "worker1"):
        log = (directory / "logs" / f"{name}.log").read_text()
        pid = int(log.split(" pid ", 1)[1].split()[0])
        assert not _alive(pid), f"{name} (pid {pid}) still running"
    # The supervisor wrote the table and retrained the best config.
    assert (directory / "trials.csv").read_text().count("COMPLETED") == 6
    assert (directory / "best" / "config.json").is_file()
