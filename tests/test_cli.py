"""The CLI's good paths (bad input: tests/test_bad_input.py; crash and
resume: tests/test_resume.py)."""

import os
import subprocess
import sys


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


def test_module_is_a_script():
    proc = subprocess.run([sys.executable, "-m", "recipes.image_classification",
                           "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert "--model" in proc.stdout and "--learning-rate" in proc.stdout
