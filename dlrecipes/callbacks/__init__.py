"""Callbacks that Keras lacks. Keras' own (EarlyStopping, ReduceLROnPlateau,
BackupAndRestore, TerminateOnNaN) are used as they are and re-exported here
for convenience.

The monitoring callbacks write extra keys into the epoch `logs`; list them
before `CSVLogger`/`TensorBoard` in `callbacks=[...]` so those record them.
"""

from dlrecipes.lazy import import_keras as _import_keras

_import_keras()  # quietly (TensorFlow's native start-up lines), once

from keras.callbacks import (  # noqa: F401  (re-exported as they are)
    BackupAndRestore,
    EarlyStopping,
    ReduceLROnPlateau,
    TerminateOnNaN,
)

# Each module registers its classes with keras.saving on import.
from dlrecipes.callbacks.gap_early_stopping import GapEarlyStopping  # noqa: F401,E402
from dlrecipes.callbacks.update_ratio import UpdateRatioMonitor  # noqa: F401,E402
from dlrecipes.callbacks.activation_stats import ActivationStats  # noqa: F401,E402
