"""Temporal convolutional network: `TemporalBlock` and `TCN` (Bai et al. 2018).

The API follows keras-tcn (`filters`, `kernel_size`, `dilations`,
`num_stacks`, `use_skip_connections`, `return_sequences`), written as plain
Keras 3 layers with `keras.ops`, so it serializes under every backend.
"""

import warnings

import keras

from dlrecipes.layers._checks import (check_activation, check_initializer,
                                      check_positive_int, check_rate,
                                      fresh_initializer, is_positive_int,
                                      serialize_activation,
                                      serialize_initializer)

_NORMS = (None, "none", "batch", "layer")


def _check_norm(norm):
    if norm not in _NORMS:
        raise ValueError(
            "`norm` must be None, 'none', 'batch' or 'layer'. "
            f"Received: norm={norm!r}"
        )


def _check_sequence_shape(layer_name, input_shape):
    if len(input_shape) != 3 or input_shape[-1] is None:
        raise ValueError(
            f"`{layer_name}` expects inputs of shape (batch, time, channels) "
            "with a known channel count. "
            f"Received: input_shape={tuple(input_shape)}"
        )


@keras.saving.register_keras_serializable(package="dlrecipes")
class TemporalBlock(keras.layers.Layer):
    """Residual block of two dilated 1D convolutions (Bai et al. 2018).

    `x -> [Conv1D(dilation) -> norm -> activation -> SpatialDropout1D] x 2`,
    added to the input (through a 1x1 `Conv1D` when the channel count
    changes), then the activation. With `causal=True` the convolutions pad on
    the left only, so the output at step `t` depends on inputs `<= t` only.

    The receptive field of one block is `1 + 2 * (kernel_size - 1) *
    dilation_rate` steps.

    Args:
        filters: number of output channels of both convolutions.
        kernel_size: length of the convolution kernels.
        dilation_rate: dilation of both convolutions.
        dropout: rate of the `SpatialDropout1D` after each convolution
            (whole channels are dropped).
        norm: `None` (or `"none"`), `"batch"` (`BatchNormalization`) or
            `"layer"` (`LayerNormalization` over the channels). Layer norm is
            per time step, hence causal and streaming-safe; batch norm's
            training statistics pool over batch and time (in inference it is
            a per-channel affine map, so still causal).
        activation: activation name or callable.
        causal: `True` for `"causal"` padding, `False` for `"same"`.
        kernel_initializer: initializer of the convolution kernels.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: float tensor `(batch, time, channels)`.
        training: Python bool; dropout and batch norm in training mode.

    Input shape:
        `(batch, time, channels)`.

    Output shape:
        `(batch, time, filters)`.

    Example:

    >>> block = TemporalBlock(filters=16, kernel_size=3, dilation_rate=2)
    >>> tuple(block(keras.ops.ones((2, 32, 4))).shape)
    (2, 32, 16)

    References:
        - [Bai et al., 2018](https://arxiv.org/abs/1803.01271)
    """

    def __init__(self, filters, kernel_size, dilation_rate, dropout=0.0,
                 norm=None, activation="relu", causal=True,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        check_positive_int("kernel_size", kernel_size)
        check_positive_int("dilation_rate", dilation_rate)
        check_rate("dropout", dropout)
        _check_norm(norm)
        check_activation(activation)
        check_initializer("kernel_initializer", kernel_initializer)
        if not isinstance(causal, bool):
            raise ValueError(
                f"`causal` must be a bool. Received: causal={causal!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.dropout = dropout
        self.norm = norm
        self.activation = serialize_activation(activation)
        self.causal = causal
        self.kernel_initializer = serialize_initializer(kernel_initializer)
        self._activation_fn = keras.activations.get(activation)

    @property
    def receptive_field(self):
        """Number of input steps that one output step depends on."""
        return 1 + 2 * (self.kernel_size - 1) * self.dilation_rate

    def _make_norm(self, name):
        if self.norm == "batch":
            return keras.layers.BatchNormalization(
                dtype=self.dtype_policy, name=name)
        if self.norm == "layer":
            return keras.layers.LayerNormalization(
                dtype=self.dtype_policy, name=name)
        return None

    def build(self, input_shape):
        _check_sequence_shape("TemporalBlock", input_shape)
        padding = "causal" if self.causal else "same"
        self._convs, self._norms, self._dropouts = [], [], []
        shape = tuple(input_shape)
        for i in (1, 2):
            conv = keras.layers.Conv1D(
                self.filters, self.kernel_size, padding=padding,
                dilation_rate=self.dilation_rate,
                kernel_initializer=fresh_initializer(self.kernel_initializer),
                dtype=self.dtype_policy, name=f"conv{i}")
            conv.build(shape)
            shape = shape[:-1] + (self.filters,)
            norm = self._make_norm(f"norm{i}")
            if norm is not None:
                norm.build(shape)
            dropout = keras.layers.SpatialDropout1D(
                self.dropout, dtype=self.dtype_policy, name=f"dropout{i}")
            dropout.build(shape)
            self._convs.append(conv)
            self._norms.append(norm)
            self._dropouts.append(dropout)
        self._shortcut = None
        if input_shape[-1] != self.filters:
            self._shortcut = keras.layers.Conv1D(
                self.filters, 1,
                kernel_initializer=fresh_initializer(self.kernel_initializer),
                dtype=self.dtype_policy, name="shortcut")
            self._shortcut.build(tuple(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        x = inputs  # (batch, time, channels)
        for conv, norm, dropout in zip(self._convs, self._norms,
                                       self._dropouts):
            x = conv(x)  # (batch, time, filters)
            if norm is not None:
                x = norm(x, training=training)
            x = self._activation_fn(x)
            x = dropout(x, training=training)
        residual = inputs if self._shortcut is None else self._shortcut(inputs)
        return self._activation_fn(x + residual)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "dropout": self.dropout,
            "norm": self.norm,
            "activation": self.activation,
            "causal": self.causal,
            "kernel_initializer": self.kernel_initializer,
        })
        return config


@keras.saving.register_keras_serializable(package="dlrecipes")
class TCN(keras.layers.Layer):
    """Temporal convolutional network (Bai et al. 2018; keras-tcn's API).

    `num_stacks` stacks of `TemporalBlock`s, one per entry of `dilations`.
    With `use_skip_connections=True` the output is the activation of the sum
    of every block's output (each block's output, after its residual
    addition; keras-tcn sums the residual branches instead), otherwise the
    last block's output.

    With `causal=True` (the default) the output at step `t` depends on inputs
    `<= t` only, no operation pools over time (layer norm is per step, batch
    norm in inference is per channel), so the layer is streaming-safe. Pad
    variable-length batches at the end: real steps are then unaffected by
    the padding. The layer ignores Keras masks.

    `return_sequences=False` returns the last time step. That is the step
    that has seen the whole sequence when `causal=True`; with `causal=False`
    ("same" padding) the last step is returned too, for a consistent API
    (keras-tcn takes the middle step there), although its receptive field
    then reaches half into the zero padding after the sequence.

    Sequences shorter than `receptive_field`: when the static time length is
    known and shorter, `build` emits a `UserWarning` rather than an error.
    The computation stays well defined (the missing history is the zero
    padding, exactly as for the early steps of any sequence), and short
    inputs are legitimate (warm-up of a stream, variable-length batches,
    `None` time dimension). What the warning flags is wasted capacity: the
    largest dilations then see mostly padding, so a smaller `dilations`
    would do the same job with fewer parameters.

    Args:
        filters: channels of every block.
        kernel_size: kernel length of every convolution.
        dilations: dilation rate of each block of a stack (positive ints).
        num_stacks: number of repetitions of the `dilations` stack.
        dropout: `SpatialDropout1D` rate inside the blocks.
        norm: `None`, `"batch"` or `"layer"` (see `TemporalBlock`).
        activation: activation name or callable.
        use_skip_connections: sum every block's output.
        return_sequences: return every step (`True`) or the last one.
        causal: causal (`True`) or "same" (`False`) padding.
        kernel_initializer: initializer of the convolution kernels.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: float tensor `(batch, time, channels)`.
        training: Python bool; dropout and batch norm in training mode.

    Input shape:
        `(batch, time, channels)`.

    Output shape:
        `(batch, time, filters)` if `return_sequences`, else
        `(batch, filters)`.

    Example:

    >>> tcn = TCN(filters=16, dilations=(1, 2, 4))
    >>> tcn.receptive_field
    29
    >>> tuple(tcn(keras.ops.ones((2, 32, 3))).shape)
    (2, 16)

    References:
        - [Bai et al., 2018](https://arxiv.org/abs/1803.01271)
        - [keras-tcn](https://github.com/philipperemy/keras-tcn)
    """

    def __init__(self, filters=64, kernel_size=3,
                 dilations=(1, 2, 4, 8, 16, 32), num_stacks=1, dropout=0.0,
                 norm=None, activation="relu", use_skip_connections=True,
                 return_sequences=False, causal=True,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("filters", filters)
        check_positive_int("kernel_size", kernel_size)
        if (isinstance(dilations, (str, bytes))
                or not hasattr(dilations, "__iter__")
                or not list(dilations)
                or not all(is_positive_int(d) for d in dilations)):
            raise ValueError(
                "`dilations` must be a non-empty sequence of positive "
                f"integers. Received: dilations={dilations!r}")
        check_positive_int("num_stacks", num_stacks)
        check_rate("dropout", dropout)
        _check_norm(norm)
        check_activation(activation)
        check_initializer("kernel_initializer", kernel_initializer)
        for name, value in (("use_skip_connections", use_skip_connections),
                            ("return_sequences", return_sequences),
                            ("causal", causal)):
            if not isinstance(value, bool):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={value!r}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilations = tuple(dilations)
        self.num_stacks = num_stacks
        self.dropout = dropout
        self.norm = norm
        self.activation = serialize_activation(activation)
        self.use_skip_connections = use_skip_connections
        self.return_sequences = return_sequences
        self.causal = causal
        self.kernel_initializer = serialize_initializer(kernel_initializer)
        self._activation_fn = keras.activations.get(activation)

    @property
    def receptive_field(self):
        """Input steps one output step depends on (two convs per block)."""
        return (1 + 2 * (self.kernel_size - 1) * self.num_stacks
                * sum(self.dilations))

    def build(self, input_shape):
        _check_sequence_shape("TCN", input_shape)
        length = input_shape[1]
        if length is not None and length < self.receptive_field:
            warnings.warn(
                f"TCN receptive field ({self.receptive_field} steps) exceeds "
                f"the input length ({length}): the largest dilations see "
                "mostly zero padding. Consider smaller `dilations`, "
                "`kernel_size` or `num_stacks`.", UserWarning, stacklevel=2)
        self._blocks = []
        shape = tuple(input_shape)
        for stack in range(self.num_stacks):
            for i, dilation in enumerate(self.dilations):
                block = TemporalBlock(
                    self.filters, self.kernel_size, dilation,
                    dropout=self.dropout, norm=self.norm,
                    activation=self.activation, causal=self.causal,
                    kernel_initializer=self.kernel_initializer,
                    dtype=self.dtype_policy,
                    name=f"block_{stack}_{i}_d{dilation}")
                block.build(shape)
                shape = block.compute_output_shape(shape)
                self._blocks.append(block)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs  # (batch, time, channels)
        skips = None
        for block in self._blocks:
            x = block(x, training=training)  # (batch, time, filters)
            if self.use_skip_connections:
                skips = x if skips is None else skips + x
        if self.use_skip_connections:
            x = self._activation_fn(skips)
        if not self.return_sequences:
            x = x[:, -1, :]  # (batch, filters)
        return x

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return tuple(input_shape[:-1]) + (self.filters,)
        return (input_shape[0], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "dilations": list(self.dilations),
            "num_stacks": self.num_stacks,
            "dropout": self.dropout,
            "norm": self.norm,
            "activation": self.activation,
            "use_skip_connections": self.use_skip_connections,
            "return_sequences": self.return_sequences,
            "causal": self.causal,
            "kernel_initializer": self.kernel_initializer,
        })
        return config
