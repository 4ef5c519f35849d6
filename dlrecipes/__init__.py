"""dlrecipes: Keras 3 recipes, layers, schedules and callbacks.

Importing the package registers every public layer, schedule and callback
with Keras serialization (package "dlrecipes"), so a saved `.keras` model
loads with `keras.saving.load_model(path)` and `safe_mode` on.
"""

import os as _os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) is not
# for users; set TF_CPP_MIN_LOG_LEVEL yourself to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from dlrecipes._quiet import quiet_native_stderr  # noqa: E402

with quiet_native_stderr():
    import keras  # noqa: F401,E402  (imports the backend once, quietly)

from dlrecipes import callbacks  # noqa: F401,E402  (registers callbacks)
from dlrecipes import layers  # noqa: F401,E402  (registers layers)
from dlrecipes import schedules  # noqa: F401,E402  (registers schedules)
