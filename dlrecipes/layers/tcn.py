"""Temporal convolutional network: `TemporalBlock` and `TCN` (Bai et al. 2018).

Plain Keras 3 layers on `keras.ops`, so they serialize under every backend.
`TCN` takes keras-tcn's argument names too (`nb_filters`, `nb_stacks`,
`padding`, `dropout_rate`, `use_batch_norm`, `use_layer_norm`): code written
for keras-tcn's `TCN` runs unchanged (see the `TCN` docstring's migration
table).
"""

import warnings

import keras

from dlrecipes.layers._checks import (check_bool, check_choice,
                                      check_input_rank, check_positive_int,
                                      check_rate, clone_initializer,
                                      get_activation, get_initializer,
                                      get_regularizer, is_positive_int,
                                      resolve_alias)
from dlrecipes.layers.normalization import check_norm, normalization

# The norms a causal block can use: group norm pools over time steps.
TCN_NORMALIZATIONS = ("batch", "layer", "none")
# What the skip connections of a `TCN` sum.
SKIP_SUMS = ("branches", "blocks")


@keras.saving.register_keras_serializable(package="dlrecipes")
class TemporalBlock(keras.layers.Layer):
    """Residual block of two dilated 1D convolutions (Bai et al. 2018).

    The residual branch is `[Conv1D(dilation) -> norm -> activation ->
    SpatialDropout1D] x 2`; the block returns `activation(branch +
    shortcut)`, where the shortcut is the input (through a 1x1 `Conv1D` when
    the channel count changes). With `causal=True` the convolutions pad on
    the left only, so the output at step `t` depends on inputs `<= t` only.

    The receptive field of one block is `1 + 2 * (kernel_size - 1) *
    dilation_rate` steps.

    Args:
        filters: number of output channels of both convolutions.
        kernel_size: length of the convolution kernels.
        dilation_rate: dilation of both convolutions.
        dropout: rate of the `SpatialDropout1D` after each convolution
            (whole channels are dropped).
        norm: `"none"` (or `None`), `"batch"` (`BatchNormalization`) or
            `"layer"` (`LayerNormalization` over the channels): the names of
            `dlrecipes.layers.NORMALIZATIONS` that keep a block causal.
            Layer norm is per time step, hence causal and streaming-safe;
            batch norm's training statistics pool over batch and time (in
            inference it is a per-channel affine map, so still causal).
        activation: activation name or callable.
        causal: `True` for `"causal"` padding, `False` for `"same"`.
        kernel_initializer: initializer of the convolution kernels (name,
            config, instance or function).
        kernel_regularizer: optional regularizer of the convolution kernels.
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
                 norm="none", activation="relu", causal=True,
                 kernel_initializer="he_normal", kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.dilation_rate = check_positive_int("dilation_rate",
                                                dilation_rate)
        self.dropout = check_rate("dropout", dropout)
        self.norm = check_norm(norm, TCN_NORMALIZATIONS)
        self.activation = get_activation(activation)
        self.causal = check_bool("causal", causal)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)

    @property
    def receptive_field(self):
        """Number of input steps that one output step depends on."""
        return 1 + 2 * (self.kernel_size - 1) * self.dilation_rate

    def _make_conv(self, kernel_size, dilation_rate, padding, name):
        return keras.layers.Conv1D(
            self.filters, kernel_size, padding=padding,
            dilation_rate=dilation_rate,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        check_input_rank(self, input_shape, 3, "(batch, time, channels)")
        padding = "causal" if self.causal else "same"
        # Sublayer attribute names and layer names are those of the first
        # release: `.keras` files store weights under them.
        self._convs, self._norms, self._dropouts = [], [], []
        shape = tuple(input_shape)
        for i in (1, 2):
            conv = self._make_conv(self.kernel_size, self.dilation_rate,
                                   padding, f"conv{i}")
            conv.build(shape)
            shape = shape[:-1] + (self.filters,)
            norm = None
            if self.norm != "none":
                norm = normalization(self.norm, dtype=self.dtype_policy,
                                     name=f"norm{i}")
                norm.build(shape)
            dropout = keras.layers.SpatialDropout1D(
                self.dropout, dtype=self.dtype_policy, name=f"dropout{i}")
            dropout.build(shape)
            self._convs.append(conv)
            self._norms.append(norm)
            self._dropouts.append(dropout)
        self._shortcut = None
        if input_shape[-1] != self.filters:
            self._shortcut = self._make_conv(1, 1, "valid", "shortcut")
            self._shortcut.build(tuple(input_shape))
        self.built = True

    def _output_and_branch(self, inputs, training=None):
        """`(activation(branch + shortcut), branch)`, both
        `(batch, time, filters)`; `TCN`'s skip connections sum the
        branches."""
        x = inputs  # (batch, time, channels)
        for conv, norm, dropout in zip(self._convs, self._norms,
                                       self._dropouts):
            x = conv(x)  # (batch, time, filters)
            if norm is not None:
                x = norm(x, training=training)
            x = self.activation(x)
            x = dropout(x, training=training)
        shortcut = inputs if self._shortcut is None else self._shortcut(
            inputs)
        return self.activation(x + shortcut), x

    def call(self, inputs, training=None):
        return self._output_and_branch(inputs, training=training)[0]

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
            "activation": keras.activations.serialize(self.activation),
            "causal": self.causal,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
        })
        return config


def _keras_tcn_arguments(kwargs, filters, num_stacks, dropout, norm, causal):
    """Pop keras-tcn's argument names from `kwargs`; return the canonical
    `(filters, num_stacks, dropout, norm, causal)`."""
    if isinstance(kwargs.get("nb_filters"), (list, tuple)):
        raise ValueError(
            "A list of filters (one per block, keras-tcn's `nb_filters` "
            "list) is not supported: every block has `filters` channels. "
            f"Received: nb_filters={kwargs['nb_filters']!r}")
    filters = resolve_alias(kwargs, "nb_filters", "filters", filters, 64)
    num_stacks = resolve_alias(kwargs, "nb_stacks", "num_stacks", num_stacks,
                               1)
    dropout = resolve_alias(kwargs, "dropout_rate", "dropout", dropout, 0.0)
    if "padding" in kwargs:
        padding = check_choice("padding", kwargs.pop("padding"),
                               ("causal", "same"))
        if causal is not True and causal != (padding == "causal"):
            raise ValueError(
                "`padding` (keras-tcn) and `causal` disagree: pass one of "
                f"them. Received: causal={causal!r}, padding={padding!r}")
        causal = padding == "causal"
    chosen = []
    for alias, value in (("use_batch_norm", "batch"),
                         ("use_layer_norm", "layer"),
                         ("use_weight_norm", "weight")):
        if alias in kwargs and check_bool(alias, kwargs.pop(alias)):
            chosen.append((alias, value))
    if ("use_weight_norm", "weight") in chosen:
        raise ValueError(
            "Weight normalization (keras-tcn's `use_weight_norm`) is not "
            "supported: use norm='layer' or norm='batch'. "
            "Received: use_weight_norm=True")
    if len(chosen) > 1:
        raise ValueError(
            "Only one normalization can be chosen. Received: "
            + ", ".join(f"{alias}=True" for alias, _ in chosen))
    if chosen:
        alias, value = chosen[0]
        if norm not in (None, "none", value):
            raise ValueError(
                f"`{alias}` (keras-tcn) and `norm` disagree: pass one of "
                f"them. Received: norm={norm!r}, {alias}=True")
        norm = value
    for alias, hint in (("go_backwards", "reverse the time axis of the "
                         "input yourself: keras.ops.flip(x, axis=1)"),
                        ("return_state", "a TCN has no recurrent state")):
        if alias in kwargs and check_bool(alias, kwargs.pop(alias)):
            raise ValueError(f"`{alias}=True` (keras-tcn) is not supported: "
                             f"{hint}. Received: {alias}=True")
    return filters, num_stacks, dropout, norm, causal


@keras.saving.register_keras_serializable(package="dlrecipes")
class TCN(keras.layers.Layer):
    """Temporal convolutional network (Bai et al. 2018), keras-tcn's API.

    `num_stacks` stacks of `TemporalBlock`s, one per entry of `dilations`.
    With `use_skip_connections=True` (the default) the output is the sum of
    every block's residual branch (`skip_sum="branches"`, as keras-tcn and
    WaveNet do): every block writes into the output directly, so each one
    gets its gradient without passing through the blocks above it, and the
    sum's scale does not grow with the residual stream. Otherwise the output
    is the last block's output.

    On Bai et al.'s adding problem (T=200; `TCN(filters=24, kernel_size=4,
    dilations=(1, 2, 4, 8, 16, 32))` + `Dense(1)`, Adam 2e-3, 8 epochs) the
    default learns at least as well as `use_skip_connections=False`: the
    figures, per seed and backend, are in the README ("Layers, schedules
    and callbacks") and `python -m bench.adding` reproduces them.

    `skip_sum="blocks"` sums each block's *whole output* (residual stream
    included) and applies the activation: what this layer did before. It
    learns the adding problem 5-10x worse; it is kept so that a `.keras`
    file saved then (its config has no `skip_sum`) loads and computes
    exactly as it was trained.

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

    Porting from keras-tcn (`from tcn import TCN`): keyword arguments run
    unchanged; keras-tcn's names are read and `get_config` writes these:

    | keras-tcn | here |
    |---|---|
    | `nb_filters=64` | `filters=64` (an int; keras-tcn's per-block list is refused) |
    | `kernel_size`, `dilations`, `use_skip_connections`, `return_sequences`, `activation`, `kernel_initializer` | the same |
    | `nb_stacks=1` | `num_stacks=1` |
    | `padding="causal"` / `"same"` | `causal=True` / `False` |
    | `dropout_rate=0.0` | `dropout=0.0` |
    | `use_batch_norm=True` / `use_layer_norm=True` | `norm="batch"` / `"layer"` |
    | `use_weight_norm=True`, `go_backwards=True`, `return_state=True` | refused with a `ValueError` (`False` is accepted) |

    keras-tcn's positional order differs (`nb_filters, kernel_size,
    nb_stacks, dilations, ...`): pass keywords. Other differences: with
    `causal=False` and `return_sequences=False` the last step is returned
    (keras-tcn: the middle one), and `receptive_field` is the same formula.

    Args:
        filters: channels of every block.
        kernel_size: kernel length of every convolution.
        dilations: dilation rate of each block of a stack (positive ints).
        num_stacks: number of repetitions of the `dilations` stack.
        dropout: `SpatialDropout1D` rate inside the blocks.
        norm: `"none"` (or `None`), `"batch"` or `"layer"` (see
            `TemporalBlock`).
        activation: activation name or callable.
        use_skip_connections: output the sum of the blocks' skip terms
            (see `skip_sum`) instead of the last block's output.
        return_sequences: return every step (`True`) or the last one.
        causal: causal (`True`) or "same" (`False`) padding.
        kernel_initializer: initializer of the convolution kernels (name,
            config, instance or function).
        kernel_regularizer: optional regularizer of the convolution kernels.
        skip_sum: what the skip connections sum: `"branches"` (each block's
            residual branch; the default) or `"blocks"` (each block's
            output, then the activation; the former behaviour, see above).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...)
            and keras-tcn's argument names (see the table).

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
    >>> TCN(nb_filters=16, padding="same", use_layer_norm=True).get_config()[
    ...     "norm"]
    'layer'

    References:
        - [Bai et al., 2018](https://arxiv.org/abs/1803.01271)
        - [van den Oord et al., 2016](https://arxiv.org/abs/1609.03499)
          (WaveNet: skip connections from the residual branches)
        - [keras-tcn](https://github.com/philipperemy/keras-tcn)
    """

    def __init__(self, filters=64, kernel_size=3,
                 dilations=(1, 2, 4, 8, 16, 32), num_stacks=1, dropout=0.0,
                 norm="none", activation="relu", use_skip_connections=True,
                 return_sequences=False, causal=True,
                 kernel_initializer="he_normal", kernel_regularizer=None,
                 skip_sum="branches", **kwargs):
        filters, num_stacks, dropout, norm, causal = _keras_tcn_arguments(
            kwargs, filters, num_stacks, dropout, norm, causal)
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        if (isinstance(dilations, (str, bytes))
                or not hasattr(dilations, "__iter__")
                or not list(dilations)
                or not all(is_positive_int(d) for d in dilations)):
            raise ValueError(
                "`dilations` must be a non-empty sequence of positive "
                f"integers. Received: dilations={dilations!r}")
        self.dilations = tuple(dilations)
        self.num_stacks = check_positive_int("num_stacks", num_stacks)
        self.dropout = check_rate("dropout", dropout)
        self.norm = check_norm(norm, TCN_NORMALIZATIONS)
        self.activation = get_activation(activation)
        self.use_skip_connections = check_bool("use_skip_connections",
                                               use_skip_connections)
        self.return_sequences = check_bool("return_sequences",
                                           return_sequences)
        self.causal = check_bool("causal", causal)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.skip_sum = check_choice("skip_sum", skip_sum, SKIP_SUMS)

    @property
    def receptive_field(self):
        """Input steps one output step depends on (two convs per block)."""
        return (1 + 2 * (self.kernel_size - 1) * self.num_stacks
                * sum(self.dilations))

    def build(self, input_shape):
        check_input_rank(self, input_shape, 3, "(batch, time, channels)")
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
                    kernel_initializer=clone_initializer(
                        self.kernel_initializer),
                    kernel_regularizer=self.kernel_regularizer,
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
            # x: the residual stream, branch: what the block added to it;
            # both (batch, time, filters).
            x, branch = block._output_and_branch(x, training=training)
            if self.use_skip_connections:
                term = branch if self.skip_sum == "branches" else x
                skips = term if skips is None else skips + term
        if self.use_skip_connections:
            x = skips if self.skip_sum == "branches" else self.activation(
                skips)
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
            "activation": keras.activations.serialize(self.activation),
            "use_skip_connections": self.use_skip_connections,
            "return_sequences": self.return_sequences,
            "causal": self.causal,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "skip_sum": self.skip_sum,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # A config written before `skip_sum` existed: the layer summed the
        # blocks' outputs, and its weights were trained that way.
        config.setdefault("skip_sum", "blocks")
        return super().from_config(config)
