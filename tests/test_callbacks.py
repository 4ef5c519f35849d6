"""Callbacks: GapEarlyStopping, UpdateRatioMonitor and ActivationStats on
tiny models, checked against values recomputed in the test."""

import csv
import os
import re
import warnings

import keras
import numpy as np
import pytest

from dlrecipes.callbacks import (
    ActivationStats,
    EarlyStopping,
    GapEarlyStopping,
    UpdateRatioMonitor,
)

pytestmark = pytest.mark.backends


def _data(n, features=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    y = rng.standard_normal((n, 1)).astype("float32")
    return x, y


def _mlp(features=32, hidden=64, lr=1e-2, optimizer=None):
    inputs = keras.Input((features,))
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(inputs)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    outputs = keras.layers.Dense(1, name="out")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(lr), loss="mse")
    return model


class EpochEndRecorder(keras.callbacks.Callback):
    """Copies of the weights and the logs at every epoch end."""

    def on_train_begin(self, logs=None):
        self.weights, self.logs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])
        self.logs.append(dict(logs))


def _assert_weights_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def _expected_stop(gaps, margin, patience):
    run = 0
    for epoch, gap in enumerate(gaps):
        run = run + 1 if gap > margin else 0
        if run >= max(patience, 1):
            return epoch
    return None


# ---------------------------------------------------------------- GapEarlyStopping


def test_gap_early_stopping_stops_on_overfitting_and_restores_best():
    # 16 training points, 32 features: the MLP memorizes them, while the
    # validation targets are unrelated noise, so val_loss - loss grows.
    x, y = _data(16)
    xv, yv = _data(64, seed=1)
    model = _mlp()
    recorder = EpochEndRecorder()
    stopper = GapEarlyStopping(margin=1.0, patience=3)
    history = model.fit(
        x, y, validation_data=(xv, yv), epochs=40, batch_size=16, verbose=0,
        callbacks=[recorder, stopper],
    )
    losses = [(r["loss"], r["val_loss"]) for r in recorder.logs]
    gaps = [v - t for t, v in losses]
    expected_stop = _expected_stop(gaps, 1.0, 3)
    assert expected_stop is not None and expected_stop < 39
    assert stopper.stopped_epoch == expected_stop
    assert len(history.history["loss"]) == expected_stop + 1
    np.testing.assert_allclose(stopper.gaps, gaps, rtol=1e-6)

    best = int(np.argmin([v for _, v in losses]))
    assert stopper.best_epoch == best
    assert best != expected_stop  # so that restoring is observable
    _assert_weights_equal(model.get_weights(), recorder.weights[best])
    assert not np.array_equal(model.get_weights()[0], recorder.weights[-1][0])


def test_gap_early_stopping_keeps_training_within_margin():
    x, y = _data(16)
    xv, yv = _data(64, seed=1)
    model = _mlp()
    recorder = EpochEndRecorder()
    stopper = GapEarlyStopping(margin=100.0, patience=0)
    history = model.fit(
        x, y, validation_data=(xv, yv), epochs=6, batch_size=16, verbose=0,
        callbacks=[stopper, recorder],
    )
    assert len(history.history["loss"]) == 6
    assert stopper.stopped_epoch is None
    # Not stopped by it: the final weights stand, nothing is restored.
    _assert_weights_equal(model.get_weights(), recorder.weights[-1])
    assert stopper.best_epoch == int(np.argmin(history.history["val_loss"]))


class _FakeModel:
    """Enough of a model for driving the callback's hooks by hand."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = weights


def _drive(callback, pairs, model=None):
    """Feeds (loss, val_loss) pairs; returns the epochs run."""
    model = model or _FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    epochs = 0
    for epoch, (loss, val_loss) in enumerate(pairs):
        model.weights = [np.full(1, float(epoch))]
        callback.on_epoch_end(epoch, {"loss": loss, "val_loss": val_loss})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs, model


def test_gap_early_stopping_patience_counts_consecutive_violations():
    # gaps: 0.3, 0.3, 0.02 (resets), 0.3, 0.3, 0.3 -> 3rd in a row at epoch 5.
    pairs = [(1.0, 1.3), (0.9, 1.2), (0.8, 0.82), (0.7, 1.0), (0.6, 0.9),
             (0.55, 0.85), (0.4, 0.7)]
    cb = GapEarlyStopping(margin=0.1, patience=3)
    epochs, model = _drive(cb, pairs)
    assert epochs == 6 and cb.stopped_epoch == 5
    # Lowest val_loss of the epochs run is epoch 2's: its weights come back.
    assert cb.best_epoch == 2 and model.weights[0][0] == 2.0
    # A gap equal to the margin is not a violation; patience 0 acts as 1.
    cb = GapEarlyStopping(margin=0.5, patience=0)
    epochs, _ = _drive(cb, [(1.0, 1.5), (1.0, 1.5), (1.0, 1.6), (1.0, 1.0)])
    assert epochs == 3 and cb.stopped_epoch == 2


def test_gap_early_stopping_relative_gap():
    cb = GapEarlyStopping(margin=0.5, relative=True, patience=1)
    # relative gaps: 0.4, 0.6 -> stop at epoch 1; absolute gaps would be 4, 6.
    epochs, model = _drive(cb, [(10.0, 14.0), (10.0, 16.0), (1.0, 1.1)])
    assert epochs == 2
    np.testing.assert_allclose(cb.gaps, [0.4, 0.6])
    assert cb.best_epoch == 0 and model.weights[0][0] == 0.0


def test_gap_early_stopping_resets_state_between_fits():
    x, y = _data(16)
    xv, yv = _data(64, seed=1)
    model = _mlp()
    stopper = GapEarlyStopping(margin=1.0, patience=2)
    model.fit(x, y, validation_data=(xv, yv), epochs=40, batch_size=16,
              verbose=0, callbacks=[stopper])
    assert stopper.stopped_epoch is not None and stopper.wait >= 2

    recorder = EpochEndRecorder()
    history = model.fit(x, y, validation_data=(xv, yv), epochs=40, batch_size=16,
                        verbose=0, callbacks=[recorder, stopper])
    second = history.history
    gaps = [v - t for t, v in zip(second["loss"], second["val_loss"])]
    # Counting restarts from zero: without the reset it would stop at epoch 0.
    assert stopper.stopped_epoch == _expected_stop(gaps, 1.0, 2)
    assert len(second["loss"]) >= 2
    assert stopper.gaps == pytest.approx(gaps)
    assert stopper.best == pytest.approx(min(second["val_loss"]))
    assert stopper.best_epoch == int(np.argmin(second["val_loss"]))


def test_gap_early_stopping_validation_and_config():
    for kwargs, match in [
        ({"patience": -1}, "Received: patience=-1"),
        ({"margin": float("inf")}, "Received: margin=inf"),
        ({"monitor_pair": "loss"}, "Received: monitor_pair=loss"),
    ]:
        with pytest.raises(ValueError, match=match):
            GapEarlyStopping(**kwargs)
    cb = GapEarlyStopping(margin=0.2, relative=True, patience=4,
                          monitor_pair=("mae", "val_mae"))
    restored = GapEarlyStopping.from_config(cb.get_config())
    assert restored.get_config() == cb.get_config()
    assert restored.monitor_pair == ("mae", "val_mae")
    config = keras.saving.serialize_keras_object(cb)
    assert config["registered_name"] == "dlrecipes>GapEarlyStopping"
    assert isinstance(keras.saving.deserialize_keras_object(config), GapEarlyStopping)


def test_gap_early_stopping_warns_without_validation():
    x, y = _data(16)
    model = _mlp()
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[GapEarlyStopping()])


def test_keras_callbacks_are_reexported():
    assert EarlyStopping is keras.callbacks.EarlyStopping


# ---------------------------------------------------------------- UpdateRatioMonitor


class WindowRecorder(keras.callbacks.Callback):
    """Weights of each layer around the first step, or around the epoch."""

    def __init__(self, layer_names, window):
        super().__init__()
        self.layer_names, self.window = layer_names, window

    def _grab(self):
        return {
            n: [np.array(w, dtype=np.float64) for w in
                self.model.get_layer(n).trainable_weights]
            for n in self.layer_names
        }

    def on_train_begin(self, logs=None):
        self.pairs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.first = True
        if self.window == "epoch":
            self.before = self._grab()

    def on_train_batch_begin(self, batch, logs=None):
        if self.window == "step" and self.first:
            self.before = self._grab()

    def on_train_batch_end(self, batch, logs=None):
        if self.window == "step" and self.first:
            self.pairs.append((self.before, self._grab()))
        self.first = False

    def on_epoch_end(self, epoch, logs=None):
        if self.window == "epoch":
            self.pairs.append((self.before, self._grab()))


def _hand_ratio(before, after):
    num = sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before))
    den = sum(float(np.sum(b**2)) for b in before)
    return (num / den) ** 0.5


@pytest.mark.parametrize("window", ["step", "epoch"])
def test_update_ratio_matches_hand_computation(window):
    x, y = _data(64)
    model = _mlp(optimizer=keras.optimizers.SGD(0.05))
    monitor = UpdateRatioMonitor(window=window, verbose=0)
    recorder = WindowRecorder(["hidden", "out"], window)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0,
                        callbacks=[monitor, recorder])
    assert monitor.epoch == [0, 1, 2] and len(recorder.pairs) == 3
    for name in ("hidden", "out"):  # Dropout has no weights: not monitored
        key = f"update_ratio/{name}"
        expected = [_hand_ratio(b[name], a[name]) for b, a in recorder.pairs]
        assert min(expected) > 0
        np.testing.assert_allclose(monitor.history[key], expected, rtol=1e-6)
        np.testing.assert_allclose(history.history[key], expected, rtol=1e-6)
    assert sorted(monitor.history) == ["update_ratio/hidden", "update_ratio/out"]


def test_update_ratio_step_window_is_smaller_than_epoch_window():
    x, y = _data(64)
    ratios = {}
    for window in ("step", "epoch"):
        keras.utils.set_random_seed(7)
        model = _mlp(optimizer=keras.optimizers.SGD(0.05))
        monitor = UpdateRatioMonitor(window=window, verbose=0)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[monitor],
                  shuffle=False)
        ratios[window] = monitor.history["update_ratio/hidden"][0]
    assert ratios["step"] < ratios["epoch"]


def test_update_ratio_log_every_layers_and_csv(tmp_path):
    x, y = _data(32)
    model = _mlp(optimizer=keras.optimizers.SGD(0.01))
    path = os.path.join(tmp_path, "history.csv")
    monitor = UpdateRatioMonitor(log_every=2, layers=["out"], verbose=0)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0,
              callbacks=[monitor, keras.callbacks.CSVLogger(path)])
    assert monitor.epoch == [0, 2]
    assert list(monitor.history) == ["update_ratio/out"]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [r["update_ratio/out"] != "NA" for r in rows] == [True, False, True]
    np.testing.assert_allclose(
        [float(rows[0]["update_ratio/out"]), float(rows[2]["update_ratio/out"])],
        monitor.history["update_ratio/out"], rtol=1e-5,
    )


@pytest.mark.parametrize("lr, match", [(0.0, "hidden=0.00e\\+00"), (5.0, "hidden=")])
def test_update_ratio_warns_outside_band(lr, match):
    x, y = _data(32)
    model = _mlp(optimizer=keras.optimizers.SGD(lr))
    monitor = UpdateRatioMonitor(low=1e-4, high=1e-2)
    with pytest.warns(UserWarning, match="outside the healthy band") as record:
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[monitor])
    messages = [str(w.message) for w in record if "healthy band" in str(w.message)]
    assert len(messages) == 2  # one summary warning per epoch
    assert all("hidden=" in m and "out=" in m for m in messages)
    assert any(re.search(match, m) for m in messages)
    ratios = monitor.history["update_ratio/hidden"]
    assert all(r == 0.0 for r in ratios) if lr == 0.0 else all(r > 1e-2 for r in ratios)


def test_update_ratio_silent_with_verbose_zero():
    x, y = _data(32)
    model = _mlp(optimizer=keras.optimizers.SGD(0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0,
                  callbacks=[UpdateRatioMonitor(verbose=0)])


def test_update_ratio_validation_and_config():
    for kwargs, match in [
        ({"low": 0}, "Received: low=0"),
        ({"low": 1e-3, "high": 1e-4}, "Received: high=0.0001"),
        ({"log_every": 0}, "Received: log_every=0"),
        ({"window": "batch"}, "Received: window=batch"),
    ]:
        with pytest.raises(ValueError, match=match):
            UpdateRatioMonitor(**kwargs)
    x, y = _data(16)
    model = _mlp()
    with pytest.raises(ValueError, match="hidden, drop, out.*Received: layers"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[UpdateRatioMonitor(layers=["nope"])])
    cb = UpdateRatioMonitor(low=1e-5, high=1e-1, log_every=3, layers=["out"],
                            window="epoch", verbose=2)
    restored = UpdateRatioMonitor.from_config(cb.get_config())
    assert restored.get_config() == cb.get_config()
    config = keras.saving.serialize_keras_object(cb)
    assert config["registered_name"] == "dlrecipes>UpdateRatioMonitor"


# ---------------------------------------------------------------- ActivationStats


def _relu(a):
    return np.maximum(a, 0.0)


def test_activation_stats_match_numpy(tmp_path):
    x, y = _data(48, features=6)
    probe = np.random.default_rng(5).standard_normal((10, 6)).astype("float32")
    model = _mlp(features=6, hidden=8, lr=0.05)
    stats = ActivationStats(["hidden", "drop", "out"], probe, every=2)
    recorder = EpochEndRecorder()
    path = os.path.join(tmp_path, "history.csv")
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0,
                        callbacks=[stats, recorder, keras.callbacks.CSVLogger(path)])
    assert stats.epoch == [0, 2]
    for i, epoch in enumerate(stats.epoch):
        w1, b1, w2, b2 = (np.asarray(w, np.float64) for w in recorder.weights[epoch])
        hidden = _relu(probe.astype(np.float64) @ w1 + b1)
        out = hidden @ w2 + b2  # Dropout is the identity at inference
        for name, a in (("hidden", hidden), ("drop", hidden), ("out", out)):
            for key, value in (
                (f"act_mean/{name}", a.mean()), (f"act_std/{name}", a.std())
            ):
                np.testing.assert_allclose(stats.history[key][i], value, rtol=1e-5)
                np.testing.assert_allclose(history.history[key][i], value, rtol=1e-5)
    assert stats.history["act_std/hidden"][0] != stats.history["act_std/hidden"][1]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    first = float(rows[0]["act_mean/out"])
    assert first == pytest.approx(stats.history["act_mean/out"][0])
    assert rows[1]["act_mean/out"] == "NA"


def test_activation_stats_sequential_and_single_layer():
    x, y = _data(16, features=4)
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(5, activation="tanh", name="h"),
        keras.layers.Dense(1, name="o"),
    ])
    model.compile(optimizer="sgd", loss="mse")
    stats = ActivationStats("h", x[:8])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[stats])
    w, b = (np.asarray(v, np.float64) for v in model.get_layer("h").get_weights())
    h = np.tanh(x[:8].astype(np.float64) @ w + b)
    assert stats.history["act_mean/h"] == pytest.approx([h.mean()], rel=1e-5)
    assert stats.history["act_std/h"] == pytest.approx([h.std()], rel=1e-5)


def test_activation_stats_errors():
    x, y = _data(16, features=6)
    model = _mlp(features=6, hidden=4)
    with pytest.raises(ValueError, match="hidden, drop, out.*Received: layer_names"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[ActivationStats(["hidden", "nope"], x[:4])])

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1, name="dense")

        def call(self, inputs):
            return self.dense(inputs)

    sub = Subclassed()
    sub.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="functional or built Sequential"):
        sub.fit(x, y, epochs=1, verbose=0, callbacks=[ActivationStats("dense", x[:4])])
    for kwargs, match in [
        ({"layer_names": [], "x": x}, "Received: layer_names=\\[\\]"),
        ({"layer_names": ["a"], "x": None}, "Received: x=None"),
        ({"layer_names": ["a"], "x": x, "every": 0}, "Received: every=0"),
    ]:
        with pytest.raises(ValueError, match=match):
            ActivationStats(**kwargs)


def test_activation_stats_config_omits_x():
    cb = ActivationStats(["a", "b"], np.zeros((2, 3)), every=3)
    config = cb.get_config()
    assert config == {"layer_names": ["a", "b"], "every": 3}
    restored = ActivationStats.from_config({**config, "x": np.ones((2, 3))})
    assert restored.layer_names == ["a", "b"] and restored.every == 3
    assert keras.saving.serialize_keras_object(cb)["registered_name"] == (
        "dlrecipes>ActivationStats"
    )
