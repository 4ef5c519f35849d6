"""The training knobs of the shared config (issue 18): activations,
initializers (`zeros`, `random_normal` with `--init-std`), L1/L2 kernel
penalties, `--clipvalue`, annealed gradient noise, the recurrent encoders
`rnn` and `bigru`. Unit tests: the quality bars (zeros stay at chance,
sigmoid needs more epochs, L1 zeroes weights, the plain RNN falls behind
the LSTM) are in tests/test_knobs_quality.py (slow)."""

import numpy as np
import pytest

import keras

from conftest import config_from_flags
from dlrecipes.errors import UsageError
from dlrecipes.gradient_noise import with_gradient_noise
from dlrecipes.registry import get_recipe
from dlrecipes.training import engine
from dlrecipes.training.optimizers import make_optimizer


def test_initializer_and_activation_as_builders_take_them():
    config = config_from_flags("image-classification", [
        "--kernel-initializer", "random_normal", "--init-std", "0.3",
        "--activation", "tanh"])
    init = keras.initializers.get(config.initializer)
    assert isinstance(init, keras.initializers.RandomNormal)
    assert init.stddev == 0.3
    assert config.hidden_activation == "tanh"
    default = config_from_flags("image-classification", [])
    assert default.initializer == "he_normal"
    assert default.hidden_activation is None  # auto: the model's own
    # random_normal alone: Keras' own standard deviation.
    plain = config_from_flags("image-classification",
                              ["--kernel-initializer", "random_normal"])
    assert keras.initializers.get(plain.initializer).stddev == 0.05


@pytest.mark.parametrize("argv, needle", [
    (["--init-std", "0.1"], "--init-std needs --kernel-initializer"),
    (["--clipnorm", "1", "--clipvalue", "1"], "choose one"),
])
def test_flags_that_only_mean_something_together(argv, needle):
    with pytest.raises(UsageError, match=needle):
        config_from_flags("image-classification", argv)


def test_optimizer_takes_clipvalue_and_gradient_noise():
    config = config_from_flags("image-classification", [
        "--clipvalue", "0.5", "--gradient-noise", "0.3", "--seed", "7",
        "--optimizer", "nesterov"])
    opt = make_optimizer(config, steps_per_epoch=10)
    assert opt.clipvalue == 0.5 and opt.clipnorm is None
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov
    assert type(opt).__name__ == "GradientNoiseSGD"
    assert (opt.noise_eta, opt.noise_seed) == (0.3, 7)
    # Serializable as a registered dlrecipes class.
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is type(opt) and again.noise_eta == 0.3
    plain = make_optimizer(config_from_flags("image-classification", []), 10)
    assert type(plain) is keras.optimizers.AdamW


def test_with_gradient_noise_refuses_what_is_not_an_optimizer_class():
    with pytest.raises(TypeError, match="Optimizer class"):
        with_gradient_noise(keras.layers.Dense)
    noisy = with_gradient_noise(keras.optimizers.Adam)
    assert with_gradient_noise(noisy) is noisy
    with pytest.raises(ValueError, match="noise_eta"):
        noisy(noise_eta=-1.0)


def _no_loss(y_true, y_pred):
    return keras.ops.mean(y_pred) * 0.0


def _zero_gradient_model(units=2000):
    """A model whose loss has zero gradients: what SGD(1) does to its
    kernel is the noise alone."""
    model = keras.Sequential([keras.Input((5,)),
                              keras.layers.Dense(units, use_bias=False,
                                                 kernel_initializer="zeros")])
    return model


@pytest.mark.backends
def test_gradient_noise_has_the_annealed_variance_and_is_seeded():
    sgd = with_gradient_noise(keras.optimizers.SGD)
    kernels = []
    for seed in (3, 3, 4):
        model = _zero_gradient_model()
        model.compile(sgd(learning_rate=1.0, noise_eta=0.5, noise_seed=seed),
                      loss=_no_loss)
        x = np.ones((4, 5), "float32")
        steps = []
        for _ in range(2):
            before = keras.ops.convert_to_numpy(model.weights[0])
            model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0)
            steps.append(keras.ops.convert_to_numpy(model.weights[0])
                         - before)
        kernels.append(steps)
        # 10,000 draws: the sample deviation is within 3% of the truth.
        for t, step in enumerate(steps):
            expected = np.sqrt(0.5 / (1 + t) ** 0.55)
            assert abs(step.std() / expected - 1) < 0.03, (t, step.std())
    np.testing.assert_array_equal(kernels[0][0], kernels[1][0])
    np.testing.assert_array_equal(kernels[0][1], kernels[1][1])
    assert not np.array_equal(kernels[0][0], kernels[2][0])
    assert not np.array_equal(kernels[0][0], kernels[0][1])


@pytest.mark.backends
def test_gradient_noise_state_resumes_from_saved_weights(tmp_path):
    """The noise's random state is an optimizer variable: a model loaded
    from a saved file (how a run resumes) draws the same next noise."""
    sgd = with_gradient_noise(keras.optimizers.SGD)
    x = np.ones((4, 5), "float32")

    def model_and_fit(epochs):
        keras.utils.set_random_seed(0)
        model = _zero_gradient_model(50)
        model.compile(sgd(learning_rate=1.0, noise_eta=0.1, noise_seed=1),
                      loss=_no_loss)
        if epochs:
            model.fit(x, x[:, :1], batch_size=4, epochs=epochs, verbose=0)
        return model

    straight = model_and_fit(3)
    first = model_and_fit(2)
    first.save(tmp_path / "state.keras")
    resumed = model_and_fit(0)
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(tmp_path / "state.keras")
    resumed.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(straight.weights[0]),
        keras.ops.convert_to_numpy(resumed.weights[0]))


@pytest.mark.backends
def test_penalties_on_kernels_only_add_the_l1_l2_loss():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, name="dense")(x)
    model = keras.Model(inputs, outputs)
    kernels = engine.penalize_kernels(model, l1=0.01, l2=0.1)
    assert sorted(v.path for v in kernels) == ["conv/kernel", "dense/kernel"]
    weights = [keras.ops.convert_to_numpy(v) for v in kernels]
    expected = sum(0.01 * np.abs(w).sum() + 0.1 * np.square(w).sum()
                   for w in weights)
    total = sum(float(keras.ops.convert_to_numpy(loss))
                for loss in model.losses)
    assert total == pytest.approx(expected, rel=1e-5)
    assert engine.penalize_kernels(model) == []


def test_zeros_initializer_keeps_every_hidden_unit_the_same():
    """The notes' symmetry lesson: with every kernel at zero, the units of
    a hidden layer get the same gradient and never differ. Sigmoid units
    (0.5 at zero) learn, yet the first layer's units stay copies of one
    unit, which the second layer weighs alike; ReLU units (0 at zero)
    never learn at all."""
    from dlrecipes.data.images import digits_data

    recipe = get_recipe("image-classification")
    data = digits_data()
    x, y = data.train
    for activation in ("sigmoid", "relu"):
        config = config_from_flags("image-classification", [
            "--model", "mlp", "--kernel-initializer", "zeros", "--width",
            "4", "--dropout", "0", "--augment", "none", "--activation",
            activation])
        model = recipe.build_model(config, data)
        model.compile(keras.optimizers.Adam(1e-2),
                      "sparse_categorical_crossentropy")
        model.fit(x[:256], y[:256], batch_size=64, epochs=2, verbose=0)
        first, second = [
            keras.ops.convert_to_numpy(layer.kernel)
            for layer in model.layers
            if isinstance(layer, keras.layers.Dense)
            and layer.name != "classifier"]
        if activation == "relu":
            assert not first.any() and not second.any()
            continue
        assert np.abs(first).max() > 1e-3  # it learned ...
        # ... one unit, 16 times over.
        np.testing.assert_allclose(first, np.repeat(first[:, :1], 16, 1),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(second, np.repeat(second[:1], 16, 0),
                                   rtol=1e-5, atol=1e-7)
        assert np.ptp(second, axis=1).max() > 1e-4  # its units do differ


@pytest.mark.backends
@pytest.mark.parametrize("model, layer_class", [
    ("rnn", "SimpleRNN"), ("bigru", "Bidirectional")])
def test_recurrent_encoders(model, layer_class):
    from dlrecipes.models.sequence import sequence_encoder

    inputs = keras.Input((7, 3))
    out = sequence_encoder(inputs, model, units=4)
    built = keras.Model(inputs, out)
    layer = built.get_layer(f"{model}_0")
    assert type(layer).__name__ == layer_class
    if model == "bigru":
        assert type(layer.forward_layer).__name__ == "GRU"
    assert out.shape[-1] == (8 if model == "bigru" else 4)


@pytest.mark.backends
@pytest.mark.parametrize("model", ["dense", "cnn1d", "tcn", "transformer"])
def test_activation_reaches_the_sequence_encoders(model):
    from dlrecipes.models.sequence import sequence_encoder

    inputs = keras.Input((8, 4))
    built = keras.Model(inputs, sequence_encoder(
        inputs, model, units=4, dilations=(1, 2), activation="tanh"))
    found = set()
    for layer in built.layers:
        config = layer.get_config()
        if "activation" in config:
            found.add(keras.activations.serialize(
                keras.activations.get(config["activation"]))
                if not isinstance(config["activation"], str)
                else config["activation"])
    assert found - {"linear"} == {"tanh"}, found  # linear: projections


# ------------------------------------------------------------ MC dropout


@pytest.mark.backends
def test_mc_dropout_model_samples_dropout_and_keeps_the_weights():
    from dlrecipes.layers import MCDropout
    from dlrecipes.training.uncertainty import mc_dropout_model

    inputs = keras.Input((6,))
    x = keras.layers.Dense(32, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inputs, outputs)
    copy, rates = mc_dropout_model(model, seed=1)
    assert rates == [0.5]
    assert isinstance(copy.get_layer("drop"), MCDropout)
    assert type(model.get_layer("drop")) is keras.layers.Dropout
    for name in ("hidden", "bn", "out"):
        for a, b in zip(model.get_layer(name).get_weights(),
                        copy.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    first, second = (copy.predict(x, verbose=0) for _ in range(2))
    assert not np.allclose(first, second)  # a new mask per pass
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    same, none = mc_dropout_model(plain)
    assert same is plain and none == []


def test_mc_dropout_is_more_uncertain_where_the_main_job_errs(main_job_run):
    """The notes' bar on the trained default ResNet (dropout 0.2 before the
    classifier): the predictive entropy of 20 passes is higher on the
    misclassified test digits than on the correct ones."""
    import dlrecipes
    from dlrecipes.data.images import digits_data
    from dlrecipes.training.uncertainty import mc_dropout_figures

    model = dlrecipes.load_model(main_job_run / "model.keras")
    figures = mc_dropout_figures(model, digits_data(), 20, seed=0)
    assert figures["mc_dropout_passes"] == 20
    assert figures["mc_dropout_rates"] == [0.2]
    assert figures["mc_dropout_test_accuracy"] >= 0.98
    assert (figures["mc_dropout_entropy_misclassified"]
            > 2 * figures["mc_dropout_entropy_correct"]), figures
    assert figures["mc_dropout_mutual_information"] > 0


def test_a_run_with_mc_dropout_writes_its_figures(tmp_path):
    from conftest import metrics, run_dir_of
    from dlrecipes.cli import main

    assert main(["run", "image-classification", "--model", "lenet",
                 "--epochs", "1", "--width", "8", "--mc-dropout", "3",
                 "--output-dir", str(tmp_path), "--verbose", "0"]) == 0
    run_dir = run_dir_of(tmp_path, "image-classification")
    found = metrics(run_dir)
    assert found["mc_dropout_passes"] == 3
    assert 0 <= found["mc_dropout_test_accuracy"] <= 1
    assert (run_dir / "uncertain.png").stat().st_size > 0


# ------------------------------------------------------------ --monitor

MONITORED = ["--model", "mlp", "--width", "8", "--augment", "none",
             "--dropout", "0", "--epochs", "3", "--verbose", "0",
             "--monitor", "gap,activations,update-ratio"]


def test_monitored_run_logs_and_resumes_exactly(tmp_path, monkeypatch):
    """The three monitors add their columns to history.csv and TensorBoard
    and draw monitor.png; they only observe (a run with them trains the
    weights of a run without), and a run interrupted after epoch 2 resumes
    to the same weights and the same monitor columns."""
    import csv

    import dlrecipes
    from conftest import run_dir_of
    from dlrecipes.cli import main
    from dlrecipes.training.callbacks import EpochTensorBoard

    def run(out, *flags):
        assert main(["run", "image-classification", "--output-dir",
                     str(out), *flags]) == 0
        return run_dir_of(out, "image-classification")

    def weights(run_dir):
        return dlrecipes.load_model(str(run_dir / "model.keras"),
                                    compile=False).get_weights()

    def history(run_dir):
        with open(run_dir / "history.csv") as f:
            return list(csv.DictReader(f))

    plain = [f for f in MONITORED[:-2]]
    whole = run(tmp_path / "whole", *MONITORED, "--backup-every", "0")
    rows = history(whole)
    assert len(rows) == 3
    keys = set(rows[0])
    assert {"gap", "act_mean/dense", "act_std/classifier",
            "update_ratio/dense_1"} <= keys
    for row in rows:
        assert float(row["gap"]) == pytest.approx(
            float(row["val_loss"]) - float(row["loss"]), rel=1e-6)
    assert (whole / "monitor.png").stat().st_size > 0
    assert (whole / "logs").is_dir()
    for a, b in zip(weights(whole), weights(run(tmp_path / "plain", *plain))):
        np.testing.assert_array_equal(a, b)

    original = EpochTensorBoard.on_epoch_begin

    def interrupt(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, logs)

    monkeypatch.setattr(EpochTensorBoard, "on_epoch_begin", interrupt,
                        raising=False)
    out = tmp_path / "interrupted"
    assert main(["run", "image-classification", "--output-dir", str(out),
                 *MONITORED, "--backup-every", "3600"]) == 130
    monkeypatch.undo()
    resumed = run(out, *MONITORED, "--backup-every", "3600")
    for a, b in zip(weights(whole), weights(resumed)):
        np.testing.assert_array_equal(a, b)
    again = history(resumed)
    assert [r["epoch"] for r in again] == ["0", "1", "2"]
    for key in ("act_mean/dense", "gap", "update_ratio/dense"):
        assert [r[key] for r in again] == [r[key] for r in rows], key


def test_monitor_bad_names():
    with pytest.raises(UsageError, match="unknown monitor 'weights'"):
        config_from_flags("image-classification", ["--monitor", "gap,weights"])
    with pytest.raises(UsageError, match="names gap twice"):
        config_from_flags("image-classification", ["--monitor", "gap,gap"])


def test_mc_dropout_figures_on_a_batched_dataset():
    """tfds and text recipes hold their test split as batches (strings,
    for text): the passes predict them in order, the labels come from the
    same batches."""
    import tensorflow as tf

    from dlrecipes.data.description import Data
    from dlrecipes.training.uncertainty import mc_dropout_figures

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inputs = keras.Input((3,))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(16)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(
        2, activation="softmax")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=40, epochs=100, verbose=0)
    test = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    data = Data((x, y), None, test, input_shape=(3,), num_classes=2,
                class_names=("neg", "pos"))
    figures = mc_dropout_figures(model, data, 4, seed=0)
    plain = np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)
    assert abs(figures["mc_dropout_test_accuracy"] - plain) <= 0.1
    assert figures["mc_dropout_test_accuracy"] > 0.8
