"""`--mixed-precision`: the policy choice, and every registered recipe's
model under mixed_float16 and mixed_bfloat16 (forced on this CPU with
DLRECIPES_FORCE_MIXED): float32 outputs and loss, float32 variables,
finite values, loss scaling for float16.

A whole CLI run under a forced policy is checked here under TensorFlow;
under JAX, test_distribute's smoke runs check it for every recipe."""

import warnings

import keras
import numpy as np
import pytest

from conftest import RECIPES, metrics, run_dir_of, smoke_argv, smoke_config
from dlrecipes.cli import main
from dlrecipes.errors import UsageError
from dlrecipes.registry import get_recipe
from dlrecipes.training import build_compiled_model
from dlrecipes.training.distribute import jit_under_jax
from dlrecipes.training.precision import (FORCE_MIXED_ENV, has_accelerator,
                                          set_precision)

pytestmark = pytest.mark.backends

POLICIES = ("mixed_float16", "mixed_bfloat16")


class _Config:
    def __init__(self, mixed_precision):
        self.mixed_precision = mixed_precision


def test_float32_without_the_flag(monkeypatch):
    monkeypatch.setenv(FORCE_MIXED_ENV, "mixed_float16")
    assert set_precision(_Config(False)) == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_cpu_warns_once_and_trains_in_float32(monkeypatch):
    if has_accelerator():
        pytest.skip("this machine has an accelerator")
    monkeypatch.delenv(FORCE_MIXED_ENV, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert set_precision(_Config(True)) == "float32"
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "no GPU/TPU" in messages[0], messages
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("policy", POLICIES)
def test_forced_policy(monkeypatch, policy):
    monkeypatch.setenv(FORCE_MIXED_ENV, policy)
    assert set_precision(_Config(True)) == policy
    assert keras.config.dtype_policy().name == policy


def test_forced_policy_must_be_mixed(monkeypatch):
    monkeypatch.setenv(FORCE_MIXED_ENV, "float64")
    with pytest.raises(UsageError, match="Received: DLRECIPES_FORCE_MIXED"):
        set_precision(_Config(True))


def _one_batch(part, n=32):
    """(fit kwargs, predict input) of the first `n` training examples."""
    if isinstance(part, tuple):  # x may be several arrays (seq2seq)
        x = keras.tree.map_structure(lambda a: a[:n], part[0])
        return ({"x": x, "y": part[1][:n], "batch_size": n},
                keras.tree.map_structure(lambda a: a[:8], x))
    batch = part.take(1)  # a batched tf.data.Dataset (e.g. raw strings)
    return {"x": batch}, batch


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_model_under_mixed_precision(monkeypatch, name, policy):
    if keras.backend.backend() == "jax" and policy == "mixed_bfloat16":
        # What this adds under JAX is proven elsewhere: the dtypes of the
        # layers, variables and outputs are Keras' policy, the same under
        # every backend (checked here under TensorFlow); training,
        # evaluation and prediction under JAX in mixed_bfloat16 are
        # test_distribute's smoke runs of every recipe (forced policy).
        pytest.skip("under JAX, mixed_bfloat16 is test_distribute's smoke")
    monkeypatch.setenv(FORCE_MIXED_ENV, policy)
    recipe = get_recipe(name)
    config = smoke_config(name, mixed_precision=True)
    assert set_precision(config) == policy
    try:
        data = recipe.load_data(config)
    except UsageError as error:  # e.g. needs TensorFlow, under JAX
        pytest.skip(str(error))
    model, _ = build_compiled_model(recipe, config, data)
    jit_under_jax(model, config.jit_compile)
    compute = policy.split("_")[1]
    assert any(layer.compute_dtype == compute for layer in model.layers)
    assert all(v.dtype == "float32" for v in model.weights)
    if policy == "mixed_float16":
        # Keras wraps the optimizer for loss scaling at compile time (a
        # GAN each network's optimizer).
        inner = [getattr(model.optimizer, key, None) for key in
                 ("generator_optimizer", "discriminator_optimizer")]
        wrapped = [o for o in inner if o is not None] or [model.optimizer]
        assert all(isinstance(o, keras.optimizers.LossScaleOptimizer)
                   for o in wrapped)
    fit_data, inputs = _one_batch(data.train)
    history = model.fit(epochs=1, verbose=0, **fit_data)
    assert history.history and all(
        np.isfinite(v[0]) for v in history.history.values()), history.history
    if getattr(model, "latent_dim", None):  # a GAN generates from codes
        inputs = np.random.default_rng(0).standard_normal(
            (8, model.latent_dim)).astype("float32")
    outputs = model.predict(inputs, verbose=0)
    assert outputs.dtype == np.float32
    assert np.all(np.isfinite(outputs))
    logs = model.evaluate(verbose=0, return_dict=True, **fit_data)
    assert all(np.isfinite(v) for v in logs.values()), logs


@pytest.mark.skipif(keras.backend.backend() == "jax", reason=(
    "under JAX, test_distribute's smoke runs check this for every recipe"))
def test_cli_run_with_forced_mixed_bfloat16(monkeypatch, tmp_path):
    """The CLI's plumbing: the policy in force trains, evaluates and is
    recorded (each recipe's model under each policy is checked above; the
    smallest image model is enough here)."""
    monkeypatch.setenv(FORCE_MIXED_ENV, "mixed_bfloat16")
    name = "image-classification"
    assert main(smoke_argv(name, tmp_path, "--mixed-precision",
                           model="mlp")) == 0
    found = metrics(run_dir_of(tmp_path, name))
    assert found["dtype_policy"] == "mixed_bfloat16"
    assert np.isfinite(found["test_loss"])
    assert 0.0 <= found["test_accuracy"] <= 1.0
