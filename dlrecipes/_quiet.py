"""Silence native (C++) start-up chatter that Python cannot filter.

TensorFlow 2.21 logs CUDA probing and oneDNN notices through absl before
TF_CPP_MIN_LOG_LEVEL applies. We point file descriptor 2 at /dev/null for
the duration of the import only; Python exceptions raised inside are
re-raised after stderr is restored. Set DLRECIPES_NATIVE_LOGS=1 to see it.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def quiet_native_stderr():
    if os.environ.get("DLRECIPES_NATIVE_LOGS"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (notebooks)
        yield
        return
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
