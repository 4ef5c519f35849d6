"""The one shared layer-test helper (keras-hub's `run_layer_test`, without
`keras.src`). Every dlrecipes layer goes through `run_layer_test`.

It checks, in order:
1. constructor validation did not fire and `get_config` holds every
   constructor argument; `from_config(get_config())` round-trips;
2. a symbolic call on `keras.Input` gives `compute_output_shape`;
3. an eager call on random data gives an output of that shape (and dtype);
4. one `fit` step of a small functional model around the layer;
5. `.keras` save then `keras.saving.load_model` (safe_mode on, no
   custom_objects) gives identical inference outputs;
6. the layer builds and runs under the `mixed_float16` dtype policy, with a
   float16 compute dtype and float32 variables;
7. masking (when `supports_masking` is given): the layer's
   `supports_masking` says so, and a layer that supports masking passes the
   Keras mask of a padded input on (a `GlobalAveragePooling1D` after it
   averages over the real steps only).
"""

import os
import tempfile

import keras
import numpy as np
import pytest

import dlrecipes  # noqa: F401  (registers the classes used by load_model)

# Examples per property-based shape test (hypothesis). An eager call under
# TensorFlow costs milliseconds; under JAX every new input shape compiles
# each op again (seconds an example), while the shape arithmetic under test
# is the same backend-free code: two examples there.
SHAPE_EXAMPLES = 10 if keras.backend.backend() == "tensorflow" else 2


# Marks a test of more configurations of one layer through the shared
# checks (bottleneck, pre-activation, 1-D ...) or of its shape arithmetic:
# those run under TensorFlow only. Every layer's own row in
# tests/test_layers_common.py runs the checks under every backend; a
# variant changes which sublayers a layer builds and what shapes they
# compute, not how a backend executes them, and under JAX each new shape
# compiles for seconds.
variants = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="layer configuration variants run under TensorFlow; "
    "tests/test_layers_common.py runs each layer under every backend")


def random_input(shape, dtype="float32", seed=0, maxval=10):
    rng = np.random.default_rng(seed)
    if "int" in str(dtype):
        return rng.integers(0, maxval, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def layer_norm_reference(x, norm):
    """A `LayerNormalization` layer's math in numpy, from its weights."""
    gamma, beta = (keras.ops.convert_to_numpy(w)
                   for w in (norm.gamma, norm.beta))
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * gamma + beta


def randomize_weights(layer, seed=5):
    """Random weights for a numeric test; layer-norm scales near 1 and
    biases away from 0, so that the test sees them."""
    rng = np.random.default_rng(seed)
    layer.set_weights([
        (0.5 * rng.standard_normal(w.shape)
         + (1.0 if "gamma" in w.path else 0.0)).astype("float32")
        for w in layer.weights])


def _shape_of(x):
    return tuple(int(d) for d in keras.ops.shape(x))


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    input_dtype="float32",
    input_maxval=10,
    call_kwargs=None,
    expected_output_shape=None,
    expected_output_dtype="float32",
    run_training_check=True,
    run_mixed_precision_check=True,
    supports_masking=None,
    atol=1e-5,
):
    """Run the shared checks on one layer configuration.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: full input shape, batch included.
        input_dtype: dtype of the random input ("int32" for token ids).
        input_maxval: exclusive upper bound of integer inputs.
        call_kwargs: extra keyword arguments for `call`.
        expected_output_shape: full output shape; checked when given.
        expected_output_dtype: dtype of the output under float32.
        run_training_check: run one `fit` step.
        run_mixed_precision_check: build and call under `mixed_float16`.
        supports_masking: `None` (no check), or whether the layer passes a
            Keras mask on; `True` needs a `(batch, time, features)` output
            and a float input (masked with `keras.layers.Masking`) or an int
            input whose zeros the layer masks itself.
        atol: tolerance of the save/load comparison.

    Returns:
        The output of the eager call (numpy), for further checks.
    """
    call_kwargs = call_kwargs or {}
    x = random_input(input_shape, input_dtype, maxval=input_maxval)

    # 1. Config round trip: every constructor argument is in the config.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"get_config() lacks constructor argument {key!r}"
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config, "config does not round-trip"

    # 2. Symbolic call == compute_output_shape.
    layer = layer_cls(**init_kwargs)
    sym_in = keras.Input(batch_shape=input_shape, dtype=input_dtype)
    sym_out = layer(sym_in, **call_kwargs)
    computed = tuple(layer.compute_output_shape(input_shape))
    assert tuple(sym_out.shape) == computed, (
        f"symbolic output {tuple(sym_out.shape)} != compute_output_shape "
        f"{computed}"
    )
    if expected_output_shape is not None:
        assert computed == tuple(expected_output_shape), (
            f"output shape {computed} != expected {tuple(expected_output_shape)}"
        )

    # 3. Eager call.
    eager_layer = layer_cls(**init_kwargs)
    out = eager_layer(x, **call_kwargs)
    assert _shape_of(out) == computed, (
        f"eager output {_shape_of(out)} != compute_output_shape {computed}"
    )
    out_dtype = keras.backend.standardize_dtype(out.dtype)
    assert out_dtype == expected_output_dtype, (
        f"output dtype {out_dtype} != {expected_output_dtype}"
    )
    assert eager_layer.built

    # 4 and 5. A model around the layer: one fit step, then save and load.
    inputs = keras.Input(batch_shape=(None,) + tuple(input_shape[1:]),
                         dtype=input_dtype)
    outputs = layer_cls(**init_kwargs)(inputs, **call_kwargs)
    model = keras.Model(inputs, outputs)
    if run_training_check:
        model.compile(optimizer="adam", loss="mse")
        y = random_input(computed, "float32", seed=1)
        before = [np.array(w) for w in model.trainable_weights]
        history = model.fit(x, y, batch_size=input_shape[0], epochs=1,
                            verbose=0)
        assert np.isfinite(history.history["loss"][0]), "fit loss not finite"
        after = [np.array(w) for w in model.trainable_weights]
        if before:
            assert any(not np.array_equal(a, b) for a, b in zip(after, before)), (
                "one fit step changed no trainable weight"
            )
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)  # safe_mode=True by default
    got = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-5,
                               err_msg="outputs differ after .keras reload")
    assert type(loaded.layers[-1]) is layer_cls

    # 6. Mixed precision.
    if run_mixed_precision_check:
        mp_layer = layer_cls(**init_kwargs, dtype="mixed_float16")
        mp_out = mp_layer(x, **call_kwargs)
        assert _shape_of(mp_out) == computed
        assert mp_layer.compute_dtype == "float16"
        for w in mp_layer.weights:
            assert keras.backend.standardize_dtype(w.dtype) in (
                "float32", "int32", "int64", "bool"), (
                f"variable {w.path} is {w.dtype} under mixed_float16"
            )
        if "float" in expected_output_dtype:
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(
                keras.ops.cast(mp_out, "float32"))))

    # 7. Masking.
    if supports_masking is not None:
        assert layer_cls(**init_kwargs).supports_masking == supports_masking, (
            f"supports_masking is not {supports_masking}")
        if supports_masking:
            check_mask_passes_through(layer_cls, init_kwargs, input_shape,
                                      input_dtype, input_maxval, call_kwargs)
    return keras.ops.convert_to_numpy(out)


def check_mask_passes_through(layer_cls, init_kwargs, input_shape,
                              input_dtype="float32", input_maxval=10,
                              call_kwargs=None):
    """The last steps of row 0 are padding: the mask must reach a
    `GlobalAveragePooling1D` after the layer, which then averages row 0's
    outputs over its real steps only."""
    call_kwargs = call_kwargs or {}
    length = input_shape[1]
    real = max(1, length // 2)
    if "int" in str(input_dtype):
        x = random_input(input_shape, input_dtype, maxval=input_maxval - 1) + 1
    else:
        x = random_input(input_shape, input_dtype)
    x[0, real:] = 0  # padding: zero ids, or all-zero feature vectors
    inputs = keras.Input(batch_shape=(None,) + tuple(input_shape[1:]),
                         dtype=input_dtype)
    masked = inputs
    if "int" not in str(input_dtype):
        masked = keras.layers.Masking(0.0)(inputs)
    outputs = layer_cls(**init_kwargs)(masked, **call_kwargs)
    assert len(outputs.shape) == 3, "the masking check needs a 3D output"
    pooled = keras.layers.GlobalAveragePooling1D()(outputs)
    model = keras.Model(inputs, [outputs, pooled])
    seq, mean = (keras.ops.convert_to_numpy(t) for t in model(x))
    np.testing.assert_allclose(
        mean[0], seq[0, :real].mean(axis=0), rtol=1e-4, atol=1e-5,
        err_msg="the Keras mask did not pass through the layer")
