"""Optimizer by name, with a learning-rate schedule by name."""

import keras

from dlrecipes import schedules
from dlrecipes.config import OPTIMIZERS
from dlrecipes.errors import UsageError, choices_message


def make_optimizer(config, steps_per_epoch, ema=0.0):
    """A Keras optimizer from the config's optimizer and schedule fields.

    With `config.snapshots` = N (a snapshot ensemble), `cosine_restarts`
    runs N equal cycles of `epochs / N` epochs (Keras'
    `CosineDecayRestarts` with `t_mul=1`), each ending on an epoch and
    starting at the peak rate (the warm-up is left out). With
    `ema` in (0, 1) the optimizer keeps Keras' moving average of the
    weights (`use_ema=True`, `ema_momentum=ema`).

    `weight_decay` is decoupled weight decay (Loshchilov & Hutter) for
    `adamw`, and Keras' `weight_decay` argument for the others (applied as
    decoupled decay by Keras 3 optimizers too; set it to 0 and use the
    models' `kernel_regularizer` for classic L2, `--l2`).
    `clipvalue` clips each gradient value (`clipnorm` the norm); with
    `gradient_noise` = eta the optimizer is
    `dlrecipes.gradient_noise.with_gradient_noise` of its class (annealed
    Gaussian noise on the gradients, drawn from the run's seed).
    """
    name = config.optimizer
    if name not in OPTIMIZERS:
        raise UsageError(choices_message("optimizer", name, OPTIMIZERS))
    common = {"learning_rate": learning_rate(config, steps_per_epoch)}
    if ema:
        common.update(use_ema=True, ema_momentum=float(ema))
    if config.clipnorm:
        common["clipnorm"] = config.clipnorm
    if getattr(config, "clipvalue", 0.0):
        common["clipvalue"] = config.clipvalue
    wd = config.weight_decay or None
    if name == "adamw":
        cls, common["weight_decay"] = keras.optimizers.AdamW, wd or 0.0
    else:
        if wd:
            common["weight_decay"] = wd
        cls = {"sgd": keras.optimizers.SGD, "momentum": keras.optimizers.SGD,
               "nesterov": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop,
               "adagrad": keras.optimizers.Adagrad}.get(
                   name, keras.optimizers.Adam)
        if name in ("momentum", "nesterov", "rmsprop"):
            common["momentum"] = config.momentum
        if name in ("momentum", "nesterov"):
            common["nesterov"] = name == "nesterov"
    if getattr(config, "gradient_noise", 0.0):
        from dlrecipes.gradient_noise import with_gradient_noise

        cls = with_gradient_noise(cls)
        common.update(noise_eta=config.gradient_noise, noise_seed=config.seed)
    return cls(**common)


def learning_rate(config, steps_per_epoch):
    """The config's learning-rate schedule over `epochs * steps_per_epoch`
    steps (a float for a constant rate without warm-up); see
    `make_optimizer` for `--snapshots`."""
    total_steps = max(1, int(config.epochs * steps_per_epoch))
    # A warm-up longer than the run (e.g. a 1-epoch smoke run) is cut short.
    warmup_steps = min(int(round(config.warmup_epochs * steps_per_epoch)),
                       total_steps - 1)
    cycles = {}
    if getattr(config, "snapshots", 0) and config.schedule == \
            "cosine_restarts":
        # Every cycle starts at the peak rate: no warm-up.
        warmup_steps = 0
        cycles = {"t_mul": 1.0, "first_decay_steps": max(
            1, (config.epochs // config.snapshots) * steps_per_epoch)}
    return schedules.get(config.schedule, learning_rate=config.learning_rate,
                         total_steps=total_steps, warmup_steps=warmup_steps,
                         **cycles)
