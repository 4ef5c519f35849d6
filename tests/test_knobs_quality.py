"""The lessons of issue 18 as measured runs on the embedded digits (slow:
each is a few default-length runs). Figures in the README's "Lessons as
flags" table; each bar compares two runs the test trains itself."""

import csv
import os

import keras
import numpy as np
import pytest

from conftest import metrics, run_dir_of
from dlrecipes.cli import main

pytestmark = pytest.mark.slow


def _run(tmp_path, name, recipe, *flags):
    out = tmp_path / name
    assert main(["run", recipe, "--output-dir", str(out), "--verbose", "0",
                 *map(str, flags)]) == 0
    return run_dir_of(out, recipe)


def _epochs_to(run_dir, key, level):
    """The first epoch (1-based) whose `key` reaches `level`, or None."""
    with open(os.path.join(run_dir, "history.csv")) as f:
        for i, row in enumerate(csv.DictReader(f)):
            if float(row[key]) >= level:
                return i + 1
    return None


def test_zeros_stay_at_chance_while_he_normal_learns(tmp_path):
    zeros = _run(tmp_path, "zeros", "image-classification", "--model", "mlp",
                 "--kernel-initializer", "zeros")
    he = _run(tmp_path, "he", "image-classification", "--model", "mlp",
              "--kernel-initializer", "he_normal")
    assert metrics(zeros)["test_accuracy"] <= 0.2
    assert metrics(he)["test_accuracy"] >= 0.95


def test_deep_sigmoid_mlp_needs_more_epochs_than_relu(tmp_path):
    """Ten dense layers (`--depth 9`), no dropout: ReLU reaches 0.9
    validation accuracy within a few epochs; sigmoid's gradients vanish
    through the stack and it takes far longer, if it gets there at all in
    the 40 epochs."""
    flags = ("--model", "mlp", "--depth", "9", "--dropout", "0")
    relu = _run(tmp_path, "relu", "image-classification", *flags,
                "--activation", "relu")
    sigmoid = _run(tmp_path, "sigmoid", "image-classification", *flags,
                   "--activation", "sigmoid")
    relu_epochs = _epochs_to(relu, "val_accuracy", 0.9)
    sigmoid_epochs = _epochs_to(sigmoid, "val_accuracy", 0.9) or 41
    assert relu_epochs is not None
    assert sigmoid_epochs >= 2 * relu_epochs, (relu_epochs, sigmoid_epochs)


def _near_zero_share(run_dir, threshold=1e-3):
    import dlrecipes

    model = dlrecipes.load_model(os.path.join(run_dir, "model.keras"))
    kernels = [keras.ops.convert_to_numpy(v) for v in model.weights
               if v.path.endswith("/kernel")]
    values = np.concatenate([k.ravel() for k in kernels])
    return float(np.mean(np.abs(values) < threshold))


def test_l1_makes_weights_sparse(tmp_path):
    plain = _run(tmp_path, "plain", "image-classification", "--model", "mlp")
    l1 = _run(tmp_path, "l1", "image-classification", "--model", "mlp",
              "--l1", "1e-3")
    assert _near_zero_share(l1) > _near_zero_share(plain) + 0.1
