"""The one set of argument checks and object helpers every layer uses.

House style (keras-hub's): `__init__` checks each argument with the
helpers below and stores *objects* (`get_activation`, `get_initializer`,
`get_regularizer` return what `keras.*.get` returns: a plain function stays a
function, as in `keras.layers.Dense`); `build` hands every sublayer its own
copy of an initializer (`clone_initializer`); `get_config` serializes with
`keras.activations.serialize`, `keras.initializers.serialize` and
`keras.regularizers.serialize`.

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
    return value


def check_count(name, value):
    """Raise `ValueError` unless `value` is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"`{name}` must be an integer >= 0. Received: {name}={value!r}")
    return value


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
    return value


def check_positive_number(name, value, minimum=0.0):
    """Raise `ValueError` unless `value` is a real number > `minimum`."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not value > minimum):
        what = ("a positive number" if minimum == 0
                else f"a number greater than {minimum:g}")
        raise ValueError(
            f"`{name}` must be {what}. Received: {name}={value!r}")
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_choice(name, value, choices):
    if isinstance(value, bool) or value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}")
    return value


def get_activation(activation, name="activation"):
    """`keras.activations.get(activation)`, with a clear error."""
    try:
        return keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must be a Keras activation name or callable. "
            f"Received: {name}={activation!r}"
        ) from None


def get_initializer(name, value):
    """`keras.initializers.get(value)`, with a clear error.

    Names, configs, `Initializer` instances and plain functions
    `fn(shape, dtype=None)` are accepted (a function is kept as is, and must
    be registered with `keras.saving.register_keras_serializable` for the
    layer to deserialize, exactly as for `keras.layers.Dense`).
    """
    try:
        initializer = keras.initializers.get(value)
    except (ValueError, TypeError):
        initializer = None
    if initializer is None or not callable(initializer):
        raise ValueError(
            f"`{name}` must be a Keras initializer name, config, instance or "
            f"function. Received: {name}={value!r}")
    return initializer


def get_regularizer(name, value):
    """`keras.regularizers.get(value)` (`None` stays `None`), clearly."""
    try:
        return keras.regularizers.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must be None or a Keras regularizer name, config, "
            f"instance or function. Received: {name}={value!r}") from None


def clone_initializer(initializer):
    """A fresh copy of an `Initializer` per sublayer (keras-hub's helper).

    Two weights must not share one seeded initializer object; a plain
    function has no state and is returned as is.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())


def resolve_alias(kwargs, alias, name, value, default):
    """Pop the alias `alias` of argument `name` from `kwargs`.

    Returns the alias's value when it was given (an explicit, different
    `name=` beside it is an error), else `value`.
    """
    if alias not in kwargs:
        return value
    aliased = kwargs.pop(alias)
    if value != default and value != aliased:
        raise ValueError(
            f"`{alias}` is another name for `{name}`: pass one of them. "
            f"Received: {name}={value!r}, {alias}={aliased!r}")
    return aliased


def check_input_rank(layer, input_shape, rank, layout):
    """Inputs of rank `rank` with a known last dimension."""
    if len(input_shape) != rank or input_shape[-1] is None:
        raise ValueError(
            f"`{type(layer).__name__}` expects inputs of shape {layout} with "
            f"a known last dimension. Received: input_shape="
            f"{tuple(input_shape)}")
