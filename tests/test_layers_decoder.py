"""Tests of `TransformerDecoder`: keras-hub's decoder math in numpy (post-
and pre-norm, causal self-attention, cross-attention, both sides' padding),
the causal property, Keras masks from both inputs, a two-input model saved
and read back through `dlrecipes.load_model`, and keras-hub's call rules.
(The one-input shared checks run from tests/test_layers_common.py.)"""

import os

import keras
import numpy as np
import pytest

import dlrecipes
from dlrecipes.layers import TransformerDecoder
from layer_testing import (layer_norm_reference, randomize_weights,
                           run_layer_test)

pytestmark = pytest.mark.backends


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(
        "float32")


def _attention(q, k, v, allowed, out_kernel, out_bias):
    """keras.layers.MultiHeadAttention's math on projected heads."""
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    logits = np.where(allowed, logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    o = np.einsum("bnts,bsnh->btnh", probs, v)
    return np.einsum("btnh,nhd->btd", o, out_kernel) + out_bias, probs


def _reference(layer, x, memory=None, dec_padding=None, enc_padding=None,
               causal=True):
    """keras-hub's `TransformerDecoder.call` in numpy, from the layer's own
    weights: three residual sub-blocks, each normalized after the addition
    (post-norm) or on its input (pre-norm)."""
    h = x.astype("float64")
    b, t = x.shape[:2]

    def sub_block(h, norm, fn):
        a = layer_norm_reference(h, norm) if layer.normalize_first else h
        out, probs = fn(a)
        h = h + out
        if not layer.normalize_first:
            h = layer_norm_reference(h, norm)
        return h, probs

    def self_attention(a):
        qkv = np.einsum("btd,dsnh->btsnh", a, _np(layer._qkv.kernel))
        qkv = qkv + _np(layer._qkv.bias)
        allowed = np.ones((b, 1, t, t), bool)
        if causal:
            allowed &= np.tril(np.ones((t, t), bool))[None, None]
        if dec_padding is not None:
            allowed &= dec_padding.astype(bool)[:, None, None, :]
        return _attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], allowed,
                          _np(layer._self_attention_output.kernel),
                          _np(layer._self_attention_output.bias))

    def cross_attention(a):
        q = np.einsum("btd,dnh->btnh", a, _np(layer._cross_query.kernel))
        q = q + _np(layer._cross_query.bias)
        kv = np.einsum("bsd,dknh->bsknh", memory.astype("float64"),
                       _np(layer._cross_key_value.kernel))
        kv = kv + _np(layer._cross_key_value.bias)
        allowed = np.ones((b, 1, t, memory.shape[1]), bool)
        if enc_padding is not None:
            allowed &= enc_padding.astype(bool)[:, None, None, :]
        return _attention(q, kv[:, :, 0], kv[:, :, 1], allowed,
                          _np(layer._cross_attention_output.kernel),
                          _np(layer._cross_attention_output.bias))

    def feed_forward(a):
        f = a @ _np(layer._ffn_intermediate.kernel)
        f = np.maximum(f + _np(layer._ffn_intermediate.bias), 0.0)  # relu
        return f @ _np(layer._ffn_output.kernel) + _np(
            layer._ffn_output.bias), None

    h, self_probs = sub_block(h, layer._self_attention_norm, self_attention)
    cross_probs = None
    if memory is not None:
        h, cross_probs = sub_block(h, layer._cross_attention_norm,
                                   cross_attention)
    h, _ = sub_block(h, layer._ffn_norm, feed_forward)
    return h, self_probs, cross_probs


def _decoder(**kwargs):
    return TransformerDecoder(**{**dict(num_heads=2, intermediate_dim=12,
                                        dropout=0.0, activation="relu"),
                                 **kwargs})


@pytest.mark.parametrize("normalize_first", [False, True])
@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("use_padding", [False, True])
def test_matches_keras_hub_math(normalize_first, cross, use_padding):
    layer = _decoder(normalize_first=normalize_first)
    x = _random((2, 5, 8), seed=1)
    memory = _random((2, 7, 6), seed=2) if cross else None
    dec_pad = enc_pad = None
    if use_padding:
        dec_pad = np.array([[1] * 5, [1] * 3 + [0] * 2], "int32")
        enc_pad = np.array([[1] * 7, [1] * 4 + [0] * 3], "int32")
    args = (x, memory) if cross else (x,)
    masks = {}
    if use_padding:
        masks["decoder_padding_mask"] = dec_pad
        if cross:
            masks["encoder_padding_mask"] = enc_pad
    layer(*args)
    randomize_weights(layer)
    fused = _np(layer(*args, **masks))
    explicit = layer(*args, return_attention_scores=True, **masks)
    expected, self_probs, cross_probs = _reference(
        layer, x, memory, dec_pad, enc_pad if cross else None)
    real = slice(None, 3) if use_padding else slice(None)
    for got in (fused, _np(explicit[0])):
        np.testing.assert_allclose(got[0], expected[0], atol=1e-4)
        np.testing.assert_allclose(got[1, real], expected[1, real],
                                   atol=1e-4)
    np.testing.assert_allclose(_np(explicit[1])[0], self_probs[0], atol=1e-5)
    if cross:
        np.testing.assert_allclose(_np(explicit[2])[1, :, real],
                                   cross_probs[1, :, real], atol=1e-5)
    else:
        assert len(explicit) == 2


def test_use_causal_mask_false_matches_bidirectional_math():
    layer = _decoder()
    x, memory = _random((2, 6, 8), seed=3), _random((2, 4, 8), seed=4)
    layer(x, memory)
    randomize_weights(layer)
    got = _np(layer(x, memory, use_causal_mask=False))
    expected = _reference(layer, x, memory, causal=False)[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert not np.allclose(got, _np(layer(x, memory)), atol=1e-3)


def test_outputs_ignore_future_decoder_inputs():
    layer = _decoder()
    x, memory = _random((2, 8, 8), seed=5), _random((2, 6, 8), seed=6)
    base = _np(layer(x, memory))
    for t0 in (0, 3, 6):
        changed = x.copy()
        changed[:, t0 + 1:] = _random(changed[:, t0 + 1:].shape, seed=t0)
        out = _np(layer(changed, memory))
        np.testing.assert_allclose(out[:, :t0 + 1], base[:, :t0 + 1],
                                   atol=1e-5)
        assert not np.allclose(out[:, t0 + 1], base[:, t0 + 1], atol=1e-3)
    # Every position sees the whole encoder sequence.
    changed = memory.copy()
    changed[:, -1] += 1.0
    assert not np.allclose(_np(layer(x, changed))[:, 0], base[:, 0],
                           atol=1e-3)


def _masked_model(encoder_mask=True):
    dec_ids = keras.Input((None,), dtype="int32")
    enc_ids = keras.Input((None,), dtype="int32")
    dec = keras.layers.Embedding(20, 8, mask_zero=True,
                                 embeddings_initializer="glorot_uniform")
    enc = keras.layers.Embedding(20, 8, mask_zero=encoder_mask,
                                 embeddings_initializer="glorot_uniform")
    x = TransformerDecoder(num_heads=2, intermediate_dim=16, dropout=0.0)(
        dec(dec_ids), enc(enc_ids))
    pooled = keras.layers.GlobalAveragePooling1D()(x)  # reads the mask
    return keras.Model([dec_ids, enc_ids], [x, pooled])


def test_keras_masks_of_both_inputs():
    model = _masked_model()
    dec = np.array([[3, 7, 1]], "int32")
    enc = np.array([[5, 2, 8, 9]], "int32")
    alone, alone_pooled = (_np(o) for o in model([dec, enc]))
    dec_padded = np.zeros((1, 6), "int32")
    enc_padded = np.zeros((1, 9), "int32")
    dec_padded[0, :3], enc_padded[0, :4] = dec[0], enc[0]
    seq, pooled = (_np(o) for o in model([dec_padded, enc_padded]))
    np.testing.assert_allclose(seq[0, :3], alone[0], atol=1e-5)
    # The decoder's mask reached the pooling after the layer.
    np.testing.assert_allclose(pooled, alone_pooled, atol=1e-5)
    # Without the encoder's mask its padding changes the outputs.
    unmasked = _masked_model(encoder_mask=False)
    unmasked.set_weights(model.get_weights())
    seq, _ = (_np(o) for o in unmasked([dec_padded, enc_padded]))
    assert not np.allclose(seq[0, :3], alone[0], atol=1e-3)


def test_encoder_padding_mask_argument():
    layer = _decoder()
    x = _random((1, 4, 8), seed=7)
    memory = _random((1, 5, 8), seed=8)
    alone = _np(layer(x, memory[:, :3]))
    padded = _np(layer(x, memory, encoder_padding_mask=np.array(
        [[1, 1, 1, 0, 0]], bool)))
    np.testing.assert_allclose(padded, alone, atol=1e-5)
    assert not np.allclose(_np(layer(x, memory)), alone, atol=1e-3)


def test_two_input_model_fits_saves_and_loads(tmp_path):
    dec = keras.Input((5, 8))
    enc = keras.Input((7, 6))
    layer = TransformerDecoder(num_heads=2, intermediate_dim=16,
                               attention_dropout=0.1, normalize_first=True)
    model = keras.Model([dec, enc], layer(dec, enc))
    x = [_random((4, 5, 8), 1), _random((4, 7, 6), 2)]
    model.compile("adam", "mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, _random((4, 5, 8), 3), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b)
               for a, b in zip(before, model.get_weights()))
    path = os.path.join(tmp_path, "decoder.keras")
    model.save(path)
    loaded = dlrecipes.load_model(path)
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-5)
    assert isinstance(loaded.layers[-1], TransformerDecoder)


def test_parameter_count_matches_keras_hub_layout():
    """keras-hub's decoder: two MultiHeadAttention (key_dim = hidden /
    heads), three layer norms, a two-layer feed-forward network."""
    layer = TransformerDecoder(num_heads=2, intermediate_dim=12)
    layer.build((None, 5, 8), (None, 7, 6))
    dec, enc = keras.Input((5, 8)), keras.Input((7, 6))
    x = keras.layers.MultiHeadAttention(2, 4)(dec, dec)
    x = keras.layers.LayerNormalization()(x + dec)
    y = keras.layers.MultiHeadAttention(2, 4, value_dim=4)(x, enc)
    y = keras.layers.LayerNormalization()(y + x)
    f = keras.layers.Dense(8)(keras.layers.Dense(12)(y))
    f = keras.layers.LayerNormalization()(f + y)
    assert layer.count_params() == keras.Model([dec, enc], f).count_params()
    decoder_only = TransformerDecoder(num_heads=2, intermediate_dim=12)
    decoder_only.build((None, 5, 8))
    assert decoder_only.count_params() < layer.count_params()


def test_call_must_match_the_first_call():
    layer = _decoder()
    x, memory = _random((1, 4, 8)), _random((1, 3, 8))
    layer(x, memory)
    with pytest.raises(ValueError, match="built with cross-attention"):
        layer(x)
    decoder_only = _decoder()
    decoder_only(x)
    with pytest.raises(ValueError, match="built without cross-attention"):
        decoder_only(x, memory)


def test_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="must divide the hidden size"):
        TransformerDecoder(num_heads=3, intermediate_dim=8)(_random((1, 4, 8)))


def test_keras_hub_constructor_arguments():
    kwargs = dict(intermediate_dim=4, num_heads=2, normalize_first=True,
                  activation="relu", layer_norm_epsilon=1e-5,
                  kernel_initializer="HeNormal", bias_initializer="Zeros",
                  dropout=0.1)
    run_layer_test(TransformerDecoder, kwargs, (2, 4, 6),
                   expected_output_shape=(2, 4, 6), supports_masking=True)
