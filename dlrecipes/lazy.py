"""Modules imported on first use, so that importing a recipe costs no Keras.

A recipe module imports its heavy modules from here at the top:

    from dlrecipes.lazy import keras, dl_layers

    def build_model(config, data):
        x = keras.Input(data.input_shape)        # Keras is imported here
        x = dl_layers.ConvNormAct(32)(x)         # and dlrecipes.layers here
        ...

`keras` is a `LazyModule`: a small proxy whose first attribute access
imports the real module (Keras quietly, see `import_keras`) and hands the
attribute over; it never changes `sys.modules`. So `dlrecipes list`, a
`--help` and a bad flag answer without importing Keras or its backend (5 s
and more), and Keras loads when a method that uses it runs.

What is here:

- `keras`, `ops` (`keras.ops`), `tf` (`tensorflow`): the libraries;
- `dl_layers`, `dl_callbacks`, `dl_schedules`: `dlrecipes.layers`,
  `dlrecipes.callbacks` and `dlrecipes.schedules` (the `dl_` prefix keeps
  them apart from `keras.layers` ...);
- `LazyModule(name)` for any other module, `load(proxy)` for the module
  behind a proxy, and `import_keras()`.

What stays eager: anything evaluated when the module is imported. A class
body that subclasses `keras.layers.Layer`, a decorator such as
`@keras.saving.register_keras_serializable()` or a default argument built
from `keras` imports Keras at import time; put such code in a helper module
that only methods import (`from recipes import _models` inside
`build_model`), or build the objects inside functions.
"""

import importlib
import sys


def import_keras():
    """Import Keras (and so its backend) once and return it.

    TensorFlow's native start-up chatter (CUDA probing, absl notices, which
    `TF_CPP_MIN_LOG_LEVEL` does not silence) is kept off stderr during the
    import; set `DLRECIPES_NATIVE_LOGS=1` to see it. A configured backend
    that is not installed raises one clear `ImportError` (see
    `dlrecipes.backend`) instead of Keras' long traceback.
    """
    module = sys.modules.get("keras")
    if module is not None:
        return module
    import dlrecipes  # noqa: F401  (TensorFlow's environment, first)
    from dlrecipes._quiet import quiet_native_stderr
    from dlrecipes.backend import require_backend

    require_backend()
    with quiet_native_stderr():
        return importlib.import_module("keras")


def import_tensorflow_quietly():
    """Import TensorFlow, when installed, with its native start-up lines
    kept off stderr, as `import_keras` does. Under JAX or torch, Keras
    still imports TensorFlow where it finds it (`set_random_seed` seeds it,
    TensorBoard writes with it): call this first. Returns the module or
    None."""
    import importlib.util

    module = sys.modules.get("tensorflow")
    if module is not None or importlib.util.find_spec("tensorflow") is None:
        return module
    from dlrecipes._quiet import quiet_native_stderr

    with quiet_native_stderr():
        return importlib.import_module("tensorflow")


def _needs_keras(name):
    """Modules whose import imports Keras (and its backend) first."""
    top = name.partition(".")[0]
    return top in ("keras", "tensorflow", "dlrecipes")


# Attributes that introspection asks any object for (`inspect.unwrap`,
# pytest's collection): answered without importing the module.
_PROBES = frozenset({"__wrapped__", "__test__", "__signature__"})


class LazyModule:
    """A stand-in for module `name` that imports it on first attribute
    access and forwards every attribute access to it.

    `keras = LazyModule("keras")` at the top of a module, then
    `keras.layers.Dense(...)` inside a function: `keras` is imported at that
    call, not before. Use the proxy for attribute access only (`from proxy
    import x` is not possible); `load(proxy)` returns the module itself.
    The proxy has no attributes of its own, so none hides the module's.
    """

    __slots__ = ("_lazy_name", "_lazy_module")

    def __init__(self, name):
        object.__setattr__(self, "_lazy_name", name)
        object.__setattr__(self, "_lazy_module", None)

    def __getattr__(self, attr):
        if attr in _PROBES:  # inspect and pytest ask; no import for that
            raise AttributeError(attr)
        return getattr(load(self), attr)

    def __setattr__(self, attr, value):
        name = object.__getattribute__(self, "_lazy_name")
        raise AttributeError(f"cannot set {attr!r} on the lazy module "
                             f"{name!r}")

    def __dir__(self):
        return dir(load(self))

    def __repr__(self):
        name = object.__getattribute__(self, "_lazy_name")
        loaded = object.__getattribute__(self, "_lazy_module") is not None
        return f"<lazy module {name!r}{'' if loaded else ' (not imported)'}>"


def load(proxy):
    """The module behind the `LazyModule` `proxy`, imported now if it is
    not yet (a module passes through)."""
    if not isinstance(proxy, LazyModule):
        return proxy
    module = object.__getattribute__(proxy, "_lazy_module")
    if module is None:
        name = object.__getattribute__(proxy, "_lazy_name")
        if _needs_keras(name):
            import_keras()
        module = importlib.import_module(name)
        object.__setattr__(proxy, "_lazy_module", module)
    return module


keras = LazyModule("keras")
ops = LazyModule("keras.ops")
tf = LazyModule("tensorflow")
dl_layers = LazyModule("dlrecipes.layers")
dl_callbacks = LazyModule("dlrecipes.callbacks")
dl_schedules = LazyModule("dlrecipes.schedules")

__all__ = ["LazyModule", "load", "import_keras", "keras", "ops", "tf",
           "dl_layers", "dl_callbacks", "dl_schedules"]
