"""UpsamplingBlock and UNet (dlrecipes/layers/upsampling.py): the shared
layer checks, then interpolation numerics, skip connections, shapes and
argument errors."""

import re

import keras
import numpy as np
import pytest
from layer_testing import run_layer_test, variants

import dlrecipes
from dlrecipes.layers.upsampling import UPSAMPLINGS, UNet, UpsamplingBlock

pytestmark = pytest.mark.backends


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# --- the shared layer checks ------------------------------------------------

# With the rows of tests/test_layers_common.py (a nearest 2-D block; a 1-D
# bilinear U-Net without skips) and the numeric tests below, every
# up-sampling, 1-D and 2-D, with and without skips, goes through the shared
# checks.
BLOCK_CASES = [
    # (init kwargs, input shape, expected output shape)
    ({"filters": 4, "upsample": "bilinear", "factor": 3, "dropout": 0.1,
      "kernel_regularizer": keras.regularizers.L2(1e-4)},
     (2, 2, 2, 3), (2, 6, 6, 4)),
    ({"filters": 3, "rank": 1, "convs": 1}, (2, 5, 2), (2, 10, 3)),
]


@variants
@pytest.mark.parametrize("kwargs, input_shape, expected", BLOCK_CASES)
def test_upsampling_block_layer_test(kwargs, input_shape, expected):
    run_layer_test(UpsamplingBlock, kwargs, input_shape,
                   expected_output_shape=expected)


UNET_CASES = [
    # 1-D, without skips, bilinear, group norm: tests/test_layers_common.py
    ({"filters": 4, "depth": 1, "convs": 1}, (2, 4, 4, 1), (2, 4, 4, 4)),
]


@variants
@pytest.mark.parametrize("kwargs, input_shape, expected", UNET_CASES)
def test_unet_layer_test(kwargs, input_shape, expected):
    run_layer_test(UNet, kwargs, input_shape, expected_output_shape=expected)


# --- UpsamplingBlock: behaviour ----------------------------------------------

def _identity_projection(block, channels):
    """Make the 1x1 projection after the interpolation the identity."""
    kernel = np.eye(channels, dtype="float32").reshape(
        (1,) * block.rank + (channels, channels))
    block._up.kernel.assign(kernel)
    block._up.bias.assign(np.zeros(channels, "float32"))


def _linear_x2(x, axis):
    """Linear interpolation x2 along `axis` with half-pixel centres (what
    TensorFlow's and JAX's bilinear resize compute): output 2i is
    0.75 x[i] + 0.25 x[i-1], output 2i+1 is 0.75 x[i] + 0.25 x[i+1],
    clamped at the ends."""
    n = x.shape[axis]
    prev = np.take(x, np.maximum(np.arange(n) - 1, 0), axis=axis)
    nxt = np.take(x, np.minimum(np.arange(n) + 1, n - 1), axis=axis)
    even = 0.75 * x + 0.25 * prev
    odd = 0.75 * x + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] *= 2
    return out.reshape(shape)


@pytest.mark.parametrize("rank", [1, 2])
def test_interpolation_numerics(rank):
    """convs=0 and an identity projection leave the interpolation alone:
    nearest repeats every value, bilinear interpolates linearly (per axis)."""
    x = _randn((2,) + (5,) * rank + (3,))
    for upsample in ("nearest", "bilinear"):
        block = UpsamplingBlock(3, rank=rank, upsample=upsample, convs=0)
        block.build(x.shape)
        _identity_projection(block, 3)
        expected = x
        for axis in range(1, rank + 1):
            expected = (np.repeat(expected, 2, axis=axis)
                        if upsample == "nearest"
                        else _linear_x2(expected, axis))
        np.testing.assert_allclose(_np(block(x)), expected, atol=1e-5)


def test_transpose_is_a_learned_upsampling():
    """The transposed convolution (kernel = stride = factor) writes each
    input pixel into its own factor x factor cell: a one-hot input lights
    exactly that cell."""
    block = UpsamplingBlock(2, factor=3, convs=0)
    x = np.zeros((1, 4, 4, 1), "float32")
    x[0, 1, 2, 0] = 1.0
    block.build(x.shape)
    block._up.bias.assign(np.zeros(2, "float32"))
    out = _np(block(x))
    assert out.shape == (1, 12, 12, 2)
    lit = np.argwhere(np.any(out[0] != 0, axis=-1))
    assert lit.min(axis=0).tolist() == [3, 6] and lit.max(axis=0).tolist() \
        == [5, 8]


def test_skip_connection_is_concatenated():
    """A skip input joins the channels: the first 3x3 conv has a kernel
    row per skip channel more, and the output depends on the skip."""
    x, skip = _randn((2, 3, 3, 6)), _randn((2, 6, 6, 5), seed=1)
    block = UpsamplingBlock(4, convs=1, norm="none")
    out = _np(block([x, skip]))
    assert out.shape == (2, 6, 6, 4)
    alone = UpsamplingBlock(4, convs=1, norm="none")
    alone(x)
    assert block.count_params() - alone.count_params() == 3 * 3 * 5 * 4
    other = _np(block([x, skip + 1.0]))
    assert not np.allclose(out, other)
    assert tuple(block.compute_output_shape([x.shape, skip.shape])) == \
        (2, 6, 6, 4)


def test_block_with_skip_saves_and_loads(tmp_path):
    """In a two-input model the block round-trips through the safe
    loader."""
    x_in = keras.Input((4, 4, 8))
    skip_in = keras.Input((8, 8, 3))
    out = UpsamplingBlock(4, upsample="bilinear", name="up")([x_in, skip_in])
    model = keras.Model([x_in, skip_in], out)
    x, skip = _randn((2, 4, 4, 8)), _randn((2, 8, 8, 3), seed=1)
    expected = _np(model([x, skip], training=False))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = dlrecipes.load_model(path)
    np.testing.assert_allclose(_np(loaded([x, skip], training=False)),
                               expected, atol=1e-5)
    assert type(loaded.get_layer("up")) is UpsamplingBlock


def test_block_rejects_a_skip_of_another_size():
    with pytest.raises(ValueError, match=re.escape(
            "spatial size of the up-sampled input, (6, 6)")):
        UpsamplingBlock(4)([_randn((2, 3, 3, 2)), _randn((2, 5, 5, 2))])


# --- UNet: behaviour ---------------------------------------------------------

@variants
def test_unet_skips_add_the_encoder_channels():
    """Each decoder stage's first 3x3 conv also reads the encoder's
    features of its resolution (as many channels as its own width): with
    filters 2 and depth 2, 3*3*4*4 + 3*3*2*2 more kernel weights, and
    nothing else differs."""
    counts = {}
    for skips in (True, False):
        unet = UNet(2, depth=2, skip_connections=skips, convs=1, norm="none")
        unet.build((None, 4, 4, 1))
        counts[skips] = unet.count_params()
    assert counts[True] - counts[False] == 3 * 3 * 4 * 4 + 3 * 3 * 2 * 2


@variants
def test_unet_is_fully_convolutional():
    """Unknown spatial sizes build; an input of any multiple of 2**depth
    comes out at full resolution."""
    inputs = keras.Input((None, None, 2))
    outputs = UNet(3, depth=1, convs=1)(inputs)
    assert tuple(outputs.shape) == (None, None, None, 3)
    model = keras.Model(inputs, outputs)
    out = model(_randn((1, 6, 4, 2)), training=False)
    assert tuple(out.shape) == (1, 6, 4, 3)


def test_unet_needs_sizes_divisible_by_two_to_the_depth():
    with pytest.raises(ValueError, match=re.escape(
            "divisible by 2**3 = 8. Received: input_shape=(None, 12, 16, 1)")):
        UNet(4, depth=3).build((None, 12, 16, 1))


@pytest.mark.parametrize("cls, kwargs, needle", [
    (UpsamplingBlock, {"filters": 0}, "Received: filters=0"),
    (UpsamplingBlock, {"filters": 4, "upsample": "cubic"},
     "Received: upsample='cubic'"),
    (UpsamplingBlock, {"filters": 4, "rank": 3}, "Received: rank=3"),
    (UpsamplingBlock, {"filters": 4, "convs": -1}, "Received: convs=-1"),
    (UpsamplingBlock, {"filters": 4, "factor": 1.5}, "Received: factor=1.5"),
    (UpsamplingBlock, {"filters": 4, "dropout": 1.0}, "Received: dropout=1.0"),
    (UNet, {"filters": 4, "depth": 0}, "Received: depth=0"),
    (UNet, {"filters": 4, "skip_connections": "yes"},
     "Received: skip_connections='yes'"),
    (UNet, {"filters": 4, "convs": 0}, "Received: convs=0"),
    (UNet, {"filters": 4, "norm": "instance"}, "Received: norm='instance'"),
])
def test_argument_errors(cls, kwargs, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        cls(**kwargs)


def test_exported_for_the_safe_loader():
    """`dlrecipes.load_model` registers the classes `dlrecipes.layers`
    imports: a model holding these layers loads in a fresh process only
    when they are exported there."""
    import dlrecipes.layers

    assert dlrecipes.layers.UNet is UNet
    assert dlrecipes.layers.UpsamplingBlock is UpsamplingBlock


def test_upsampling_names_match_the_recipe_flags():
    from dlrecipes.vision import segmentation

    assert segmentation.UPSAMPLINGS == UPSAMPLINGS
