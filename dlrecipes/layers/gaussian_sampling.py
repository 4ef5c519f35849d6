"""GaussianSampling: the reparameterized sampling step of a variational
autoencoder, with its KL divergence added as a loss."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlrecipes")
class GaussianSampling(keras.layers.Layer):
    """Draws a code `z ~ N(mean, exp(log_var))` and adds the KL divergence
    from the standard normal prior to the model's losses.

    The reparameterization trick of a variational autoencoder: in training
    the layer returns `mean + exp(log_var / 2) * eps` with `eps ~ N(0, I)`
    (so the gradient flows through `mean` and `log_var`); at inference it
    returns `mean`, so that a model's predictions are deterministic. In
    both modes it adds

        kl_weight * mean over the batch of
            -1/2 * sum(1 + log_var - mean**2 - exp(log_var))

    (the KL divergence `KL(N(mean, var) || N(0, I))` of each example,
    summed over its non-batch axes) with `add_loss`, so `fit` minimizes it
    beside the compiled reconstruction loss and `evaluate` reports their
    sum. With a reconstruction loss averaged over `D` outputs (Keras'
    `binary_crossentropy` is), `kl_weight=1 / D` makes the total the
    negative ELBO per output; larger weights give a beta-VAE. The KL
    divergence is computed in float32 whatever the dtype policy.

    Args:
        kl_weight: float >= 0, the factor of the KL loss (0: none).
        seed: optional integer seed of the layer's
            `keras.random.SeedGenerator`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: `[mean, log_var]`, two tensors of one shape; or one tensor
            whose last axis holds `mean` then `log_var` (even size).
        training: boolean; the layer samples only in training mode.

    Input shape:
        `[(batch, ..., d), (batch, ..., d)]` or `(batch, ..., 2 * d)`.

    Output shape:
        `(batch, ..., d)`.

    Example:

    >>> mean = keras.ops.zeros((4, 2))
    >>> log_var = keras.ops.zeros((4, 2))
    >>> layer = GaussianSampling(kl_weight=1.0, seed=0)
    >>> tuple(layer([mean, log_var], training=True).shape)
    (4, 2)

    References:
        - [Kingma & Welling, 2013. Auto-Encoding Variational Bayes](
          https://arxiv.org/abs/1312.6114)
        - [Higgins et al., 2017. beta-VAE](
          https://openreview.net/forum?id=Sy2fzU9gl)
    """

    def __init__(self, kl_weight=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if (isinstance(kl_weight, bool)
                or not isinstance(kl_weight, (int, float))
                or not kl_weight >= 0 or kl_weight == float("inf")):
            raise ValueError("`kl_weight` must be a finite float >= 0. "
                             f"Received: kl_weight={kl_weight!r}")
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, int)):
            raise ValueError("`seed` must be an integer or None. "
                             f"Received: seed={seed!r}")
        self.kl_weight = float(kl_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _split(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise ValueError("GaussianSampling takes [mean, log_var]. "
                                 f"Received: {len(inputs)} inputs")
            return inputs[0], inputs[1]
        size = inputs.shape[-1]
        if size is None or size % 2:
            raise ValueError("A single input's last axis must hold mean "
                             "and log_var (an even size). Received: "
                             f"input_shape={tuple(inputs.shape)}")
        return inputs[..., :size // 2], inputs[..., size // 2:]

    def call(self, inputs, training=None):
        mean, log_var = self._split(inputs)
        if self.kl_weight:
            m = ops.cast(mean, "float32")
            v = ops.cast(log_var, "float32")
            kl = -0.5 * (1.0 + v - ops.square(m) - ops.exp(v))
            per_example = ops.sum(kl, axis=tuple(range(1, len(kl.shape))))
            self.add_loss(self.kl_weight * ops.mean(per_example))
        if not training:
            return mean
        eps = keras.random.normal(ops.shape(mean), dtype=self.compute_dtype,
                                  seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and \
                isinstance(input_shape[0], (list, tuple)):
            return tuple(input_shape[0])
        shape = tuple(input_shape)
        last = None if shape[-1] is None else shape[-1] // 2
        return shape[:-1] + (last,)

    def get_config(self):
        config = super().get_config()
        config.update({"kl_weight": self.kl_weight, "seed": self.seed})
        return config
