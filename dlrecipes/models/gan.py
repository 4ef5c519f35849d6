"""A generative adversarial network trained by `model.fit` under
TensorFlow, JAX and PyTorch: `GAN` (a `keras.Model` with its own
`train_step`) and `GANOptimizer` (one optimizer per network, seen by Keras
as one).

Keras 3 has no backend-agnostic custom `train_step`: TensorFlow and
PyTorch update variables in place, JAX's trainer passes the whole state in
and out of a pure function. The losses are written once, in `keras.ops`
(`GAN.discriminator_loss`, `GAN.generator_loss`); each backend has a short
driver that takes their gradients and applies them. Under JAX the losses
run in a `keras.StatelessScope` over the values the trainer passes, which
is how Keras' own `stateless_call` works.

The discriminator's optimizer must be part of the state Keras saves,
restores and (under JAX) threads through the jitted step, and Keras knows
one optimizer per model: `GANOptimizer` holds both and shows Keras the
variables of both (as `LossScaleOptimizer` shows its inner optimizer's).
So the backups of a run restore both optimizers exactly, and an
exponential moving average of the generator (Keras' `use_ema` on the
generator's optimizer) with them.

    gan = GAN(generator, discriminator, latent_dim=32)
    gan.compile(GANOptimizer(keras.optimizers.Adam(2e-4, beta_1=0.5),
                             keras.optimizers.Adam(2e-4, beta_1=0.5)))
    gan.fit(images, labels, epochs=50)   # labels: used when conditional
"""

import keras
import numpy as np
from keras import ops

LOGS = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc")


@keras.saving.register_keras_serializable(package="dlrecipes")
class GANOptimizer(keras.optimizers.Optimizer):
    """Two optimizers, one per network of a `GAN`, seen by Keras as one.

    `variables` lists the generator optimizer's variables then the
    discriminator optimizer's, so saving, loading and JAX's state cover
    both; `learning_rate` and `iterations` are the generator optimizer's
    (what callbacks and TensorBoard read). The `GAN` builds the two with
    its networks' variables in `compile` and applies each to its own
    network; `apply` on this object is refused.

    Args:
        generator_optimizer: a `keras.optimizers.Optimizer` (its
            `use_ema=True` keeps a moving average of the generator).
        discriminator_optimizer: a `keras.optimizers.Optimizer`.
        name: the optimizer's name.
    """

    def __init__(self, generator_optimizer, discriminator_optimizer,
                 name="gan_optimizer", **kwargs):
        kwargs.pop("learning_rate", None)
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        for key, value in (("generator_optimizer", generator_optimizer),
                           ("discriminator_optimizer",
                            discriminator_optimizer)):
            if not isinstance(value, keras.optimizers.Optimizer):
                raise ValueError(f"`{key}` must be a keras.optimizers."
                                 f"Optimizer. Received: {key}={value!r}")
        if generator_optimizer is discriminator_optimizer:
            raise ValueError("the generator and the discriminator need "
                             "optimizers of their own (two objects)")
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer

    def build_for(self, generator_variables, discriminator_variables,
                  var_list):
        """Build both optimizers, each for its network's variables, and
        this one for `var_list` (the model's trainable variables)."""
        # Ids, not the variables: a list of variables set on an optimizer
        # would be tracked as its own.
        self._generator_ids = frozenset(id(v) for v in generator_variables)
        if not self.generator_optimizer.built:
            self.generator_optimizer.build(generator_variables)
        if not self.discriminator_optimizer.built:
            self.discriminator_optimizer.build(discriminator_variables)
        if not self.built:
            super().build(var_list)

    def build(self, var_list):
        if not (self.generator_optimizer.built
                and self.discriminator_optimizer.built):
            raise ValueError("a GANOptimizer is built by its GAN's "
                             "`compile` (it must know which variables are "
                             "the generator's)")
        super().build(var_list)

    @property
    def variables(self):
        return (list(self.generator_optimizer.variables)
                + list(self.discriminator_optimizer.variables))

    @property
    def learning_rate(self):
        return self.generator_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        # The base class sets 0.0 in __init__, before the inner optimizers
        # exist: that one is not forwarded.
        if "generator_optimizer" in self.__dict__:
            self.generator_optimizer.learning_rate = value

    @property
    def iterations(self):
        return self.generator_optimizer.iterations

    def apply(self, grads, trainable_variables=None):
        raise NotImplementedError("apply each network's gradients with its "
                                  "own optimizer (`generator_optimizer`, "
                                  "`discriminator_optimizer`)")

    def stateless_apply(self, optimizer_variables, grads,
                        trainable_variables):
        self.apply(grads, trainable_variables)

    def finalize_variable_values(self, var_list):
        # `fit` ends with this: the generator takes its moving average
        # (with `use_ema`); the discriminator is left as trained.
        self.generator_optimizer.finalize_variable_values(
            [v for v in var_list if id(v) in self._generator_ids])

    def get_config(self):
        return {
            "name": self.name,
            "generator_optimizer": keras.optimizers.serialize(
                self.generator_optimizer),
            "discriminator_optimizer": keras.optimizers.serialize(
                self.discriminator_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator_optimizer", "discriminator_optimizer"):
            config[key] = keras.optimizers.deserialize(
                config[key], custom_objects=custom_objects)
        return cls(**config)


@keras.saving.register_keras_serializable(package="dlrecipes")
class GAN(keras.Model):
    """A generator and a discriminator trained against each other by
    `fit` (Goodfellow et al. 2014, with the non-saturating generator loss).

    Each training step updates the discriminator `d_steps` times (each
    with fresh latent codes, on the same real batch), then the generator
    once. The discriminator's loss is the binary cross-entropy of real
    images labelled `1 - label_smoothing` (one-sided smoothing, Salimans
    et al. 2016) and generated images labelled 0; the generator's is the
    cross-entropy of its images labelled 1. Logged per epoch: `d_loss`,
    `g_loss`, and the discriminator's accuracy on real images
    (`d_real_acc`) and on generated ones (`d_fake_acc`).

    Conditional: the generator takes `[z, label]` and the discriminator
    `[image, label]`; the labels are the `y` of `fit` (integers). An
    unconditional GAN ignores `y`.

    Calling the model generates: `gan(z)` (or `gan([z, labels])`).

    Args:
        generator: a Keras model, `z -> image` (`[z, label] -> image`).
        discriminator: a Keras model, `image -> logit` (`[image, label] ->
            logit`), one logit per image, no sigmoid.
        latent_dim: positive integer, the size of `z`.
        conditional: whether both networks take the label.
        d_steps: positive integer, discriminator updates per step.
        label_smoothing: float in [0, 0.5), the real label is 1 minus it.
        seed: seed of the latent codes drawn in training.
        **kwargs: base `keras.Model` arguments (`name` ...).
    """

    def __init__(self, generator, discriminator, latent_dim,
                 conditional=False, d_steps=1, label_smoothing=0.0, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError("`latent_dim` must be a positive integer. "
                             f"Received: latent_dim={latent_dim!r}")
        if not isinstance(d_steps, int) or d_steps < 1:
            raise ValueError("`d_steps` must be a positive integer. "
                             f"Received: d_steps={d_steps!r}")
        if not 0 <= label_smoothing < 0.5:
            raise ValueError("`label_smoothing` must be in [0, 0.5). "
                             f"Received: label_smoothing={label_smoothing!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.conditional = bool(conditional)
        self.d_steps = d_steps
        self.label_smoothing = float(label_smoothing)
        self.seed = seed
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in LOGS}

    # ------------------------------------------------------------- model

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def build(self, input_shape=None):
        if not self.generator.built or not self.discriminator.built:
            raise ValueError("build the generator and the discriminator "
                             "before the GAN")
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, optimizer, **kwargs):
        """`optimizer`: a `GANOptimizer` (both networks' optimizers),
        built here for their variables. `jit_compile` and
        `steps_per_execution` pass to Keras; no loss or metrics."""
        if not isinstance(optimizer, GANOptimizer):
            raise ValueError("a GAN compiles with a GANOptimizer (one "
                             "optimizer per network). Received: "
                             f"optimizer={optimizer!r}")
        super().compile(optimizer=optimizer, **kwargs)
        # Under mixed_float16 Keras wraps the optimizer it is given for
        # loss scaling; a GAN scales each network's loss with its own.
        self.optimizer = optimizer
        if self.dtype_policy.name == "mixed_float16":
            for key in ("generator_optimizer", "discriminator_optimizer"):
                inner = getattr(optimizer, key)
                if not isinstance(inner,
                                  keras.optimizers.LossScaleOptimizer):
                    setattr(optimizer, key,
                            keras.optimizers.LossScaleOptimizer(inner))
        optimizer.build_for(self.generator.trainable_variables,
                            self.discriminator.trainable_variables,
                            self.trainable_variables)

    def get_compile_config(self):
        if getattr(self, "optimizer", None) is None:
            return None
        return {"optimizer": keras.optimizers.serialize(self.optimizer)}

    def compile_from_config(self, config):
        # A loaded GAN compiles again with both optimizers (their state is
        # loaded next, with the weights).
        self.compile(keras.optimizers.deserialize(config["optimizer"]))

    def get_config(self):
        return {
            "name": self.name,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(
                self.discriminator),
            "latent_dim": self.latent_dim,
            "conditional": self.conditional,
            "d_steps": self.d_steps,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects)
        return cls(**config)

    # The state of the latent codes' generator is saved with the weights
    # (Keras saves a layer's variables, not its seed generators'), so a run
    # resumed from a backup draws the codes the uninterrupted run draws.
    _NOISE_KEY = "noise_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._NOISE_KEY] = keras.ops.convert_to_numpy(self.noise.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._NOISE_KEY in keys:
            self.noise.state.assign(np.asarray(store[self._NOISE_KEY]))
        super().load_own_variables({k: store[k] for k in keys
                                    if k != self._NOISE_KEY})

    # ------------------------------------------------------------ losses

    def _latent(self, batch):
        return keras.random.normal((batch, self.latent_dim),
                                   seed=self.noise)

    def _generate(self, z, labels, training):
        inputs = [z, labels] if self.conditional else z
        return self.generator(inputs, training=training)

    def _judge(self, images, labels, training):
        inputs = [images, labels] if self.conditional else images
        logits = self.discriminator(inputs, training=training)
        return ops.cast(ops.reshape(logits, (-1,)), "float32")

    @staticmethod
    def _bce(target, logits):
        # Binary cross-entropy from logits, stable: softplus(l) - t * l.
        return ops.mean(ops.softplus(logits) - target * logits)

    def discriminator_loss(self, real, labels, training=True):
        """`(loss, (real_acc, fake_acc))` of the discriminator on a real
        batch and as many generated images (fresh latent codes)."""
        z = self._latent(ops.shape(real)[0])
        fake = ops.stop_gradient(self._generate(z, labels, training))
        real_logits = self._judge(real, labels, training)
        fake_logits = self._judge(fake, labels, training)
        loss = (self._bce(1.0 - self.label_smoothing, real_logits)
                + self._bce(0.0, fake_logits))
        real_acc = ops.mean(ops.cast(real_logits > 0, "float32"))
        fake_acc = ops.mean(ops.cast(fake_logits < 0, "float32"))
        return loss, (real_acc, fake_acc)

    def generator_loss(self, real, labels, training=True):
        """The generator's non-saturating loss, `-log D(G(z))`, on as many
        generated images as `real` holds (fresh latent codes)."""
        z = self._latent(ops.shape(real)[0])
        return self._bce(1.0, self._judge(
            self._generate(z, labels, training), labels, training))

    # -------------------------------------------------------- train steps

    @staticmethod
    def _unpack(data):
        if isinstance(data, (tuple, list)):
            real = data[0]
            labels = data[1] if len(data) > 1 else None
        else:
            real, labels = data, None
        return real, labels

    def _check_labels(self, labels):
        if self.conditional and labels is None:
            raise ValueError("a conditional GAN trains on (images, labels)")
        if labels is not None:
            labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        return labels

    def _logs(self, d_loss, g_loss, real_acc, fake_acc):
        for name, value in zip(LOGS, (d_loss, g_loss, real_acc, fake_acc)):
            self.trackers[name].update_state(value)
        return {name: m.result() for name, m in self.trackers.items()}

    def train_step(self, *args):
        backend = keras.backend.backend()
        if backend == "jax":
            return self._jax_train_step(*args)
        if backend == "tensorflow":
            return self._tf_train_step(*args)
        if backend == "torch":
            return self._torch_train_step(*args)
        raise NotImplementedError(f"GAN training under {backend}")

    def _tf_train_step(self, data):
        import tensorflow as tf

        real, labels = self._unpack(data)
        labels = self._check_labels(labels)
        opt = self.optimizer
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        d_opt, g_opt = opt.discriminator_optimizer, opt.generator_optimizer
        for _ in range(self.d_steps):
            with tf.GradientTape() as tape:
                d_loss, (real_acc, fake_acc) = self.discriminator_loss(
                    real, labels)
                scaled = d_opt.scale_loss(d_loss)
            d_opt.apply(tape.gradient(scaled, d_vars), d_vars)
        with tf.GradientTape() as tape:
            g_loss = self.generator_loss(real, labels)
            scaled = g_opt.scale_loss(g_loss)
        g_opt.apply(tape.gradient(scaled, g_vars), g_vars)
        return self._logs(d_loss, g_loss, real_acc, fake_acc)

    def _torch_train_step(self, data):
        import torch

        real, labels = self._unpack(data)
        labels = self._check_labels(labels)
        opt = self.optimizer

        def step(loss, variables, optimizer):
            self.zero_grad()
            optimizer.scale_loss(loss).backward()
            optimizer.apply([v.value.grad for v in variables], variables)

        for _ in range(self.d_steps):
            d_loss, (real_acc, fake_acc) = self.discriminator_loss(
                real, labels)
            step(d_loss, self.discriminator.trainable_variables,
                 opt.discriminator_optimizer)
        g_loss = self.generator_loss(real, labels)
        step(g_loss, self.generator.trainable_variables,
             opt.generator_optimizer)
        with torch.no_grad():
            return self._logs(d_loss.detach(), g_loss.detach(), real_acc,
                              fake_acc)

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, opt_values, metric_values = state
        real, labels = self._unpack(data)
        labels = self._check_labels(labels)
        model_trainable = self.trainable_variables
        model_non_trainable = self.non_trainable_variables
        index = {id(v): i for i, v in enumerate(model_trainable)}
        opt = self.optimizer
        n_g = len(opt.generator_optimizer.variables)
        opt_values = {"g": list(opt_values[:n_g]),
                      "d": list(opt_values[n_g:])}

        def stateless(fn, trainable, non_trainable):
            """`fn()` on these variable values: its result and the new
            non-trainable values (batch-norm statistics, the noise seed)."""
            mapping = (list(zip(model_trainable, trainable))
                       + list(zip(model_non_trainable, non_trainable)))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                out = fn()
            new = [scope.get_current_value(v) for v in model_non_trainable]
            return out, [n if n is not None else old
                         for n, old in zip(new, non_trainable)]

        def update(network, optimizer, key, loss_fn, trainable,
                   non_trainable):
            positions = [index[id(v)] for v in network.trainable_variables]

            def objective(values, trainable, non_trainable):
                trainable = list(trainable)
                for i, value in zip(positions, values):
                    trainable[i] = value
                (loss, aux), non_trainable = stateless(
                    loss_fn, trainable, non_trainable)
                # Loss scaling (mixed_float16) reads the optimizer's scale.
                with keras.StatelessScope(state_mapping=list(
                        zip(optimizer.variables, opt_values[key]))):
                    scaled = optimizer.scale_loss(loss)
                return scaled, (loss, aux, non_trainable)

            values = [trainable[i] for i in positions]
            (_, (loss, aux, non_trainable)), grads = jax.value_and_grad(
                objective, has_aux=True)(values, trainable, non_trainable)
            values, opt_values[key] = optimizer.stateless_apply(
                opt_values[key], grads, values)
            trainable = list(trainable)
            for i, value in zip(positions, values):
                trainable[i] = value
            return loss, aux, trainable, non_trainable

        for _ in range(self.d_steps):
            d_loss, (real_acc, fake_acc), trainable, non_trainable = update(
                self.discriminator, opt.discriminator_optimizer, "d",
                lambda: self.discriminator_loss(real, labels), trainable,
                non_trainable)
        g_loss, _, trainable, non_trainable = update(
            self.generator, opt.generator_optimizer, "g",
            lambda: (self.generator_loss(real, labels), ()), trainable,
            non_trainable)

        metric_variables = self.metrics_variables
        with keras.StatelessScope(state_mapping=list(
                zip(metric_variables, metric_values))) as scope:
            logs = self._logs(d_loss, g_loss, real_acc, fake_acc)
        metric_values = [scope.get_current_value(v) for v in
                         metric_variables]
        return logs, (trainable, non_trainable,
                      opt_values["g"] + opt_values["d"], metric_values)

    def test_step(self, *args):
        # Losses on held-out real images, no update.
        if keras.backend.backend() == "jax":
            state, data = args
            trainable, non_trainable, metric_values = state
        else:
            (data,) = args
        real, labels = self._unpack(data)
        labels = self._check_labels(labels)

        def losses():
            d_loss, (real_acc, fake_acc) = self.discriminator_loss(
                real, labels, training=False)
            g_loss = self.generator_loss(real, labels, training=False)
            return self._logs(d_loss, g_loss, real_acc, fake_acc)

        if keras.backend.backend() != "jax":
            return losses()
        mapping = (list(zip(self.trainable_variables, trainable))
                   + list(zip(self.non_trainable_variables, non_trainable))
                   + list(zip(self.metrics_variables, metric_values)))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = losses()
        non_trainable = [scope.get_current_value(v) if
                         scope.get_current_value(v) is not None else old
                         for v, old in zip(self.non_trainable_variables,
                                           non_trainable)]
        metric_values = [scope.get_current_value(v) for v in
                         self.metrics_variables]
        return logs, (trainable, non_trainable, metric_values)


__all__ = ["GAN", "GANOptimizer", "LOGS"]
