"""Tests of `TransformerEncoder` and the position layers: shared layer checks,
a numpy reference forward pass, causal / padding / Keras masks, and the
closed-form sinusoidal encoding."""

import re

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrecipes.layers import (PositionEmbedding, SinePositionEncoding,
                              TokenAndPositionEmbedding, TransformerEncoder)
from layer_testing import (SHAPE_EXAMPLES, layer_norm_reference,
                           randomize_weights, run_layer_test, variants)

pytestmark = pytest.mark.backends


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(
        "float32")


# --- shared layer checks -----------------------------------------------------

# (One case per layer runs in tests/test_layers_common.py; these are the
# other configurations.)

@variants
def test_transformer_encoder_layer():
    run_layer_test(TransformerEncoder,
                   dict(num_heads=4, intermediate_dim=8, dropout=0.0,
                        activation="relu", causal=True, use_bias=False,
                        kernel_initializer="he_normal",
                        layer_norm_epsilon=1e-6),
                   (2, 16, 8), expected_output_shape=(2, 16, 8),
                   supports_masking=True)


# --- numpy reference forward pass --------------------------------------------

def _reference(layer, x, padding_mask=None):
    """The encoder's math in numpy, from the layer's own weights."""
    heads = layer.num_heads
    head_dim = x.shape[-1] // heads
    h = x.astype("float64")
    a = (layer_norm_reference(h, layer._attention_norm)
         if layer.normalize_first else h)
    qkv = np.einsum("btd,dsnh->btsnh", a, _np(layer._qkv.kernel))
    if layer.use_bias:
        qkv = qkv + _np(layer._qkv.bias)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(head_dim)
    t = x.shape[1]
    allowed = np.ones((x.shape[0], 1, t, t), bool)
    if layer.causal:
        allowed &= np.tril(np.ones((t, t), bool))[None, None]
    if padding_mask is not None:
        allowed &= padding_mask.astype(bool)[:, None, None, :]
    logits = np.where(allowed, logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    o = np.einsum("bnts,bsnh->btnh", probs, v)
    o = np.einsum("btnh,nhd->btd", o, _np(layer._attention_output.kernel))
    if layer.use_bias:
        o = o + _np(layer._attention_output.bias)
    h = h + o
    if not layer.normalize_first:
        h = layer_norm_reference(h, layer._attention_norm)
    f = (layer_norm_reference(h, layer._ffn_norm)
         if layer.normalize_first else h)
    f = f @ _np(layer._ffn_intermediate.kernel)
    if layer.use_bias:
        f = f + _np(layer._ffn_intermediate.bias)
    f = np.maximum(f, 0.0)  # relu
    f = f @ _np(layer._ffn_output.kernel)
    if layer.use_bias:
        f = f + _np(layer._ffn_output.bias)
    h = h + f
    if not layer.normalize_first:
        h = layer_norm_reference(h, layer._ffn_norm)
    return h, probs


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("use_padding", [False, True])
def test_matches_numpy_reference(norm_first, causal, use_padding):
    layer = TransformerEncoder(num_heads=2, intermediate_dim=12, dropout=0.0,
                               activation="relu", normalize_first=norm_first,
                               causal=causal)
    x = _random((2, 7, 8), seed=1)
    padding = None
    if use_padding:
        padding = np.array([[1] * 7, [1] * 4 + [0] * 3], "int32")
    layer(x)
    randomize_weights(layer)
    out = _np(layer(x, padding_mask=padding))
    # The explicit path (attention probabilities returned) computes the
    # same outputs as the fused kernel.
    explicit, scores = layer(x, padding_mask=padding,
                             return_attention_scores=True)
    expected, probs = _reference(layer, x, padding)
    for got in (out, _np(explicit)):
        if use_padding:  # only real positions are specified
            np.testing.assert_allclose(got[1, :4], expected[1, :4],
                                       atol=1e-4)
            np.testing.assert_allclose(got[0], expected[0], atol=1e-4)
        else:
            np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(_np(scores)[0], probs[0], atol=1e-5)
    np.testing.assert_allclose(_np(scores)[1, :, :4], probs[1, :, :4],
                               atol=1e-5)


def test_parameter_count_matches_multi_head_attention_block():
    hidden, heads, inter = 16, 4, 32
    layer = TransformerEncoder(num_heads=heads, intermediate_dim=inter)
    layer.build((None, 10, hidden))
    inputs = keras.Input((10, hidden))
    x = keras.layers.MultiHeadAttention(heads, hidden // heads)(inputs, inputs)
    x = keras.layers.LayerNormalization()(x + inputs)
    y = keras.layers.Dense(inter)(x)
    y = keras.layers.Dense(hidden)(y)
    y = keras.layers.LayerNormalization()(x + y)
    plain = keras.Model(inputs, y)
    assert layer.count_params() == plain.count_params()


# --- masks -------------------------------------------------------------------

@pytest.mark.parametrize("with_padding_mask", [False, True])
def test_causal_outputs_ignore_future_inputs(with_padding_mask):
    layer = TransformerEncoder(num_heads=2, intermediate_dim=16, dropout=0.0,
                               causal=True)
    x = _random((2, 12, 8), seed=2)
    # An all-ones padding mask takes the combined-mask path instead of
    # `is_causal=True`.
    kwargs = ({"padding_mask": np.ones((2, 12), bool)}
              if with_padding_mask else {})
    base = _np(layer(x, **kwargs))
    for t0 in (0, 5, 10):
        changed = x.copy()
        changed[:, t0 + 1:] = _random(changed[:, t0 + 1:].shape, seed=t0)
        out = _np(layer(changed, **kwargs))
        np.testing.assert_allclose(out[:, :t0 + 1], base[:, :t0 + 1],
                                   atol=1e-5)
        assert not np.allclose(out[:, t0 + 1], base[:, t0 + 1], atol=1e-3)


def test_non_causal_outputs_see_future_inputs():
    layer = TransformerEncoder(num_heads=2, intermediate_dim=16, dropout=0.0)
    x = _random((1, 12, 8), seed=3)
    changed = x.copy()
    changed[:, 8:] += 1.0
    assert not np.allclose(_np(layer(changed))[:, 0], _np(layer(x))[:, 0],
                           atol=1e-3)


def _pad(rows, length, seed):
    """Stack (len_i, dim) rows into (batch, length, dim), random padding."""
    rng = np.random.default_rng(seed)
    dim = rows[0].shape[-1]
    x = rng.standard_normal((len(rows), length, dim)).astype("float32") * 5
    mask = np.zeros((len(rows), length), "int32")
    for i, row in enumerate(rows):
        x[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return x, mask


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_padding_never_changes_real_positions(norm_first, causal):
    layer = TransformerEncoder(num_heads=2, intermediate_dim=16, dropout=0.0,
                               normalize_first=norm_first, causal=causal)
    rows = [_random((6, 8), seed=10), _random((9, 8), seed=11)]
    # Reference: each row alone, unpadded, no mask.
    alone = [_np(layer(row[None]))[0] for row in rows]
    for length, seed, mask_dtype in ((10, 0, "int32"), (16, 1, "bool")):
        x, mask = _pad(rows, length, seed)
        out = _np(layer(x, padding_mask=mask.astype(mask_dtype)))
        for i, row in enumerate(rows):
            np.testing.assert_allclose(out[i, :len(row)], alone[i],
                                       atol=1e-5)
    if not causal:
        # Without the mask the padding leaks in (the test can fail). Causal
        # attention needs no mask for trailing padding.
        x, _ = _pad(rows, 16, 2)
        assert not np.allclose(_np(layer(x))[0, :6], alone[0], atol=1e-3)


def test_attention_mask_restricts_attention():
    layer = TransformerEncoder(num_heads=2, intermediate_dim=16, dropout=0.0)
    x = _random((2, 6, 8), seed=4)
    # Each token attends only to itself: tokens become independent.
    eye = np.broadcast_to(np.eye(6, dtype=bool), (2, 6, 6))
    base = _np(layer(x, attention_mask=eye))
    changed = x.copy()
    changed[:, 3:] += 2.0
    out = _np(layer(changed, attention_mask=eye))
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-5)
    # A full attention mask equal to the padding mask gives the same result.
    padding = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], "int32")
    full = np.broadcast_to(padding[:, None, :], (2, 6, 6))
    np.testing.assert_allclose(_np(layer(x, attention_mask=full)),
                               _np(layer(x, padding_mask=padding)), atol=1e-5)


def _token_model(mask_zero, causal=False):
    ids = keras.Input((None,), dtype="int32")
    x = TokenAndPositionEmbedding(20, 16, 8, mask_zero=mask_zero,
                                  embeddings_initializer="glorot_uniform")(ids)
    x = TransformerEncoder(num_heads=2, intermediate_dim=16, dropout=0.0,
                           causal=causal)(x)
    pooled = keras.layers.GlobalAveragePooling1D()(x)  # uses the Keras mask
    return keras.Model(ids, [x, pooled])


@pytest.mark.parametrize("causal", [False, True])
def test_keras_mask_from_token_embedding(causal):
    model = _token_model(mask_zero=True, causal=causal)
    real = [np.array([3, 7, 1, 9, 4]), np.array([5, 2, 8, 8, 6, 1, 2, 3])]
    alone = [[_np(o)[0] for o in model(r[None].astype("int32"))]
             for r in real]
    for length in (10, 16):
        ids = np.zeros((2, length), "int32")
        for i, r in enumerate(real):
            ids[i, :len(r)] = r
        seq, pooled = (_np(o) for o in model(ids))
        for i, r in enumerate(real):
            np.testing.assert_allclose(seq[i, :len(r)], alone[i][0],
                                       atol=1e-5)
            # The mask reached the pooling: mean over real steps only.
            np.testing.assert_allclose(pooled[i], alone[i][1], atol=1e-5)
    # Without mask_zero the padding tokens change the real positions.
    unmasked = _token_model(mask_zero=False, causal=causal)
    unmasked.set_weights(model.get_weights())
    ids = np.zeros((1, 16), "int32")
    ids[0, :5] = real[0]
    seq, _ = unmasked(ids)
    if causal:  # causal: real tokens come first, so padding cannot leak
        np.testing.assert_allclose(_np(seq)[0, :5], alone[0][0], atol=1e-5)
    else:
        assert not np.allclose(_np(seq)[0, :5], alone[0][0], atol=1e-3)


def test_token_embedding_compute_mask():
    layer = TokenAndPositionEmbedding(10, 8, 4, mask_zero=True)
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]], "int32")
    np.testing.assert_array_equal(_np(layer.compute_mask(ids)), ids != 0)
    assert TokenAndPositionEmbedding(10, 8, 4, mask_zero=False).compute_mask(
        ids) is None


def test_token_embedding_does_not_mask_by_default_as_keras_hub():
    """keras-hub's TokenAndPositionEmbedding and keras.layers.Embedding
    default to mask_zero=False: id 0 is a token like any other."""
    layer = TokenAndPositionEmbedding(10, 8, 4)
    ids = np.array([[1, 2, 0, 0]], "int32")
    assert layer.mask_zero is False
    assert layer.get_config()["mask_zero"] is False
    assert layer.compute_mask(ids) is None
    assert not layer.supports_masking
    inputs = keras.Input((4,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    out = _np(keras.Model(inputs, pooled)(ids))
    np.testing.assert_allclose(out[0], _np(layer(ids))[0].mean(0), atol=1e-6)


def test_token_and_position_is_sum_of_embeddings():
    layer = TokenAndPositionEmbedding(10, 8, 4)
    ids = np.array([[1, 2, 0, 5], [3, 9, 4, 0]], "int32")
    out = _np(layer(ids))
    tokens = _np(layer._token_embedding.embeddings)
    positions = _np(layer._position_embedding.embeddings)
    np.testing.assert_allclose(out, tokens[ids] + positions[None, :4],
                               atol=1e-6)


# --- position encodings ------------------------------------------------------

@pytest.mark.parametrize("max_wavelength", [10000, 100])
def test_sine_position_encoding_closed_form(max_wavelength):
    dim = 6
    layer = SinePositionEncoding(max_wavelength=max_wavelength)
    out = _np(layer(np.zeros((2, 20, dim), "float32")))
    assert out.shape == (2, 20, dim)
    for pos in (0, 1, 7, 19):
        for i in range(dim // 2):
            angle = pos / max_wavelength ** (2 * i / dim)
            assert out[1, pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-5)
            assert out[1, pos, 2 * i + 1] == pytest.approx(np.cos(angle),
                                                           abs=1e-5)
    np.testing.assert_array_equal(out[0], out[1])


def test_sine_position_encoding_start_index():
    layer = SinePositionEncoding()
    full = _np(layer(np.zeros((1, 12, 8), "float32")))
    tail = _np(layer(np.zeros((1, 4, 8), "float32"), start_index=8))
    np.testing.assert_allclose(tail, full[:, 8:], atol=1e-5)


def test_position_embedding_slices_shorter_inputs():
    layer = PositionEmbedding(sequence_length=16)
    layer(np.zeros((2, 16, 4), "float32"))
    table = _np(layer.embeddings)
    out = _np(layer(np.ones((3, 10, 4), "float32")))
    assert out.shape == (3, 10, 4)
    for b in range(3):
        np.testing.assert_allclose(out[b], table[:10], atol=0)
    tail = _np(layer(np.ones((1, 4, 4), "float32"), start_index=12))
    np.testing.assert_allclose(tail[0], table[12:], atol=0)
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(sequence_length=8, hierarchical_alpha=None)(
            np.zeros((1, 9, 4), "float32"))


def _hierarchical(table, length, alpha, start=0):
    """keras-hub's hierarchical position embedding, in numpy."""
    n = len(table)
    units = (table - alpha * table[:1]) / (1 - alpha)
    positions = np.arange(start, start + length)
    return alpha * units[positions // n] + (1 - alpha) * units[positions % n]


@pytest.mark.parametrize("alpha", [0.4, 0.2])
def test_position_embedding_hierarchical_beyond_sequence_length(alpha):
    layer = PositionEmbedding(sequence_length=8, hierarchical_alpha=alpha)
    out = _np(layer(np.zeros((2, 20, 4), "float32")))
    table = _np(layer.embeddings)
    np.testing.assert_allclose(out[1], _hierarchical(table, 20, alpha),
                               atol=1e-5)
    np.testing.assert_allclose(out[0, :8], table, atol=1e-5)
    # Through a model with a None time dimension (lengths known at run
    # time only), both within and beyond the table.
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, layer(inputs))
    for length in (5, 20, 64):
        got = model.predict(np.zeros((2, length, 4), "float32"), verbose=0)
        np.testing.assert_allclose(got[0], _hierarchical(table, length,
                                                         alpha), atol=1e-5)
    incremental = _np(layer(np.zeros((1, 3, 4), "float32"), start_index=9))
    np.testing.assert_allclose(incremental[0],
                               _hierarchical(table, 3, alpha, start=9),
                               atol=1e-5)


@pytest.mark.parametrize("kwargs, length, limit", [
    ({}, 65, 64),  # the default: hierarchical, up to 8 ** 2 positions
    (dict(hierarchical_alpha=None), 9, 8),
])
def test_position_embedding_too_long_with_unknown_length(kwargs, length,
                                                         limit):
    """A `None` time dimension and too long an input: the layer's own
    error, in eager calls and inside predict, on every backend. (A
    TensorFlow graph retraced for an unknown length cannot check it: see
    the docstring.)"""

    def model():
        inputs = keras.Input((None, 4))
        layer = PositionEmbedding(sequence_length=8, **kwargs)
        return keras.Model(inputs, layer(inputs)), layer

    x = np.zeros((2, length, 4), "float32")
    message = f"embeds at most {limit} positions"
    with pytest.raises(ValueError, match=message):
        model()[0](x)
    with pytest.raises(ValueError, match=message):
        model()[0].predict(x, verbose=0)
    fitting, layer = model()
    assert fitting.predict(np.zeros((2, 8, 4), "float32"),
                           verbose=0).shape == (2, 8, 4)
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((1, 4, 4), "float32"), start_index=length - 3)


# --- masks through the documented position pattern ----------------------------

def _position_model(position):
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(50, 8, mask_zero=True,
                               embeddings_initializer="glorot_uniform")(ids)
    # The documented pattern: Add keeps the mask the layers pass on.
    x = keras.layers.Add()([x, position(x)])
    x = TransformerEncoder(num_heads=2, intermediate_dim=16, dropout=0.0)(x)
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(ids, [x, pooled])


@pytest.mark.parametrize("make", [
    lambda: SinePositionEncoding(),
    lambda: PositionEmbedding(sequence_length=32),
], ids=["sine", "learned"])
def test_padding_invariance_through_position_layers(make):
    model = _position_model(make())
    real = np.array([[3, 7, 1, 9, 4, 2, 8, 5, 6]], "int32")  # length 9
    alone, alone_pooled = (_np(o) for o in model(real))
    padded = np.zeros((1, 32), "int32")
    padded[0, :9] = real
    seq, pooled = (_np(o) for o in model(padded))
    np.testing.assert_allclose(seq[0, :9], alone[0], atol=1e-5)
    np.testing.assert_allclose(pooled, alone_pooled, atol=1e-5)


@pytest.mark.parametrize("layer", [SinePositionEncoding(),
                                   PositionEmbedding(sequence_length=8)],
                         ids=["sine", "learned"])
def test_position_layers_pass_the_mask_on(layer):
    x = np.zeros((2, 5, 4), "float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    assert layer.supports_masking
    np.testing.assert_array_equal(_np(layer.compute_mask(x, mask)), mask)


# --- keras-hub's arguments ----------------------------------------------------

def _keras_hub_kwargs(normalize_first):
    """keras-hub's own `test_layer_behaviors` arguments."""
    return {
        "intermediate_dim": 4,
        "num_heads": 2,
        "normalize_first": normalize_first,
        "activation": "relu",
        "layer_norm_epsilon": 1e-05,
        "kernel_initializer": "HeNormal",
        "bias_initializer": "Zeros",
        "dropout": 0.1,
    }


def test_keras_hub_layer_behaviors_kwargs():
    run_layer_test(TransformerEncoder, _keras_hub_kwargs(True), (2, 4, 6),
                   expected_output_shape=(2, 4, 6))
    layer = TransformerEncoder(**_keras_hub_kwargs(False))
    assert tuple(layer(_random((2, 4, 6))).shape) == (2, 4, 6)
    assert layer.normalize_first is False
    revived = TransformerEncoder.from_config(layer.get_config())
    assert revived.get_config() == layer.get_config()


def test_former_norm_first_name_and_configs():
    old_config = TransformerEncoder(num_heads=2, intermediate_dim=8,
                                    normalize_first=True).get_config()
    old_config["norm_first"] = old_config.pop("normalize_first")
    for name in ("bias_initializer", "kernel_regularizer",
                 "bias_regularizer", "attention_dropout"):
        old_config.pop(name)
    layer = TransformerEncoder.from_config(old_config)
    assert layer.normalize_first is True
    assert "norm_first" not in layer.get_config()
    assert TransformerEncoder(2, 8, norm_first=True).normalize_first
    with pytest.raises(ValueError, match=re.escape(
            "Received: normalize_first=True, norm_first=False")):
        TransformerEncoder(2, 8, normalize_first=True, norm_first=False)


def test_bias_initializer_and_regularizers():
    layer = TransformerEncoder(num_heads=2, intermediate_dim=8,
                               bias_initializer="ones",
                               kernel_regularizer="l2",
                               bias_regularizer=keras.regularizers.L1(0.1))
    layer(_random((2, 5, 4)))
    biases = [w for w in layer.weights if w.path.endswith("/bias")]
    assert len(biases) == 4  # qkv, attention_output, ffn x 2
    for w in biases:
        np.testing.assert_array_equal(_np(w), 1.0)
    assert len(layer.losses) == 8  # 4 kernels + 4 biases
    config = layer.get_config()
    assert config["bias_regularizer"]["class_name"] == "L1"
    assert config["kernel_regularizer"]["class_name"] == "L2"


def test_return_attention_scores_with_masks():
    layer = TransformerEncoder(num_heads=2, intermediate_dim=8, causal=True)
    x = _random((2, 5, 4))
    padding = np.array([[1, 1, 1, 0, 0], [1] * 5], bool)
    out, scores = layer(x, padding_mask=padding,
                        return_attention_scores=True)
    scores = _np(scores)
    assert scores.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)
    allowed = np.tril(np.ones((5, 5), bool))[None, None] & padding[
        :, None, None, :]
    assert np.all(scores[:, :, :3][~allowed[:, :, :3].repeat(2, 1)] < 1e-6)
    np.testing.assert_allclose(_np(out)[:, :3],
                               _np(layer(x, padding_mask=padding))[:, :3],
                               atol=1e-5)
    # Symbolically too.
    sym = keras.Input((5, 4))
    sym_out, sym_scores = layer(sym, return_attention_scores=True)
    assert tuple(sym_out.shape) == (None, 5, 4)
    assert tuple(sym_scores.shape) == (None, 2, 5, 5)


def test_attention_dropout_on_the_probabilities():
    x = _random((2, 6, 4))
    plain = TransformerEncoder(num_heads=2, intermediate_dim=8, dropout=0.0)
    dropped = TransformerEncoder(num_heads=2, intermediate_dim=8,
                                 dropout=0.0, attention_dropout=0.5)
    plain(x)
    dropped(x)
    dropped.set_weights(plain.get_weights())
    # Inference: no dropout, the fused kernel, the same outputs.
    np.testing.assert_allclose(_np(dropped(x)), _np(plain(x)), atol=1e-6)
    a, b = (_np(dropped(x, training=True)) for _ in range(2))
    assert not np.allclose(a, b, atol=1e-4)
    # Training with attention_dropout=0 stays deterministic (the fused
    # kernel): the dropout is on the probabilities only.
    np.testing.assert_allclose(_np(plain(x, training=True)), _np(plain(x)),
                               atol=1e-6)
    # Rate ~1 (a kept probability has odds 1e-7): the attention output is its bias alone (probabilities all
    # dropped), so the block equals one with a zeroed value projection.
    near_one = TransformerEncoder(num_heads=2, intermediate_dim=8,
                                  dropout=0.0, attention_dropout=0.9999999)
    near_one(x)
    near_one.set_weights(plain.get_weights())
    kernel = plain._qkv.kernel
    zeroed = _np(kernel).copy()
    zeroed[:, 2] = 0.0
    bias = _np(plain._qkv.bias).copy()
    bias[2] = 0.0
    reference = TransformerEncoder(num_heads=2, intermediate_dim=8,
                                   dropout=0.0)
    reference(x)
    reference.set_weights(plain.get_weights())
    reference._qkv.kernel.assign(zeroed)
    reference._qkv.bias.assign(bias)
    np.testing.assert_allclose(_np(near_one(x, training=True)),
                               _np(reference(x)), atol=1e-4)


# --- validation --------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, received", [
    (TransformerEncoder, dict(num_heads=0, intermediate_dim=8),
     "num_heads=0"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=-1),
     "intermediate_dim=-1"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8, dropout=1.5),
     "dropout=1.5"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              activation="nope"), "activation='nope'"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              layer_norm_epsilon=0), "layer_norm_epsilon=0"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              causal="yes"), "causal='yes'"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              flash_attention="auto"),
     "flash_attention='auto'"),
    (SinePositionEncoding, dict(max_wavelength=0), "max_wavelength=0"),
    (PositionEmbedding, dict(sequence_length=0), "sequence_length=0"),
    (PositionEmbedding, dict(sequence_length=4, initializer="nope"),
     "initializer='nope'"),
    (PositionEmbedding, dict(sequence_length=4, hierarchical_alpha=1.0),
     "hierarchical_alpha=1.0"),
    (PositionEmbedding, dict(sequence_length=4, hierarchical_alpha=0),
     "hierarchical_alpha=0"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              bias_initializer="nope"),
     "bias_initializer='nope'"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              attention_dropout=1.0), "attention_dropout=1.0"),
    (TransformerEncoder, dict(num_heads=2, intermediate_dim=8,
                              kernel_regularizer="nope"),
     "kernel_regularizer='nope'"),
    (TokenAndPositionEmbedding, dict(vocabulary_size=0, sequence_length=4,
                                     embedding_dim=4), "vocabulary_size=0"),
    (TokenAndPositionEmbedding, dict(vocabulary_size=4, sequence_length=4,
                                     embedding_dim=4, mask_zero=None),
     "mask_zero=None"),
])
def test_invalid_arguments(cls, kwargs, received):
    with pytest.raises(ValueError,
                       match=re.escape(f"Received: {received}") + "$"):
        cls(**kwargs)


def test_hidden_not_divisible_by_heads():
    layer = TransformerEncoder(num_heads=3, intermediate_dim=8)
    with pytest.raises(ValueError, match=re.escape("Received: num_heads=3")):
        layer(np.zeros((2, 5, 8), "float32"))


# --- property-based shapes ---------------------------------------------------

@variants
@settings(max_examples=SHAPE_EXAMPLES, deadline=None)
# Few distinct sizes: JAX compiles each eager op once per shape.
@given(batch=st.integers(1, 2), length=st.sampled_from([1, 8]),
       heads_and_dim=st.sampled_from([(1, 6), (4, 2)]),
       intermediate_dim=st.just(8), normalize_first=st.booleans(),
       causal=st.booleans(), use_padding=st.booleans())
def test_transformer_shapes_property(batch, length, heads_and_dim,
                                     intermediate_dim, normalize_first, causal,
                                     use_padding):
    num_heads, head_dim = heads_and_dim
    layer = TransformerEncoder(num_heads=num_heads,
                               intermediate_dim=intermediate_dim,
                               normalize_first=normalize_first, causal=causal)
    x = _random((batch, length, num_heads * head_dim))
    kwargs = {}
    if use_padding:
        lengths = np.random.default_rng(length).integers(1, length + 1, batch)
        kwargs["padding_mask"] = np.arange(length)[None] < lengths[:, None]
    out = _np(layer(x, **kwargs))
    assert out.shape == tuple(layer.compute_output_shape(x.shape)) == x.shape
    assert np.all(np.isfinite(out))
