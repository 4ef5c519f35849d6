"""Every layer inside a layer or model, through public attributes only.

Keras 3 has no public iterator over the sublayers of a composite layer (a
`ResidualBlock`, a nested backbone); `Model.layers` lists one level. This
walks `Model.layers` and the layers a layer holds as attributes (alone or
in lists, tuples and dicts), which is where Keras tracks them.
"""

import keras


def walk(layer, include_self=True):
    """Yield `layer` (optionally) and every sublayer, each once, parents
    before children."""
    seen = set()
    stack = [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current is not layer or include_self:
            yield current
        children = list(getattr(current, "layers", None) or ())
        for value in vars(current).values():
            values = (value.values() if isinstance(value, dict) else value
                      if isinstance(value, (list, tuple)) else (value,))
            children.extend(v for v in values
                            if isinstance(v, keras.layers.Layer))
        stack.extend(reversed(children))
