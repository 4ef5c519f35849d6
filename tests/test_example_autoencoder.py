"""A test-only recipe: a denoising autoencoder, whose input is its target.

A worked example of a recipe that is not an `(x, y) -> softmax` classifier
(see CONTRIBUTING.md, "Add a recipe"): the whole recipe is this file; the
engine, the run directory, the CLI and tuning take it as it is.
"""

import dataclasses
import json

import numpy as np

from dlrecipes.config import TrainConfig, default, option
from dlrecipes.data import load_digits, stratified_split
from dlrecipes.data.description import Data
from dlrecipes.lazy import keras
from dlrecipes.recipe import Recipe, register_recipe
from dlrecipes.search_space import Choice, Float

# ## Load the data
# Digits scaled to 0..1 and flattened: the target of each image is itself.


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig(TrainConfig):
    code_dim: int = option(16, "width of the bottleneck", min=1)
    noise: float = option(0.2, "std of the Gaussian input noise", min=0)
    epochs: int = default(8)
    learning_rate: float = default(3e-3)


@register_recipe
class ExampleAutoencoder(Recipe):
    name = "example-autoencoder"
    config_class = AutoencoderConfig
    description = "Denoising autoencoder on digits (test-only example)."
    objective = ("val_loss", "min")
    smoke = {"epochs": 1, "code_dim": 4}
    search_space = {"code_dim": Choice((8, 16)),
                    "learning_rate": Float(1e-3, 1e-2, sampling="log",
                                           grid=(3e-3,))}
    data_fields = ("seed",)
    datasets = ("digits",)

    def load_data(self, config):
        images, labels = load_digits()
        x = images.reshape(len(images), -1) / 16.0  # (n, 64) in 0..1
        train, val, test = stratified_split(x, labels, seed=config.seed)
        # (x, x): the input is the target; the labels are not used.
        return Data(train=(train[0], train[0]), val=(val[0], val[0]),
                    test=(test[0], test[0]), input_shape=(64,),
                    source="digits")

    # ## Build the model
    # Noise (training only) -> 64 -> code -> 64, sigmoid pixels.

    def build_model(self, config, data):
        inputs = keras.Input(data.input_shape)
        x = keras.layers.GaussianNoise(config.noise)(inputs)
        x = keras.layers.Dense(config.code_dim, activation="relu")(x)
        outputs = keras.layers.Dense(64, activation="sigmoid")(x)
        return keras.Model(inputs, outputs)

    def loss(self, config, data):
        return "mse"

    def metrics(self, config, data):
        return ["mae"]

    # ## Results
    # The classical baseline: predict every pixel's training mean.

    def report(self, model, data, run_dir, config):
        mean = data.train[1].mean(axis=0)
        baseline = float(np.mean((data.test[1] - mean) ** 2))
        return {"test_baseline_mse": baseline}


def test_autoencoder_beats_the_mean_image(tmp_path):
    """`run_recipe` (what `dlrecipes run` calls) trains it end to end: the
    input is the target, and the reconstruction error beats the mean-image
    baseline the recipe reports."""
    from dlrecipes.recipe import get_recipe
    from dlrecipes.training import run_recipe

    result = run_recipe(get_recipe("example-autoencoder"), AutoencoderConfig(
        verbose=0, output_dir=str(tmp_path)))
    metrics = json.loads((tmp_path / result.run_dir / "metrics.json")
                         .read_text())
    assert metrics["test_loss"] < 0.6 * metrics["test_baseline_mse"], metrics
    assert metrics["epochs_run"] == 8 and metrics["monitor"] == "val_loss"
