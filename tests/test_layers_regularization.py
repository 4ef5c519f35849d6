"""StochasticDepth and MCDropout."""

import os
import re
import tempfile

import keras
import numpy as np
import pytest

from dlrecipes.layers import MCDropout, StochasticDepth

pytestmark = pytest.mark.backends


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _positive(shape, seed=0):
    # Strictly positive inputs: an output zero can only come from a drop.
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype("float32")


# --- StochasticDepth --------------------------------------------------------

# The shared layer checks of both layers run in tests/test_layers_common.py.

@pytest.mark.parametrize("training", [False, None])
def test_stochastic_depth_is_identity_at_inference(training):
    x = _positive((16, 5, 3))
    out = _np(StochasticDepth(0.5)(x, training=training))
    np.testing.assert_array_equal(out, x)


def test_stochastic_depth_drops_whole_samples():
    rate = 0.3
    x = _positive((2000, 3, 4))
    out = _np(StochasticDepth(rate, seed=1)(x, training=True))
    flat_out = out.reshape(len(x), -1)
    flat_x = x.reshape(len(x), -1)
    dropped = np.all(flat_out == 0, axis=1)
    kept = np.all(np.isclose(flat_out, flat_x / (1 - rate), rtol=1e-6), axis=1)
    # Every sample is either entirely dropped or entirely kept and rescaled.
    assert np.all(dropped ^ kept)
    # Fraction dropped ~ rate (std of the estimate ~0.01 here).
    assert abs(dropped.mean() - rate) < 0.05


def test_stochastic_depth_rate_zero_is_identity_in_training():
    x = _positive((8, 4))
    np.testing.assert_array_equal(
        _np(StochasticDepth(0.0)(x, training=True)), x)


def test_stochastic_depth_masks_change_between_calls():
    layer = StochasticDepth(0.5, seed=3)
    x = _positive((64, 2))
    a = _np(layer(x, training=True))
    b = _np(layer(x, training=True))
    assert not np.array_equal(a, b)


def test_stochastic_depth_seed_is_reproducible():
    x = _positive((64, 2))
    a = _np(StochasticDepth(0.5, seed=11)(x, training=True))
    b = _np(StochasticDepth(0.5, seed=11)(x, training=True))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5", True, None])
def test_stochastic_depth_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match=re.escape(f"Received: rate={rate!r}")):
        StochasticDepth(rate)


# --- MCDropout --------------------------------------------------------------

def test_mc_dropout_config_round_trip_with_positive_rate():
    layer = MCDropout(0.25, noise_shape=(None, 1), seed=5)
    config = layer.get_config()
    assert config["rate"] == 0.25
    assert tuple(config["noise_shape"]) == (None, 1)
    assert config["seed"] == 5
    assert MCDropout.from_config(config).get_config() == config


@pytest.mark.parametrize("training", [False, None])
def test_mc_dropout_is_random_at_inference(training):
    rate = 0.5
    layer = MCDropout(rate, seed=2)
    x = _positive((4, 50))
    a = _np(layer(x, training=training))
    b = _np(layer(x, training=training))
    assert not np.array_equal(a, b)
    for out in (a, b):
        assert np.any(out == 0)
        kept = out != 0
        np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-6)


def test_mc_dropout_drop_fraction_near_rate():
    out = _np(MCDropout(0.2, seed=0)(_positive((100, 100)), training=False))
    assert abs(np.mean(out == 0) - 0.2) < 0.03


def test_mc_dropout_noise_shape_drops_whole_rows():
    x = _positive((200, 6))
    out = _np(MCDropout(0.5, noise_shape=(None, 1), seed=0)(x))
    row_dropped = np.all(out == 0, axis=1)
    row_kept = np.all(np.isclose(out, 2 * x), axis=1)
    assert np.all(row_dropped ^ row_kept)
    assert 0 < row_dropped.mean() < 1


def test_mc_dropout_rate_zero_is_identity():
    x = _positive((4, 5))
    np.testing.assert_array_equal(_np(MCDropout(0.0)(x)), x)


def test_mc_dropout_stays_on_in_predict_and_after_reload():
    inputs = keras.Input((40,))
    model = keras.Model(inputs, MCDropout(0.5, seed=4)(inputs))
    x = _positive((8, 40))
    a = model.predict(x, verbose=0)
    b = model.predict(x, verbose=0)
    assert not np.array_equal(a, b)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    layer = loaded.layers[-1]
    assert type(layer) is MCDropout and layer.rate == 0.5
    out = _np(loaded(x, training=False))
    assert np.any(out == 0) and np.any(out != 0)


@pytest.mark.parametrize("rate", [1.0, -0.5, "0.1", False])
def test_mc_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match=re.escape(f"Received: rate={rate!r}")):
        MCDropout(rate)
