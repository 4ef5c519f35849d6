"""Running a search: `prepare` (resolve and check, nothing written),
`execute` (claim the directory, run KerasTuner, finalize), `run_search`
(both) and `report_search` (the table again).

A trial trains through `tuning.trial.fit_trial`, which calls the training
engine `dlrecipes run` uses, so a trial and `dlrecipes run` with the same
values train the same model. KerasTuner keeps its own records under
`<directory>/kt/` (`overwrite=False`: the same command resumes); we add:

    search.json     the search definition (`tuning.spec.SearchSpec`,
                    checked when resuming)
    trials.csv/.md  one row per trial, from KerasTuner's trial.json files
    search.png      score per trial and against the most important hp
    trials/<id>/    attempts.jsonl (who ran it, when), history.csv
    logs/           chief/worker logs (--workers), TensorBoard logs
    best/           config.json, model.keras, metrics.json of the best
                    config, retrained with `run_recipe` (train split,
                    validation for checkpointing, test split evaluated)

The definition, its JSON and identity are in `tuning.spec`; a search at
work in its directory (trial configs, data, tables, the best retrained) in
`tuning.search`; the `Tuner` and a trial's run in `tuning.tuner`; the
workarounds for KerasTuner itself in `tuning.kt_compat`.
"""

import dataclasses
import importlib.util
import json
import os
import shutil

from dlrecipes.config import config_from_dict
from dlrecipes.errors import RunError, UsageError
from dlrecipes.training import locks
from dlrecipes.training.rundir import atomic_write_json
from tuning import results, space as space_lib
from tuning.distributed import CHILD_ENV, kt_role
from tuning.search import Search, SearchResult  # noqa: F401
from tuning.spec import (  # noqa: F401  (importable from here too)
    DEFAULT_MAX_TRIALS, ISOLATION, KT_PROJECT, LOCK_FILE, SEARCH_FILE,
    TENSORBOARD, TUNERS, SearchSpec, check_directory, read_spec)

_kt_role = kt_role  # tuning/cli.py's name for it


# -------------------------------------------------------------------- run


def prepare(recipe, *, space=None, config=None, fixed=None, **options):
    """Resolve and check a search without touching the disk.

    Args:
        recipe: a recipe name or `Recipe`.
        space: {config field: Choice/Float/Int/Boolean}; default: the
            recipe's `search_space`.
        config: the base config (instance or dict of fields); hps not in
            a trial keep its values.
        fixed: {field: value} set on the base config and removed from the
            space.
        **options: the other `tuning.spec.SearchSpec` fields (`tuner`,
            `max_trials`, `executions_per_trial`, `workers` ...).

    Returns:
        A `Search` (its directory not chosen yet).
    """
    recipe = space_lib.resolve_recipe(recipe)
    fields = {f.name for f in dataclasses.fields(SearchSpec)}
    unknown = sorted(set(options) - (fields - {"recipe", "base"}))
    if unknown:
        raise TypeError(f"unknown search option {unknown[0]!r}; valid: "
                        f"{', '.join(sorted(fields - {'recipe', 'base'}))}")
    config_class = recipe.config_class
    if config is None:
        config = config_class()
    elif isinstance(config, dict):
        config = config_from_dict(config_class, config, source="config")
    elif not isinstance(config, config_class):
        raise UsageError(f"config must be a {config_class.__name__} or a "
                         f"dict. Received: {type(config).__name__}")
    fixed = dict(fixed or {})
    if fixed:
        config = config_from_dict(
            config_class, {**space_lib.config_dict(config), **fixed},
            source="fixed values")
    if space is None:
        space = space_lib.search_space(recipe)
    space = space_lib.resolve(space, config, fixed=set(fixed))
    spec = SearchSpec(recipe=recipe, base=config, space=space, **options)
    check_dependencies(spec)
    return Search(spec)


def run_search(recipe, *, directory=None, overwrite=False, **options):
    """Search `recipe`'s hyperparameters with KerasTuner; resumable.

    Args:
        recipe: a recipe name or `Recipe`.
        directory: the search directory (default
            `tuning/<recipe>/<tuner>-<hash of the definition>` under the
            current directory). The same definition resumes there.
        overwrite: delete a previous search in `directory` first.
        **options: `space`, `config`, `fixed` (see `prepare`) and the
            `tuning.spec.SearchSpec` fields: `tuner`, `max_trials`,
            `executions_per_trial`, `workers`, `trial_isolation`,
            `tensorboard`, `max_failures`, `retrain`, `max_epochs`,
            `factor`, `hyperband_iterations`.

    Returns:
        `SearchResult`.

    Raises:
        UsageError: bad input (nothing written).
        RunError: every trial failed, or a worker failed.
    """
    return execute(prepare(recipe, **options), directory=directory,
                   overwrite=overwrite)


def execute(search, directory=None, overwrite=False):
    """Claim the directory, load data, run the search, finalize.

    Under KerasTuner's environment variables this process is the chief
    (serves the oracle, then finalizes) or a worker (runs trials only);
    the `--workers` children (CHILD_ENV set) never finalize.
    """
    role = kt_role()
    child = bool(os.environ.get(CHILD_ENV))
    if search.workers and role:
        raise UsageError("--workers starts its own chief and workers; do "
                         "not set KERASTUNER_* variables with it")
    if child and role is None:
        raise UsageError(f"{CHILD_ENV} is set without KERASTUNER_* variables")
    search.directory = directory or os.path.join(
        "tuning", search.recipe.name, search.spec.default_id())
    owner = not child and role != "worker"
    if owner and os.path.isdir(search.directory):
        lock(search.directory)  # before reading it: another search may write
    try:
        state = check_directory(search.spec, search.directory, overwrite)
        if search.objective is None:
            data = search.data_for(search.base)  # fails early
            search.spec = dataclasses.replace(
                search.spec, objective=search.recipe.monitor(data))
            if role != "worker" and not child:
                preflight(search, data)
        if not child:
            os.makedirs(search.directory, exist_ok=True)
        if owner:
            lock(search.directory)
            if state == "new":  # another search may have started meanwhile
                state = check_directory(search.spec, search.directory,
                                        overwrite)
        if state == "overwrite" and not child:
            for name in os.listdir(search.directory):
                if name != LOCK_FILE:
                    target = os.path.join(search.directory, name)
                    if os.path.isdir(target):
                        shutil.rmtree(target)
                    else:
                        os.unlink(target)
        if not child:
            atomic_write_json(os.path.join(search.directory, SEARCH_FILE),
                              search.spec.to_json())
        if search.base.verbose and not child and role != "worker":
            _announce(search, state)
        if search.workers:
            from tuning import distributed

            distributed.supervise(search)
        else:
            search.role = role
            run_tuner(search)
            if role == "worker" or child:
                return None
        return search.finalize()
    finally:
        if owner:
            unlock(search.directory)


def preflight(search, data):
    """Build the first trial's model once, so that what every trial needs
    and might lack (pretrained weights, a backbone file, a package the
    model imports) fails at start rather than once per trial."""
    import keras
    import keras_tuner

    from dlrecipes.training import engine

    hp = keras_tuner.HyperParameters()
    space_lib.declare(hp, search.space, search.base,
                      grid=search.tuner == "grid")
    hp.ensure_active_values()
    config = search.trial_config(hp.values)
    try:
        engine.build(search.recipe, config, data)
    except (UsageError, RunError):
        raise
    except Exception as e:
        first = str(e).strip().splitlines()
        raise RunError(f"the first trial's model does not build "
                       f"({type(e).__name__}: {first[0] if first else ''}); "
                       "fix that before searching") from None
    finally:
        keras.backend.clear_session()


def _announce(search, state):
    done = sum(1 for r in search.read_trials() if r["status"] in
               ("COMPLETED", "FAILED"))
    verb = {"new": "Starting", "resume": "Resuming",
            "overwrite": "Restarting"}[state]
    size = ""
    if search.tuner == "grid":
        n = space_lib.grid_size(search.space)
        size = f", {n} combinations" + (
            f" (at most {search.max_trials})" if search.max_trials else "")
    print(f"{verb} {search.tuner} search in {search.directory} "
          f"({done} trials done{size}); run the same command again to "
          "resume it")


def run_tuner(search):
    """Run KerasTuner's search loop (or serve the oracle as the chief)."""
    import logging

    from tuning.tuner import make_tuner

    tuner = make_tuner(search)
    # Every trial builds a new model, so TensorFlow warns about retracing
    # `tf.function`s: expected here, and noise.
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    if not os.environ.get("DLRECIPES_DEBUG"):
        tf_logger.setLevel(logging.ERROR)
    try:
        tuner.search()
    except RuntimeError as e:
        if "consecutive failures" not in str(e):
            raise
        if search.role is None:
            search.write_tables(plot=True)
        raise RunError(f"stopped after {search.max_failures} consecutive "
                       f"failed trials (--max-failures); see "
                       f"{os.path.join(search.directory, 'trials.md')}") \
            from None
    finally:
        tf_logger.setLevel(level)
    return tuner


def report_search(path):
    """`dlrecipes report DIR` for a search directory: rewrite and print
    the trials table and plot; returns the exit code."""
    if not os.path.isfile(os.path.join(path, SEARCH_FILE)):
        raise UsageError(f"{path} is neither a run nor a search directory")
    search = Search(read_spec(path), path)
    rows = search.write_tables(plot=bool(search.read_trials()))
    name, direction = search.objective
    print(results.markdown(rows, search.hp_names, name, direction), end="")
    best_metrics = os.path.join(path, "best", "metrics.json")
    if os.path.isfile(best_metrics):
        with open(best_metrics) as f:
            metrics = json.load(f)
        tests = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                          if k.startswith("test_") and isinstance(v, float))
        print(f"\nbest config retrained: {tests} "
              f"({os.path.join(path, 'best', 'config.json')})")
    print(f"table: {os.path.join(path, 'trials.md')}; plot: "
          f"{os.path.join(path, 'search.png')}")
    return 0


# ------------------------------------------------------------------ checks


def lock(directory):
    locks.acquire(os.path.join(directory, LOCK_FILE),
                  f"tuning directory {directory}")


def unlock(directory):
    locks.release(os.path.join(directory, LOCK_FILE))


def check_dependencies(spec):
    """Fail at start, not once per trial, when something is missing."""
    missing = []

    def need(module, what):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{what} (pip install {what})")

    need("keras_tuner", "keras-tuner")
    if spec.tuner == "bayesian":
        need("sklearn", "scikit-learn")
        need("scipy", "scipy")
    if spec.workers or kt_role():
        need("grpc", "grpcio")
        need("google.protobuf", "protobuf")
    if spec.tensorboard != "off":
        import keras

        tf_backend = keras.backend.backend() == "tensorflow"
        if spec.tensorboard == "on" and not tf_backend:
            raise UsageError("--tensorboard on needs KERAS_BACKEND="
                             "tensorflow (use --tensorboard off)")
        if tf_backend or spec.tensorboard == "on":
            if importlib.util.find_spec("tensorboard") is None:
                missing.append("tensorboard (pip install tensorboard, or "
                               "pass --tensorboard off)")
    if missing:
        raise RunError("missing dependency: " + "; ".join(missing))
