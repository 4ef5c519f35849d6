"""Callbacks that Keras lacks. Keras' own (EarlyStopping, ReduceLROnPlateau,
BackupAndRestore, TerminateOnNaN) are used as they are."""
