"""InceptionBlock: the branches, what each sees, its arguments and a saved
model. (Its shared layer checks run from its row in test_layers_common.)"""

import os
import re

import keras
import numpy as np
import pytest

import dlrecipes
from dlrecipes.layers import InceptionBlock

pytestmark = pytest.mark.backends

# GoogLeNet's 3a proportions, divided by 16: 1x1, 3x3 reduce, 3x3,
# 5x5 reduce, 5x5, pool projection.
FILTERS = dict(filters_1x1=4, filters_3x3_reduce=6, filters_3x3=8,
               filters_5x5_reduce=1, filters_5x5=2, pool_proj=3)
# Output channels of each branch, in order.
SLICES = {"1x1": slice(0, 4), "3x3": slice(4, 12), "5x5": slice(12, 14),
          "pool": slice(14, 17)}
# One input shape throughout (under JAX each new shape compiles again).
SHAPE = (2, 4, 5, 3)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _convs(block):
    """The block's ConvNormAct sublayers by name."""
    return dict(block._convs)


def test_output_channels_are_the_sum_of_the_branches():
    block = InceptionBlock(**FILTERS)
    out = block(_randn(SHAPE))
    assert tuple(out.shape) == (2, 4, 5, 17)
    assert block.compute_output_shape((None, 4, 5, 3)) == (None, 4, 5, 17)
    # GoogLeNet's inception (3a): 192 channels in, 256 out.
    block = InceptionBlock(64, 96, 128, 16, 32, 32)
    assert block.compute_output_shape((None, 28, 28, 192)) == (
        None, 28, 28, 256)


def test_each_branch_sees_the_input_through_its_kernels():
    block = InceptionBlock(**FILTERS)
    block(_randn(SHAPE))
    shapes = {name: tuple(conv._conv.kernel.shape)
              for name, conv in _convs(block).items()}
    assert shapes == {
        "branch1x1": (1, 1, 3, 4),
        "branch3x3_reduce": (1, 1, 3, 6),
        "branch3x3": (3, 3, 6, 8),
        "branch5x5_reduce": (1, 1, 3, 1),
        "branch5x5": (5, 5, 1, 2),
        "branch_pool_proj": (1, 1, 3, 3),
    }


@pytest.mark.parametrize("zeroed, branch", [
    ("branch1x1", "1x1"), ("branch3x3", "3x3"), ("branch5x5", "5x5"),
    ("branch_pool_proj", "pool")])
def test_zeroing_a_branch_zeroes_its_channels_only(zeroed, branch):
    x = _randn(SHAPE)
    block = InceptionBlock(**FILTERS, norm="none")
    before = _np(block(x))
    conv = _convs(block)[zeroed]._conv
    conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    after = _np(block(x))
    assert np.abs(before[..., SLICES[branch]]).max() > 0
    np.testing.assert_array_equal(after[..., SLICES[branch]], 0)
    others = np.ones(17, bool)
    others[SLICES[branch]] = False
    np.testing.assert_array_equal(after[..., others], before[..., others])


def test_pool_branch_is_max_pooling_then_a_projection():
    """Branch 4 computed by hand: 3x3 max pool (stride 1, edges padded),
    1x1 conv, ReLU."""
    x = _randn(SHAPE, seed=1)
    block = InceptionBlock(**FILTERS, norm="none")
    out = _np(block(x))[..., SLICES["pool"]]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)),
                    constant_values=-np.inf)
    pooled = np.max([padded[:, i:i + 4, j:j + 5]
                     for i in range(3) for j in range(3)], axis=0)
    conv = _convs(block)["branch_pool_proj"]._conv
    expected = np.maximum(
        np.einsum("bhwc,cf->bhwf", pooled, _np(conv.kernel)[0, 0])
        + _np(conv.bias), 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_arguments_reach_every_conv():
    regularizer = keras.regularizers.L2(1e-3)
    block = InceptionBlock(**FILTERS, norm="layer", activation="tanh",
                           kernel_regularizer=regularizer)
    block(_randn(SHAPE))
    convs = _convs(block)
    assert len(convs) == 6
    for conv in convs.values():
        assert conv.norm == "layer"
        assert conv.activation is keras.activations.tanh
        assert conv.kernel_regularizer is regularizer
    # Each conv has its own initializer object (clone_initializer).
    initializers = [conv.kernel_initializer for conv in convs.values()]
    assert len({id(i) for i in initializers}) == 6
    # The regularizer is counted once per conv kernel.
    assert len(block.losses) == 6


def test_sublayers_are_found_by_the_walk():
    """Batch norm momentum (`models.set_batch_norm_momentum`) reaches the
    branches' norms through `sublayers.walk`."""
    from dlrecipes.training import sublayers

    block = InceptionBlock(**FILTERS)
    block(_randn(SHAPE))
    norms = [layer for layer in sublayers.walk(block)
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6


def test_batch_norm_uses_training():
    x = _randn(SHAPE) * 5 + 3
    block = InceptionBlock(**FILTERS)
    inference = _np(block(x, training=False))
    training = _np(block(x, training=True))
    assert not np.allclose(inference, training)


@pytest.mark.parametrize("kwargs, message", [
    ({**FILTERS, "filters_1x1": 0}, "Received: filters_1x1=0"),
    ({**FILTERS, "filters_3x3_reduce": 2.5},
     "Received: filters_3x3_reduce=2.5"),
    ({**FILTERS, "filters_5x5": -1}, "Received: filters_5x5=-1"),
    ({**FILTERS, "pool_proj": True}, "Received: pool_proj=True"),
    ({**FILTERS, "norm": "instance"}, "Received: norm='instance'"),
    ({**FILTERS, "activation": "nope"}, "Received: activation='nope'"),
    ({**FILTERS, "norm_groups": 0}, "Received: norm_groups=0"),
])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        InceptionBlock(**kwargs)


def test_rejects_inputs_that_are_not_images():
    with pytest.raises(ValueError, match=re.escape(
            "Received: input_shape=(2, 8, 3)")):
        InceptionBlock(**FILTERS)(_randn((2, 8, 3)))


def test_saved_model_round_trip(tmp_path):
    inputs = keras.Input(SHAPE[1:])
    x = InceptionBlock(**FILTERS, activation="elu", name="inception")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    x = _randn(SHAPE)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = dlrecipes.load_model(path)
    layer = loaded.get_layer("inception")
    assert isinstance(layer, InceptionBlock)
    assert layer.get_config() == model.get_layer("inception").get_config()
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6)
