"""Run the CLI under `tfds.testing.mock_data` in a fresh Python process.

TensorFlow 2.21's generator datasets (which tfds' mock uses) patch malloc
settings mid-process ("Memory patch applied: M_TRIM_THRESHOLD"); a later
`fit` in the same process then aborts with "free(): invalid size". A
subprocess per mocked run keeps the rest of the suite out of harm's way.
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
args, num_examples = json.loads(sys.argv[1])
with tfds.testing.mock_data(num_examples=num_examples):
    sys.exit(main(args))
"""


def run_cli_with_mock_tfds(args, num_examples=40, timeout=300):
    """Returns the CompletedProcess of `dlrecipes <args>` with mocked tfds."""
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps([args, num_examples])],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)
