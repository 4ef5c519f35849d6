"""One module per task; importing this package registers every recipe.

Every module here whose name does not start with `_` is a recipe module
and is imported (`dlrecipes.recipe.discover`): a new recipe needs no list
to be edited. Modules starting with `_` are shared helpers.

`dlrecipes` is imported first, before any recipe module can import Keras:
it sets TensorFlow's environment (oneDNN kernels off, C++ logs quiet) before
TensorFlow loads, however a recipe is reached (`import recipes.x`,
`python -m recipes.x`, `dlrecipes run`).
"""

import dlrecipes  # noqa: F401  (first: TensorFlow's environment)
from dlrecipes._quiet import quiet_native_stderr
from dlrecipes.backend import require_backend
from dlrecipes.recipe import discover

require_backend()  # an uninstalled backend: one clear ImportError
# Registers every recipe. A recipe module should import Keras lazily
# (`from dlrecipes.lazy import keras`); one that imports it at the top
# still keeps TensorFlow's native start-up chatter off stderr.
with quiet_native_stderr():
    discover(__name__)
