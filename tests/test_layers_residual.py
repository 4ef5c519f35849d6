"""ResidualBlock, DenseBlock, ConvNormAct and the normalization factory."""

import math
import re

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layer_testing import SHAPE_EXAMPLES, run_layer_test, variants

from dlrecipes.layers import (
    NORMALIZATIONS,
    ConvNormAct,
    DenseBlock,
    ResidualBlock,
    normalization,
)

pytestmark = pytest.mark.backends

SHAPE_SETTINGS = settings(
    max_examples=SHAPE_EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _weight_paths(layer):
    return [w.path for w in layer.weights]


# --- normalization factory --------------------------------------------------

@pytest.mark.parametrize("norm, cls", [
    ("batch", keras.layers.BatchNormalization),
    ("layer", keras.layers.LayerNormalization),
    ("group", keras.layers.GroupNormalization),
    ("none", keras.layers.Identity),
])
def test_normalization_factory_types(norm, cls):
    a = normalization(norm, name="n")
    b = normalization(norm)
    assert type(a) is cls and type(b) is cls
    assert a is not b  # a fresh layer per call
    assert a.name == "n"
    assert norm in NORMALIZATIONS


def test_normalization_factory_arguments():
    layer = normalization("group", groups=4, epsilon=1e-5, dtype="float16")
    assert layer.groups == 4
    assert layer.epsilon == 1e-5
    assert layer.compute_dtype == "float16"
    assert normalization("batch", axis=1).axis == 1
    # GroupNormalization with 4 groups normalizes each group of 2 channels.
    x = _randn((3, 5, 8))
    out = _np(normalization("group", groups=4, epsilon=1e-6)(x))
    groups = out.reshape(3, 5, 4, 2)
    np.testing.assert_allclose(groups.mean(axis=(1, 3)), 0, atol=1e-5)


def test_normalization_factory_rejects_unknown_name():
    with pytest.raises(ValueError, match="'batch', 'layer', 'group', 'none'"):
        normalization("instance")
    with pytest.raises(ValueError, match=re.escape("Received: norm='instance'")):
        normalization("instance")


# --- ResidualBlock: shared layer checks -------------------------------------

RESIDUAL_CASES = [
    # (init kwargs, input shape, expected output shape)
    ({"filters": 4}, (2, 8, 8, 4), (2, 8, 8, 4)),
    ({"filters": 8, "strides": 2, "bottleneck": True, "preactivation": True},
     (2, 8, 8, 4), (2, 4, 4, 8)),
    ({"filters": 4, "rank": 1, "preactivation": True, "dropout": 0.2,
      "drop_path": 0.2}, (2, 9, 4), (2, 9, 4)),
    ({"filters": 8, "strides": 2, "rank": 1, "bottleneck": True,
      "kernel_size": 5}, (2, 9, 3), (2, 5, 8)),
    ({"filters": 8, "norm": "group", "norm_groups": 2, "activation": "gelu",
      "kernel_regularizer": keras.regularizers.L2(1e-4),
      "kernel_initializer": "glorot_uniform"}, (2, 7, 7, 4), (2, 7, 7, 8)),
]


@variants
@pytest.mark.parametrize("kwargs, input_shape, expected", RESIDUAL_CASES)
def test_residual_block_layer_test(kwargs, input_shape, expected):
    run_layer_test(ResidualBlock, kwargs, input_shape,
                   expected_output_shape=expected)


# --- ResidualBlock: behaviour -----------------------------------------------

@pytest.mark.parametrize("preactivation", [False, True])
@pytest.mark.parametrize("bottleneck", [False, True])
def test_no_projection_for_same_channels_and_stride_one(bottleneck,
                                                         preactivation):
    block = ResidualBlock(8, bottleneck=bottleneck, preactivation=preactivation)
    assert block.has_projection is None  # not built yet
    out = block(_randn((2, 6, 6, 8)))
    assert tuple(out.shape) == (2, 6, 6, 8)
    assert block.has_projection is False
    assert block._shortcut_conv is None
    assert not any("shortcut" in p for p in _weight_paths(block))


@pytest.mark.parametrize("preactivation", [False, True])
def test_projection_for_channel_change(preactivation):
    block = ResidualBlock(8, preactivation=preactivation)
    out = block(_randn((2, 6, 6, 4)))
    assert tuple(out.shape) == (2, 6, 6, 8)
    assert block.has_projection is True
    assert tuple(block._shortcut_conv.kernel.shape) == (1, 1, 4, 8)
    assert any("shortcut_conv" in p for p in _weight_paths(block))
    # v1 normalizes the projection; v2 feeds it the pre-activated input.
    assert (block._shortcut_norm is None) == preactivation


@pytest.mark.parametrize("rank, size, expected", [
    (2, 8, 4), (2, 9, 5), (1, 7, 4), (1, 1, 1),
])
def test_projection_for_stride_two_halves_rounding_up(rank, size, expected):
    block = ResidualBlock(4, strides=2, rank=rank)
    x = _randn((2,) + (size,) * rank + (4,))
    out = block(x)
    assert tuple(out.shape) == (2,) + (expected,) * rank + (4,)
    assert block.has_projection is True
    assert block._shortcut_conv.strides == (2,) * rank


def test_bottleneck_widths_follow_he_et_al():
    block = ResidualBlock(16, bottleneck=True)
    block.build((None, 8, 8, 8))
    kernels = [tuple(c.kernel.shape) for c in block._convs]
    assert kernels == [(1, 1, 8, 4), (3, 3, 4, 4), (1, 1, 4, 16)]
    assert block._convs[1].strides == (1, 1)
    strided = ResidualBlock(16, strides=2, bottleneck=True)
    strided.build((None, 8, 8, 8))
    assert [c.strides for c in strided._convs] == [(1, 1), (2, 2), (1, 1)]


def test_convs_followed_by_a_norm_have_no_bias():
    post = ResidualBlock(8)
    post.build((None, 6, 6, 4))
    assert all(c.bias is None for c in post._convs + [post._shortcut_conv])
    pre = ResidualBlock(8, preactivation=True)
    pre.build((None, 6, 6, 4))
    # v2: the last branch conv and the projection feed the addition directly.
    assert pre._convs[0].bias is None
    assert pre._convs[-1].bias is not None
    assert pre._shortcut_conv.bias is not None


def _zero_branch(block):
    for conv in block._convs:
        conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
        if conv.bias is not None:
            conv.bias.assign(np.zeros(conv.bias.shape, "float32"))


@pytest.mark.parametrize("bottleneck", [False, True])
def test_identity_shortcut_numerics(bottleneck):
    # With a zero branch, v1 gives act(x) and v2 gives x.
    x = _randn((2, 5, 5, 8))
    for preactivation, expected in [(False, np.tanh(x)), (True, x)]:
        block = ResidualBlock(8, bottleneck=bottleneck,
                              preactivation=preactivation, norm="none",
                              activation="tanh")
        block.build(x.shape)
        _zero_branch(block)
        np.testing.assert_allclose(_np(block(x)), expected, atol=1e-6)


def test_projection_shortcut_numerics():
    # Zero branch, norm "none", stride 2: v1 returns tanh(x[::2] @ W + b),
    # v2 returns tanh(x)[::2] @ W + b (the projection sees the pre-activation).
    x = _randn((2, 5, 5, 3))
    w = _randn((3, 6), seed=1)
    bias = _randn((6,), seed=2)
    sub = x[:, ::2, ::2, :]
    for preactivation, expected in [
        (False, np.tanh(sub @ w + bias)),
        (True, np.tanh(sub) @ w + bias),
    ]:
        block = ResidualBlock(6, strides=2, preactivation=preactivation,
                              norm="none", activation="tanh")
        block.build(x.shape)
        _zero_branch(block)
        block._shortcut_conv.kernel.assign(w.reshape(1, 1, 3, 6))
        block._shortcut_conv.bias.assign(bias)
        np.testing.assert_allclose(_np(block(x)), expected, atol=1e-5)


def test_drop_path_drops_the_branch_of_whole_samples():
    x = _randn((16, 4, 4, 4))
    block = ResidualBlock(4, norm="none", drop_path=0.5)
    block.build(x.shape)
    train = _np(block(x, training=True)).reshape(16, -1)
    infer = _np(block(x, training=False)).reshape(16, -1)
    shortcut_only = np.maximum(x, 0).reshape(16, -1)  # relu(x + 0)
    dropped = np.all(np.isclose(train, shortcut_only, atol=1e-6), axis=1)
    assert 0 < dropped.sum() < 16
    # Inference keeps every branch, and kept samples see the scaled branch.
    assert not np.any(np.all(np.isclose(infer, shortcut_only, atol=1e-6),
                             axis=1))
    np.testing.assert_array_equal(_np(block(x, training=False)),
                                  infer.reshape(x.shape))


def test_dropout_only_in_training():
    x = _randn((2, 6, 6, 4))
    block = ResidualBlock(4, dropout=0.5, norm="none")
    a, b = _np(block(x)), _np(block(x))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(_np(block(x, training=True)), a)


def test_kernel_regularizer_adds_one_loss_per_conv():
    block = ResidualBlock(8, kernel_regularizer="l2")
    block(_randn((2, 4, 4, 4)))
    assert len(block.losses) == 3  # conv1, conv2, shortcut_conv
    config = block.get_config()
    assert config["kernel_regularizer"]["class_name"] == "L2"


@pytest.mark.parametrize("kwargs, message", [
    ({"filters": -3}, "Received: filters=-3"),
    ({"filters": 0}, "Received: filters=0"),
    ({"filters": 2.0}, "Received: filters=2.0"),
    ({"filters": 2, "bottleneck": True}, "Received: filters=2"),
    ({"filters": 4, "kernel_size": 0}, "Received: kernel_size=0"),
    ({"filters": 4, "strides": -1}, "Received: strides=-1"),
    ({"filters": 4, "rank": 3}, "Received: rank=3"),
    ({"filters": 4, "norm": "instance"}, "Received: norm='instance'"),
    ({"filters": 4, "activation": "nope"}, "Received: activation='nope'"),
    ({"filters": 4, "dropout": 1.0}, "Received: dropout=1.0"),
    ({"filters": 4, "drop_path": -0.1}, "Received: drop_path=-0.1"),
    ({"filters": 4, "bottleneck": "yes"}, "Received: bottleneck='yes'"),
    ({"filters": 4, "preactivation": 1}, "Received: preactivation=1"),
])
def test_residual_block_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        ResidualBlock(**kwargs)


def test_residual_block_rejects_wrong_input_rank():
    with pytest.raises(ValueError, match="Received: input_shape="):
        ResidualBlock(4, rank=1)(_randn((2, 4, 4, 4)))


@variants
@SHAPE_SETTINGS
@given(
    batch=st.integers(1, 3),
    size=st.integers(1, 9),
    channels=st.integers(1, 6),
    filters=st.sampled_from([4, 8]),
    strides=st.integers(1, 3),
    rank=st.sampled_from([1, 2]),
    bottleneck=st.booleans(),
    preactivation=st.booleans(),
)
def test_residual_block_shapes(batch, size, channels, filters, strides, rank,
                               bottleneck, preactivation):
    block = ResidualBlock(filters, strides=strides, rank=rank,
                          bottleneck=bottleneck, preactivation=preactivation)
    input_shape = (batch,) + (size,) * rank + (channels,)
    out = block(_randn(input_shape))
    new = math.ceil(size / strides)
    expected = (batch,) + (new,) * rank + (filters,)
    assert tuple(out.shape) == expected
    assert tuple(block.compute_output_shape(input_shape)) == expected
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert block.has_projection == (strides != 1 or channels != filters)


# --- DenseBlock ---------------------------------------------------------------

DENSE_CASES = [
    ({"num_layers": 3, "growth_rate": 4}, (2, 8, 8, 4), (2, 8, 8, 16)),
    ({"num_layers": 2, "growth_rate": 3, "bottleneck": False, "dropout": 0.2,
      "rank": 1, "activation": "swish"}, (2, 9, 5), (2, 9, 11)),
    ({"num_layers": 2, "growth_rate": 4, "norm": "layer",
      "kernel_regularizer": keras.regularizers.L2(1e-4)},
     (2, 5, 5, 4), (2, 5, 5, 12)),
]


@variants
@pytest.mark.parametrize("kwargs, input_shape, expected", DENSE_CASES)
def test_dense_block_layer_test(kwargs, input_shape, expected):
    run_layer_test(DenseBlock, kwargs, input_shape,
                   expected_output_shape=expected)


@pytest.mark.parametrize("bottleneck", [True, False])
def test_dense_block_each_layer_sees_all_earlier_outputs(bottleneck):
    c, k, n = 5, 3, 4
    block = DenseBlock(n, k, bottleneck=bottleneck)
    x = _randn((2, 6, 6, c))
    out = _np(block(x))
    assert out.shape == (2, 6, 6, c + n * k)
    for i in range(n):
        seen = c + i * k  # the block input plus i earlier outputs
        if bottleneck:
            assert tuple(block._bottleneck_convs[i].kernel.shape) == (
                1, 1, seen, 4 * k)
            assert tuple(block._convs[i].kernel.shape) == (3, 3, 4 * k, k)
        else:
            assert tuple(block._convs[i].kernel.shape) == (3, 3, seen, k)
    # The block input passes through unchanged as the first channels.
    np.testing.assert_array_equal(out[..., :c], x)


def test_dense_block_later_layers_depend_on_earlier_outputs():
    # Zeroing layer 0's conv zeroes its new channels and, through the
    # concatenation, changes what layer 1 computes.
    x = _randn((2, 5, 5, 4))
    block = DenseBlock(2, 3, bottleneck=False, norm="none")
    base = _np(block(x))
    conv = block._convs[0]
    conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    changed = _np(block(x))
    np.testing.assert_array_equal(changed[..., 4:7], 0)
    assert not np.allclose(changed[..., 7:], base[..., 7:])


@pytest.mark.parametrize("kwargs, message", [
    ({"num_layers": 0, "growth_rate": 4}, "Received: num_layers=0"),
    ({"num_layers": 2, "growth_rate": -1}, "Received: growth_rate=-1"),
    ({"num_layers": 2, "growth_rate": 4, "dropout": 2},
     "Received: dropout=2"),
    ({"num_layers": 2, "growth_rate": 4, "norm": "instance"},
     "Received: norm='instance'"),
    ({"num_layers": 2, "growth_rate": 4, "rank": 4}, "Received: rank=4"),
])
def test_dense_block_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        DenseBlock(**kwargs)


@variants
@SHAPE_SETTINGS
@given(
    batch=st.integers(1, 3),
    size=st.integers(1, 7),
    channels=st.integers(1, 6),
    num_layers=st.integers(1, 3),
    growth_rate=st.integers(1, 4),
    rank=st.sampled_from([1, 2]),
    bottleneck=st.booleans(),
)
def test_dense_block_shapes(batch, size, channels, num_layers, growth_rate,
                            rank, bottleneck):
    block = DenseBlock(num_layers, growth_rate, bottleneck=bottleneck,
                       rank=rank)
    input_shape = (batch,) + (size,) * rank + (channels,)
    out = block(_randn(input_shape))
    expected = input_shape[:-1] + (channels + num_layers * growth_rate,)
    assert tuple(out.shape) == expected
    assert tuple(block.compute_output_shape(input_shape)) == expected
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


# --- ConvNormAct ----------------------------------------------------------------

CONV_CASES = [
    ({"filters": 6, "kernel_size": 3}, (2, 8, 8, 4), (2, 8, 8, 6)),
    ({"filters": 6, "kernel_size": (3, 1), "strides": (2, 1),
      "norm_position": "after", "padding": "valid"}, (2, 9, 8, 4),
     (2, 4, 8, 6)),
    ({"filters": 4, "kernel_size": 3, "rank": 1, "padding": "causal",
      "norm": "group", "norm_groups": 2, "activation": None,
      "use_bias": True, "kernel_regularizer": "l2"}, (2, 7, 3), (2, 7, 4)),
]


@variants
@pytest.mark.parametrize("kwargs, input_shape, expected", CONV_CASES)
def test_conv_norm_act_layer_test(kwargs, input_shape, expected):
    run_layer_test(ConvNormAct, kwargs, input_shape,
                   expected_output_shape=expected)


def test_conv_norm_act_order_before():
    # conv -> norm -> relu: non-negative, every channel's mean is positive.
    layer = ConvNormAct(8, 3, norm_position="before")
    out = _np(layer(_randn((4, 6, 6, 3)) + 2.0, training=True))
    assert out.min() >= 0
    assert np.all(out.mean(axis=(0, 1, 2)) > 0.1)


def test_conv_norm_act_order_after():
    # conv -> relu -> norm: batch norm last, so per-channel mean ~0 in
    # training and negative values appear.
    layer = ConvNormAct(8, 3, norm_position="after")
    out = _np(layer(_randn((4, 6, 6, 3)) + 2.0, training=True))
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert out.min() < 0


@pytest.mark.parametrize("kwargs, has_bias", [
    ({}, False),
    ({"norm_position": "after"}, True),
    ({"norm": "none"}, True),
    ({"use_bias": True}, True),
    ({"norm_position": "after", "use_bias": False}, False),
])
def test_conv_norm_act_default_bias(kwargs, has_bias):
    layer = ConvNormAct(4, 3, **kwargs)
    layer.build((None, 5, 5, 2))
    assert (layer._conv.bias is not None) == has_bias


@pytest.mark.parametrize("kwargs, message", [
    ({"filters": -3, "kernel_size": 3}, "Received: filters=-3"),
    ({"filters": 4, "kernel_size": (3, 3, 3)},
     "Received: kernel_size=(3, 3, 3)"),
    ({"filters": 4, "kernel_size": 3, "strides": 0}, "Received: strides=0"),
    ({"filters": 4, "kernel_size": 3, "padding": "causal"},
     "Received: padding='causal'"),
    ({"filters": 4, "kernel_size": 3, "norm_position": "middle"},
     "Received: norm_position='middle'"),
    ({"filters": 4, "kernel_size": 3, "use_bias": "yes"},
     "Received: use_bias='yes'"),
    ({"filters": 4, "kernel_size": 3, "rank": 0}, "Received: rank=0"),
])
def test_conv_norm_act_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        ConvNormAct(**kwargs)


@variants
@SHAPE_SETTINGS
@given(
    batch=st.integers(1, 3),
    size=st.integers(3, 9),
    filters=st.integers(1, 6),
    kernel_size=st.integers(1, 3),
    strides=st.integers(1, 3),
    rank=st.sampled_from([1, 2]),
    padding=st.sampled_from(["same", "valid"]),
)
def test_conv_norm_act_shapes(batch, size, filters, kernel_size, strides,
                              rank, padding):
    layer = ConvNormAct(filters, kernel_size, strides=strides, rank=rank,
                        padding=padding)
    input_shape = (batch,) + (size,) * rank + (2,)
    out = layer(_randn(input_shape))
    new = (math.ceil(size / strides) if padding == "same"
           else (size - kernel_size) // strides + 1)
    expected = (batch,) + (new,) * rank + (filters,)
    assert tuple(out.shape) == expected
    assert tuple(layer.compute_output_shape(input_shape)) == expected
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
