"""Position encodings: sinusoidal, learned, and token + position embedding."""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_initializer, fresh_initializer,
                                      is_positive_int, serialize_initializer)


def _check_initializer(name, value):
    """Check `value` and return it in serializable form."""
    check_initializer(name, value)
    return serialize_initializer(value)


def _check_sequence_shape(layer_name, input_shape):
    if len(input_shape) < 2 or input_shape[-1] is None:
        raise ValueError(
            f"`{layer_name}` expects inputs of shape (batch, seq, dim) with a "
            f"known dim. Received: input_shape={tuple(input_shape)}")


@keras.saving.register_keras_serializable(package="dlrecipes")
class SinePositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding (Vaswani et al. 2017, section 3.5).

    Returns the encoding, broadcast to the input's shape; add it to the
    input yourself (`x + SinePositionEncoding()(x)`), as in keras-hub:

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
        Same as the input.

    Example:

    >>> x = keras.ops.zeros((2, 10, 16))
    >>> tuple((x + SinePositionEncoding()(x)).shape)
    (2, 10, 16)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        if (isinstance(max_wavelength, bool)
                or not isinstance(max_wavelength, (int, float))
                or not max_wavelength > 1):
            raise ValueError(
                "`max_wavelength` must be a number greater than 1. "
                f"Received: max_wavelength={max_wavelength!r}")
        self.max_wavelength = max_wavelength

    def build(self, input_shape):
        _check_sequence_shape("SinePositionEncoding", input_shape)
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

    Holds a `(sequence_length, dim)` table and returns its first `seq` rows
    broadcast to the input's shape; add it to the input yourself. Inputs may
    be shorter than `sequence_length`, never longer.

    Args:
        sequence_length: the maximum sequence length.
        initializer: initializer of the table.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: tensor `(batch, seq, dim)`; only its shape is used.
        start_index: first row of the table to use (incremental decoding).

    Input shape:
        `(batch, seq, dim)` with `seq <= sequence_length`.

    Output shape:
        Same as the input.

    Example:

    >>> x = keras.ops.zeros((2, 10, 16))
    >>> tuple((x + PositionEmbedding(sequence_length=32)(x)).shape)
    (2, 10, 16)

    References:
        - [Devlin et al., 2018](https://arxiv.org/abs/1810.04805)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        if not is_positive_int(sequence_length):
            raise ValueError(
                "`sequence_length` must be a positive integer. "
                f"Received: sequence_length={sequence_length!r}")
        self.sequence_length = sequence_length
        self.initializer = _check_initializer("initializer", initializer)

    def _check_length(self, input_shape):
        length = input_shape[-2]
        if length is not None and length > self.sequence_length:
            raise ValueError(
                f"Input sequence length ({length}) exceeds `sequence_length`. "
                f"Received: sequence_length={self.sequence_length}")

    def build(self, input_shape):
        _check_sequence_shape("PositionEmbedding", input_shape)
        self._check_length(input_shape)
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.sequence_length, input_shape[-1]),
            initializer=fresh_initializer(self.initializer), trainable=True)
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, dim = shape[-2], shape[-1]
        table = ops.cast(self.embeddings, self.compute_dtype)
        table = ops.slice(table, (start_index, 0), (length, dim))  # (seq, dim)
        return ops.broadcast_to(table, shape)

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "sequence_length": self.sequence_length,
            "initializer": self.initializer,
        })
        return config


@keras.saving.register_keras_serializable(package="dlrecipes")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus learned position embedding.

    `Embedding(vocabulary_size, embedding_dim)(ids) + PositionEmbedding`.
    With `mask_zero=True`, id 0 is padding and the output carries the Keras
    mask `ids != 0`, which downstream layers such as `TransformerEncoder`
    use as their padding mask.

    Args:
        vocabulary_size: number of token ids.
        sequence_length: the maximum sequence length.
        embedding_dim: width of both embeddings.
        mask_zero: treat id 0 as padding and emit a mask.
        embeddings_initializer: initializer of both tables.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: int tensor `(batch, seq)` of token ids.
        start_index: position of the first token (incremental decoding).

    Input shape:
        `(batch, seq)` with `seq <= sequence_length`.

    Output shape:
        `(batch, seq, embedding_dim)`.

    Example:

    >>> layer = TokenAndPositionEmbedding(100, 16, 8)
    >>> tuple(layer(keras.ops.ones((2, 10), "int32")).shape)
    (2, 10, 8)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim,
                 mask_zero=True, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size),
                            ("sequence_length", sequence_length),
                            ("embedding_dim", embedding_dim)):
            if not is_positive_int(value):
                raise ValueError(f"`{name}` must be a positive integer. "
                                 f"Received: {name}={value!r}")
        if not isinstance(mask_zero, bool):
            raise ValueError(
                "`mask_zero` must be a bool. "
                f"Received: mask_zero={mask_zero!r}")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.mask_zero = mask_zero
        self.embeddings_initializer = _check_initializer(
            "embeddings_initializer", embeddings_initializer)
        self.supports_masking = mask_zero

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                "`TokenAndPositionEmbedding` expects token ids of shape "
                f"(batch, seq). Received: input_shape={tuple(input_shape)}")
        self._token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim,
            embeddings_initializer=fresh_initializer(
                self.embeddings_initializer),
            dtype=self.dtype_policy, name="token_embedding")
        self._token_embedding.build(tuple(input_shape))
        embedded_shape = tuple(input_shape) + (self.embedding_dim,)
        self._position_embedding = PositionEmbedding(
            self.sequence_length, initializer=self.embeddings_initializer,
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
            "embeddings_initializer": self.embeddings_initializer,
        })
        return config
