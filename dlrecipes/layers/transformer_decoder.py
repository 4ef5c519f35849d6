"""Transformer decoder block on `keras.ops.dot_product_attention`.

keras-hub's `TransformerDecoder` (its argument and call-argument names,
causal self-attention, optional cross-attention to an encoder's output,
post- or pre-norm), with `TransformerEncoder`'s fused projections and the
backend's fused attention kernel instead of `keras.layers.MultiHeadAttention`.
"""

import keras
from keras import ops

from dlrecipes.layers._checks import (check_bool, check_input_rank,
                                      check_positive_int,
                                      check_positive_number, check_rate,
                                      clone_initializer, get_activation,
                                      get_initializer, get_regularizer)
from dlrecipes.layers.transformer import (and_causal, attend,
                                          check_flash_attention, merge_masks)


@keras.saving.register_keras_serializable(package="dlrecipes")
class TransformerDecoder(keras.layers.Layer):
    """Transformer decoder block: causal self-attention, cross-attention to
    an encoder's output (optional) and a feed-forward network.

    Call it as `layer(decoder_sequence, encoder_sequence)` for an
    encoder-decoder (Vaswani et al.) or as `layer(decoder_sequence)` for a
    decoder-only stack (GPT): the first call decides whether the
    cross-attention sub-block exists, and later calls must pass the same
    inputs. Each sub-block has a residual connection and a
    `LayerNormalization`, after the residual addition
    (`normalize_first=False`) or on the sub-block's input
    (`normalize_first=True`). The hidden size is the decoder sequence's
    last dimension; the encoder sequence may be of another width (its keys
    and values are projected to the decoder's heads).

    The self-attention uses one fused QKV projection, the cross-attention a
    query projection and one fused key/value projection; both call
    `keras.ops.dot_product_attention` (the backend's fused kernel). The
    parameters match keras-hub's decoder (two
    `keras.layers.MultiHeadAttention` with `key_dim = hidden // num_heads`)
    one for one. The attention is computed explicitly, with the same masks
    and a float32 softmax, when its probabilities are needed
    (`return_attention_scores=True`, or training with
    `attention_dropout > 0`).

    Masks (1/True: real token, or may attend): `decoder_padding_mask`
    `(batch, dec_seq)`, `decoder_attention_mask` `(batch, dec_seq,
    dec_seq)` and the causal mask (`use_causal_mask=True`, the default) are
    combined with a logical AND for the self-attention;
    `encoder_padding_mask` `(batch, enc_seq)` and `encoder_attention_mask`
    `(batch, dec_seq, enc_seq)` for the cross-attention. A Keras mask
    carried by either sequence (e.g. from `Embedding(mask_zero=True)`) is
    used as its padding mask when none is passed, and the decoder
    sequence's mask is propagated. Padded keys never affect the outputs at
    real positions; outputs at padded positions are unspecified.

    For keras-hub users (`keras_hub.layers.TransformerDecoder`): every
    keras-hub argument and call argument is accepted with the same meaning
    (pass constructor arguments as keywords: keras-hub's positional order
    is `intermediate_dim, num_heads`). Defaults differ as in
    `TransformerEncoder`: `dropout` 0.1 (keras-hub 0, where it also drops
    attention probabilities: pass `attention_dropout=dropout` for that),
    `activation` "gelu" (keras-hub "relu"). keras-hub's key/value caches
    for incremental decoding are not implemented: a decoding loop calls the
    layer on the whole prefix (the causal mask makes each step's outputs
    those of the full sequence).

    Args:
        num_heads: number of attention heads; must divide the hidden size.
        intermediate_dim: width of the feed-forward hidden layer.
        dropout: dropout rate after each attention and after the
            feed-forward network.
        activation: activation of the feed-forward hidden layer.
        normalize_first: pre-norm (`True`) or post-norm (`False`).
        layer_norm_epsilon: epsilon of the layer norms.
        kernel_initializer: initializer of every kernel (name, config,
            instance or function).
        bias_initializer: initializer of every bias.
        kernel_regularizer: optional regularizer of every kernel.
        bias_regularizer: optional regularizer of every bias.
        use_bias: whether the projections have biases.
        attention_dropout: dropout rate on the attention probabilities.
        flash_attention: passed to `keras.ops.dot_product_attention` (`None`:
            the backend decides).
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        decoder_sequence: float tensor `(batch, dec_seq, hidden)`.
        encoder_sequence: float tensor `(batch, enc_seq, enc_hidden)`, or
            None (no cross-attention).
        decoder_padding_mask, decoder_attention_mask, encoder_padding_mask,
            encoder_attention_mask: optional masks, shapes above.
        use_causal_mask: mask attention to future decoder positions.
        training: Python bool; dropout in training mode.
        return_attention_scores: also return the attention probabilities:
            `(outputs, self_scores)` without cross-attention, `(outputs,
            self_scores, cross_scores)` with it; `self_scores` is `(batch,
            num_heads, dec_seq, dec_seq)`, `cross_scores` `(batch,
            num_heads, dec_seq, enc_seq)`.

    Output shape:
        `(batch, dec_seq, hidden)` (and the scores, see above).

    Example:

    >>> decoder = TransformerDecoder(num_heads=4, intermediate_dim=64)
    >>> targets = keras.ops.ones((2, 5, 32))
    >>> sources = keras.ops.ones((2, 9, 16))
    >>> tuple(decoder(targets, sources).shape)
    (2, 5, 32)
    >>> outputs, self_scores, cross_scores = decoder(
    ...     targets, sources, return_attention_scores=True)
    >>> tuple(cross_scores.shape)
    (2, 4, 5, 9)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.1,
                 activation="gelu", normalize_first=False,
                 layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, use_bias=True, attention_dropout=0.0,
                 flash_attention=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = check_positive_int("intermediate_dim",
                                                   intermediate_dim)
        self.dropout = check_rate("dropout", dropout)
        self.activation = get_activation(activation)
        self.normalize_first = check_bool("normalize_first", normalize_first)
        self.layer_norm_epsilon = check_positive_number("layer_norm_epsilon",
                                                        layer_norm_epsilon)
        self.kernel_initializer = get_initializer("kernel_initializer",
                                                  kernel_initializer)
        self.bias_initializer = get_initializer("bias_initializer",
                                                bias_initializer)
        self.kernel_regularizer = get_regularizer("kernel_regularizer",
                                                  kernel_regularizer)
        self.bias_regularizer = get_regularizer("bias_regularizer",
                                                bias_regularizer)
        self.use_bias = check_bool("use_bias", use_bias)
        self.attention_dropout = check_rate("attention_dropout",
                                            attention_dropout)
        self.flash_attention = check_flash_attention(flash_attention)
        self.supports_masking = True
        self._cross = False

    def _dense_kwargs(self, name):
        return dict(
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            dtype=self.dtype_policy, name=name)

    def _norm(self, name, shape):
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy,
            name=name)
        norm.build(shape)
        return norm

    def _dropout(self, rate, name, shape):
        dropout = keras.layers.Dropout(rate, dtype=self.dtype_policy,
                                       name=name)
        dropout.build(shape)
        return dropout

    def _output_projection(self, name, length, head_dim, hidden):
        layer = keras.layers.EinsumDense(
            "btnh,nhd->btd", output_shape=(None, hidden),
            bias_axes="d" if self.use_bias else None,
            **self._dense_kwargs(name))
        layer.build((None, length, self.num_heads, head_dim))
        return layer

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        check_input_rank(self, decoder_sequence_shape, 3,
                         "(batch, dec_seq, hidden)")
        hidden = decoder_sequence_shape[-1]
        if hidden % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the hidden size (the decoder "
                f"sequence's last dimension, {hidden}); pass keras-hub's "
                "arguments as keywords. "
                f"Received: num_heads={self.num_heads}")
        head_dim = hidden // self.num_heads
        shape = tuple(decoder_sequence_shape)
        length = shape[1]
        bias = self.use_bias

        # Causal self-attention sub-block.
        self._self_attention_norm = self._norm("self_attention_norm", shape)
        self._qkv = keras.layers.EinsumDense(
            "btd,dsnh->btsnh",
            output_shape=(None, 3, self.num_heads, head_dim),
            bias_axes="snh" if bias else None, **self._dense_kwargs("qkv"))
        self._qkv.build(shape)
        self._self_attention_output = self._output_projection(
            "self_attention_output", length, head_dim, hidden)
        self._self_attention_dropout = self._dropout(
            self.dropout, "self_attention_dropout", shape)

        # Cross-attention sub-block, when built with an encoder sequence.
        self._cross = encoder_sequence_shape is not None
        if self._cross:
            check_input_rank(self, encoder_sequence_shape, 3,
                             "(batch, enc_seq, enc_hidden)")
            self._cross_attention_norm = self._norm("cross_attention_norm",
                                                    shape)
            self._cross_query = keras.layers.EinsumDense(
                "btd,dnh->btnh", output_shape=(None, self.num_heads, head_dim),
                bias_axes="nh" if bias else None,
                **self._dense_kwargs("cross_query"))
            self._cross_query.build(shape)
            self._cross_key_value = keras.layers.EinsumDense(
                "bsd,dknh->bsknh",
                output_shape=(None, 2, self.num_heads, head_dim),
                bias_axes="knh" if bias else None,
                **self._dense_kwargs("cross_key_value"))
            self._cross_key_value.build(tuple(encoder_sequence_shape))
            self._cross_attention_output = self._output_projection(
                "cross_attention_output", length, head_dim, hidden)
            self._cross_attention_dropout = self._dropout(
                self.dropout, "cross_attention_dropout", shape)

        self._probs_dropout = None
        if self.attention_dropout > 0:
            self._probs_dropout = keras.layers.Dropout(
                self.attention_dropout, dtype=self.dtype_policy,
                name="attention_probs_dropout")

        # Feed-forward sub-block.
        self._ffn_norm = self._norm("ffn_norm", shape)
        self._ffn_intermediate = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, use_bias=bias,
            **self._dense_kwargs("ffn_intermediate"))
        self._ffn_intermediate.build(shape)
        self._ffn_output = keras.layers.Dense(
            hidden, use_bias=bias, **self._dense_kwargs("ffn_output"))
        self._ffn_output.build(shape[:-1] + (self.intermediate_dim,))
        self._ffn_dropout = self._dropout(self.dropout, "ffn_dropout", shape)
        self.built = True

    def _sub_block(self, x, norm, attention, dropout, training):
        """Residual sub-block around `attention(normalized x)`."""
        residual = x
        if self.normalize_first:
            x = norm(x)
        x, scores = attention(x)
        x = dropout(x, training=training)
        x = x + residual
        if not self.normalize_first:
            x = norm(x)
        return x, scores

    def call(self, decoder_sequence, encoder_sequence=None,
             decoder_padding_mask=None, decoder_attention_mask=None,
             encoder_padding_mask=None, encoder_attention_mask=None,
             use_causal_mask=True, training=None,
             return_attention_scores=False, decoder_sequence_mask=None,
             encoder_sequence_mask=None, mask=None):
        if (encoder_sequence is not None) != self._cross:
            raise ValueError(
                "`TransformerDecoder` was built "
                + ("with" if self._cross else "without")
                + " cross-attention: call it as it was first called, "
                "`layer(decoder_sequence, encoder_sequence)` or "
                "`layer(decoder_sequence)`. Received: encoder_sequence="
                + ("None" if encoder_sequence is None else "a tensor"))
        # Keras masks: `mask` when called with one tensor, the
        # `<argument>_mask` names when called with two.
        if decoder_padding_mask is None:
            decoder_padding_mask = (decoder_sequence_mask
                                    if decoder_sequence_mask is not None
                                    else mask)
        if encoder_padding_mask is None:
            encoder_padding_mask = encoder_sequence_mask
        x = decoder_sequence
        if getattr(x, "_keras_mask", None) is not None or mask is not None:
            x = ops.copy(x)  # no Keras mask into the projections
        explicit = return_attention_scores or (
            bool(training) and self._probs_dropout is not None)
        use_causal_mask = bool(use_causal_mask)

        def self_attention(x):
            query, key, value = ops.unstack(self._qkv(x), 3, axis=2)
            combined = merge_masks(decoder_padding_mask,
                                   decoder_attention_mask)
            if use_causal_mask and (combined is not None or explicit):
                combined = and_causal(combined, ops.shape(x)[1])
            out, scores = attend(
                query, key, value, combined,
                is_causal=use_causal_mask and combined is None,
                explicit=explicit, probs_dropout=self._probs_dropout,
                training=training, flash_attention=self.flash_attention)
            return self._self_attention_output(out), scores

        x, self_scores = self._sub_block(
            x, self._self_attention_norm, self_attention,
            self._self_attention_dropout, training)

        cross_scores = None
        if self._cross:
            memory = encoder_sequence
            if getattr(memory, "_keras_mask", None) is not None:
                memory = ops.copy(memory)

            def cross_attention(x):
                query = self._cross_query(x)
                key, value = ops.unstack(self._cross_key_value(memory), 2,
                                         axis=2)
                combined = merge_masks(encoder_padding_mask,
                                       encoder_attention_mask)
                out, scores = attend(
                    query, key, value, combined, is_causal=False,
                    explicit=explicit, probs_dropout=self._probs_dropout,
                    training=training, flash_attention=self.flash_attention)
                return self._cross_attention_output(out), scores

            x, cross_scores = self._sub_block(
                x, self._cross_attention_norm, cross_attention,
                self._cross_attention_dropout, training)

        def feed_forward(x):
            return self._ffn_output(self._ffn_intermediate(x)), None

        x, _ = self._sub_block(x, self._ffn_norm, feed_forward,
                               self._ffn_dropout, training)
        if not return_attention_scores:
            return x
        if self._cross:
            return x, self_scores, cross_scores
        return x, self_scores

    def compute_output_shape(self, decoder_sequence_shape,
                             encoder_sequence_shape=None):
        return tuple(decoder_sequence_shape)

    def compute_output_spec(self, decoder_sequence, encoder_sequence=None,
                            return_attention_scores=False, **kwargs):
        output = keras.KerasTensor(decoder_sequence.shape,
                                   dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        batch, length = decoder_sequence.shape[:2]

        def scores(keys):
            return keras.KerasTensor((batch, self.num_heads, length, keys),
                                     dtype=self.compute_dtype)

        if encoder_sequence is None:
            return output, scores(length)
        return output, scores(length), scores(encoder_sequence.shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "normalize_first": self.normalize_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(
                self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(
                self.bias_regularizer),
            "use_bias": self.use_bias,
            "attention_dropout": self.attention_dropout,
            "flash_attention": self.flash_attention,
        })
        return config
