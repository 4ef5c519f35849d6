"""The shared fit loop: config -> compile -> callbacks -> fit -> evaluate ->
run directory. Every recipe goes through `run_recipe`."""

import dataclasses
import importlib.util
import math
import os
import platform
import sys
import time
import warnings

import keras
import numpy as np

from dlrecipes.errors import RunError, UsageError
from dlrecipes.saving import load_model
from dlrecipes.training import plots
from dlrecipes.training.callbacks import (DISK_FULL, BestCheckpoint,
                                          HistoryWriter, StopOnNaN,
                                          disk_full_message)
from dlrecipes.training.distribute import (Distribution, initialize_cluster,
                                          jit_under_jax)
from dlrecipes.training.optimizers import make_optimizer
from dlrecipes.training.resume import EpochBackup
from dlrecipes.training.rundir import (atomic_write_json, create_run_dir,
                                       discard, unlock)


@dataclasses.dataclass
class Data:
    """What a recipe's `load_data` returns.

    `train`, `val` and `test` are `(x, y)` tuples of arrays (fed to `fit`
    with `batch_size`) or batched iterables (`tf.data.Dataset`,
    `keras.utils.PyDataset`). `info` carries recipe-specific extras.
    """

    train: object
    val: object
    test: object
    input_shape: tuple
    num_classes: int = None
    class_names: tuple = None
    info: dict = dataclasses.field(default_factory=dict)

    def num_examples(self, split):
        part = getattr(self, split)
        if isinstance(part, tuple):
            return len(part[1])
        n = self.info.get(f"num_{split}")
        return n


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict
    model: object
    history: list


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


def _steps_per_epoch(data, config):
    n = data.num_examples("train")
    if n:
        return max(1, math.ceil(n / config.batch_size))
    try:
        return max(1, len(data.train))
    except TypeError:
        return 1


def _fit_args(part, config):
    if isinstance(part, tuple):
        return {"x": part[0], "y": part[1], "batch_size": config.batch_size}
    return {"x": part}


def _jit(config):
    return {"auto": "auto", "on": True, "off": False}[config.jit_compile]


def training_callbacks(config, monitor, mode):
    """The callbacks that change training (shared with tuning trials): a
    NaN stop, early stopping and learning-rate reduction."""
    cbs = [StopOnNaN()]
    if config.early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=config.early_stopping,
            restore_best_weights=False))
    if config.reduce_lr_patience:  # with --schedule constant (validated)
        cbs.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, patience=config.reduce_lr_patience))
    return cbs


def _callbacks(config, run_dir, monitor, mode):
    """The harness' callbacks, `EpochBackup` last: it saves after the
    others have updated their state, and restores their counters after
    they reset them. None reads a value after each batch: no host
    synchronisation per step."""
    cbs = training_callbacks(config, monitor, mode)
    cbs.append(HistoryWriter(os.path.join(run_dir, "history.csv")))
    if config.checkpoint == "last":
        monitor, mode = "epoch", "max"
    best = BestCheckpoint(os.path.join(run_dir, "model.keras"), monitor, mode)
    cbs.append(best)
    if importlib.util.find_spec("tensorflow") is not None:
        cbs.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
    backup = EpochBackup(os.path.join(run_dir, "backup"),
                         callbacks_to_restore=list(cbs))
    cbs.append(backup)
    return cbs, best, backup


def _scalar(v):
    return float(np.asarray(v))


def build_compiled_model(recipe, config, data):
    """The recipe's model compiled with the config's optimizer, schedule and
    XLA setting: exactly what `run_recipe` trains (and what a tuning trial
    builds). Returns (model, steps_per_epoch)."""
    steps = _steps_per_epoch(data, config)
    model = recipe.build_model(config, data)
    model.compile(optimizer=make_optimizer(config, steps),
                  jit_compile=_jit(config),
                  steps_per_execution=config.steps_per_execution,
                  **recipe.compile_kwargs(config, data))
    jit_under_jax(model, config.jit_compile)
    return model, steps


def run_recipe(recipe, config, data=None, resume=True, print_summary=True):
    """Train, evaluate and save one run of `recipe` with `config`.

    Args:
        recipe: a registered `Recipe`.
        config: the recipe's config dataclass instance (validated).
        data: optional pre-loaded `Data` (the tuner passes its own).
        resume: reuse the newest unfinished run directory of the same
            config, continuing from its backup.

    Returns:
        `RunResult(run_dir, metrics, model, history)`.

    Raises:
        RunError: training saved no model (a loss that diverged in the
            first epoch), or the disk filled up. A run directory without a
            saved model is removed; one with a model is kept, to resume.
    """
    started = time.time()
    # Joins a multi-process job (JAX) before anything touches a device.
    cluster = initialize_cluster(config)
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config)
    if data is None:
        data = recipe.load_data(config)

    dist = Distribution(config)  # checks the batch size: before any file
    if cluster.is_chief:
        try:
            # A multi-process run starts afresh: every process would have
            # to restore the same backup.
            run_dir, resumed = create_run_dir(
                config.output_dir, recipe.name, config.to_dict(),
                resume=resume and not cluster.multi_process)
        except BaseException:
            dist.close()
            raise
    else:
        # Other processes train in lockstep and write nothing in the run
        # directory; their callbacks save into a private scratch directory
        # (saving is collective under multi-process JAX).
        run_dir, resumed = dist.scratch_dir(), False
    if resumed and config.verbose:
        print(f"Resuming interrupted run in {run_dir}")
    monitor, mode = recipe.objective
    if data.val is None:
        monitor = monitor.replace("val_", "")
    try:
        with dist.scope():
            model, steps = build_compiled_model(recipe, config, data)
        callbacks, best, backup = _callbacks(config, run_dir, monitor, mode)
        val = data.val
        val_arg = None if val is None else (
            val if not isinstance(val, tuple) else (val[0], val[1]))
        fit_kwargs = _fit_args(data.train, config)
        # Arrays are shuffled by `EpochArrays` (see `Distribution.fit_kwargs`);
        # datasets shuffle themselves.
        fit_kwargs["shuffle"] = isinstance(data.train, tuple)
        fit_kwargs.update(epochs=config.epochs, validation_data=val_arg,
                          callbacks=callbacks,
                          initial_epoch=backup.start_epoch(config.epochs),
                          verbose=config.verbose if cluster.is_chief else 0)
        fit_kwargs = dist.fit_kwargs(fit_kwargs)
        custom_fit = getattr(recipe.module, "fit", None)
        with dist.scope():
            if custom_fit is not None:
                # e.g. transfer learning's two phases; it recompiles with
                # `make_optimizer(config, steps)` as it needs.
                custom_fit(model, config, data, steps, fit_kwargs)
            else:
                model.fit(**fit_kwargs)
        rows = next(c for c in callbacks if isinstance(c, HistoryWriter)).rows
        if not rows:
            raise RuntimeError("training produced no epoch")
        # Evaluation and reports run on one device, in the chief only.
        dist.close()
        if not cluster.is_chief:
            return RunResult(None, dist.worker_result(rows), model, rows)
        if not os.path.isfile(os.path.join(run_dir, "model.keras")):
            raise RunError(no_model_message(rows, monitor, config))
        warn_if_diverged(rows, best.best_epoch)
        # Evaluation needs the loss and metrics, not the optimizer state
        # (which a two-phase recipe saves for another phase).
        model = load_model(os.path.join(run_dir, "model.keras"),
                           compile=False)
        model.compile(**recipe.compile_kwargs(config, data))
        test_logs = model.evaluate(verbose=0, return_dict=True,
                                   **_fit_args(data.test, config))
        metrics = {f"test_{k}": _scalar(v) for k, v in test_logs.items()}
        metrics.update(recipe.report(model, data, run_dir, config) or {})
        plots.curves(rows, os.path.join(run_dir, "curves.png"))
        metrics.update({
            "recipe": recipe.name,
            "params": int(model.count_params()),
            "epochs_run": len(rows),
            "best_epoch": best.best_epoch,
            "monitor": monitor,
            "wall_time_s": round(time.time() - started, 2),
            "resumed": resumed,
            "backend": keras.backend.backend(),
            "devices": devices(),
            "replicas": dist.num_replicas,
            "processes": dist.num_processes,
            "dtype_policy": policy,
            "keras_version": keras.__version__,
            "python": platform.python_version(),
            "seed": config.seed,
        })
        atomic_write_json(os.path.join(run_dir, "metrics.json"), metrics)
        backup.remove()  # kept until the results are safe
    except BaseException as e:
        # A run that saved no model (one that failed before its first epoch
        # ended: a model that does not build, weights that cannot be
        # downloaded, a loss that diverged at once) has nothing to resume
        # and leaves nothing behind; anything later stays, to be resumed.
        if cluster.is_chief and not os.path.exists(
                os.path.join(run_dir, "model.keras")):
            discard(run_dir)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise RunError(disk_full_message(
                e.filename or f"in {run_dir}")) from e
        raise
    finally:
        dist.close()
        if cluster.is_chief:
            unlock(run_dir)
    if print_summary and config.verbose:
        print_run_summary(run_dir, metrics)
    return RunResult(run_dir, metrics, model, rows)


def _diverged(rows):
    """(1-based epoch, loss) of the first row whose loss is NaN or infinite,
    or None. Rows read back from `history.csv` hold strings."""
    for row in rows:
        loss = float(row.get("loss", 0.0))
        if not math.isfinite(loss):
            return int(row["epoch"]) + 1, loss
    return None


def no_model_message(rows, monitor, config):
    """Why a run ended with no `model.keras`, and what to try."""
    diverged = _diverged(rows)
    if diverged is None:
        return f"no epoch gave a finite {monitor}, so no model was saved"
    epoch, loss = diverged
    return (f"the loss diverged ({loss}) at epoch {epoch}, before any model "
            "was saved; try a lower --learning-rate (now "
            f"{config.learning_rate:g}) or --clipnorm (e.g. 1.0)")


def warn_if_diverged(rows, best_epoch):
    """One warning line when training stopped on a NaN/inf loss after a
    saved epoch: the run goes on with the model saved before."""
    diverged = _diverged(rows)
    if diverged is None:
        return
    epoch, loss = diverged
    saved = "the last saved model" if best_epoch is None else \
        f"the model of epoch {best_epoch + 1}"
    warnings.warn(f"the loss diverged ({loss}) at epoch {epoch}; training "
                  f"stopped there and {saved} is evaluated (a lower "
                  "--learning-rate or --clipnorm may train further)",
                  stacklevel=3)


def print_run_summary(run_dir, metrics, file=None):
    file = file or sys.stdout
    keys = [k for k in metrics if k.startswith("test_")]
    keys += ["params", "epochs_run", "best_epoch", "wall_time_s", "backend",
             "dtype_policy"]
    width = max(len(k) for k in keys)
    print("", file=file)
    print(f"{'metric'.ljust(width)}  value", file=file)
    print(f"{'-' * width}  -----", file=file)
    for k in keys:
        v = metrics.get(k)
        text = f"{v:.4f}" if isinstance(v, float) and k.startswith("test_") \
            else str(v)
        print(f"{k.ljust(width)}  {text}", file=file)
    print(f"\nrun directory: {run_dir}", file=file)
