"""The CLI's contract on bad input: one `error:` line on stderr, exit code
2, no traceback, nothing left in the output directory."""

import os
import signal
import subprocess
import sys
import time

import pytest

import recipes  # noqa: F401
from dlrecipes.cli import main
from dlrecipes.registry import list_recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list(capsys):
    code, out, _ = run_cli(capsys, ["list"])
    assert code == 0
    for name in list_recipes():
        assert name in out


BAD = [
    (["run", "no-such-recipe"], "image-classification"),
    (["run"], "image-classification"),
    (["frobnicate"], "list, run, tune, report"),
    (["run", "image-classification", "--model", "alexnet"], "resnet"),
    (["run", "image-classification", "--dataset", "imagenet"], "cifar10"),
    (["run", "image-classification", "--optimizer", "adamax"], "adamw"),
    (["run", "image-classification", "--schedule", "linear"], "cosine"),
    (["run", "image-classification", "--epochs", "-3"], "epochs"),
    (["run", "image-classification", "--epochs", "three"], "integer"),
    (["run", "image-classification", "--learning-rate", "0"], "> 0"),
    (["run", "image-classification", "--learning-rate", "nan"], "finite"),
    (["run", "image-classification", "--batch-size", "1.5"], "integer"),
    (["run", "image-classification", "--dataset", "folder:/no/such/dir"],
     "not found"),
    (["run", "image-classification", "--config", "/no/such.toml"],
     "not found"),
    (["run", "image-classification", "--no-such-flag", "1"],
     "unrecognized"),
    (["report", "/no/such/run"], "no such directory"),
]


@pytest.mark.parametrize("args,needle", BAD,
                         ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(args, needle, capsys, tmp_path):
    code, out, err = run_cli(capsys, args + ["--output-dir", str(tmp_path)]
                             if args[0] == "run" and len(args) > 1 else args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("content,needle", [
    ("epochs = [", "cannot read"),
    ("colour = 'red'", "unknown field 'colour'"),
    ("epochs = 'ten'", "integer"),
])
def test_bad_config_file(content, needle, capsys, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    out_dir = tmp_path / "runs"
    code, _, err = run_cli(capsys, ["run", "image-classification", "--config",
                                    str(cfg), "--output-dir", str(out_dir)])
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_unwritable_output_dir(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, ["run", "image-classification",
                                    "--output-dir", str(blocker / "runs")])
    assert code == 2 and err.startswith("error: cannot create output")


def test_module_is_a_script():
    proc = subprocess.run([sys.executable, "-m", "recipes.image_classification",
                           "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert "--model" in proc.stdout and "--learning-rate" in proc.stdout


def _history_rows(run_root):
    for dirpath, _, files in os.walk(run_root):
        if "history.csv" in files:
            with open(os.path.join(dirpath, "history.csv")) as f:
                return max(0, len(f.read().strip().splitlines()) - 1)
    return 0


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    """SIGKILL after the second epoch; the same command finishes the run."""
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "dlrecipes.cli", "run",
           "image-classification", "--model", "mlp", "--epochs", "6",
           "--width", "8", "--verbose", "0", "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while _history_rows(out) < 2 and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_name,) = os.listdir(out / "image-classification")
    run_dir = out / "image-classification" / run_name
    assert not (run_dir / "metrics.json").exists()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert os.listdir(out / "image-classification") == [run_name]
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed"] is True
    assert metrics["epochs_run"] == 6
    assert _history_rows(out) == 6
