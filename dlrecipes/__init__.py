"""dlrecipes: Keras 3 recipes, layers, schedules and callbacks.

Importing the package registers every public layer, schedule and callback
with Keras serialization (package "dlrecipes"), so a saved `.keras` model
loads with `keras.saving.load_model(path)` and `safe_mode` on.
"""

__version__ = "0.1.0"

from dlrecipes import callbacks  # noqa: F401,E402  (registers callbacks)
from dlrecipes import layers  # noqa: F401,E402  (registers layers)
from dlrecipes import schedules  # noqa: F401,E402  (registers schedules)
