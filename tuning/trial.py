"""One trial: build the recipe's model exactly as `run_recipe` does, fit it,
and return its per-epoch logs.

`fit_trial` runs in the tuner's process; `python -m tuning.trial REQUEST`
runs the same function in a fresh process (`--trial-isolation process`),
reading a JSON request and writing a JSON result next to it.
"""

import json
import math
import os
import sys
import time


class TrialFailed(Exception):
    """A trial that trained but produced NaN (recorded as failed, no retry)."""


def _make_best_weights(keras, monitor, mode, path, best):
    """Saves weights when `monitor` beats `best` (shared across executions,
    as KerasTuner's own checkpointing does), atomically: a kill or a full
    disk mid-write leaves the previous checkpoint (a full disk: one error
    line naming the file)."""
    from dlrecipes.training.callbacks import writing

    class BestWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = best

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None or not math.isfinite(float(value)):
                return
            value = float(value)
            if self.best is None or (value < self.best if mode == "min"
                                     else value > self.best):
                self.best = value
                # Keras names the format after the suffix: keep it.
                tmp = os.path.join(os.path.dirname(path),
                                   ".tmp-" + os.path.basename(path))
                with writing(path, tmp):  # nothing half-written is left
                    self.model.save_weights(tmp)
                    os.replace(tmp, path)

    return BestWeights()


def fit_trial(recipe, config, data, *, initial_epoch=0, warm_start=None,
              checkpoint=None, checkpoint_best=None, tensorboard_dir=None,
              hparams=None, trial_id=None):
    """Train one execution of `config` with the engine `dlrecipes run`
    uses (`dlrecipes.training.engine`): same seed, precision, model,
    phases, callbacks that change training, and data order, so the same
    config trains the same model. Returns a dict of results.

    Args:
        recipe: the `Recipe`.
        config: the trial's config (its `seed` seeds this execution).
        data: the recipe's `Data` for this config.
        initial_epoch: Hyperband's epoch to continue from.
        warm_start: weights file to load first (Hyperband).
        checkpoint: where to save the best weights (Hyperband), or None.
        checkpoint_best: best score saved there so far (shared across
            executions).
        tensorboard_dir: per-execution TensorBoard log directory or None.
        hparams: {name: value} for TensorBoard's HParams dashboard.

    Returns:
        {"rows": [per-epoch logs], "fit_seconds", "best_epoch", "best",
        "checkpoint_best"}.

    Raises:
        TrialFailed: if a loss or the objective is NaN or infinite.
    """
    import keras

    from dlrecipes.training import engine

    engine.start(config)
    monitor, mode = recipe.monitor(data)
    callbacks = []
    saver = None
    if checkpoint:
        saver = _make_best_weights(keras, monitor, mode, checkpoint,
                                   checkpoint_best)
        callbacks.append(saver)
    if tensorboard_dir:
        callbacks.append(keras.callbacks.TensorBoard(
            tensorboard_dir, write_graph=False, profile_batch=0))
        if hparams:
            from tensorboard.plugins.hparams import api as hparams_api

            callbacks.append(hparams_api.KerasCallback(
                tensorboard_dir, hparams, trial_id=trial_id))
    start = time.time()
    trained = engine.train(recipe, config, data, callbacks=callbacks,
                           initial_epoch=initial_epoch,
                           warm_start=warm_start)
    fit_seconds = time.time() - start
    rows = trained.rows
    del trained, callbacks
    if not rows:
        raise TrialFailed("training produced no epoch")
    for row in rows:
        bad = [k for k, v in row.items() if k != "epoch" and (
            "loss" in k or k == monitor) and not math.isfinite(v)]
        if bad:
            raise TrialFailed(f"{bad[0]} is {row[bad[0]]} at epoch "
                              f"{row['epoch'] + 1}")
    if monitor not in rows[0]:
        raise TrialFailed(f"objective {monitor!r} not in the logs; found: "
                          f"{', '.join(k for k in rows[0] if k != 'epoch')}")
    pick = min if mode == "min" else max
    best = pick(rows, key=lambda r: r[monitor])
    return {"rows": rows, "fit_seconds": fit_seconds,
            "best_epoch": best["epoch"], "best": best,
            "checkpoint_best": saver.best if saver else None}


# ------------------------------------------------- --trial-isolation process


def main(argv=None):
    """`python -m tuning.trial REQUEST.json`: run one trial's executions and
    write `result.json` next to the request (exit 0 even if the trial
    failed; the result says so)."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with open(argv[0]) as f:
        request = json.load(f)
    result_path = os.path.join(os.path.dirname(argv[0]), "result.json")
    try:
        import importlib

        import dlrecipes  # noqa: F401  (quiet imports, registrations)
        from dlrecipes.config import config_from_dict
        from dlrecipes.recipe import get_recipe

        importlib.import_module(request["recipe_module"])
        recipe = get_recipe(request["recipe"])
        config = config_from_dict(recipe.config_class, request["config"],
                                  source="trial request")
        data = recipe.load_data(config)
        executions = []
        best = request.get("checkpoint_best")
        for execution in range(request["executions"]):
            out = fit_trial(
                recipe, config.replace(seed=config.seed + execution), data,
                initial_epoch=request["initial_epoch"],
                warm_start=request.get("warm_start"),
                checkpoint=request.get("checkpoint"), checkpoint_best=best,
                tensorboard_dir=(request["tensorboard_dirs"][execution]
                                 if request.get("tensorboard_dirs") else None),
                hparams=request.get("hparams"),
                trial_id=request.get("trial_id"))
            best = out["checkpoint_best"]
            executions.append(out)
        result = {"status": "ok", "executions": executions,
                  "rss_mb": rss_mb()}
    except TrialFailed as e:
        result = {"status": "failed", "message": str(e)}
    except Exception as e:  # reported to the tuner, which marks it failed
        import traceback

        result = {"status": "error", "message": traceback.format_exc(),
                  "error": f"{type(e).__name__}: {e}"}
    tmp = result_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, result_path)
    return 0


def rss_mb():
    """Resident memory of this process in MiB (Linux; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


if __name__ == "__main__":
    raise SystemExit(main())
