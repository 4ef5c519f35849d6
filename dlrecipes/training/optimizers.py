"""Optimizer by name, with a learning-rate schedule by name."""

import keras

from dlrecipes import schedules
from dlrecipes.config import OPTIMIZERS
from dlrecipes.errors import UsageError, choices_message


def make_optimizer(config, steps_per_epoch):
    """A Keras optimizer from the config's optimizer and schedule fields.

    `weight_decay` is decoupled weight decay (Loshchilov & Hutter) for
    `adamw`, and Keras' `weight_decay` argument for the others (applied as
    decoupled decay by Keras 3 optimizers too; set it to 0 and use the
    models' `kernel_regularizer` for classic L2).
    """
    name = config.optimizer
    if name not in OPTIMIZERS:
        raise UsageError(choices_message("optimizer", name, OPTIMIZERS))
    total_steps = max(1, int(config.epochs * steps_per_epoch))
    # A warm-up longer than the run (e.g. a 1-epoch smoke run) is cut short.
    warmup_steps = min(int(round(config.warmup_epochs * steps_per_epoch)),
                       total_steps - 1)
    lr = schedules.get(config.schedule, learning_rate=config.learning_rate,
                       total_steps=total_steps, warmup_steps=warmup_steps)
    common = {"learning_rate": lr}
    if config.clipnorm:
        common["clipnorm"] = config.clipnorm
    wd = config.weight_decay or None
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=wd or 0.0, **common)
    if wd:
        common["weight_decay"] = wd
    if name == "sgd":
        return keras.optimizers.SGD(**common)
    if name in ("momentum", "nesterov"):
        return keras.optimizers.SGD(momentum=config.momentum,
                                    nesterov=name == "nesterov", **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=config.momentum, **common)
    if name == "adagrad":
        return keras.optimizers.Adagrad(**common)
    return keras.optimizers.Adam(**common)
