"""ResNet residual block: basic or bottleneck, post- or pre-activation."""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_bool, check_positive_int,
                                      check_rate, clone_initializer,
                                      get_activation, get_initializer,
                                      get_regularizer)
from dlrecipes.layers.conv_norm_act import (as_tuple, check_input_shape,
                                            check_rank, conv_output_size,
                                            make_conv)
from dlrecipes.layers.normalization import check_norm, normalization
from dlrecipes.layers.regularization import StochasticDepth

BOTTLENECK_EXPANSION = 4


@keras.saving.register_keras_serializable(package="dlrecipes")
class ResidualBlock(keras.layers.Layer):
    """A ResNet residual block (He et al. 2016), channels-last.

    Four variants, from `bottleneck` x `preactivation`:

    - basic, post-activation (ResNet v1):
      `conv(k, strides)-norm-act-[dropout]-conv(k)-norm`, add, act.
    - bottleneck, post-activation: `conv(1)-norm-act-conv(k, strides)-
      norm-act-[dropout]-conv(1, filters)-norm`, add, act; the inner width
      is `filters // 4` (expansion 4) and the stride sits on the k x k conv
      (ResNet "v1.5", as in torchvision).
    - basic, pre-activation (ResNet v2): `norm-act` on the input, then
      `conv(k, strides)-norm-act-[dropout]-conv(k)`, add, no final
      activation.
    - bottleneck, pre-activation: `norm-act`, then `conv(1)-norm-act-
      conv(k, strides)-norm-act-[dropout]-conv(1, filters)`, add.

    The shortcut is the identity when `strides == 1` and the input already
    has `filters` channels; otherwise, and only then, it is a projection: a
    1x1 conv with `strides` (named `"shortcut_conv"`), followed by a norm in
    post-activation blocks. In pre-activation blocks the projection takes
    the pre-activated input and has no norm of its own, as in v2 (the next
    block's pre-activation normalizes the sum).

    Every conv followed by a norm has no bias (unless `norm="none"`).
    `drop_path` applies `StochasticDepth` to the residual branch before the
    addition.

    Args:
        filters: positive integer, the number of output channels (at least
            4 with `bottleneck=True`).
        kernel_size: positive integer, the size of the k x k conv(s).
        strides: positive integer, the stride of the block (2 halves each
            spatial size, rounding up).
        rank: 1 (`Conv1D`, sequences) or 2 (`Conv2D`, images).
        bottleneck: whether to use the 1x1-kxk-1x1 bottleneck block.
        preactivation: whether to use the pre-activation (v2) ordering.
        norm: one of `NORMALIZATIONS` (`"batch"`, `"layer"`, `"group"`,
            `"none"`; `None` means `"none"`).
        activation: Keras activation name or callable.
        dropout: float in [0, 1), dropout rate between the convolutions
            (before the last conv of the branch).
        drop_path: float in [0, 1), stochastic-depth rate of the branch.
        kernel_initializer: initializer of the conv kernels (name, config,
            instance or function).
        kernel_regularizer: optional regularizer of the conv kernels.
        norm_groups: groups of `norm="group"`; must divide every normalized
            channel count (input, inner width and `filters`).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: channels-last tensor.
        training: boolean; for normalization, dropout and drop path.

    Input shape:
        `(batch, *spatial, channels)` with `rank` spatial axes.

    Output shape:
        `(batch, *new_spatial, filters)` with
        `new_size = ceil(size / strides)` ("same" padding).

    Example:

    >>> block = ResidualBlock(32, strides=2, bottleneck=True)
    >>> tuple(block(keras.ops.ones((2, 9, 9, 16))).shape)
    (2, 5, 5, 32)
    >>> block.has_projection
    True

    References:
        - [He et al., 2016. Deep Residual Learning for Image Recognition](
          https://arxiv.org/abs/1512.03385)
        - [He et al., 2016. Identity Mappings in Deep Residual Networks](
          https://arxiv.org/abs/1603.05027)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        rank=2,
        bottleneck=False,
        preactivation=False,
        norm="batch",
        activation="relu",
        dropout=0.0,
        drop_path=0.0,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_groups=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.strides = check_positive_int("strides", strides)
        self.rank = check_rank(rank, allowed=(1, 2))
        self.bottleneck = check_bool("bottleneck", bottleneck)
        self.preactivation = check_bool("preactivation", preactivation)
        if bottleneck and filters < BOTTLENECK_EXPANSION:
            raise ValueError(
                f"`filters` must be at least {BOTTLENECK_EXPANSION} when "
                f"bottleneck=True (the inner width is filters // "
                f"{BOTTLENECK_EXPANSION}). Received: filters={filters!r}"
            )
        self.norm = check_norm(norm)
        self.activation = get_activation(activation)
        self.dropout = check_rate("dropout", dropout)
        self.drop_path = check_rate("drop_path", drop_path)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)
        self._has_projection = None

    @property
    def has_projection(self):
        """Whether the shortcut is a 1x1 projection; `None` before build."""
        return self._has_projection

    def _make_conv(self, filters, kernel_size, strides, use_bias, name):
        return make_conv(
            self.rank, filters, kernel_size,
            strides=strides,
            padding="same",
            use_bias=use_bias,
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
        no_norm = self.norm == "none"
        pre = self.preactivation
        self._activation = keras.layers.Activation(
            self.activation, dtype=self.dtype_policy, name="activation")

        # The branch: (filters, kernel, strides) of each conv.
        if self.bottleneck:
            width = self.filters // BOTTLENECK_EXPANSION
            specs = [(width, 1, 1), (width, self.kernel_size, self.strides),
                     (self.filters, 1, 1)]
        else:
            specs = [(self.filters, self.kernel_size, self.strides),
                     (self.filters, self.kernel_size, 1)]

        if pre:
            self._preact_norm = self._make_norm("preact_norm")
            self._preact_norm.build(input_shape)
        self._convs = []
        self._norms = []
        shape = input_shape
        for i, (filters, kernel, strides) in enumerate(specs):
            last = i == len(specs) - 1
            # In v2 the last conv is not followed by a norm inside the block.
            has_norm = not (pre and last)
            conv = self._make_conv(filters, kernel, strides,
                              use_bias=no_norm or not has_norm,
                              name=f"conv{i + 1}")
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            self._convs.append(conv)
            if has_norm:
                norm = self._make_norm(f"norm{i + 1}")
                norm.build(shape)
                self._norms.append(norm)
        self._activation.build(shape)
        self._dropout = None
        if self.dropout > 0:
            self._dropout = keras.layers.Dropout(
                self.dropout, dtype=self.dtype_policy, name="dropout")
        self._drop_path = None
        if self.drop_path > 0:
            self._drop_path = StochasticDepth(
                self.drop_path, dtype=self.dtype_policy, name="drop_path")

        self._has_projection = (self.strides != 1
                                or input_shape[-1] != self.filters)
        self._shortcut_conv = None
        self._shortcut_norm = None
        if self._has_projection:
            self._shortcut_conv = self._make_conv(
                self.filters, 1, self.strides, use_bias=no_norm or pre,
                name="shortcut_conv")
            self._shortcut_conv.build(input_shape)
            if not pre:
                self._shortcut_norm = self._make_norm("shortcut_norm")
                self._shortcut_norm.build(
                    self._shortcut_conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        act = self._activation
        x = inputs
        if self.preactivation:
            x = act(self._preact_norm(inputs, training=training))
        preact = x  # the input of the projection shortcut
        num_convs = len(self._convs)
        for i, conv in enumerate(self._convs):
            last = i == num_convs - 1
            if last and self._dropout is not None:
                x = self._dropout(x, training=training)
            x = conv(x)
            if i < len(self._norms):
                x = self._norms[i](x, training=training)
            if not last:
                x = act(x)
        # x: (batch, *new_spatial, filters), the residual branch.
        if self._drop_path is not None:
            x = self._drop_path(x, training=training)

        if self._shortcut_conv is None:
            shortcut = inputs
        else:
            shortcut = self._shortcut_conv(preact)
            if self._shortcut_norm is not None:
                shortcut = self._shortcut_norm(shortcut, training=training)
        x = ops.add(x, shortcut)
        return x if self.preactivation else act(x)

    def compute_output_shape(self, input_shape):
        spatial = tuple(
            conv_output_size(size, 1, s, "same")
            for size, s in zip(input_shape[1:-1],
                               as_tuple(self.strides, self.rank))
        )
        return (input_shape[0],) + spatial + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "rank": self.rank,
            "bottleneck": self.bottleneck,
            "preactivation": self.preactivation,
            "norm": self.norm,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "drop_path": self.drop_path,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "norm_groups": self.norm_groups,
        })
        return config
