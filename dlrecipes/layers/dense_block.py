"""DenseNet dense block: every layer sees all earlier feature maps."""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_bool, check_positive_int,
                                      check_rate, clone_initializer,
                                      get_activation, get_initializer,
                                      get_regularizer)
from dlrecipes.layers.conv_norm_act import (check_input_shape, check_rank,
                                            make_conv)
from dlrecipes.layers.normalization import check_norm, normalization

BOTTLENECK_FACTOR = 4


@keras.saving.register_keras_serializable(package="dlrecipes")
class DenseBlock(keras.layers.Layer):
    """A DenseNet dense block (Huang et al. 2017), channels-last.

    The block has `num_layers` composite layers. Layer `i` takes the
    concatenation of the block input and the outputs of layers `0 .. i-1`
    and computes `norm-act-conv(1x1, 4 * growth_rate)-norm-act-
    conv(3x3, growth_rate)` (DenseNet-B, `bottleneck=True`) or
    `norm-act-conv(3x3, growth_rate)` (`bottleneck=False`); its
    `growth_rate` new channels are appended to the running concatenation,
    which is the block's output. Dropout, when on, follows each conv (as in
    the paper); the convs have no bias unless `norm="none"`.

    Args:
        num_layers: positive integer, the number of composite layers.
        growth_rate: positive integer, the channels each layer adds.
        bottleneck: whether each layer starts with a 1x1 conv to
            `4 * growth_rate` channels.
        dropout: float in [0, 1), dropout rate after each conv.
        norm: one of `NORMALIZATIONS` (`"batch"`, `"layer"`, `"group"`,
            `"none"`; `None` means `"none"`).
        activation: Keras activation name or callable.
        rank: 1 (`Conv1D`), 2 (`Conv2D`) or 3 (`Conv3D`).
        kernel_initializer: initializer of the conv kernels (name, config,
            instance or function).
        kernel_regularizer: optional regularizer of the conv kernels.
        norm_groups: groups of `norm="group"`; must divide every normalized
            channel count.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: channels-last tensor.
        training: boolean; for normalization and dropout.

    Input shape:
        `(batch, *spatial, channels)` with `rank` spatial axes.

    Output shape:
        `(batch, *spatial, channels + num_layers * growth_rate)`.

    Example:

    >>> block = DenseBlock(num_layers=4, growth_rate=12)
    >>> tuple(block(keras.ops.ones((2, 8, 8, 16))).shape)
    (2, 8, 8, 64)

    References:
        - [Huang et al., 2017. Densely Connected Convolutional Networks](
          https://arxiv.org/abs/1608.06993)
    """

    def __init__(
        self,
        num_layers,
        growth_rate,
        bottleneck=True,
        dropout=0.0,
        norm="batch",
        activation="relu",
        rank=2,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_groups=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.growth_rate = check_positive_int("growth_rate", growth_rate)
        self.bottleneck = check_bool("bottleneck", bottleneck)
        self.dropout = check_rate("dropout", dropout)
        self.norm = check_norm(norm)
        self.activation = get_activation(activation)
        self.rank = check_rank(rank)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)

    def _make_conv(self, filters, kernel_size, name):
        return make_conv(
            self.rank, filters, kernel_size,
            padding="same",
            use_bias=self.norm == "none",
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _make_norm(self, name):
        return normalization(self.norm, groups=self.norm_groups,
                             dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        check_input_shape(self, input_shape, self.rank)
        input_shape = tuple(input_shape)
        prefix = input_shape[:-1]
        self._activation = keras.layers.Activation(
            self.activation, dtype=self.dtype_policy, name="activation")
        self._activation.build(input_shape)
        self._dropout = None
        if self.dropout > 0:
            self._dropout = keras.layers.Dropout(
                self.dropout, dtype=self.dtype_policy, name="dropout")
        # Per inner layer i: [norm, conv, ...] on the running concatenation.
        self._bottleneck_norms = []
        self._bottleneck_convs = []
        self._norms = []
        self._convs = []
        channels = input_shape[-1]
        for i in range(self.num_layers):
            shape = prefix + (channels,)
            if self.bottleneck:
                norm = self._make_norm(f"layer{i}_norm1")
                norm.build(shape)
                conv = self._make_conv(BOTTLENECK_FACTOR * self.growth_rate,
                                       1, f"layer{i}_conv1")
                conv.build(shape)
                self._bottleneck_norms.append(norm)
                self._bottleneck_convs.append(conv)
                shape = prefix + (BOTTLENECK_FACTOR * self.growth_rate,)
            norm = self._make_norm(f"layer{i}_norm2")
            norm.build(shape)
            conv = self._make_conv(self.growth_rate, 3, f"layer{i}_conv2")
            conv.build(shape)
            self._norms.append(norm)
            self._convs.append(conv)
            channels += self.growth_rate
        self.built = True

    def _maybe_dropout(self, x, training):
        if self._dropout is None:
            return x
        return self._dropout(x, training=training)

    def call(self, inputs, training=None):
        act = self._activation
        features = inputs  # (batch, *spatial, channels + i * growth_rate)
        for i in range(self.num_layers):
            x = features
            if self.bottleneck:
                x = act(self._bottleneck_norms[i](x, training=training))
                x = self._bottleneck_convs[i](x)
                x = self._maybe_dropout(x, training)
            x = act(self._norms[i](x, training=training))
            x = self._convs[i](x)  # (batch, *spatial, growth_rate)
            x = self._maybe_dropout(x, training)
            features = ops.concatenate([features, x], axis=-1)
        return features

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        if channels is not None:
            channels = channels + self.num_layers * self.growth_rate
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_layers": self.num_layers,
            "growth_rate": self.growth_rate,
            "bottleneck": self.bottleneck,
            "dropout": self.dropout,
            "norm": self.norm,
            "activation": keras.activations.serialize(self.activation),
            "rank": self.rank,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "norm_groups": self.norm_groups,
        })
        return config
