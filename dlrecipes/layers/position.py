"""Position encodings: sinusoidal, learned, and token + position embedding.

Masks: the position layers propagate the Keras mask of their input (e.g.
from `Embedding(mask_zero=True)`), so `keras.layers.Add()([x, encoding])`
keeps it. The `+` operator does not: Keras masks live on layer outputs,
and `x + y` is an operation, not a layer, so its result carries no mask.
"""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_bool, check_positive_int,
                                      check_positive_number, check_rate,
                                      clone_initializer, get_initializer)


def _check_sequence_shape(layer, input_shape):
    if len(input_shape) < 2 or input_shape[-1] is None:
        raise ValueError(
            f"`{type(layer).__name__}` expects inputs of shape (batch, seq, "
            f"dim) with a known dim. Received: input_shape="
            f"{tuple(input_shape)}")


@keras.saving.register_keras_serializable(package="dlrecipes")
class SinePositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding (Vaswani et al. 2017, section 3.5).

    Returns the encoding, broadcast to the input's shape, as in keras-hub;
    add it to the input with `keras.layers.Add()`, which keeps the input's
    Keras mask (the layer passes the mask on, and `Add` combines the masks
    of its inputs; the `+` operator would drop it):

        PE[pos, 2i]     = sin(pos / max_wavelength ** (2i / dim))
        PE[pos, 2i + 1] = cos(pos / max_wavelength ** (2i / dim))

    The angles are computed in float32 and cast to the compute dtype at the
    end, so float16 policies keep accurate positions.

    Args:
        max_wavelength: the longest wavelength of the sinusoids.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: tensor `(batch, seq, dim)`; only its shape is used.
        start_index: position of the first step (for incremental decoding).

    Input shape:
        `(batch, seq, dim)`.

    Output shape:
        Same as the input; the input's Keras mask is passed on.

    Example:

    >>> ids = keras.Input((None,), dtype="int32")
    >>> x = keras.layers.Embedding(100, 16, mask_zero=True)(ids)
    >>> x = keras.layers.Add()([x, SinePositionEncoding()(x)])
    >>> encoder = TransformerEncoder(num_heads=2, intermediate_dim=32)
    >>> model = keras.Model(ids, encoder(x))  # the encoder gets the mask
    >>> tuple(model(np.array([[5, 8, 2, 0, 0]], "int32")).shape)
    (1, 5, 16)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = check_positive_number(
            "max_wavelength", max_wavelength, minimum=1)
        self.supports_masking = True

    def build(self, input_shape):
        _check_sequence_shape(self, input_shape)
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, dim = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        channels = ops.arange(dim)
        # 1 / max_wavelength ** (2i / dim), with i = channel // 2.
        exponents = ops.cast(2 * (channels // 2), "float32") / ops.cast(
            dim, "float32")
        inverse_timescales = ops.power(
            ops.cast(1.0 / self.max_wavelength, "float32"), exponents)
        angles = positions[:, None] * inverse_timescales[None, :]  # (seq, dim)
        is_cos = ops.cast(channels % 2, "float32")  # odd channels: cosine
        encoding = ops.sin(angles) * (1.0 - is_cos) + ops.cos(angles) * is_cos
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config


@keras.saving.register_keras_serializable(package="dlrecipes")
class PositionEmbedding(keras.layers.Layer):
    """Learned position embedding (as in BERT / GPT-2 and keras-hub).

    Holds a `(sequence_length, dim)` table and returns, for an input of
    `seq` steps, one row per position, broadcast to the input's shape; add
    it with `keras.layers.Add()`, which keeps the input's Keras mask (the
    layer passes it on).

    Inputs longer than `sequence_length` (keras-hub's hierarchical mode,
    Su 2020): with `a = hierarchical_alpha` and `u = (table - a * table[0])
    / (1 - a)`, position `p = q * sequence_length + r` gets `a * u[q] +
    (1 - a) * u[r]`, which is `table[p]` for `p < sequence_length`; up to
    `sequence_length ** 2` positions. `hierarchical_alpha=None` refuses
    inputs longer than `sequence_length` instead. Too long an input raises
    this layer's `ValueError` wherever its length is known when the layer
    runs: eager calls, JAX (always), and TensorFlow graphs traced with a
    static length (a first `fit`/`predict` on arrays). A TensorFlow graph
    traced for an unknown length (Keras retraces so once a model has seen
    several lengths) cannot check it: there the error is TensorFlow's own
    (a slice or gather out of range).

    Args:
        sequence_length: the number of positions the table holds.
        initializer: initializer of the table (name, config, instance or
            function).
        hierarchical_alpha: float in (0, 1), or `None` (see above). Default
            0.4, keras-hub's.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: tensor `(batch, seq, dim)`; only its shape is used.
        start_index: position of the first step (incremental decoding).

    Input shape:
        `(batch, seq, dim)`.

    Output shape:
        Same as the input; the input's Keras mask is passed on.

    Example:

    >>> x = keras.ops.zeros((2, 10, 16))
    >>> positions = PositionEmbedding(sequence_length=32)(x)
    >>> tuple(keras.layers.Add()([x, positions]).shape)
    (2, 10, 16)
    >>> tuple(PositionEmbedding(sequence_length=8)(x).shape)  # hierarchical
    (2, 10, 16)

    References:
        - [Devlin et al., 2018](https://arxiv.org/abs/1810.04805)
        - [Su, 2020](https://kexue.fm/archives/7947) (hierarchical
          decomposition of position embeddings)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform",
                 hierarchical_alpha=0.4, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = check_positive_int("sequence_length",
                                                  sequence_length)
        self.initializer = get_initializer("initializer", initializer)
        if hierarchical_alpha is not None and (
                check_rate("hierarchical_alpha", hierarchical_alpha) == 0):
            raise ValueError(
                "`hierarchical_alpha` must be None or a float in (0, 1). "
                f"Received: hierarchical_alpha={hierarchical_alpha!r}")
        self.hierarchical_alpha = hierarchical_alpha
        self.supports_masking = True

    @property
    def max_length(self):
        """The longest input the layer embeds."""
        if self.hierarchical_alpha is None:
            return self.sequence_length
        return self.sequence_length ** 2

    def _check_length(self, length, start_index=0):
        """Raise this layer's error for a too-long input whose length (and
        start) are Python ints; tensors (unknown until run time) pass."""
        if not (isinstance(length, int) and isinstance(start_index, int)):
            return
        if length + start_index <= self.max_length:
            return
        if self.hierarchical_alpha is None:
            how = ("with `hierarchical_alpha=None` the table's rows are the "
                   "only positions; set `hierarchical_alpha` (e.g. 0.4) to "
                   "embed longer inputs")
        else:
            how = ("the hierarchical mode reaches `sequence_length ** 2` "
                   f"= {self.max_length} positions")
        raise ValueError(
            f"`{type(self).__name__}` '{self.name}' embeds at most "
            f"{self.max_length} positions ({how}), but the input needs "
            f"positions up to {length + start_index} (length {length}, "
            f"start_index {start_index}). "
            f"Received: sequence_length={self.sequence_length}")

    def build(self, input_shape):
        _check_sequence_shape(self, input_shape)
        self._check_length(input_shape[-2])
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.sequence_length, input_shape[-1]),
            initializer=clone_initializer(self.initializer), trainable=True)
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, dim = shape[-2], shape[-1]
        self._check_length(length, start_index)
        table = ops.cast(self.embeddings, self.compute_dtype)  # (L, dim)
        fits = (isinstance(length, int) and isinstance(start_index, int)
                and length + start_index <= self.sequence_length)
        if fits or self.hierarchical_alpha is None:
            rows = ops.slice(table, (start_index, 0), (length, dim))
        else:
            alpha = self.hierarchical_alpha
            units = (table - alpha * table[:1]) / (1.0 - alpha)
            positions = ops.arange(length, dtype="int32") + start_index
            rows = (alpha * ops.take(units, positions // self.sequence_length,
                                     axis=0)
                    + (1.0 - alpha) * ops.take(
                        units, positions % self.sequence_length, axis=0))
        return ops.broadcast_to(rows, shape)  # rows: (seq, dim)

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape[-2])
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "sequence_length": self.sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
            "hierarchical_alpha": self.hierarchical_alpha,
        })
        return config


@keras.saving.register_keras_serializable(package="dlrecipes")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus learned position embedding.

    `Embedding(vocabulary_size, embedding_dim)(ids) + PositionEmbedding`
    (hierarchical beyond `sequence_length`, as `PositionEmbedding`).

    `mask_zero=False` by default, as keras-hub's `TokenAndPositionEmbedding`
    and `keras.layers.Embedding`: id 0 is a token like any other. With
    `mask_zero=True`, id 0 is padding (`TextVectorization`'s convention) and
    the output carries the Keras mask `ids != 0`, which downstream layers
    such as `TransformerEncoder` use as their padding mask.

    Args:
        vocabulary_size: number of token ids.
        sequence_length: the number of positions of the position table.
        embedding_dim: width of both embeddings.
        mask_zero: treat id 0 as padding and emit a mask.
        embeddings_initializer: initializer of both tables (name, config,
            instance or function).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: int tensor `(batch, seq)` of token ids.
        start_index: position of the first token (incremental decoding).

    Input shape:
        `(batch, seq)`.

    Output shape:
        `(batch, seq, embedding_dim)`.

    Example:

    >>> layer = TokenAndPositionEmbedding(100, 16, 8, mask_zero=True)
    >>> ids = np.array([[4, 9, 0, 0]], "int32")
    >>> tuple(layer(ids).shape)
    (1, 4, 8)
    >>> keras.ops.convert_to_numpy(layer.compute_mask(ids)).tolist()
    [[True, True, False, False]]

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim,
                 mask_zero=False, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = check_positive_int("vocabulary_size",
                                                  vocabulary_size)
        self.sequence_length = check_positive_int("sequence_length",
                                                  sequence_length)
        self.embedding_dim = check_positive_int("embedding_dim",
                                                embedding_dim)
        self.mask_zero = check_bool("mask_zero", mask_zero)
        self.embeddings_initializer = get_initializer(
            "embeddings_initializer", embeddings_initializer)
        self.supports_masking = mask_zero

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                "`TokenAndPositionEmbedding` expects token ids of shape "
                f"(batch, seq). Received: input_shape={tuple(input_shape)}")
        self._token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim,
            embeddings_initializer=clone_initializer(
                self.embeddings_initializer),
            dtype=self.dtype_policy, name="token_embedding")
        self._token_embedding.build(tuple(input_shape))
        embedded_shape = tuple(input_shape) + (self.embedding_dim,)
        self._position_embedding = PositionEmbedding(
            self.sequence_length,
            initializer=clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy, name="position_embedding")
        self._position_embedding.build(embedded_shape)
        self.built = True

    def call(self, inputs, start_index=0):
        x = self._token_embedding(inputs)  # (batch, seq, embedding_dim)
        return x + self._position_embedding(x, start_index=start_index)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "embedding_dim": self.embedding_dim,
            "mask_zero": self.mask_zero,
            "embeddings_initializer": keras.initializers.serialize(
                self.embeddings_initializer),
        })
        return config
