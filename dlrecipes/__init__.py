"""dlrecipes: Keras 3 recipes, layers, schedules and callbacks.

Importing the package registers every public layer, schedule and callback
with Keras serialization (package "dlrecipes"), so a saved `.keras` model
loads with `dlrecipes.load_model(path)` (the safe loader; `safe_mode` on).
"""

import os as _os

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

from dlrecipes._quiet import quiet_native_stderr  # noqa: E402
from dlrecipes.backend import backend_problem  # noqa: E402  (imports no Keras)

# A backend Keras cannot import (KERAS_BACKEND=torch without torch, or a
# name Keras does not know): Keras is not imported, so that a `dlrecipes`
# command says so in one line and `import recipes` raises it.
BACKEND_PROBLEM = backend_problem()

if BACKEND_PROBLEM is None:
    with quiet_native_stderr():
        import keras  # noqa: F401,E402  (imports the backend once, quietly)

    from dlrecipes import callbacks  # noqa: F401,E402  (registers callbacks)
    from dlrecipes import layers  # noqa: F401,E402  (registers layers)
    from dlrecipes import schedules  # noqa: F401,E402  (registers schedules)
    from dlrecipes.saving import load_model  # noqa: F401,E402
