"""dlrecipes: Keras 3 recipes, layers, schedules and callbacks.

`import dlrecipes` imports no Keras: it sets TensorFlow's environment and
exports the recipe API (`Recipe`, `Phase`, `register_recipe`,
`get_recipe`, `list_recipes`, `Data`), so that the `dlrecipes` command lists
recipes and answers `--help` and bad flags in well under a second. The
Keras parts load on first use (PEP 562): `dlrecipes.layers`,
`dlrecipes.callbacks`, `dlrecipes.schedules`, `dlrecipes.load_model`,
`dlrecipes.training` ... Importing `dlrecipes.layers`, `.callbacks` or
`.schedules` registers their classes with Keras serialization (package
"dlrecipes"); `dlrecipes.load_model(path)` (the safe loader, `safe_mode`
on) imports the layers and schedules first, so a saved `.keras` model
loads with it.
Where Keras is already imported when `dlrecipes` is (`import keras;
import dlrecipes`), the three are imported at once, so that
`keras.saving.load_model` finds dlrecipes' classes too.

`dlrecipes.lazy` offers the same laziness to recipe modules
(`from dlrecipes.lazy import keras`).
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) is not
# for users; set TF_CPP_MIN_LOG_LEVEL yourself to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow 2.21's oneDNN CPU kernels corrupt the heap ("double free or
# corruption", then SIGABRT) in a strided-conv ResNet fed by tf.data with
# augmentation layers (reproduced: `dlrecipes run image-classification
# --dataset folder:...`); the default Eigen kernels are correct. Set
# TF_ENABLE_ONEDNN_OPTS=1 yourself to opt back in.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from dlrecipes.backend import backend_problem  # noqa: E402  (imports no Keras)

# A backend Keras cannot import (KERAS_BACKEND=torch without torch, or a
# name Keras does not know): one line, which a `dlrecipes` command prints
# and `import recipes` / `dlrecipes.lazy.import_keras()` raise.
BACKEND_PROBLEM = backend_problem()

# The Keras-free API, imported eagerly.
from dlrecipes.data.description import Data  # noqa: E402,F401
from dlrecipes.recipe import (  # noqa: E402,F401
    Phase, Recipe, get_recipe, list_recipes, register_recipe)

# `dlrecipes.NAME` imports the submodule NAME on first access (PEP 562);
# these import Keras, which is imported first, quietly
# (`dlrecipes.lazy.import_keras`).
_KERAS_SUBMODULES = ("callbacks", "layers", "saving", "schedules",
                     "training", "models", "vision", "forecast_report")
# Importing these registers their classes with Keras serialization.
_REGISTERING = ("callbacks", "layers", "schedules")


def __getattr__(name):
    import importlib
    import importlib.util

    if name == "load_model":
        return __getattr__("saving").load_model
    if name.startswith("_") or importlib.util.find_spec(
            f"{__name__}.{name}") is None:
        raise AttributeError(f"module {__name__!r} has no attribute "
                             f"{name!r}")
    if name in _KERAS_SUBMODULES:
        from dlrecipes.lazy import import_keras

        import_keras()
    return importlib.import_module(f"{__name__}.{name}")


def __dir__():
    import pkgutil

    return sorted(set(globals()) | {"load_model"} | {
        m.name for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")})


def _register():
    """Import the modules that register dlrecipes' classes with Keras."""
    import importlib

    for name in _REGISTERING:
        importlib.import_module(f"dlrecipes.{name}")


if "keras" in _sys.modules and BACKEND_PROBLEM is None:
    # Keras is loaded already, so registering costs nothing more: a model
    # saved with dlrecipes layers loads with plain `keras.saving` too.
    _register()
