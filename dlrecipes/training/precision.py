"""Devices and the dtype policy: what `--mixed-precision` turns into."""

import os
import warnings

import keras

from dlrecipes.errors import UsageError


def devices():
    from dlrecipes._quiet import quiet_native_stderr

    try:
        with quiet_native_stderr():
            return list(keras.distribution.list_devices())
    except Exception:  # backend without a distribution library
        return ["cpu:0"]


def has_accelerator():
    return any(not d.lower().startswith("cpu") for d in devices())


FORCE_MIXED_ENV = "DLRECIPES_FORCE_MIXED"
MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def set_precision(config):
    """Set the global dtype policy; returns the policy name in force.

    `--mixed-precision` picks `mixed_bfloat16` on accelerators that support
    it and `mixed_float16` otherwise (Keras then wraps the optimizer in a
    `LossScaleOptimizer` at compile time); on a CPU it warns and trains in
    float32. `DLRECIPES_FORCE_MIXED=mixed_float16|mixed_bfloat16` forces that
    policy with `--mixed-precision` even on a CPU (tests, benchmarks).
    """
    if not config.mixed_precision:
        keras.config.set_dtype_policy("float32")
        return "float32"
    forced = os.environ.get(FORCE_MIXED_ENV, "").strip()
    if forced:
        if forced not in MIXED_POLICIES:
            raise UsageError(f"{FORCE_MIXED_ENV} must be one of "
                             f"{', '.join(MIXED_POLICIES)}. "
                             f"Received: {FORCE_MIXED_ENV}={forced}")
        keras.config.set_dtype_policy(forced)
        return forced
    if not has_accelerator():
        warnings.warn("--mixed-precision: no GPU/TPU found; mixed precision "
                      "is slower on CPU, training in float32.", stacklevel=2)
        keras.config.set_dtype_policy("float32")
        return "float32"
    policy = "mixed_bfloat16" if _supports_bf16() else "mixed_float16"
    keras.config.set_dtype_policy(policy)
    return policy


def _supports_bf16():
    """bf16 needs compute capability >= 8.0 (Ampere) on NVIDIA GPUs."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            kind = jax.devices()[0].device_kind.lower()
            return not any(old in kind for old in ("v100", "t4", "p100"))
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            cc = tf.config.experimental.get_device_details(gpus[0]).get(
                "compute_capability", (0, 0))
            return tuple(cc) >= (8, 0)
        if backend == "torch":
            import torch

            return torch.cuda.is_bf16_supported()
    except Exception:
        return False
    return False
