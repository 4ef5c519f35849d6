"""KerasTuner's side of a search: the oracle and a `Tuner` whose trials
train a recipe through `tuning.trial.fit_trial` (the training engine
`dlrecipes run` uses), in this process or in a fresh one.

A trial's config is the base config with the trial's hp values (and
Hyperband's epochs); each execution trains it with seed `seed + e`. Its
metrics are the objective and the other logs at each execution's best
epoch, averaged over executions (as KerasTuner does), plus `epochs`
(trained, summed), `fit_seconds`, `seconds` (the whole trial),
`best_epoch` and `rss_mb` (this process).
"""

import datetime
import functools
import json
import os
import signal
import subprocess
import sys
import time

from dlrecipes.errors import RunError
from dlrecipes.training.rundir import atomic_write_json, atomic_write_text
from tuning import kt_compat, space as space_lib
from tuning.distributed import child_env, die_with_parent
from tuning.spec import DEFAULT_MAX_TRIALS, KT_PROJECT
from tuning.trial import TrialFailed, fit_trial, rss_mb

CHECKPOINT = "checkpoint.weights.h5"  # Hyperband's, per trial


@functools.lru_cache(maxsize=None)
def _tuner_class():
    import keras_tuner

    class RecipeTuner(keras_tuner.Tuner):
        """A KerasTuner `Tuner` whose trials train a recipe's own model."""

        def __init__(self, recipe_search, oracle, **kwargs):
            self.recipe_search = recipe_search  # (`search` is a method)
            super().__init__(oracle, **kwargs)

        def run_trial(self, trial, *args, **kwargs):
            return run_trial(self.recipe_search, self, trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.recipe_search.after_trial(trial)

    return RecipeTuner


def make_tuner(search):
    """The KerasTuner `Tuner` of `search` (a `tuning.runner.Search`), on
    its directory's `kt/` records (the same directory resumes)."""
    import keras_tuner

    kt_compat.quiet_failures(not os.environ.get("DLRECIPES_DEBUG"))
    hp = keras_tuner.HyperParameters()
    space_lib.declare(hp, search.space, search.base,
                      grid=search.tuner == "grid")
    name, direction = search.objective
    common = {
        "objective": keras_tuner.Objective(name, direction),
        "hyperparameters": hp,
        # KerasTuner draws a random seed for a falsy one: keep 0 usable.
        "seed": search.base.seed + 1,
        "max_retries_per_trial": 0,
        "max_consecutive_failed_trials": search.max_failures or 2**31,
    }
    cls = kt_compat.oracle_classes()[search.tuner]
    if search.tuner == "hyperband":
        oracle = cls(max_epochs=search.max_epochs, factor=search.factor,
                     hyperband_iterations=search.hyperband_iterations,
                     **common)
    elif search.tuner == "grid":
        oracle = cls(max_trials=search.max_trials, **common)
    else:
        oracle = cls(max_trials=search.max_trials or DEFAULT_MAX_TRIALS,
                     **common)
    tuner = _tuner_class()(search, oracle, directory=search.directory,
                           project_name=KT_PROJECT, overwrite=False,
                           executions_per_trial=search.executions_per_trial)
    tuner.oracle.verbose = search.base.verbose if search.role != "worker" \
        else 0
    return tuner


def run_trial(search, tuner, trial):
    """Train one trial (all its executions); return its metrics."""
    import keras_tuner

    started = time.time()
    trial_id = trial.trial_id
    values = dict(trial.hyperparameters.values)
    tdir = search.trial_dir(trial_id)
    with open(os.path.join(tdir, "attempts.jsonl"), "a") as f:
        f.write(json.dumps({
            "tuner": tuner.tuner_id, "pid": os.getpid(),
            "started": datetime.datetime.now().isoformat(
                timespec="seconds")}) + "\n")
    config = search.trial_config(values)
    executions = search.executions_per_trial
    warm_start = checkpoint = None
    if values.get("tuner/trial_id"):
        warm_start = os.path.join(
            tuner.get_trial_dir(values["tuner/trial_id"]), CHECKPOINT)
    if search.tuner == "hyperband":
        checkpoint = os.path.join(tuner.get_trial_dir(trial_id), CHECKPOINT)
    tb_dirs, hparams = None, None
    if search.use_tensorboard():
        tb_dirs = [os.path.join(search.directory, "logs", "tensorboard",
                                str(trial_id), f"execution{e}")
                   for e in range(executions)]
        hparams = {k: v for k, v in values.items()
                   if not k.startswith("tuner/")}
    kwargs = {"initial_epoch": int(values.get("tuner/initial_epoch", 0)),
              "warm_start": warm_start, "checkpoint": checkpoint,
              "hparams": hparams, "trial_id": str(trial_id)}
    try:
        if search.trial_isolation == "process":
            outs = _run_in_process(search, tdir, config, tb_dirs, kwargs)
        else:
            data = search.data_for(config)
            outs, best = [], None
            for e in range(executions):
                out = fit_trial(
                    search.recipe, config.replace(seed=config.seed + e),
                    data, checkpoint_best=best,
                    tensorboard_dir=tb_dirs[e] if tb_dirs else None,
                    **kwargs)
                best = out["checkpoint_best"]
                outs.append(out)
    except TrialFailed as e:
        raise keras_tuner.errors.FailedTrialError(str(e)) from None
    _write_history(tdir, outs)
    metrics = {}
    for out in outs:
        for k, v in out["best"].items():
            if k != "epoch":
                metrics[k] = metrics.get(k, 0.0) + v / len(outs)
    metrics.update({
        "epochs": float(sum(len(o["rows"]) for o in outs)),
        "fit_seconds": float(sum(o["fit_seconds"] for o in outs)),
        "best_epoch": float(sum(o["best_epoch"] for o in outs) / len(outs)),
        "rss_mb": float(rss_mb()),
        "seconds": float(time.time() - started),
    })
    return metrics


def _run_in_process(search, tdir, config, tb_dirs, kwargs):
    """Run the trial in a fresh Python process (`python -m tuning.trial`)."""
    module = type(search.recipe).__module__
    if module == "__main__":
        raise RunError("--trial-isolation process needs the recipe defined "
                       "in an importable module")
    request = {"recipe": search.recipe.name, "recipe_module": module,
               "config": space_lib.config_dict(config),
               "executions": search.executions_per_trial,
               "tensorboard_dirs": tb_dirs, **kwargs}
    request_path = os.path.join(tdir, "request.json")
    result_path = os.path.join(tdir, "result.json")
    if os.path.exists(result_path):
        os.unlink(result_path)
    atomic_write_json(request_path, request)
    proc = subprocess.run(
        [sys.executable, "-m", "tuning.trial", request_path],
        env=child_env(), preexec_fn=die_with_parent, cwd=os.getcwd())
    if proc.returncode < 0 and -proc.returncode == signal.SIGINT:
        raise KeyboardInterrupt
    if not os.path.isfile(result_path):
        how = (f"was killed by signal {-proc.returncode}"
               if proc.returncode < 0 else f"exited with {proc.returncode}")
        raise RuntimeError(f"trial process {how} without a result")
    with open(result_path) as f:
        result = json.load(f)
    if result["status"] == "failed":
        raise TrialFailed(result["message"])
    if result["status"] != "ok":
        raise RuntimeError(f"{result['error']} (in the trial process; "
                           f"traceback in {result_path})")
    return result["executions"]


def _write_history(tdir, executions):
    """trials/<id>/history.csv: every execution's epochs."""
    rows = []
    for e, out in enumerate(executions):
        rows += [{"execution": e, **r} for r in out["rows"]]
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = [",".join(keys)]
    lines += [",".join("" if r.get(k) is None else repr(r.get(k))
                       for k in keys) for r in rows]
    atomic_write_text(os.path.join(tdir, "history.csv"),
                      "\n".join(lines) + "\n")
