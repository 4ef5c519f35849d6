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


def test_plain_rnn_forgets_over_150_steps_where_lstm_learns(tmp_path):
    """The vanishing-gradient lesson on a real series: GunPoint's 150
    steps (the UCR flags of sequence-classification's Results), seeds
    0 / 1 / 2. The SimpleRNN stays near chance (0.5) and below the LSTM
    for every seed, by 0.2 at least; the README records the figures (on
    digits read as 64 pixels the SimpleRNN wins: not this lesson's
    length)."""
    flags = ["--dataset", "gunpoint", "--batch-size", "16", "--checkpoint",
             "last", "--epochs", "150"]
    scores = {}
    for model in ("rnn", "lstm"):
        scores[model] = [metrics(_run(
            tmp_path, f"{model}{seed}", "sequence-classification", "--model",
            model, "--seed", seed, *flags))["test_accuracy"]
            for seed in (0, 1, 2)]
    for rnn, lstm in zip(scores["rnn"], scores["lstm"]):
        assert lstm >= rnn + 0.2, scores
    assert np.mean(scores["rnn"]) < 0.7, scores
    assert [f"{v:.3f}" for v in scores["rnn"] + scores["lstm"]] == [
        "0.553", "0.633", "0.493", "0.960", "0.860", "0.893"], scores


def test_inception_auxiliary_classifiers(tmp_path):
    """`--aux-loss 0.3` on the default digits inception, seeds 0 / 1 / 2:
    the README's figures, and a mean at least the plain inception's
    (image-classification's Results table, trained by
    tests/test_architectures.py)."""
    import recipes.image_classification as ic
    from results_table import figure, results_table

    scores = [metrics(_run(tmp_path, f"aux{seed}", "image-classification",
                           "--model", "inception", "--aux-loss", "0.3",
                           "--seed", seed))["test_accuracy"]
              for seed in (0, 1, 2)]
    assert [f"{v:.3f}" for v in scores] == ["0.997", "0.997", "0.994"]
    plain = float(figure(results_table(ic), "test accuracy", data="digits",
                         model="inception", seed="mean of 0-2"))
    assert np.mean(scores) >= plain, scores
