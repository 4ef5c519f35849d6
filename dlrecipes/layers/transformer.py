"""Transformer encoder block on `keras.ops.dot_product_attention`.

keras-hub's `TransformerEncoder` (its argument names, post- or pre-norm,
dropout after attention and after the feed-forward network), but with one
fused QKV projection and the backend's fused attention kernel instead of
`keras.layers.MultiHeadAttention`.
"""

import math

import keras
from keras import ops

from dlrecipes.layers._checks import (check_bool, check_input_rank,
                                      check_positive_int,
                                      check_positive_number, check_rate,
                                      clone_initializer, get_activation,
                                      get_initializer, get_regularizer,
                                      resolve_alias)

# Masked logits (float32, as in Keras' own attention): exp() of it is 0.
_LARGE_NEGATIVE = -0.7 * 3.38953e38


def merge_masks(padding_mask, attention_mask):
    """A key padding mask `(batch, k_len)` and an attention mask `(batch,
    q_len, k_len)` (1/True: may attend), either None, as one boolean mask
    broadcastable to `(batch, heads, q_len, k_len)`, or None."""
    mask = None
    if padding_mask is not None:
        padding_mask = ops.cast(padding_mask, "bool")  # (batch, k_len)
        mask = padding_mask[:, None, None, :]  # (batch, 1, 1, k_len)
    if attention_mask is not None:
        attention_mask = ops.cast(attention_mask, "bool")
        attention_mask = attention_mask[:, None, :, :]  # (b, 1, q, k)
        mask = (attention_mask if mask is None
                else ops.logical_and(mask, attention_mask))
    return mask


def and_causal(mask, length):
    """`mask` (or None) and the causal mask of a self-attention over
    `length` steps: query `i` attends to keys `j <= i`."""
    positions = ops.arange(length)
    causal = ops.greater_equal(positions[:, None],
                               positions[None, :])  # (q, k)
    causal = causal[None, None, :, :]
    return causal if mask is None else ops.logical_and(mask, causal)


def attend(query, key, value, mask, is_causal, explicit, probs_dropout,
           training, flash_attention):
    """Multi-head attention of projected `(batch, len, heads, head_dim)`
    tensors: `(output, probabilities)`, the probabilities `(batch, heads,
    q_len, k_len)` when `explicit`, else None (the backend's fused kernel,
    `keras.ops.dot_product_attention`). `mask` is a boolean mask from
    `merge_masks`/`and_causal` or None; `is_causal` asks the fused kernel
    for the causal mask itself (only without `mask`)."""
    if not explicit:
        output = ops.dot_product_attention(
            query, key, value, bias=None, mask=mask, scale=None,
            is_causal=is_causal, flash_attention=flash_attention)
        return output, None
    if is_causal:
        mask = and_causal(mask, ops.shape(query)[1])
    scale = 1.0 / math.sqrt(query.shape[-1])
    logits = ops.einsum("bqnh,bknh->bnqk", query, key)
    logits = ops.cast(logits, "float32") * scale  # softmax in float32
    if mask is not None:
        logits = ops.where(mask, logits, _LARGE_NEGATIVE)
    probs = ops.cast(ops.softmax(logits, axis=-1), value.dtype)
    weights = probs
    if probs_dropout is not None:
        weights = probs_dropout(probs, training=training)
    return ops.einsum("bnqk,bknh->bqnh", weights, value), probs


def check_flash_attention(flash_attention):
    if flash_attention not in (None, True, False):
        raise ValueError("`flash_attention` must be None, True or False. "
                         f"Received: flash_attention={flash_attention!r}")
    return flash_attention


@keras.saving.register_keras_serializable(package="dlrecipes")
class TransformerEncoder(keras.layers.Layer):
    """Transformer encoder block: self-attention and feed-forward network.

    Each sub-block has a residual connection and a `LayerNormalization`,
    applied after the residual addition (`normalize_first=False`, Vaswani et
    al., BERT) or to the sub-block's input (`normalize_first=True`,
    pre-norm as in GPT-2). The hidden size is the input's last dimension.

    The attention uses one fused QKV projection (an `EinsumDense` to
    `(batch, seq, 3, num_heads, head_dim)`) and
    `keras.ops.dot_product_attention`, which dispatches to the backend's
    fused kernels (cuDNN flash attention under JAX on GPU when
    `flash_attention` allows it). The parameters match
    `keras.layers.MultiHeadAttention` with `key_dim = hidden // num_heads`
    one for one (4 weights where MultiHeadAttention has 8: 12 trainable
    weights in all, keras-hub's encoder 16). The attention is computed
    explicitly, with the same masking and a float32 softmax, when its
    probabilities are needed: `return_attention_scores=True`, or training
    with `attention_dropout > 0`.

    Masks: `padding_mask` (`(batch, seq)`, 1/True for real tokens),
    `attention_mask` (`(batch, seq, seq)`, 1/True where query `i` may attend
    to key `j`) and `causal=True` are combined with a logical AND. When no
    `padding_mask` is given, a Keras mask carried by the input (e.g. from
    `Embedding(mask_zero=True)` or `TokenAndPositionEmbedding`) is used as
    the padding mask, and the layer propagates it. Padded keys never affect
    the outputs at real positions; outputs at padded positions are
    unspecified.

    For keras-hub users (`keras_hub.layers.TransformerEncoder`): every
    keras-hub argument name is accepted with the same meaning; pass them as
    keywords (keras-hub's positional order is `intermediate_dim, num_heads`,
    this layer's `num_heads, intermediate_dim`). The defaults differ where
    noted:

    | argument | keras-hub | here |
    |---|---|---|
    | `dropout` | 0 (also on the attention probabilities) | 0.1 (after attention and after the feed-forward network) |
    | `attention_dropout` | (part of `dropout`) | 0.0; pass `attention_dropout=dropout` for keras-hub's behaviour |
    | `activation` | "relu" | "gelu" |
    | `normalize_first` | False | False (`norm_first`, this layer's former name, is still read) |
    | `causal`, `use_bias`, `flash_attention` | (absent) | False, True, None |

    Args:
        num_heads: number of attention heads; must divide the hidden size.
        intermediate_dim: width of the feed-forward hidden layer.
        dropout: dropout rate after attention and after the feed-forward
            network.
        activation: activation of the feed-forward hidden layer.
        normalize_first: pre-norm (`True`) or post-norm (`False`).
        layer_norm_epsilon: epsilon of both layer norms.
        causal: mask attention to future positions.
        kernel_initializer: initializer of every kernel (name, config,
            instance or function).
        bias_initializer: initializer of every bias.
        kernel_regularizer: optional regularizer of every kernel.
        bias_regularizer: optional regularizer of every bias.
        use_bias: whether the projections have biases.
        attention_dropout: dropout rate on the attention probabilities
            (`keras.layers.MultiHeadAttention`'s `dropout`).
        flash_attention: passed to `keras.ops.dot_product_attention`: `None`
            lets the backend decide, `True` requires a flash kernel (raises
            where there is none, e.g. TensorFlow), `False` forbids it.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`,
            `activity_regularizer` ...).

    Call arguments:
        inputs: float tensor `(batch, seq, hidden)`.
        padding_mask: optional bool/int tensor `(batch, seq)`.
        attention_mask: optional bool/int tensor `(batch, seq, seq)`.
        training: Python bool; dropout in training mode.
        return_attention_scores: also return the attention probabilities
            `(batch, num_heads, seq, seq)` (before attention dropout).
        mask: the Keras mask of `inputs`, passed by Keras.

    Input shape:
        `(batch, seq, hidden)`.

    Output shape:
        `(batch, seq, hidden)`, and `(batch, num_heads, seq, seq)` with
        `return_attention_scores=True`.

    Example:

    >>> encoder = TransformerEncoder(num_heads=4, intermediate_dim=64)
    >>> tuple(encoder(keras.ops.ones((2, 10, 32))).shape)
    (2, 10, 32)
    >>> outputs, scores = encoder(keras.ops.ones((2, 10, 32)),
    ...                           return_attention_scores=True)
    >>> tuple(scores.shape)
    (2, 4, 10, 10)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
        - [Xiong et al., 2020](https://arxiv.org/abs/2002.04745) (pre-norm)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.1,
                 activation="gelu", normalize_first=False,
                 layer_norm_epsilon=1e-5, causal=False,
                 kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, use_bias=True, attention_dropout=0.0,
                 flash_attention=None, **kwargs):
        normalize_first = resolve_alias(kwargs, "norm_first",
                                        "normalize_first", normalize_first,
                                        False)
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = check_positive_int("intermediate_dim",
                                                   intermediate_dim)
        self.dropout = check_rate("dropout", dropout)
        self.activation = get_activation(activation)
        self.normalize_first = check_bool("normalize_first", normalize_first)
        self.layer_norm_epsilon = check_positive_number("layer_norm_epsilon",
                                                        layer_norm_epsilon)
        self.causal = check_bool("causal", causal)
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

    def build(self, input_shape):
        check_input_rank(self, input_shape, 3, "(batch, seq, hidden)")
        hidden = input_shape[-1]
        if hidden % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the hidden size (the input's last "
                f"dimension, {hidden}). keras-hub's positional order is "
                "(intermediate_dim, num_heads), this layer's (num_heads, "
                "intermediate_dim): pass them as keywords. "
                f"Received: num_heads={self.num_heads}")
        head_dim = hidden // self.num_heads
        shape = tuple(input_shape)

        def dense_kwargs(name):
            return dict(
                kernel_initializer=clone_initializer(self.kernel_initializer),
                bias_initializer=clone_initializer(self.bias_initializer),
                kernel_regularizer=self.kernel_regularizer,
                bias_regularizer=self.bias_regularizer,
                dtype=self.dtype_policy, name=name)

        # Sublayer attribute names and layer names are those of the first
        # release: `.keras` files store weights under them.
        # Attention sub-block.
        self._attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy,
            name="attention_norm")
        self._attention_norm.build(shape)
        self._qkv = keras.layers.EinsumDense(
            "btd,dsnh->btsnh",
            output_shape=(None, 3, self.num_heads, head_dim),
            bias_axes="snh" if self.use_bias else None,
            **dense_kwargs("qkv"))
        self._qkv.build(shape)
        self._attention_output = keras.layers.EinsumDense(
            "btnh,nhd->btd", output_shape=(None, hidden),
            bias_axes="d" if self.use_bias else None,
            **dense_kwargs("attention_output"))
        self._attention_output.build(
            (input_shape[0], input_shape[1], self.num_heads, head_dim))
        self._attention_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="attention_dropout")
        self._attention_dropout.build(shape)
        # Only when used: a layer saved without it loads unchanged.
        self._probs_dropout = None
        if self.attention_dropout > 0:
            self._probs_dropout = keras.layers.Dropout(
                self.attention_dropout, dtype=self.dtype_policy,
                name="attention_probs_dropout")
        # Feed-forward sub-block.
        self._ffn_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy,
            name="ffn_norm")
        self._ffn_norm.build(shape)
        self._ffn_intermediate = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation,
            use_bias=self.use_bias, **dense_kwargs("ffn_intermediate"))
        self._ffn_intermediate.build(shape)
        self._ffn_output = keras.layers.Dense(
            hidden, use_bias=self.use_bias, **dense_kwargs("ffn_output"))
        self._ffn_output.build(shape[:-1] + (self.intermediate_dim,))
        self._ffn_dropout = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="ffn_dropout")
        self._ffn_dropout.build(shape)
        self.built = True

    def _attention_mask(self, inputs, padding_mask, attention_mask,
                        with_causal):
        """One boolean mask broadcastable to (batch, heads, q_len, k_len),
        or None. The causal part is included when `with_causal` (the fused
        kernel takes it as `is_causal` when there is no other mask)."""
        mask = merge_masks(padding_mask, attention_mask)
        if self.causal and (mask is not None or with_causal):
            mask = and_causal(mask, ops.shape(inputs)[1])
        return mask

    def call(self, inputs, padding_mask=None, attention_mask=None,
             training=None, return_attention_scores=False, mask=None):
        if padding_mask is None:
            padding_mask = mask
        x = inputs  # (batch, seq, hidden)
        if mask is not None:
            # A fresh tensor without the Keras mask attached, so the
            # projections (which do not support masking) do not warn.
            x = ops.copy(x)

        # Self-attention sub-block.
        residual = x
        if self.normalize_first:
            x = self._attention_norm(x)
        qkv = self._qkv(x)  # (batch, seq, 3, heads, head_dim)
        # `unstack`, not three slices: TensorFlow's gradient of a strided
        # slice scatters into a zero tensor per slice (measured: 1.27x the
        # step time of plain Keras MultiHeadAttention at bench.layers'
        # default shapes with slices, 0.96-1.00x with unstack).
        query, key, value = ops.unstack(qkv, 3, axis=2)
        explicit = return_attention_scores or (
            bool(training) and self._probs_dropout is not None)
        combined = self._attention_mask(inputs, padding_mask, attention_mask,
                                        with_causal=explicit)
        x, scores = attend(query, key, value, combined,
                           is_causal=self.causal and combined is None,
                           explicit=explicit,
                           probs_dropout=self._probs_dropout,
                           training=training,
                           flash_attention=self.flash_attention)
        x = self._attention_output(x)  # (batch, seq, hidden)
        x = self._attention_dropout(x, training=training)
        x = x + residual
        if not self.normalize_first:
            x = self._attention_norm(x)

        # Feed-forward sub-block.
        residual = x
        if self.normalize_first:
            x = self._ffn_norm(x)
        x = self._ffn_intermediate(x)  # (batch, seq, intermediate_dim)
        x = self._ffn_output(x)  # (batch, seq, hidden)
        x = self._ffn_dropout(x, training=training)
        x = x + residual
        if not self.normalize_first:
            x = self._ffn_norm(x)
        if return_attention_scores:
            return x, scores
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, padding_mask=None,
                            attention_mask=None, training=None,
                            return_attention_scores=False, mask=None):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        batch, length = inputs.shape[0], inputs.shape[1]
        scores = keras.KerasTensor((batch, self.num_heads, length, length),
                                   dtype=self.compute_dtype)
        return output, scores

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "normalize_first": self.normalize_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "causal": self.causal,
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
