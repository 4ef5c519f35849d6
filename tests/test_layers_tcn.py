"""Tests of `TemporalBlock` and `TCN`: shared layer checks, causality, and the
receptive field measured by perturbation against the `receptive_field`
property."""

import re
import warnings

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrecipes.layers import TCN, TemporalBlock
from layer_testing import SHAPE_EXAMPLES, run_layer_test

pytestmark = pytest.mark.backends


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --- shared layer checks -----------------------------------------------------

@pytest.mark.parametrize("init_kwargs, input_shape", [
    # 4 -> 8 channels: the residual goes through the 1x1 shortcut conv.
    (dict(filters=8, kernel_size=3, dilation_rate=2), (2, 16, 4)),
    # same channel count: identity residual; batch norm and dropout.
    (dict(filters=8, kernel_size=2, dilation_rate=4, dropout=0.1,
          norm="batch"), (2, 16, 8)),
    (dict(filters=8, kernel_size=3, dilation_rate=1, norm="layer",
          causal=False, activation="tanh"), (2, 16, 8)),
])
def test_temporal_block_layer(init_kwargs, input_shape):
    run_layer_test(TemporalBlock, init_kwargs, input_shape,
                   expected_output_shape=input_shape[:2] + (8,))


@pytest.mark.parametrize("init_kwargs, expected_shape", [
    (dict(filters=8, kernel_size=2, dilations=(1, 2, 4)), (2, 8)),
    (dict(filters=8, kernel_size=2, dilations=[1, 2], num_stacks=2,
          dropout=0.1, norm="layer", use_skip_connections=False,
          return_sequences=True, causal=False), (2, 16, 8)),
])
def test_tcn_layer(init_kwargs, expected_shape):
    run_layer_test(TCN, init_kwargs, (2, 16, 3),
                   expected_output_shape=expected_shape)


# --- receptive field ---------------------------------------------------------

def _influencing_steps(layer, length, channels, out_step=-1, seed=0):
    """Input steps whose perturbation changes the output at `out_step`.

    One batch: row 0 is a random sequence, row t + 1 the same sequence with
    step t replaced by fresh random values.
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((1, length, channels)).astype("float32")
    batch = np.repeat(base, length + 1, axis=0)
    for t in range(length):
        batch[t + 1, t] = 3.0 * rng.standard_normal(channels)
    out = _np(layer(batch, training=False))
    if out.ndim == 3:
        out = out[:, out_step]
    return [t for t in range(length)
            if not np.allclose(out[t + 1], out[0], rtol=0, atol=1e-6)]


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2, dilations=(1, 2, 4), num_stacks=1),
    dict(kernel_size=3, dilations=(1, 2), num_stacks=2),
    dict(kernel_size=2, dilations=(1, 2, 4), num_stacks=2, norm="layer",
         use_skip_connections=False),
    dict(kernel_size=3, dilations=(1, 3), num_stacks=1, norm="batch"),
])
def test_measured_receptive_field_equals_property(kwargs):
    layer = TCN(filters=8, **kwargs)
    expected = 1 + 2 * (kwargs["kernel_size"] - 1) * kwargs["num_stacks"] * (
        sum(kwargs["dilations"]))
    assert layer.receptive_field == expected
    length = layer.receptive_field + 8
    steps = _influencing_steps(layer, length, channels=3)
    # Exactly the last `receptive_field` steps influence the last output.
    assert steps == list(range(length - layer.receptive_field, length))


def test_non_causal_receptive_field_is_centred_window():
    layer = TCN(filters=8, kernel_size=3, dilations=(1, 2), causal=False,
                return_sequences=True)
    rf = layer.receptive_field  # 13
    length = 2 * rf + 1
    middle = length // 2
    steps = _influencing_steps(layer, length, channels=2, out_step=middle)
    half = (rf - 1) // 2
    assert steps == list(range(middle - half, middle + half + 1))


# --- causality ---------------------------------------------------------------

@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_causal_outputs_ignore_future_inputs(norm):
    layer = TCN(filters=8, kernel_size=3, dilations=(1, 2, 4), norm=norm,
                return_sequences=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 32, 3)).astype("float32")
    base = _np(layer(x, training=False))
    for t0 in (0, 7, 15, 30):
        future = x.copy()
        future[:, t0 + 1:] = rng.standard_normal(future[:, t0 + 1:].shape)
        out = _np(layer(future, training=False))
        np.testing.assert_allclose(out[:, :t0 + 1], base[:, :t0 + 1],
                                   rtol=0, atol=1e-6)
        # The change is visible right after t0 (the test can fail).
        assert not np.allclose(out[:, t0 + 1], base[:, t0 + 1], atol=1e-4)


def test_non_causal_outputs_see_future_inputs():
    layer = TCN(filters=8, kernel_size=3, dilations=(1, 2), causal=False,
                return_sequences=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 16, 3)).astype("float32")
    future = x.copy()
    future[:, 9:] += 1.0
    diff = np.abs(_np(layer(future)) - _np(layer(x)))
    assert diff[:, 8].max() > 1e-4


def test_return_sequences_false_is_last_step():
    kwargs = dict(filters=6, kernel_size=2, dilations=(1, 2))
    seq_layer = TCN(return_sequences=True, **kwargs)
    last_layer = TCN(return_sequences=False, **kwargs)
    x = np.random.default_rng(3).standard_normal((2, 10, 3)).astype("float32")
    seq_layer(x)
    last_layer(x)
    last_layer.set_weights(seq_layer.get_weights())
    np.testing.assert_allclose(_np(last_layer(x)), _np(seq_layer(x))[:, -1],
                               atol=1e-6)


def test_skip_connections_sum_block_outputs():
    # With a linear activation the skip output is the sum of block outputs;
    # one block: identical to the block itself.
    layer = TCN(filters=4, kernel_size=2, dilations=(1,), activation="linear",
                return_sequences=True)
    x = np.random.default_rng(4).standard_normal((2, 8, 4)).astype("float32")
    out = _np(layer(x))
    block = layer._blocks[0]
    np.testing.assert_allclose(out, _np(block(x)), atol=1e-6)
    two = TCN(filters=4, kernel_size=2, dilations=(1, 2), activation="linear",
              return_sequences=True)
    out = _np(two(x))
    first = two._blocks[0](x)
    second = two._blocks[1](first)
    np.testing.assert_allclose(out, _np(first) + _np(second), atol=1e-5)


def test_shortcut_conv_only_when_channels_differ():
    same = TemporalBlock(8, 3, 1)
    same.build((None, 16, 8))
    other = TemporalBlock(8, 3, 1)
    other.build((None, 16, 5))
    assert len(other.weights) == len(same.weights) + 2  # 1x1 kernel + bias


# --- short inputs, validation ------------------------------------------------

def test_short_static_length_warns():
    layer = TCN(filters=4, kernel_size=3, dilations=(1, 2, 4))  # rf 29
    with pytest.warns(UserWarning, match="receptive field"):
        layer(np.zeros((1, 20, 2), "float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TCN(filters=4, kernel_size=3, dilations=(1, 2, 4))(
            np.zeros((1, 29, 2), "float32"))
        # Unknown static length: no warning.
        TCN(filters=4, kernel_size=3, dilations=(1, 2, 4))(
            keras.Input((None, 2)))


@pytest.mark.parametrize("cls, kwargs, received", [
    (TCN, dict(filters=0), "filters=0"),
    (TCN, dict(kernel_size=-1), "kernel_size=-1"),
    (TCN, dict(dilations=()), "dilations=()"),
    (TCN, dict(dilations=(1, 0)), "dilations=(1, 0)"),
    (TCN, dict(num_stacks=0), "num_stacks=0"),
    (TCN, dict(dropout=1.0), "dropout=1.0"),
    (TCN, dict(norm="group"), "norm='group'"),
    (TCN, dict(activation="nope"), "activation='nope'"),
    (TCN, dict(return_sequences="yes"), "return_sequences='yes'"),
    (TCN, dict(kernel_initializer="nope"), "kernel_initializer='nope'"),
    (TemporalBlock, dict(filters=4, kernel_size=2, dilation_rate=0),
     "dilation_rate=0"),
    (TemporalBlock, dict(filters=4, kernel_size=2, dilation_rate=1,
                         causal=1), "causal=1"),
])
def test_invalid_arguments(cls, kwargs, received):
    with pytest.raises(ValueError, match=re.escape(f"Received: {received}")
                       + "$"):
        cls(**kwargs)


def test_wrong_input_rank():
    with pytest.raises(ValueError, match="input_shape"):
        TCN(filters=4, dilations=(1,))(np.zeros((2, 8), "float32"))


# --- property-based shapes ---------------------------------------------------

@settings(max_examples=SHAPE_EXAMPLES, deadline=None)
@given(batch=st.integers(1, 3), length=st.integers(1, 24),
       channels=st.integers(1, 5), filters=st.integers(1, 6),
       kernel_size=st.integers(1, 3),
       dilations=st.lists(st.sampled_from([1, 2, 3, 4]), min_size=1,
                          max_size=3),
       num_stacks=st.integers(1, 2), return_sequences=st.booleans(),
       causal=st.booleans(), use_skip=st.booleans())
def test_tcn_shapes_property(batch, length, channels, filters, kernel_size,
                             dilations, num_stacks, return_sequences, causal,
                             use_skip):
    layer = TCN(filters=filters, kernel_size=kernel_size, dilations=dilations,
                num_stacks=num_stacks, return_sequences=return_sequences,
                causal=causal, use_skip_connections=use_skip)
    x = np.random.default_rng(0).standard_normal(
        (batch, length, channels)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = _np(layer(x))
    assert out.shape == tuple(layer.compute_output_shape(x.shape))
    expected = ((batch, length, filters) if return_sequences
                else (batch, filters))
    assert out.shape == expected
    assert np.all(np.isfinite(out))
