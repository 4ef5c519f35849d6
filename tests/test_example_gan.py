"""A test-only recipe: a GAN, a model with its own `train_step`.

A worked example (see CONTRIBUTING.md, "Add a recipe") of a model the
engine trains without knowing its shape: `compile` takes the engine's
optimizer for the generator and makes a second one for the discriminator,
`train_step` alternates the two updates, the objective is a logged loss
(`g_loss`), and `restore` rebuilds the model and loads the saved weights
(its class is not one the safe loader accepts: it is neither Keras' nor
dlrecipes'). The data are one-dimensional: N(4, 0.5).

The train step uses TensorFlow's `GradientTape`: a custom `train_step` is
written per backend in Keras 3 (JAX's is stateless), so this example runs
under TensorFlow only.
"""

import dataclasses
import json

import numpy as np
import pytest

from dlrecipes.config import TrainConfig, default, option
from dlrecipes.data.description import Data
from dlrecipes.lazy import keras
from dlrecipes.recipe import Recipe, register_recipe
from dlrecipes.search_space import Float

MEAN, STD = 4.0, 0.5


def _gan_class():
    """The GAN model class (made on first use: a class body subclassing
    `keras.Model` would import Keras when this module is imported)."""
    import tensorflow as tf

    class GAN(keras.Model):
        def __init__(self, generator, discriminator, latent_dim, **kwargs):
            super().__init__(**kwargs)
            self.generator = generator
            self.discriminator = discriminator
            self.latent_dim = latent_dim
            self.noise = keras.random.SeedGenerator(0)
            self.d_tracker = keras.metrics.Mean(name="d_loss")
            self.g_tracker = keras.metrics.Mean(name="g_loss")

        def get_config(self):
            return {**super().get_config(), "latent_dim": self.latent_dim,
                    "generator": keras.saving.serialize_keras_object(
                        self.generator),
                    "discriminator": keras.saving.serialize_keras_object(
                        self.discriminator)}

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            for key in ("generator", "discriminator"):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key])
            return cls(**config)

        def call(self, z, training=False):
            return self.generator(z, training=training)

        def compile(self, optimizer, **kwargs):
            super().compile(optimizer=optimizer, **kwargs)
            # The discriminator's optimizer: the same kind and settings.
            self.d_optimizer = optimizer.__class__.from_config(
                optimizer.get_config())

        @property
        def metrics(self):
            return [self.d_tracker, self.g_tracker]

        def _gan_losses(self, real, training):
            batch = tf.shape(real)[0]
            z = keras.random.normal((batch, self.latent_dim),
                                    seed=self.noise)
            fake = self.generator(z, training=training)
            real_logits = self.discriminator(real, training=training)
            fake_logits = self.discriminator(fake, training=training)
            bce = keras.losses.binary_crossentropy
            d_loss = tf.reduce_mean(
                bce(tf.ones_like(real_logits), real_logits, from_logits=True)
                + bce(tf.zeros_like(fake_logits), fake_logits,
                      from_logits=True))
            g_loss = tf.reduce_mean(bce(tf.ones_like(fake_logits),
                                        fake_logits, from_logits=True))
            return d_loss, g_loss

        def train_step(self, data):
            real, _ = data
            with tf.GradientTape() as tape:
                d_loss, _ = self._gan_losses(real, True)
            weights = self.discriminator.trainable_weights
            self.d_optimizer.apply_gradients(
                zip(tape.gradient(d_loss, weights), weights))
            with tf.GradientTape() as tape:
                _, g_loss = self._gan_losses(real, True)
            weights = self.generator.trainable_weights
            self.optimizer.apply_gradients(
                zip(tape.gradient(g_loss, weights), weights))
            self.d_tracker.update_state(d_loss)
            self.g_tracker.update_state(g_loss)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            real, _ = data
            d_loss, g_loss = self._gan_losses(real, False)
            self.d_tracker.update_state(d_loss)
            self.g_tracker.update_state(g_loss)
            return {m.name: m.result() for m in self.metrics}

    return GAN


@dataclasses.dataclass(frozen=True)
class GANConfig(TrainConfig):
    latent_dim: int = option(4, "generator input width", min=1)
    epochs: int = default(12)
    batch_size: int = default(64)
    learning_rate: float = default(2e-3)
    # A GAN's losses do not rank its epochs: keep the last one.
    checkpoint: str = default("last")


@register_recipe
class ExampleGAN(Recipe):
    name = "example-gan"
    config_class = GANConfig
    description = "A 1-D GAN with its own train_step (test-only example)."
    objective = ("g_loss", "min")
    smoke = {"epochs": 1}
    search_space = {"learning_rate": Float(5e-4, 5e-3, sampling="log",
                                           grid=(1e-3, 2e-3))}
    data_fields = ("seed",)
    datasets = ("normal",)

    def load_data(self, config):
        rng = np.random.default_rng(config.seed)
        x = rng.normal(MEAN, STD, (4096, 1)).astype("float32")
        # No labels and no validation split: the objective is `g_loss`.
        return Data(train=(x[:3584], x[:3584]), val=None,
                    test=(x[3584:], x[3584:]), input_shape=(1,))

    def build_model(self, config, data):
        generator = keras.Sequential([
            keras.Input((config.latent_dim,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1)], name="generator")
        discriminator = keras.Sequential([
            keras.Input(data.input_shape),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1)], name="discriminator")
        model = _gan_class()(generator, discriminator, config.latent_dim)
        model(np.zeros((1, config.latent_dim), "float32"))  # build
        return model

    def compile(self, model, config, data, optimizer, **options):
        model.compile(optimizer, **options)

    def restore(self, path, config, data):
        model = self.build_model(config, data)
        model.load_weights(path)
        return model

    def report(self, model, data, run_dir, config):
        z = keras.random.normal((2000, config.latent_dim), seed=1)
        fake = keras.ops.convert_to_numpy(model.generator(z))
        return {"generated_mean": float(fake.mean()),
                "generated_std": float(fake.std())}


def test_gan_learns_the_data_distribution(tmp_path):
    """The engine trains a model with its own `train_step` and two
    optimizers: the generator's samples move from around 0 to the data's
    mean, 4."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the example's train_step is TensorFlow's")
    from dlrecipes.recipe import get_recipe
    from dlrecipes.training import run_recipe

    result = run_recipe(get_recipe("example-gan"), GANConfig(
        verbose=0, output_dir=str(tmp_path)))
    metrics = json.loads((tmp_path / result.run_dir / "metrics.json")
                         .read_text())
    assert abs(metrics["generated_mean"] - MEAN) < 0.5, metrics
    assert {"test_d_loss", "test_g_loss"} <= set(metrics)
