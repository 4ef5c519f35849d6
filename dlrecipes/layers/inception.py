"""GoogLeNet's inception module: four parallel branches, concatenated."""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_positive_int, clone_initializer,
                                      get_activation, get_initializer,
                                      get_regularizer)
from dlrecipes.layers.conv_norm_act import ConvNormAct, check_input_shape
from dlrecipes.layers.normalization import check_norm

# The branches in output order, each its convs as (filters argument, kernel
# size, sublayer name). The last (pool) branch starts with a 3x3 max pooling
# (stride 1, "same").
BRANCHES = (
    (("filters_1x1", 1, "branch1x1"),),
    (("filters_3x3_reduce", 1, "branch3x3_reduce"),
     ("filters_3x3", 3, "branch3x3")),
    (("filters_5x5_reduce", 1, "branch5x5_reduce"),
     ("filters_5x5", 5, "branch5x5")),
    (("pool_proj", 1, "branch_pool_proj"),),
)
POOL_BRANCH = len(BRANCHES) - 1


@keras.saving.register_keras_serializable(package="dlrecipes")
class InceptionBlock(keras.layers.Layer):
    """GoogLeNet's inception module (Szegedy et al. 2014), channels-last
    images.

    Four branches see the same input and their outputs are concatenated on
    the channel axis, in this order:

    1. a 1x1 conv (`filters_1x1`);
    2. a 1x1 conv to `filters_3x3_reduce` channels, then a 3x3 conv
       (`filters_3x3`);
    3. a 1x1 conv to `filters_5x5_reduce` channels, then a 5x5 conv
       (`filters_5x5`);
    4. a 3x3 max pooling (stride 1, "same"), then a 1x1 projection
       (`pool_proj`).

    Every conv is a `ConvNormAct` (conv, `norm`, `activation`; the paper's
    convs have a ReLU and no normalization: `norm="none"`; batch norm is
    Inception v2's addition). Stride 1 and "same" padding throughout: the
    spatial size is kept.

    Args:
        filters_1x1: positive integer, channels of the 1x1 branch.
        filters_3x3_reduce: positive integer, channels of the 1x1 conv
            before the 3x3 conv.
        filters_3x3: positive integer, channels of the 3x3 branch.
        filters_5x5_reduce: positive integer, channels of the 1x1 conv
            before the 5x5 conv.
        filters_5x5: positive integer, channels of the 5x5 branch.
        pool_proj: positive integer, channels of the pool branch's 1x1
            projection.
        norm: one of `NORMALIZATIONS` (`"batch"`, `"layer"`, `"group"`,
            `"none"`; `None` means `"none"`).
        activation: Keras activation name or callable.
        kernel_initializer: initializer of the conv kernels (name, config,
            instance or function).
        kernel_regularizer: optional regularizer of the conv kernels.
        norm_groups: groups of `norm="group"`; must divide every conv's
            filters.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: channels-last image tensor.
        training: boolean, for batch normalization.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, height, width, filters_1x1 + filters_3x3 + filters_5x5 +
        pool_proj)`.

    Example:

    >>> block = InceptionBlock(64, 96, 128, 16, 32, 32)  # GoogLeNet's 3a
    >>> tuple(block(keras.ops.ones((2, 7, 7, 192))).shape)
    (2, 7, 7, 256)

    References:
        - [Szegedy et al., 2014. Going Deeper with Convolutions](
          https://arxiv.org/abs/1409.4842)
    """

    def __init__(
        self,
        filters_1x1,
        filters_3x3_reduce,
        filters_3x3,
        filters_5x5_reduce,
        filters_5x5,
        pool_proj,
        norm="batch",
        activation="relu",
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_groups=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters_1x1 = check_positive_int("filters_1x1", filters_1x1)
        self.filters_3x3_reduce = check_positive_int("filters_3x3_reduce",
                                                     filters_3x3_reduce)
        self.filters_3x3 = check_positive_int("filters_3x3", filters_3x3)
        self.filters_5x5_reduce = check_positive_int("filters_5x5_reduce",
                                                     filters_5x5_reduce)
        self.filters_5x5 = check_positive_int("filters_5x5", filters_5x5)
        self.pool_proj = check_positive_int("pool_proj", pool_proj)
        self.norm = check_norm(norm)
        self.activation = get_activation(activation)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)

    @property
    def output_channels(self):
        """The channels of the output: the four branches' together."""
        return (self.filters_1x1 + self.filters_3x3 + self.filters_5x5
                + self.pool_proj)

    def build(self, input_shape):
        check_input_shape(self, input_shape, 2)
        input_shape = tuple(input_shape)
        self._pool = keras.layers.MaxPooling2D(
            3, strides=1, padding="same", dtype=self.dtype_policy,
            name="pool")
        self._pool.build(input_shape)
        # The convs by name (a flat dict: what Keras and
        # `dlrecipes.training.sublayers.walk` look through).
        self._convs = {}
        for convs in BRANCHES:
            shape = input_shape  # every branch starts from the input
            for argument, kernel_size, name in convs:
                conv = ConvNormAct(
                    getattr(self, argument), kernel_size,
                    norm=self.norm,
                    activation=self.activation,
                    kernel_initializer=clone_initializer(
                        self.kernel_initializer),
                    kernel_regularizer=self.kernel_regularizer,
                    norm_groups=self.norm_groups,
                    dtype=self.dtype_policy,
                    name=name,
                )
                conv.build(shape)
                shape = conv.compute_output_shape(shape)
                self._convs[name] = conv
        self.built = True

    def call(self, inputs, training=None):
        outputs = []
        for i, convs in enumerate(BRANCHES):
            x = self._pool(inputs) if i == POOL_BRANCH else inputs
            for _, _, name in convs:
                x = self._convs[name](x, training=training)
            outputs.append(x)  # (batch, height, width, branch filters)
        return ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters_1x1": self.filters_1x1,
            "filters_3x3_reduce": self.filters_3x3_reduce,
            "filters_3x3": self.filters_3x3,
            "filters_5x5_reduce": self.filters_5x5_reduce,
            "filters_5x5": self.filters_5x5,
            "pool_proj": self.pool_proj,
            "norm": self.norm,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "norm_groups": self.norm_groups,
        })
        return config
