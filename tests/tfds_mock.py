"""Run the CLI under `tfds.testing.mock_data` in a fresh Python process.

TensorFlow 2.21's generator datasets (which tfds' mock uses) patch malloc
settings mid-process ("Memory patch applied: M_TRIM_THRESHOLD"); a later
`fit` in the same process then aborts with "free(): invalid size". A
subprocess per mocked run keeps the rest of the suite out of harm's way.
Several mocked runs may share one subprocess (`run_clis_with_mock_tfds`):
one interpreter and TensorFlow start-up instead of one each.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import json, sys
import tensorflow_datasets as tfds
from dlrecipes.cli import main
runs, num_examples = json.loads(sys.argv[1])
codes = []
for args in runs:
    with tfds.testing.mock_data(num_examples=num_examples):
        codes.append(main(args))
    print("RESULT " + json.dumps(codes), flush=True)
sys.exit(codes[0] if len(codes) == 1 else 0)
"""


def run_cli_with_mock_tfds(args, num_examples=40, timeout=300):
    """Returns the CompletedProcess of `dlrecipes <args>` with mocked tfds."""
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps([[args], num_examples])],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def run_clis_with_mock_tfds(runs, num_examples=40, timeout=600):
    """`dlrecipes <args>` for each `args` in `runs`, one after another in
    one fresh process with mocked tfds.

    Returns:
        `(codes, proc)`: the exit code of each run (fewer when the process
        died; its stderr is in `proc.stderr`) and the CompletedProcess.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps([runs, num_examples])],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith("RESULT ")]
    codes = json.loads(lines[-1][len("RESULT "):]) if lines else []
    return codes, proc
