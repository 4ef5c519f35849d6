import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dlrecipes  # noqa: E402,F401  (first: sets TF_ENABLE_ONEDNN_OPTS=0)
import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session, float32 and a fixed seed."""
    # free_memory=False: no gc.collect() per test (0.4 s each, minutes
    # over the suite); Python's collector still runs on its own.
    keras.backend.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
