"""The image feature extractors named in the notes (`alexnet`, `inception`,
`densenet` of `dlrecipes.vision.models`) and the knobs every extractor
takes (`activation`, resnet's `drop_path`), through the
image-classification recipe; the quality runs of the three on the digits
are slow."""

import json
import os

import keras
import numpy as np
import pytest
from results_table import figure, printed, results_table

from conftest import config_from_flags
from dlrecipes.cli import main
from dlrecipes.errors import UsageError
from dlrecipes.recipe import get_recipe
from dlrecipes.vision import models
from recipes import image_classification

IMAGE = "image-classification"
NEW = ("alexnet", "inception", "densenet")

# The builders have no backend branch, but their models run under every
# backend, built with a NumPy initializer: under JAX each new weight shape
# of a Keras random initializer compiles (seconds a model). The recipe's
# own wiring (config to model) is checked under TensorFlow.
backends = pytest.mark.backends


def _he_normal(shape, dtype=None):
    """He normal from NumPy (compiles nothing under JAX)."""
    fan_in = int(np.prod(shape[:-1]))
    rng = np.random.default_rng(int(np.prod(shape)))
    return (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(
        "float32")


def _features_model(model, shape, **kwargs):
    kwargs.setdefault("kernel_initializer", _he_normal)
    inputs = keras.Input(shape)
    return keras.Model(inputs, models.features(inputs, model, **kwargs))


def _features(model, width):
    """The feature count of `model` at `width` and the default 2 stages of
    depth 1."""
    if model == "alexnet":
        return round(4096 * width / 96)  # AlexNet's dense layers, scaled
    if model == "inception":
        return 4 * width * 2  # 4c channels, c doubled in the second stage
    k = width // 2  # densenet: stem 2k, 4 layers of k, halved, 4 more
    return (2 * k + 4 * k) // 2 + 4 * k


@backends
@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3)])
@pytest.mark.parametrize("model", NEW)
def test_new_models_build_on_digits_and_cifar_shapes(model, shape):
    net = _features_model(model, shape, width=8)
    assert net.output.shape == (None, _features(model, 8))
    images = np.random.default_rng(0).random((2, *shape), "float32")
    out = net.predict(images, verbose=0)
    assert out.shape == (2, _features(model, 8))
    assert np.all(np.isfinite(out))
    assert not np.allclose(out[0], out[1])  # the features see the image


@backends
def test_default_widths_give_the_documented_features():
    for model in NEW:
        net = _features_model(model, (8, 8, 1))
        assert net.output.shape == (None, _features(model, 32)), model


@backends
@pytest.mark.parametrize("size, kernel, strides", [
    (8, 3, 1), (32, 5, 1), (64, 11, 4)])
def test_alexnet_stem_scales_with_the_image(size, kernel, strides):
    """The 11x11 stride-4 stem only from 64 pixels; pooling stops at one
    pixel (8x8 digits: 8, 4, 2, 1)."""
    net = _features_model("alexnet", (size, size, 1), width=8)
    conv1 = net.get_layer("conv1")
    assert conv1.kernel_size == kernel and conv1.strides == strides
    assert [net.get_layer(f"conv{i}").kernel_size for i in range(2, 6)] == [
        5, 3, 3, 3]
    flat = [layer for layer in net.layers
            if isinstance(layer, keras.layers.Flatten)][0]
    final = {8: 1, 32: 4, 64: 2}[size]
    assert flat.input.shape[1:3] == (final, final)


@backends
def test_inception_and_densenet_stages():
    net = _features_model("inception", (8, 8, 1), width=8, stages=3,
                          depth=2)
    blocks = [layer for layer in net.layers
              if isinstance(layer, models.dl_layers.InceptionBlock)]
    assert [b.filters_1x1 for b in blocks] == [8, 8, 16, 16, 32, 32]
    assert [b.input.shape[1] for b in blocks] == [8, 8, 4, 4, 2, 2]
    net = _features_model("densenet", (8, 8, 1), width=8, stages=3,
                          depth=2)
    blocks = [layer for layer in net.layers
              if isinstance(layer, models.dl_layers.DenseBlock)]
    assert [b.num_layers for b in blocks] == [6, 6, 6]
    assert [b.input.shape[1] for b in blocks] == [8, 4, 2]


def _activations(net):
    """The activation functions of the layers of `net` (nested blocks'
    too) that hold one."""
    from dlrecipes.training import sublayers

    return [layer.activation for layer in sublayers.walk(net)
            if callable(getattr(layer, "activation", None))]


@backends
@pytest.mark.parametrize("model", models.MODELS)
def test_activation_reaches_every_layer(model):
    net = _features_model(model, (8, 8, 1), width=8, activation="tanh")
    found = _activations(net)
    assert keras.activations.tanh in found
    assert keras.activations.relu not in found


@backends
def test_drop_path_rises_linearly_to_the_last_block():
    net = _features_model("resnet", (8, 8, 1), width=4, depth=2,
                          drop_path=0.3)
    rates = [layer.drop_path for layer in net.layers
             if isinstance(layer, models.dl_layers.ResidualBlock)]
    np.testing.assert_allclose(rates, [0.0, 0.1, 0.2, 0.3])
    one = _features_model("resnet", (8, 8, 1), width=4, stages=1,
                          drop_path=0.3)
    assert [layer.drop_path for layer in one.layers
            if isinstance(layer, models.dl_layers.ResidualBlock)] == [0.3]
    with pytest.raises(ValueError, match="Received: model='vgg', "
                       "drop_path=0.1$"):
        _features_model("vgg", (8, 8, 1), drop_path=0.1)


@pytest.mark.parametrize("model", ["vgg", *NEW])
def test_drop_path_without_resnet_is_a_usage_error(model):
    with pytest.raises(UsageError, match="--model resnet only.*Received: "
                       f"model={model}, drop_path=0.1$"):
        config_from_flags(IMAGE, ["--model", model, "--drop-path", "0.1"])
    config = config_from_flags(IMAGE, ["--drop-path", "0.1"])
    assert (config.model, config.drop_path) == ("resnet", 0.1)


def test_the_recipe_passes_the_knobs_to_the_model():
    config = config_from_flags(IMAGE, [
        "--width", "4", "--activation", "elu", "--drop-path", "0.2",
        "--kernel-initializer", "random_normal", "--init-std", "0.01"])
    recipe = get_recipe(IMAGE)
    net = recipe.build_model(config, recipe.load_data(config))
    blocks = [layer for layer in net.layers
              if isinstance(layer, models.dl_layers.ResidualBlock)]
    assert [b.drop_path for b in blocks] == [0.0, 0.2]
    assert all(b.activation is keras.activations.elu for b in blocks)
    init = blocks[0].kernel_initializer
    assert isinstance(init, keras.initializers.RandomNormal)
    assert init.stddev == 0.01


def _mean_row(model):
    return figure(results_table(image_classification), "test accuracy",
                  data="digits", model=model, seed="mean of 0-2")


def test_results_table_holds_the_new_models():
    for model in NEW:
        assert 0.98 <= float(_mean_row(model)) <= 1, model


@pytest.mark.slow
@pytest.mark.parametrize("model", NEW)
def test_new_models_reach_their_accuracy_on_digits(model, tmp_path):
    """Default training, seeds 0, 1, 2: the mean test accuracy reaches
    0.98 and the run's nearest-neighbours baseline, and is the Results
    table's to the printed digit."""
    runs = []
    for seed in (0, 1, 2):
        out = tmp_path / str(seed)
        assert main(["run", IMAGE, "--model", model, "--seed", str(seed),
                     "--output-dir", str(out), "--verbose", "0"]) == 0
        (run,) = os.listdir(out / IMAGE)
        runs.append(json.loads(
            (out / IMAGE / run / "metrics.json").read_text()))
    accuracies = [m["test_accuracy"] for m in runs]
    mean = float(np.mean(accuracies))
    print(model, "digits test accuracy per seed:", accuracies)
    assert mean >= 0.98, accuracies
    assert mean >= max(m["test_baseline_accuracy"] for m in runs), runs
    expected = _mean_row(model)
    assert printed(mean, expected) == expected, accuracies
