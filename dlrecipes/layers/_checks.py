"""Argument checks and config helpers shared by the layers.

Errors follow Keras': a `ValueError` that names the argument and ends with
"Received: name=value".
"""

import keras


def is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_positive_int(name, value):
    if not is_positive_int(value):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def check_rate(name, value, allow_one=False):
    """Raise `ValueError` unless `value` is a float in [0, 1) (or [0, 1])."""
    upper_ok = (lambda v: v <= 1) if allow_one else (lambda v: v < 1)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value or not upper_ok(value)):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(
            f"`{name}` must be a float in {interval}. "
            f"Received: {name}={value!r}"
        )


def check_activation(activation):
    """Return `keras.activations.get(activation)`, re-raising clearly."""
    try:
        return keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(
            "`activation` must be a Keras activation name or callable. "
            f"Received: activation={activation!r}"
        ) from None


def check_initializer(name, value):
    """Return `keras.initializers.get(value)`, re-raising clearly."""
    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must be a Keras initializer name, config or instance. "
            f"Received: {name}={value!r}"
        ) from None


def serialize_activation(activation):
    if isinstance(activation, str):
        return activation
    return keras.activations.serialize(keras.activations.get(activation))


def serialize_initializer(initializer):
    if isinstance(initializer, str):
        return initializer
    return keras.initializers.serialize(keras.initializers.get(initializer))


def fresh_initializer(config):
    """A new initializer instance per use (keras-hub's clone_initializer)."""
    return keras.initializers.get(
        config if isinstance(config, str) else dict(config))
