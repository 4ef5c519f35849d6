"""`dlrecipes run`: a run directory around the training engine.

config -> run directory -> `engine.train` (with the directory's callbacks:
history, best checkpoint, TensorBoard, backup) -> evaluate -> report ->
metrics.json. A tuning trial calls the same engine without a directory."""

import dataclasses
import math
import os
import platform
import sys
import time
import warnings

from dlrecipes.lazy import import_keras

keras = import_keras()  # quietly (TensorFlow's native start-up lines)
import numpy as np

from dlrecipes import techniques
from dlrecipes.errors import RunError, UsageError
from dlrecipes.training import plots
from dlrecipes.training import engine
from dlrecipes.training.callbacks import (DISK_FULL, BestCheckpoint,
                                          EpochTensorBoard, HistoryWriter,
                                          disk_full_message)
from dlrecipes.training.distribute import Distribution, initialize_cluster
from dlrecipes.training.precision import devices
from dlrecipes.training.resume import EpochBackup
from dlrecipes.training.rundir import (atomic_write_json, create_run_dir,
                                       discard, unlock)


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict
    model: object
    history: list


def _callbacks(config, run_dir, monitor, mode, averager=None):
    """The run directory's callbacks, `EpochBackup` after the others (with
    `--checkpoint last`, only the checkpoint that links its file comes
    after it): it saves after they have updated their state, and restores
    their counters after they reset them. None reads a value after each
    batch: no host synchronisation per step. With `--ema` the checkpoint
    keeps the moving average (`averager.applied`), never a link to the
    backup (which holds the raw weights); with `--snapshots` a model is
    saved at each cycle's end."""
    from dlrecipes.training.averaging import EMAWeights, SnapshotSaver

    cbs = [HistoryWriter(os.path.join(run_dir, "history.csv")),
           EpochTensorBoard(os.path.join(run_dir, "logs"))]
    backup = EpochBackup(os.path.join(run_dir, "backup"),
                         every=config.backup_every)
    model_path = os.path.join(run_dir, "model.keras")
    weights = averager.applied if isinstance(averager, EMAWeights) else None
    if getattr(config, "snapshots", 0):
        cbs.append(SnapshotSaver(os.path.join(run_dir, "snapshots"),
                                 config.epochs // config.snapshots))
    if config.checkpoint == "last" and weights is None:
        # Every epoch is kept: model.keras is linked from the backup of
        # the same epoch where there is one (after it), not saved twice;
        # between backups the last epoch waits in memory.
        best = BestCheckpoint(model_path, "epoch", "max", backup=backup,
                              deferred=config.backup_every > 0)
        cbs += [backup, best]
    elif config.checkpoint == "last":
        # The moving average: its own save (the backup holds the raw
        # weights), written before each backup as the best epoch is.
        best = BestCheckpoint(model_path, "epoch", "max",
                              deferred=config.backup_every > 0,
                              weights=weights)
        backup.before_save.append(best.flush)
        cbs += [best, backup]
    else:
        # Between backups the best epoch waits in memory; it is written
        # before each backup (and at the end), never after it.
        best = BestCheckpoint(model_path, monitor, mode,
                              deferred=config.backup_every > 0,
                              weights=weights)
        backup.before_save.append(best.flush)
        cbs += [best, backup]
    return cbs, best, backup


def _scalar(v):
    return float(np.asarray(v))


def evaluate(recipe, model, config, data):
    """Test metrics of `model` (loss and metrics from the recipe's
    `compile`), as `{"test_<name>": float}`."""
    engine.compile_model(recipe, model, config, data,
                         engine.steps_per_epoch(data, config), plain=True)
    test = data.test
    kwargs = ({"x": test[0], "y": test[1], "batch_size": config.batch_size}
              if isinstance(test, tuple) else {"x": test})
    logs = model.evaluate(verbose=0, return_dict=True, **kwargs)
    return {f"test_{k}": _scalar(v) for k, v in logs.items()}


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
    recipe.check(config)
    techniques.check(recipe, config)
    policy = engine.start(config)
    if data is None:
        data = recipe.load_data(config)

    dist = Distribution(config)  # checks the batch size: before any file
    if cluster.is_chief:
        try:
            # A multi-process run starts afresh: every process would have
            # to restore the same backup.
            run_dir, resumed = create_run_dir(
                config.output_dir, recipe.name, config.to_dict(),
                resume=resume and not cluster.multi_process,
                defaults=type(config)().to_dict())
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
    monitor, mode = recipe.monitor(data)
    backup = best = None
    averager = engine.make_averager(recipe, config)
    try:
        callbacks, best, backup = _callbacks(config, run_dir, monitor,
                                             mode, averager)
        trained = engine.train(
            recipe, config, data, callbacks=callbacks, backup=backup,
            dist=dist, verbose=config.verbose if cluster.is_chief else 0,
            run_dir=run_dir if cluster.is_chief else None,
            averager=averager)
        model = trained.model
        # The whole history, resumed epochs too.
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
        extra = _technique_figures(recipe, config, data, trained, best,
                                   run_dir, len(rows))
        # Evaluation needs the loss and metrics, not the optimizer state
        # (which a phase may have saved for itself).
        model = recipe.restore(os.path.join(run_dir, "model.keras"), config,
                               data)
        metrics = evaluate(recipe, model, config, data)
        metrics.update(extra)
        if trained.teacher is not None:
            from dlrecipes.training.distill import teacher_figures

            metrics.update(teacher_figures(model, trained.teacher, data))
        if getattr(config, "mc_dropout", 0):
            from dlrecipes.training.uncertainty import mc_dropout_figures

            metrics.update(mc_dropout_figures(model, data, config.mc_dropout,
                                              run_dir, seed=config.seed))
        metrics.update(recipe.report(model, data, run_dir, config) or {})
        plots.curves(rows, os.path.join(run_dir, "curves.png"))
        if getattr(config, "monitor", ""):
            plots.monitor(rows, os.path.join(run_dir, "monitor.png"))
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
        if cluster.is_chief and backup is not None and not (
                isinstance(e, OSError) and e.errno in DISK_FULL):
            _save_unsaved(backup, best)
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


def _technique_figures(recipe, config, data, trained, best, run_dir,
                       epochs):
    """With weight averaging: the model saved as `model.keras` is the
    average (SWA: saved here, after its batch-norm pass), and the test
    figures of the last epoch's own weights come beside it (`raw_test_*`).
    With `--snapshots`: the snapshot ensemble, their parameter average and
    the last snapshot."""
    from dlrecipes.training.averaging import (SWAWeights, snapshot_figures,
                                              snapshot_paths)
    from dlrecipes.training.callbacks import holding_variables

    figures = {}
    averager = trained.averager
    if isinstance(averager, SWAWeights) and averager.raw is not None:
        best.save_current(epochs - 1)
        figures["swa_epochs"] = averager.count
    if averager is not None and averager.raw is not None:
        model = trained.model
        with holding_variables(averager.variables(model), averager.raw):
            raw = evaluate(recipe, model, config, data)
        figures.update({f"raw_{k}": v for k, v in raw.items()})
    if getattr(config, "snapshots", 0):
        paths = snapshot_paths(os.path.join(run_dir, "snapshots"))
        if len(paths) >= 2:
            figures.update(snapshot_figures(paths, data, config.batch_size))
    return figures


def _save_unsaved(backup, best):
    """Training was interrupted (an exception, Ctrl-C): write the last
    finished epoch's state kept in memory since the last backup, and the
    best (or last) model waiting in memory, so running the same command
    again loses no finished epoch. Best effort: the interruption is what
    is reported."""
    try:
        backup.save_unsaved()
        best.flush()
    except BaseException as e:  # noqa: BLE001  (a second Ctrl-C, a full disk)
        warnings.warn(f"could not save the last epoch after the "
                      f"interruption: {type(e).__name__}: {e}", stacklevel=2)


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
