"""Weight averaging and snapshot ensembles in runs (issue 16): `--ema`
(Keras' `use_ema`), `--swa-start` (batch norm recomputed), `--snapshots`
(cycles of `cosine_restarts`), what they report, and exact resume."""

import json
import os

import keras
import numpy as np
import pytest

import dlrecipes
import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.config import config_from_dict
from dlrecipes.registry import get_recipe
from dlrecipes.training import averaging
from dlrecipes.training.callbacks import EpochTensorBoard, holding_variables
from dlrecipes.training.optimizers import learning_rate
from recipes.image_classification import ImageClassificationConfig

IMAGE = "image-classification"
TINY = ["--model", "mlp", "--width", "8", "--augment", "none", "--verbose",
        "0", "--backup-every", "0"]


def _run(out, *extra):
    assert main(["run", IMAGE, *TINY, "--output-dir", str(out),
                 *extra]) == 0
    (run_dir,) = (out / IMAGE).iterdir()
    return run_dir


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _weights(run_dir):
    model = dlrecipes.load_model(str(run_dir / "model.keras"), compile=False)
    return model.get_weights()


def _tiny_model(batch_norm=False):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8)(inputs)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.ReLU()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.backends
def test_ema_is_what_validation_measures_and_what_fit_leaves():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.integers(0, 3, 64)
    keras.utils.set_random_seed(0)
    model = _tiny_model()
    model.compile(keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.9),
                  "sparse_categorical_crossentropy")
    ema = averaging.EMAWeights()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                        validation_data=(x, y), callbacks=[ema])
    # After the last epoch the model holds the average (as Keras leaves it
    # after fit) and `raw` the last epoch's own weights: they differ.
    assert ema.raw is not None
    current = [keras.ops.convert_to_numpy(v)
               for v in model.trainable_variables]
    assert not all(np.allclose(a, b) for a, b in zip(current, ema.raw))
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0),
                               history.history["val_loss"][-1], rtol=1e-5)
    with holding_variables(model.trainable_variables, ema.raw):
        raw_loss = model.evaluate(x, y, verbose=0)
    assert abs(raw_loss - history.history["val_loss"][-1]) > 1e-4


@pytest.mark.backends
def test_batch_norm_statistics_are_the_mean_over_the_training_batches():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(50, 4)).astype("float32")
    model = _tiny_model(batch_norm=True)
    (bn,) = averaging.batch_norm_layers(model)
    dense = model.layers[1]
    assert averaging.recompute_batch_norm(model, x, batch_size=16) == 4
    h = x @ keras.ops.convert_to_numpy(dense.kernel) + \
        keras.ops.convert_to_numpy(dense.bias)
    batches = [h[i:i + 16] for i in range(0, 50, 16)]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean),
        np.mean([b.mean(0) for b in batches], axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_variance),
        np.mean([b.var(0) for b in batches], axis=0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99  # put back


def test_snapshot_cycles_restart_at_the_peak_on_epoch_boundaries():
    config = ImageClassificationConfig(
        epochs=4, snapshots=2, schedule="cosine_restarts", learning_rate=0.1,
        warmup_epochs=2.0)
    schedule = learning_rate(config, steps_per_epoch=5)
    lr = [float(schedule(step)) for step in range(20)]
    # Two cycles of 2 epochs (10 steps), each from the peak (no warm-up).
    assert lr[0] == pytest.approx(0.1) and lr[10] == pytest.approx(0.1)
    assert lr[9] < 0.01 and lr[19] < 0.01
    assert all(a > b for a, b in zip(lr[:9], lr[1:10]))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """`flags -> run directory` of uninterrupted runs, each trained once
    (`--backup-every` does not change what a run trains)."""
    made = {}

    def run(*flags):
        if flags not in made:
            out = tmp_path_factory.mktemp("whole")
            made[flags] = _run(out, *flags)
        return made[flags]
    return run


def _averaged(flags):
    """`flags` without `--backup-every` and its value."""
    flags = list(flags)
    if "--backup-every" in flags:
        i = flags.index("--backup-every")
        del flags[i:i + 2]
    return tuple(flags)


def test_ema_run_reports_the_average_beside_the_raw_weights(uninterrupted):
    metrics = _metrics(uninterrupted("--epochs", "3", "--dropout", "0",
                                     "--ema", "0.9"))
    assert {"test_accuracy", "raw_test_accuracy", "raw_test_loss"} <= \
        set(metrics)
    assert metrics["raw_test_loss"] != metrics["test_loss"]


# No backup before the interruption: the finished epochs (weights,
# optimizer, SWA mean) and the averaged model.keras wait in memory and are
# written on the way out (the backup every epoch writes the same files).
@pytest.mark.parametrize("flags, stop_at", [
    (["--ema", "0.9", "--backup-every", "3600"], 2),
    (["--swa-start", "0.3", "--backup-every", "3600"], 2),
], ids=["ema", "swa"])
def test_interrupted_average_resumes_exactly(flags, stop_at, tmp_path,
                                             monkeypatch, uninterrupted):
    """Ctrl-C at the start of an epoch (the finished epochs are written,
    the moving average with the optimizer, the SWA mean in the backup's
    arrays); the same command again ends with the weights and figures of
    an uninterrupted run."""
    # No dropout: a random layer's generator is not part of a backup
    # (dlrecipes/training/resume.py), so only a model without one resumes
    # bit for bit.
    args = ["--epochs", "3", "--dropout", "0", *flags]
    whole = uninterrupted(*_averaged(args))

    original = EpochTensorBoard.on_epoch_begin

    def interrupt(self, epoch, logs=None):
        if epoch == stop_at:
            raise KeyboardInterrupt
        return original(self, epoch, logs)

    monkeypatch.setattr(EpochTensorBoard, "on_epoch_begin", interrupt,
                        raising=False)
    out = tmp_path / "interrupted"
    assert main(["run", IMAGE, *TINY, "--output-dir", str(out),
                 *args]) == 130
    monkeypatch.undo()
    resumed = _run(out, *args)
    assert _metrics(resumed)["resumed"] is True
    for a, b in zip(_weights(whole), _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    for key in ("test_accuracy", "raw_test_accuracy", "test_loss"):
        assert _metrics(whole)[key] == _metrics(resumed)[key], key
    if "--swa-start" in flags:
        assert _metrics(resumed)["swa_epochs"] == 3


def test_swa_run_saves_the_average_with_batch_norm_recomputed(tmp_path):
    run_dir = _run(tmp_path / "swa", "--model", "resnet", "--stages", "1",
                   "--epochs", "2", "--swa-start", "0.5")
    metrics = _metrics(run_dir)
    assert metrics["swa_epochs"] == 1
    assert metrics["raw_test_loss"] != metrics["test_loss"]
    # The saved model's statistics are those of the training data under
    # the saved weights: recomputing them again changes nothing.
    model = dlrecipes.load_model(str(run_dir / "model.keras"), compile=False)
    layers = averaging.batch_norm_layers(model)
    assert layers
    saved = json.loads((run_dir / "config.json").read_text())
    saved.pop("recipe")
    config = config_from_dict(ImageClassificationConfig, saved)
    data = get_recipe(IMAGE).load_data(config)
    before = [keras.ops.convert_to_numpy(b.moving_variance) for b in layers]
    averaging.recompute_batch_norm(model, data.train[0], config.batch_size)
    for layer, old in zip(layers, before):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer.moving_variance), old,
            rtol=1e-4, atol=1e-6)


def test_snapshot_run_saves_one_model_per_cycle(tmp_path):
    run_dir = _run(tmp_path / "snap", "--epochs", "4", "--snapshots", "2",
                   "--schedule", "cosine_restarts", "--checkpoint", "last")
    assert sorted(os.listdir(run_dir / "snapshots")) == [
        "epoch-0002.keras", "epoch-0004.keras"]
    metrics = _metrics(run_dir)
    members = metrics["snapshot_members_test_accuracy"]
    assert len(members) == 2
    assert metrics["last_snapshot_test_accuracy"] == members[-1]
    # The last snapshot is the last epoch: the run's own model.
    assert members[-1] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    for key in ("snapshot_ensemble_test_accuracy",
                "snapshot_average_test_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0


def test_dense_predictions_are_scored_per_pixel():
    """Segmentation snapshots and ensembles: labels `(n, H, W)`,
    probabilities `(n, H, W, C)`."""
    from dlrecipes.ensemble import classification_figures, is_classifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(4, 5, 6))
    probs = rng.random((4, 5, 6, 3))
    probs /= probs.sum(-1, keepdims=True)
    assert is_classifier(y, probs.shape[1:], 3)
    assert not is_classifier(y, probs.shape[1:], 4)
    assert not is_classifier(y.astype("float32"), probs.shape[1:], 3)
    figures = classification_figures(probs, y)
    assert figures["accuracy"] == pytest.approx(
        np.mean(probs.argmax(-1) == y))
    picked = np.take_along_axis(probs, y[..., None], -1)
    assert figures["log_loss"] == pytest.approx(-np.mean(np.log(picked)))
