"""Convolution + normalization + activation, the unit of most conv nets."""

import math

import keras

from dlrecipes.layers._checks import (check_bool, check_choice,
                                      check_positive_int, clone_initializer,
                                      get_activation, get_initializer,
                                      get_regularizer)
from dlrecipes.layers.normalization import check_norm, normalization

_CONV_CLASSES = {
    1: keras.layers.Conv1D,
    2: keras.layers.Conv2D,
    3: keras.layers.Conv3D,
}


# Argument checks and shape helpers of the convolutional blocks
# (ConvNormAct, ResidualBlock, DenseBlock).

def check_rank(rank, allowed=(1, 2, 3)):
    if isinstance(rank, bool) or rank not in allowed:
        names = {1: "1 (Conv1D)", 2: "2 (Conv2D)", 3: "3 (Conv3D)"}
        choices = [names[r] for r in allowed]
        listed = ", ".join(choices[:-1]) + " or " + choices[-1]
        raise ValueError(
            f"`rank` must be {listed}. Received: rank={rank!r}"
        )
    return rank


def check_int_tuple(name, value, rank):
    """Check an int or a length-`rank` sequence of positive ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != rank or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1
                for v in value):
            raise ValueError(
                f"`{name}` must be a positive integer or a sequence of "
                f"{rank} positive integers. Received: {name}={value!r}"
            )
    else:
        check_positive_int(name, value)
    return value


def as_tuple(value, rank):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def check_input_shape(layer, input_shape, rank, what="inputs"):
    """Channels-last input of rank `rank + 2` with a known channel count."""
    if len(input_shape) != rank + 2 or input_shape[-1] is None:
        raise ValueError(
            f"{type(layer).__name__} with rank={rank} expects {what} of shape "
            f"(batch, {rank} spatial dims..., channels) with a known channel "
            f"count. Received: input_shape={tuple(input_shape)}"
        )


def conv_output_size(size, kernel_size, strides, padding):
    """Output length of one spatial axis (dilation 1)."""
    if size is None:
        return None
    if padding == "valid":
        return (size - kernel_size) // strides + 1
    return math.ceil(size / strides)  # "same" and "causal"


def make_conv(rank, filters, kernel_size, **kwargs):
    return _CONV_CLASSES[rank](filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="dlrecipes")
class ConvNormAct(keras.layers.Layer):
    """Convolution, normalization and activation in one layer.

    `norm_position="before"` gives conv -> norm -> activation (the usual
    ResNet / VGG-BN unit: the norm comes before the non-linearity);
    `norm_position="after"` gives conv -> activation -> norm.

    Args:
        filters: positive integer, the number of output channels.
        kernel_size: positive integer or tuple of `rank` integers.
        strides: positive integer or tuple of `rank` integers.
        rank: 1 (`Conv1D`), 2 (`Conv2D`) or 3 (`Conv3D`).
        padding: `"same"` or `"valid"` (`"causal"` too when `rank=1`).
        norm: one of `NORMALIZATIONS` (`"batch"`, `"layer"`, `"group"`,
            `"none"`; `None` means `"none"`).
        norm_position: `"before"` or `"after"` the activation.
        activation: Keras activation name or callable; `None` for linear.
        use_bias: whether the conv has a bias. `None` chooses: `False` when
            a norm directly follows the conv (`norm_position="before"` and
            `norm != "none"`), since the norm's centering cancels a bias;
            `True` otherwise.
        kernel_initializer: initializer of the conv kernel (name, config,
            instance or function).
        kernel_regularizer: optional regularizer of the conv kernel.
        norm_groups: groups of `norm="group"`; must divide `filters`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: channels-last tensor.
        training: boolean, for batch normalization.

    Input shape:
        `(batch, *spatial, channels)` with `rank` spatial axes.

    Output shape:
        `(batch, *new_spatial, filters)`; with `"same"` padding each new
        spatial size is `ceil(size / strides)`.

    Example:

    >>> layer = ConvNormAct(16, 3, strides=2)
    >>> tuple(layer(keras.ops.ones((2, 9, 9, 3))).shape)
    (2, 5, 5, 16)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        rank=2,
        padding="same",
        norm="batch",
        norm_position="before",
        activation="relu",
        use_bias=None,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_groups=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rank = check_rank(rank)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_int_tuple("kernel_size", kernel_size, rank)
        self.strides = check_int_tuple("strides", strides, rank)
        self.padding = check_choice(
            "padding", padding,
            ("same", "valid", "causal") if rank == 1 else ("same", "valid"))
        self.norm = check_norm(norm)
        self.norm_position = check_choice("norm_position", norm_position,
                                          ("before", "after"))
        if use_bias is not None:
            check_bool("use_bias", use_bias)
        self.use_bias = use_bias
        self.activation = get_activation(activation)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)

    def _resolved_use_bias(self):
        if self.use_bias is not None:
            return self.use_bias
        return not (self.norm_position == "before" and self.norm != "none")

    def build(self, input_shape):
        check_input_shape(self, input_shape, self.rank)
        self._conv = make_conv(
            self.rank, self.filters, self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=self._resolved_use_bias(),
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self._conv.build(input_shape)
        out_shape = self._conv.compute_output_shape(input_shape)
        self._norm = normalization(
            self.norm, groups=self.norm_groups, dtype=self.dtype_policy,
            name="norm",
        )
        self._norm.build(out_shape)
        self._activation = keras.layers.Activation(
            self.activation, dtype=self.dtype_policy, name="activation",
        )
        self._activation.build(out_shape)
        self.built = True

    def call(self, inputs, training=None):
        x = self._conv(inputs)  # (batch, *spatial, filters)
        if self.norm_position == "before":
            x = self._norm(x, training=training)
            return self._activation(x)
        x = self._activation(x)
        return self._norm(x, training=training)

    def compute_output_shape(self, input_shape):
        kernel = as_tuple(self.kernel_size, self.rank)
        strides = as_tuple(self.strides, self.rank)
        spatial = tuple(
            conv_output_size(size, k, s, self.padding)
            for size, k, s in zip(input_shape[1:-1], kernel, strides)
        )
        return (input_shape[0],) + spatial + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "rank": self.rank,
            "padding": self.padding,
            "norm": self.norm,
            "norm_position": self.norm_position,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "norm_groups": self.norm_groups,
        })
        return config
