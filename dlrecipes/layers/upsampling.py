"""Up-sampling for dense prediction: a decoder block and a U-Net, 1-D and
2-D.

- `UpsamplingBlock`: up-sample by `factor` (a transposed convolution, or
  nearest / bilinear interpolation followed by a 1x1 projection), join an
  optional skip connection (channel concatenation), then `convs`
  `ConvNormAct` convolutions: one decoder stage of a U-Net or an FCN.
- `UNet`: `depth` encoder stages (convolutions, then 2x max pooling), a
  bottleneck, and `depth` `UpsamplingBlock`s back to the input resolution,
  with skip connections from each encoder stage (Ronneberger et al. 2015)
  or without them (`skip_connections=False`: an FCN-style encoder-decoder,
  what the skips add is the difference). It maps `(batch, *spatial,
  channels)` to `(batch, *spatial, filters)`: put a 1x1 convolution with
  a softmax on top for per-pixel classes.
"""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_bool, check_choice, check_count,
                                      check_positive_int, check_rate,
                                      clone_initializer, get_activation,
                                      get_initializer, get_regularizer)
from dlrecipes.layers.conv_norm_act import (ConvNormAct, check_input_shape,
                                           check_rank, make_conv)
from dlrecipes.layers.normalization import check_norm

UPSAMPLINGS = ("transpose", "nearest", "bilinear")

_TRANSPOSE = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose}
_POOL = {1: keras.layers.MaxPooling1D, 2: keras.layers.MaxPooling2D}


def _is_shape_list(input_shape):
    """Whether `input_shape` is a list of shapes (a `[x, skip]` input)."""
    return (isinstance(input_shape, (list, tuple)) and len(input_shape) > 0
            and isinstance(input_shape[0], (list, tuple)))


@keras.saving.register_keras_serializable(package="dlrecipes")
class UpsamplingBlock(keras.layers.Layer):
    """A decoder block: up-sample, join a skip connection, convolve.

    1. Up-sample every spatial axis by `factor`:
       - `"transpose"`: a transposed convolution (kernel `factor`, stride
         `factor`, `filters` channels): a learned up-sampling;
       - `"nearest"` / `"bilinear"`: `UpSampling1D`/`UpSampling2D`
         interpolation (`"bilinear"` is linear interpolation when
         `rank=1`), then a 1x1 convolution to `filters` channels.
    2. With a skip connection (the layer called on `[x, skip]`), concatenate
       `skip` (same spatial size as the up-sampled `x`) on the channel axis.
    3. `convs` `ConvNormAct` convolutions (`kernel_size`, "same" padding) of
       `filters` channels, after an optional dropout.

    Args:
        filters: positive integer, the output channels.
        factor: positive integer, the up-sampling factor of every spatial
            axis.
        rank: 1 (sequences: `(batch, steps, channels)`) or 2 (images).
        upsample: `"transpose"`, `"nearest"` or `"bilinear"`.
        convs: integer >= 0, convolutions after the up-sampling.
        kernel_size: positive integer, their kernel size.
        norm: one of `NORMALIZATIONS` (`"batch"`, `"layer"`, `"group"`,
            `"none"`) in those convolutions.
        activation: Keras activation of those convolutions.
        dropout: float in [0, 1), dropout before the convolutions.
        kernel_initializer: initializer of every kernel.
        kernel_regularizer: optional regularizer of every kernel.
        norm_groups: groups of `norm="group"`; must divide `filters`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: a channels-last tensor, or a list `[x, skip]` of two.
        training: boolean, for normalization and dropout.

    Input shape:
        `(batch, *spatial, channels)`; `skip`: `(batch, *spatial * factor,
        skip_channels)`.

    Output shape:
        `(batch, *spatial * factor, filters)`.

    Example:

    >>> block = UpsamplingBlock(8, upsample="bilinear")
    >>> tuple(block(keras.ops.ones((2, 5, 5, 16))).shape)
    (2, 10, 10, 8)
    >>> x, skip = keras.ops.ones((2, 5, 5, 16)), keras.ops.ones((2, 10, 10, 4))
    >>> tuple(UpsamplingBlock(8)([x, skip]).shape)  # with a skip connection
    (2, 10, 10, 8)
    """

    def __init__(
        self,
        filters,
        factor=2,
        rank=2,
        upsample="transpose",
        convs=2,
        kernel_size=3,
        norm="batch",
        activation="relu",
        dropout=0.0,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_groups=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.factor = check_positive_int("factor", factor)
        self.rank = check_rank(rank, allowed=(1, 2))
        self.upsample = check_choice("upsample", upsample, UPSAMPLINGS)
        self.convs = check_count("convs", convs)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.norm = check_norm(norm)
        self.activation = get_activation(activation)
        self.dropout = check_rate("dropout", dropout)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)

    def _up_shape(self, shape):
        spatial = tuple(None if s is None else s * self.factor
                        for s in shape[1:-1])
        return (shape[0],) + spatial

    def _weights_args(self):
        return dict(
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy)

    def build(self, input_shape):
        if _is_shape_list(input_shape):
            if len(input_shape) != 2:
                raise ValueError(
                    "UpsamplingBlock takes a tensor or a list [x, skip] of "
                    f"two. Received: input_shape={input_shape}"
                )
            x_shape, skip_shape = (tuple(s) for s in input_shape)
            check_input_shape(self, skip_shape, self.rank, "skip")
        else:
            x_shape, skip_shape = tuple(input_shape), None
        check_input_shape(self, x_shape, self.rank)
        up = self._up_shape(x_shape)
        if skip_shape is not None and any(
                a is not None and b is not None and a != b
                for a, b in zip(up[1:], skip_shape[1:-1])):
            raise ValueError(
                "The skip connection must have the spatial size of the "
                f"up-sampled input, {up[1:]}. Received: "
                f"input_shape={[x_shape, skip_shape]}"
            )
        self._interpolation = None
        if self.upsample == "transpose":
            self._up = _TRANSPOSE[self.rank](
                self.filters, self.factor, strides=self.factor,
                padding="same", name="up", **self._weights_args())
            self._up.build(x_shape)
        else:
            # rank 1: the steps as a (steps, 1) image.
            size = (self.factor, 1) if self.rank == 1 else self.factor
            self._interpolation = keras.layers.UpSampling2D(
                size, interpolation=self.upsample, dtype=self.dtype_policy,
                name="interpolation")
            self._interpolation.build(
                x_shape[:2] + (1, x_shape[-1]) if self.rank == 1
                else x_shape)
            self._up = make_conv(self.rank, self.filters, 1, name="projection",
                                 **self._weights_args())
            self._up.build(up + (x_shape[-1],))
        channels = self.filters
        self._concatenate = None
        if skip_shape is not None:
            channels += skip_shape[-1]
            self._concatenate = keras.layers.Concatenate(
                dtype=self.dtype_policy, name="concatenate")
            self._concatenate.build([up + (self.filters,),
                                     up + (skip_shape[-1],)])
        self._dropout = None
        if self.dropout > 0:
            self._dropout = keras.layers.Dropout(
                self.dropout, dtype=self.dtype_policy, name="dropout")
        self._convs = []
        shape = up + (channels,)
        for i in range(self.convs):
            conv = ConvNormAct(
                self.filters, self.kernel_size, rank=self.rank,
                norm=self.norm, activation=self.activation,
                norm_groups=self.norm_groups, name=f"conv{i + 1}",
                **self._weights_args())
            conv.build(shape)
            shape = up + (self.filters,)
            self._convs.append(conv)
        self.built = True

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            x, skip = inputs
        else:
            x, skip = inputs, None
        if self._interpolation is None:
            x = self._up(x)  # the transposed convolution
        elif self.rank == 1:
            x = ops.expand_dims(x, 2)  # (batch, steps, 1, channels)
            x = self._up(ops.squeeze(self._interpolation(x), 2))
        else:
            x = self._up(self._interpolation(x))
        # x: (batch, *spatial * factor, filters)
        if skip is not None:
            x = self._concatenate([x, ops.cast(skip, x.dtype)])
        if self._dropout is not None:
            x = self._dropout(x, training=training)
        for conv in self._convs:
            x = conv(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if _is_shape_list(input_shape) else input_shape
        return self._up_shape(tuple(shape)) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "factor": self.factor,
            "rank": self.rank,
            "upsample": self.upsample,
            "convs": self.convs,
            "kernel_size": self.kernel_size,
            "norm": self.norm,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "norm_groups": self.norm_groups,
        })
        return config


@keras.saving.register_keras_serializable(package="dlrecipes")
class UNet(keras.layers.Layer):
    """A U-Net encoder-decoder (Ronneberger et al. 2015), 1-D or 2-D.

    Encoder stage `i` (`i = 0 .. depth - 1`): `convs` `ConvNormAct`
    convolutions of `filters * 2**i` channels, then 2x max pooling. The
    bottleneck: `convs` convolutions of `filters * 2**depth` channels, then
    `dropout`. Decoder stage `i` (`i = depth - 1 .. 0`): an
    `UpsamplingBlock` of `filters * 2**i` channels (factor 2, `upsample`)
    that concatenates the output of encoder stage `i` before its
    convolutions when `skip_connections` is True. Without them the decoder
    sees only the bottleneck (an FCN-style encoder-decoder): the fine
    detail the skips carry past the pooling is what it lacks.

    Every spatial size must be divisible by `2**depth` (checked where it
    is known when the layer builds).

    Args:
        filters: positive integer, the channels of the first stage (and of
            the output).
        depth: positive integer, the down-sampling stages.
        rank: 1 (sequences: `(batch, steps, channels)`) or 2 (images).
        upsample: `"transpose"`, `"nearest"` or `"bilinear"`.
        skip_connections: whether the decoder concatenates the encoder's
            features of the same resolution.
        convs: positive integer, convolutions per stage.
        kernel_size: positive integer, their kernel size.
        norm: one of `NORMALIZATIONS` in every convolution block.
        activation: Keras activation of every convolution block.
        dropout: float in [0, 1), dropout after the bottleneck.
        kernel_initializer: initializer of every kernel.
        kernel_regularizer: optional regularizer of every kernel.
        norm_groups: groups of `norm="group"`; must divide `filters`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: channels-last tensor.
        training: boolean, for normalization and dropout.

    Input shape:
        `(batch, *spatial, channels)`, each spatial size a multiple of
        `2**depth`.

    Output shape:
        `(batch, *spatial, filters)`: full input resolution.

    Example:

    >>> unet = UNet(8, depth=2)
    >>> tuple(unet(keras.ops.ones((2, 24, 24, 1))).shape)
    (2, 24, 24, 8)

    References:
        - [Ronneberger et al., 2015. U-Net: Convolutional Networks for
          Biomedical Image Segmentation](https://arxiv.org/abs/1505.04597)
        - [Long et al., 2015. Fully Convolutional Networks for Semantic
          Segmentation](https://arxiv.org/abs/1411.4038)
    """

    def __init__(
        self,
        filters,
        depth=2,
        rank=2,
        upsample="transpose",
        skip_connections=True,
        convs=2,
        kernel_size=3,
        norm="batch",
        activation="relu",
        dropout=0.0,
        kernel_initializer="he_normal",
        kernel_regularizer=None,
        norm_groups=32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.depth = check_positive_int("depth", depth)
        self.rank = check_rank(rank, allowed=(1, 2))
        self.upsample = check_choice("upsample", upsample, UPSAMPLINGS)
        self.skip_connections = check_bool("skip_connections",
                                           skip_connections)
        self.convs = check_positive_int("convs", convs)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.norm = check_norm(norm)
        self.activation = get_activation(activation)
        self.dropout = check_rate("dropout", dropout)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.norm_groups = check_positive_int("norm_groups", norm_groups)

    def _block_args(self):
        return dict(
            rank=self.rank, kernel_size=self.kernel_size, norm=self.norm,
            activation=self.activation,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            norm_groups=self.norm_groups, dtype=self.dtype_policy)

    def _conv(self, filters, name, shape):
        conv = ConvNormAct(filters, name=name, **self._block_args())
        conv.build(shape)
        return conv

    def build(self, input_shape):
        shape = tuple(input_shape)
        check_input_shape(self, shape, self.rank)
        unit = 2 ** self.depth
        if any(s is not None and s % unit for s in shape[1:-1]):
            raise ValueError(
                f"UNet with depth={self.depth} needs every spatial size "
                f"divisible by 2**{self.depth} = {unit}. "
                f"Received: input_shape={shape}"
            )
        # Flat lists: stage i holds _encoder_convs[i * convs:(i + 1) * convs].
        self._encoder_convs, self._pools, skips = [], [], []
        for stage in range(self.depth):
            width = self.filters * 2 ** stage
            for i in range(self.convs):
                self._encoder_convs.append(self._conv(
                    width, f"encoder{stage + 1}_conv{i + 1}", shape))
                shape = shape[:-1] + (width,)
            skips.append(shape)
            pool = _POOL[self.rank](2, dtype=self.dtype_policy,
                                    name=f"pool{stage + 1}")
            pool.build(shape)
            self._pools.append(pool)
            shape = pool.compute_output_shape(shape)
        self._bottleneck_convs = []
        width = self.filters * 2 ** self.depth
        for i in range(self.convs):
            self._bottleneck_convs.append(
                self._conv(width, f"bottleneck_conv{i + 1}", shape))
            shape = shape[:-1] + (width,)
        self._dropout = None
        if self.dropout > 0:
            self._dropout = keras.layers.Dropout(
                self.dropout, dtype=self.dtype_policy, name="dropout")
        self._decoder = []  # the deepest stage first
        for stage in reversed(range(self.depth)):
            block = UpsamplingBlock(
                self.filters * 2 ** stage, factor=2, upsample=self.upsample,
                convs=self.convs, name=f"decoder{stage + 1}",
                **self._block_args())
            block_input = ([shape, skips[stage]] if self.skip_connections
                           else shape)
            block.build(block_input)
            shape = block.compute_output_shape(block_input)
            self._decoder.append(block)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        skips = []
        n = self.convs
        for stage in range(self.depth):
            for conv in self._encoder_convs[stage * n:(stage + 1) * n]:
                x = conv(x, training=training)
            skips.append(x)  # (batch, *spatial / 2**stage, width)
            x = self._pools[stage](x)
        for conv in self._bottleneck_convs:
            x = conv(x, training=training)
        if self._dropout is not None:
            x = self._dropout(x, training=training)
        for block, skip in zip(self._decoder, reversed(skips)):
            x = block([x, skip] if self.skip_connections else x,
                      training=training)
        return x  # (batch, *spatial, filters)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "depth": self.depth,
            "rank": self.rank,
            "upsample": self.upsample,
            "skip_connections": self.skip_connections,
            "convs": self.convs,
            "kernel_size": self.kernel_size,
            "norm": self.norm,
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "norm_groups": self.norm_groups,
        })
        return config
