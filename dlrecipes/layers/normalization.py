"""A name -> normalization layer factory shared by the convolutional blocks."""

import keras

NORMALIZATIONS = ("batch", "layer", "group", "none")


def check_norm(norm, allowed=NORMALIZATIONS):
    """`norm` as one of `allowed` (a subset of `NORMALIZATIONS`); `None` is
    another name for `"none"`. Raises `ValueError` otherwise."""
    if norm is None and "none" in allowed:
        return "none"
    if not isinstance(norm, str) or norm not in allowed:
        raise ValueError(
            f"`norm` must be one of {', '.join(map(repr, allowed))} (or "
            f"None for 'none'). Received: norm={norm!r}"
        )
    return norm


def normalization(norm, axis=-1, groups=32, epsilon=None, dtype=None,
                  name=None):
    """Return a fresh normalization layer chosen by name.

    A new, unbuilt layer is returned on every call, so the result can be used
    once per place in a model.

    Args:
        norm: one of `NORMALIZATIONS`: `"batch"` (`BatchNormalization`),
            `"layer"` (`LayerNormalization`), `"group"`
            (`GroupNormalization`) or `"none"` (or `None`: `Identity`).
        axis: the channel (feature) axis; -1 for channels-last.
        groups: number of groups of `"group"` normalization; ignored
            otherwise. The factory does not know the channel count, so it
            cannot adapt `groups`: the caller must pass a divisor of the
            number of channels (the layer raises at build time otherwise).
        epsilon: small float added to the variance; `None` keeps the Keras
            layer's default (1e-3). Ignored for `"none"`.
        dtype: dtype or dtype policy of the layer; `None` for the global
            policy.
        name: name of the layer; `None` for an automatic one.

    Returns:
        An unbuilt `keras.layers.Layer`.

    Example:

    >>> layer = normalization("group", groups=4)
    >>> tuple(layer(keras.ops.ones((2, 8, 8, 16))).shape)
    (2, 8, 8, 16)
    """
    norm = check_norm(norm)
    kwargs = {"name": name}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if norm == "none":
        return keras.layers.Identity(**kwargs)
    if epsilon is not None:
        kwargs["epsilon"] = epsilon
    if norm == "batch":
        return keras.layers.BatchNormalization(axis=axis, **kwargs)
    if norm == "layer":
        return keras.layers.LayerNormalization(axis=axis, **kwargs)
    return keras.layers.GroupNormalization(groups=groups, axis=axis, **kwargs)
