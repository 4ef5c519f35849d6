"""Annealed Gaussian gradient noise (Neelakantan et al. 2015) for any Keras
optimizer, under every backend.

Each step adds `N(0, sigma_t^2)` to every gradient before the optimizer
uses it, with `sigma_t^2 = eta / (1 + t) ^ gamma` (`t` the optimizer's
step, `gamma` 0.55 as in the paper): large early, when it helps a deep
network leave poor regions, vanishing later. The paper's `eta` values
are 0.01, 0.3 and 1.0.

    from dlrecipes.gradient_noise import with_gradient_noise

    NoisyAdam = with_gradient_noise(keras.optimizers.Adam)
    model.compile(NoisyAdam(1e-3, noise_eta=0.01), loss=...)

The noisy class subclasses the optimizer (its arguments, schedules,
`use_ema`, clipping and loss scaling all stay Keras'), adds one tracked
variable (the noise's random state: part of `optimizer.variables`, so
JAX's stateless step advances it, and a saved optimizer resumes the same
noise) and is registered for serialization as
`dlrecipes>GradientNoise<Optimizer>`. The classes of Keras' built-in
optimizers are registered when this module is imported.
"""

import keras
from keras import ops


class _GradientNoise:
    """The noise, mixed into an optimizer class by `with_gradient_noise`."""

    def __init__(self, *args, noise_eta=0.01, noise_gamma=0.55,
                 noise_seed=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(noise_eta, (int, float)) or isinstance(
                noise_eta, bool) or noise_eta < 0:
            raise ValueError("`noise_eta` must be a number >= 0. "
                             f"Received: noise_eta={noise_eta!r}")
        if not isinstance(noise_gamma, (int, float)) or isinstance(
                noise_gamma, bool) or noise_gamma < 0:
            raise ValueError("`noise_gamma` must be a number >= 0. "
                             f"Received: noise_gamma={noise_gamma!r}")
        self.noise_eta = float(noise_eta)
        self.noise_gamma = float(noise_gamma)
        self.noise_seed = noise_seed

    def build(self, variables):
        super().build(variables)
        # A Variable attribute is tracked: the state joins
        # `self.variables` (saved, restored, threaded through JAX).
        self._noise_generator = keras.random.SeedGenerator(self.noise_seed)
        self._noise_state = self._noise_generator.state

    def noise_std(self):
        """This step's standard deviation, `sqrt(eta / (1 + t)^gamma)`."""
        step = ops.cast(self.iterations, "float32")
        return ops.sqrt(self.noise_eta / (1.0 + step) ** self.noise_gamma)

    def apply(self, grads, trainable_variables=None):
        if not self.built and trainable_variables is not None:
            self.build(list(trainable_variables))
            self.built = True
        if self.noise_eta:
            std = self.noise_std()
            grads = [g if g is None else g + ops.cast(std, g.dtype)
                     * keras.random.normal(ops.shape(g), dtype=g.dtype,
                                           seed=self._noise_generator)
                     for g in grads]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "noise_eta": self.noise_eta,
                "noise_gamma": self.noise_gamma,
                "noise_seed": self.noise_seed}


_CLASSES = {}


def with_gradient_noise(optimizer_class):
    """The subclass of Keras optimizer class `optimizer_class` that adds
    annealed Gaussian noise to the gradients (module docstring); its
    constructor takes the optimizer's arguments plus `noise_eta` (the
    variance at step 0), `noise_gamma` (0.55) and `noise_seed`. One class
    per optimizer class, registered as `dlrecipes>GradientNoise<Name>`."""
    if not (isinstance(optimizer_class, type) and issubclass(
            optimizer_class, keras.optimizers.Optimizer)):
        raise TypeError("`optimizer_class` must be a keras.optimizers."
                        f"Optimizer class. Received: {optimizer_class!r}")
    if issubclass(optimizer_class, _GradientNoise):
        return optimizer_class
    if optimizer_class not in _CLASSES:
        name = f"GradientNoise{optimizer_class.__name__}"
        cls = type(name, (_GradientNoise, optimizer_class), {
            "__doc__": f"`keras.optimizers.{optimizer_class.__name__}` with "
                       "annealed Gaussian gradient noise "
                       "(`dlrecipes.gradient_noise`).",
            "__module__": __name__})
        _CLASSES[optimizer_class] = keras.saving.register_keras_serializable(
            package="dlrecipes", name=name)(cls)
    return _CLASSES[optimizer_class]


for _cls in (keras.optimizers.SGD, keras.optimizers.RMSprop,
             keras.optimizers.Adagrad, keras.optimizers.Adam,
             keras.optimizers.AdamW):
    with_gradient_noise(_cls)
