"""Stochastic regularization layers: stochastic depth and Monte Carlo dropout."""

import keras
from keras import ops

from dlrecipes.layers._checks import check_rate


@keras.saving.register_keras_serializable(package="dlrecipes")
class StochasticDepth(keras.layers.Layer):
    """Stochastic depth (drop path) for the output of a residual branch.

    Apply it to the residual branch just before it is added to the shortcut:
    `x + StochasticDepth(rate)(branch(x))`. In training, the whole branch of
    each sample is zeroed with probability `rate` and the kept samples are
    scaled by `1 / (1 - rate)`, so the expected output is unchanged; at
    inference the layer is the identity.

    Args:
        rate: float in [0, 1), the probability of dropping a sample's branch.
        seed: optional integer seed of the layer's `keras.random.SeedGenerator`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: the residual branch's output, any rank >= 1.
        training: boolean; the layer only drops in training mode.

    Input shape:
        `(batch, ...)`.

    Output shape:
        Same as the input.

    Example:

    >>> layer = StochasticDepth(0.2, seed=0)
    >>> branch = keras.ops.ones((4, 8, 8, 16))
    >>> tuple(layer(branch, training=True).shape)
    (4, 8, 8, 16)

    References:
        - [Huang et al., 2016. Deep Networks with Stochastic Depth](
          https://arxiv.org/abs/1603.09382)
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate("rate", rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        # One Bernoulli draw per sample, broadcast over all other axes.
        rank = len(inputs.shape)
        noise_shape = (ops.shape(inputs)[0],) + (1,) * (rank - 1)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=noise_shape,
            seed=self.seed_generator,
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="dlrecipes")
class MCDropout(keras.layers.Dropout):
    """Monte Carlo dropout: dropout that stays on at inference.

    Calling the model several times on the same input gives a sample of
    predictions whose spread estimates the model's uncertainty (Gal &
    Ghahramani, 2016). Units are dropped with probability `rate` and the kept
    ones scaled by `1 / (1 - rate)` whatever `training` is; `rate=0` is the
    identity.

    Args:
        rate: float in [0, 1), the fraction of the input units to drop.
        noise_shape: optional 1D shape of the binary dropout mask, broadcast
            with the input (`None` entries take the input's size), as in
            `keras.layers.Dropout`.
        seed: optional integer seed of the layer's random generator.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: tensor of any rank.
        training: ignored; dropout is always applied.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:

    >>> layer = MCDropout(0.5, seed=0)
    >>> x = keras.ops.ones((2, 10))
    >>> a, b = layer(x), layer(x)  # two different masks

    References:
        - [Gal & Ghahramani, 2016. Dropout as a Bayesian Approximation](
          https://arxiv.org/abs/1506.02142)
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        check_rate("rate", rate)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)
