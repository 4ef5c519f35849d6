"""`--mixed-precision`: the policy choice, and every recipe's model under
mixed_float16 and mixed_bfloat16 (forced on this CPU with
DLRECIPES_FORCE_MIXED): float32 outputs and loss, float32 variables,
finite values, loss scaling for float16."""

import json
import os
import warnings

import keras
import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.errors import UsageError
from dlrecipes.registry import get_recipe, list_recipes
from dlrecipes.training import build_compiled_model
from dlrecipes.training.distribute import jit_under_jax
from dlrecipes.training.loop import (FORCE_MIXED_ENV, has_accelerator,
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
    if isinstance(part, tuple):
        x, y = part[0][:n], part[1][:n]
        return {"x": x, "y": y, "batch_size": n}, x[:8]
    batch = part.take(1)  # a batched tf.data.Dataset (e.g. raw strings)
    return {"x": batch}, batch


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", list_recipes())
def test_recipe_model_under_mixed_precision(monkeypatch, name, policy):
    monkeypatch.setenv(FORCE_MIXED_ENV, policy)
    recipe = get_recipe(name)
    config = recipe.config_class(mixed_precision=True, verbose=0,
                                 **recipe.module.SMOKE)
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
        # Keras wraps the optimizer for loss scaling at compile time.
        assert isinstance(model.optimizer,
                          keras.optimizers.LossScaleOptimizer)
    fit_data, inputs = _one_batch(data.train)
    history = model.fit(epochs=1, verbose=0, **fit_data)
    assert np.isfinite(history.history["loss"][0])
    outputs = model.predict(inputs, verbose=0)
    assert outputs.dtype == np.float32
    assert np.all(np.isfinite(outputs))
    logs = model.evaluate(verbose=0, return_dict=True, **fit_data)
    assert all(np.isfinite(v) for v in logs.values()), logs


def test_cli_run_with_forced_mixed_bfloat16(monkeypatch, tmp_path):
    monkeypatch.setenv(FORCE_MIXED_ENV, "mixed_bfloat16")
    name = "image-classification"
    args = ["run", name, "--output-dir", str(tmp_path), "--verbose", "0",
            "--mixed-precision"]
    for key, value in get_recipe(name).module.SMOKE.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert main(args) == 0
    (run,) = os.listdir(tmp_path / name)
    metrics = json.loads((tmp_path / name / run / "metrics.json").read_text())
    assert metrics["dtype_policy"] == "mixed_bfloat16"
    assert np.isfinite(metrics["test_loss"])
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
