"""The search runner: KerasTuner's oracles and `Tuner` driving a recipe.

A trial's config is the base config with the trial's hp values; it is
built by `build_compiled_model` and trained by `tuning.trial.fit_trial`,
which mirrors `run_recipe`, so a trial and `dlrecipes run` with the same
values train the same model. KerasTuner keeps its own records under
`<directory>/kt/` (`overwrite=False`: the same command resumes); we add:

    search.json     the search definition (checked when resuming)
    trials.csv/.md  one row per trial, from KerasTuner's trial.json files
    search.png      score per trial and against the most important hp
    trials/<id>/    attempts.jsonl (who ran it, when), history.csv
    logs/           chief/worker logs (--workers), TensorBoard logs
    best/           config.json, model.keras, metrics.json of the best
                    config, retrained with `run_recipe` (train split,
                    validation for checkpointing, test split evaluated)

Two KerasTuner 1.4.8 behaviours are worked around here: GridSearch losing
its bookkeeping on reload (keras-tuner #1055, a KeyError on resume), and
non-atomic JSON writes (a SIGKILL mid-write would corrupt the records).
"""

import dataclasses
import datetime
import functools
import gc
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from dlrecipes.config import PRESENTATION_FIELDS, config_from_dict
from dlrecipes.errors import RunError, UsageError, choices_message
from dlrecipes.training import locks
from dlrecipes.training.rundir import (atomic_write_bytes, atomic_write_json,
                                       atomic_write_text)
from tuning import results, space as space_lib
from tuning.trial import TrialFailed, fit_trial, rss_mb

TUNERS = ("random", "grid", "hyperband", "bayesian")
ISOLATION = ("none", "process")
TENSORBOARD = ("auto", "on", "off")
KT_PROJECT = "kt"
SEARCH_FILE = "search.json"
LOCK_FILE = "search.lock"
DEFAULT_MAX_TRIALS = 10
FORMAT = 1
CHILD_ENV = "DLRECIPES_TUNE_CHILD"  # set for --workers' chief and workers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class SearchResult:
    """What `run_search` returns."""

    directory: str
    objective: tuple
    trials: list
    best_trial: dict
    best_config: object
    test_metrics: dict = None


# ------------------------------------------------------------ KerasTuner


def _atomic_oracle(cls):
    """`cls` with its JSON records written atomically (write + rename), so
    a SIGKILL never leaves a truncated oracle.json or trial.json."""

    class Atomic(cls):
        def save(self):
            # Same file and content as `Oracle.save()`.
            atomic_write_text(os.path.join(self._project_dir, "oracle.json"),
                              json.dumps(self.get_state()))

        def _save_trial(self, trial):
            path = os.path.join(self._get_trial_dir(trial.trial_id),
                                "trial.json")
            atomic_write_text(path, json.dumps(trial.get_state()))

    Atomic.__name__ = Atomic.__qualname__ = f"Atomic{cls.__name__}"
    return Atomic


def _oracle_classes():
    import keras_tuner

    oracles = keras_tuner.oracles

    class ResumableGridSearchOracle(
            _atomic_oracle(oracles.GridSearchOracle)):
        """GridSearchOracle that resumes (keras-tuner #1055).

        KerasTuner 1.4.8 does not save the grid's ordered trial list and
        its queue of trials whose successor is still to be generated, so a
        reloaded oracle raises KeyError at the first finished trial. Both
        are rebuilt from the reloaded trials: sorted in grid order, and
        every trial queued again (one whose successor was already tried is
        skipped by the oracle's own check).
        """

        def set_state(self, state):
            super().set_state(state)
            ids = [i for i in self.start_order if i in self.trials]

            def compare(a, b):
                return self._compare(self.trials[a].hyperparameters.values,
                                     self.trials[b].hyperparameters.values)

            ids.sort(key=functools.cmp_to_key(compare))
            ordered = type(self._ordered_ids)()
            for trial_id in ids:
                ordered.insert(trial_id)
            self._ordered_ids = ordered
            self._populate_next = list(ids)

    return {
        "random": _atomic_oracle(oracles.RandomSearchOracle),
        "grid": ResumableGridSearchOracle,
        "hyperband": _atomic_oracle(oracles.HyperbandOracle),
        "bayesian": _atomic_oracle(oracles.BayesianOptimizationOracle),
    }


def _kerastuner_quiet(quiet=True):
    """KerasTuner prints every failed trial's traceback to stderr
    (`keras_tuner.src.config.DEBUG`, no public switch); the trials table
    and trial.json keep it, so we print one line instead."""
    try:
        from keras_tuner.src import config as kt_config

        kt_config.DEBUG = not quiet
    except ImportError:  # another KerasTuner layout: leave it as it is
        pass


def _tuner_class():
    import keras_tuner

    class RecipeTuner(keras_tuner.Tuner):
        """A KerasTuner `Tuner` whose trials train a recipe's own model."""

        def __init__(self, recipe_search, oracle, **kwargs):
            self.recipe_search = recipe_search
            super().__init__(oracle, **kwargs)

        def run_trial(self, trial, *args, **kwargs):
            return self.recipe_search.run_trial(self, trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.recipe_search.after_trial(trial)

    return RecipeTuner


# ---------------------------------------------------------------- search


class Search:
    """A resolved search: recipe, base config, space and options."""

    def __init__(self, recipe, base_config, space, *, tuner="random",
                 objective=None, max_trials=None, executions_per_trial=1,
                 max_epochs=None, factor=3, hyperband_iterations=1,
                 trial_isolation="none", tensorboard="auto", max_failures=0,
                 retrain=True, workers=0, directory=None):
        self.recipe = recipe
        self.base = base_config
        self.space = space
        self.tuner = tuner
        self.objective = objective
        self.max_trials = max_trials
        self.executions = executions_per_trial
        self.max_epochs = max_epochs
        self.factor = factor
        self.hyperband_iterations = hyperband_iterations
        self.isolation = trial_isolation
        self.tensorboard = tensorboard
        self.max_failures = max_failures
        self.retrain = retrain
        self.workers = workers
        self.directory = directory
        self._data_key = None
        self._data = None
        self.data_fields = space_lib.data_fields(recipe)
        self.role = None  # None (single process), "chief" or "worker"

    # -------------------------------------------------------- definition

    def identity(self):
        """What makes two searches the same (hashed into the default id)."""
        base = space_lib.config_dict(self.base)
        for volatile in PRESENTATION_FIELDS:
            base.pop(volatile, None)
        ident = {"recipe": self.recipe.name, "tuner": self.tuner,
                 "space": space_lib.to_json(self.space), "base": base,
                 "executions_per_trial": self.executions}
        if self.tuner == "hyperband":
            ident["hyperband"] = [self.max_epochs, self.factor,
                                  self.hyperband_iterations]
        return json.loads(json.dumps(ident, default=str))

    def default_id(self):
        digest = hashlib.sha256(json.dumps(
            self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.tuner}-{digest}"

    def to_json(self):
        return {
            "format": FORMAT,
            "recipe": self.recipe.name,
            "recipe_module": self.recipe.config_class.__module__,
            "tuner": self.tuner,
            "objective": list(self.objective),
            "space": space_lib.to_json(self.space),
            "base_config": space_lib.config_dict(self.base),
            "executions_per_trial": self.executions,
            "hyperband": {"max_epochs": self.max_epochs,
                          "factor": self.factor,
                          "iterations": self.hyperband_iterations},
            "options": {"max_trials": self.max_trials,
                        "trial_isolation": self.isolation,
                        "tensorboard": self.tensorboard,
                        "max_failures": self.max_failures,
                        "retrain": self.retrain, "workers": self.workers},
        }

    @classmethod
    def from_json(cls, spec, directory):
        from dlrecipes.registry import get_recipe

        import recipes  # noqa: F401

        importlib.import_module(spec["recipe_module"])
        recipe = get_recipe(spec["recipe"])
        base = config_from_dict(recipe.config_class, spec["base_config"],
                                source=os.path.join(directory, SEARCH_FILE))
        hb, options = spec["hyperband"], spec["options"]
        return cls(recipe, base, space_lib.from_json(spec["space"]),
                   tuner=spec["tuner"], objective=tuple(spec["objective"]),
                   max_trials=options["max_trials"],
                   executions_per_trial=spec["executions_per_trial"],
                   max_epochs=hb["max_epochs"], factor=hb["factor"],
                   hyperband_iterations=hb["iterations"],
                   trial_isolation=options["trial_isolation"],
                   tensorboard=options["tensorboard"],
                   max_failures=options["max_failures"],
                   retrain=options["retrain"], workers=options["workers"],
                   directory=directory)

    @property
    def hp_names(self):
        return list(self.space)

    @property
    def project_dir(self):
        return os.path.join(self.directory, KT_PROJECT)

    # -------------------------------------------------------------- data

    def data_for(self, config):
        """The recipe's data for `config`, loaded once per distinct value
        of the fields `load_data` reads."""
        key = json.dumps([getattr(config, f) for f in self.data_fields],
                         default=str)
        if key != self._data_key:
            self._data, self._data_key = None, None
            gc.collect()
            self._data = self.recipe.load_data(config)
            self._data_key = key
        return self._data

    # ------------------------------------------------------------ tuner

    def use_tensorboard(self):
        if self.tensorboard == "off":
            return False
        import keras

        return keras.backend.backend() == "tensorflow"

    def make_tuner(self):
        import keras_tuner

        _kerastuner_quiet(not os.environ.get("DLRECIPES_DEBUG"))

        hp = keras_tuner.HyperParameters()
        space_lib.declare(hp, self.space, self.base,
                          grid=self.tuner == "grid")
        name, direction = self.objective
        common = {
            "objective": keras_tuner.Objective(name, direction),
            "hyperparameters": hp,
            # KerasTuner draws a random seed for a falsy one: keep 0 usable.
            "seed": self.base.seed + 1,
            "max_retries_per_trial": 0,
            "max_consecutive_failed_trials": self.max_failures or 2**31,
        }
        cls = _oracle_classes()[self.tuner]
        if self.tuner == "hyperband":
            oracle = cls(max_epochs=self.max_epochs, factor=self.factor,
                         hyperband_iterations=self.hyperband_iterations,
                         **common)
        elif self.tuner == "grid":
            oracle = cls(max_trials=self.max_trials, **common)
        else:
            oracle = cls(max_trials=self.max_trials or DEFAULT_MAX_TRIALS,
                         **common)
        tuner = _tuner_class()(self, oracle, directory=self.directory,
                               project_name=KT_PROJECT, overwrite=False,
                               executions_per_trial=self.executions)
        tuner.oracle.verbose = self.base.verbose if self.role != "worker" \
            else 0
        return tuner

    # ------------------------------------------------------------ trials

    def trial_dir(self, trial_id):
        path = os.path.join(self.directory, "trials", str(trial_id))
        os.makedirs(path, exist_ok=True)
        return path

    def trial_config(self, values):
        config = space_lib.trial_config(self.base, values)
        if "tuner/epochs" in values:
            config = config.replace(epochs=int(values["tuner/epochs"]))
        return config

    def run_trial(self, tuner, trial):
        """Train one trial (all its executions); return its metrics.

        The metrics are the objective and the other logs at each
        execution's best epoch, averaged over executions (as KerasTuner
        does), plus `epochs` (trained, summed), `fit_seconds`, `seconds`
        (the whole trial), `best_epoch` and `rss_mb` (this process)."""
        import keras_tuner

        started = time.time()
        trial_id = trial.trial_id
        values = dict(trial.hyperparameters.values)
        tdir = self.trial_dir(trial_id)
        with open(os.path.join(tdir, "attempts.jsonl"), "a") as f:
            f.write(json.dumps({
                "tuner": tuner.tuner_id, "pid": os.getpid(),
                "started": datetime.datetime.now().isoformat(
                    timespec="seconds")}) + "\n")
        config = self.trial_config(values)
        initial_epoch = int(values.get("tuner/initial_epoch", 0))
        warm_start = None
        if values.get("tuner/trial_id"):
            warm_start = os.path.join(
                tuner.get_trial_dir(values["tuner/trial_id"]),
                "checkpoint.weights.h5")
        checkpoint = None
        if self.tuner == "hyperband":
            checkpoint = os.path.join(tuner.get_trial_dir(trial_id),
                                      "checkpoint.weights.h5")
        tb_dirs, hparams = None, None
        if self.use_tensorboard():
            tb_dirs = [os.path.join(self.directory, "logs", "tensorboard",
                                    str(trial_id), f"execution{e}")
                       for e in range(self.executions)]
            hparams = {k: v for k, v in values.items()
                       if not k.startswith("tuner/")}
        kwargs = {"initial_epoch": initial_epoch, "warm_start": warm_start,
                  "checkpoint": checkpoint, "hparams": hparams,
                  "trial_id": str(trial_id)}
        try:
            if self.isolation == "process":
                executions = self._run_in_process(tdir, config, tb_dirs,
                                                  kwargs)
            else:
                data = self.data_for(config)
                executions, best = [], None
                for e in range(self.executions):
                    out = fit_trial(
                        self.recipe, config.replace(seed=config.seed + e),
                        data, checkpoint_best=best,
                        tensorboard_dir=tb_dirs[e] if tb_dirs else None,
                        **kwargs)
                    best = out["checkpoint_best"]
                    executions.append(out)
        except TrialFailed as e:
            raise keras_tuner.errors.FailedTrialError(str(e)) from None
        self._write_history(tdir, executions)
        metrics = {}
        for out in executions:
            for k, v in out["best"].items():
                if k != "epoch":
                    metrics[k] = metrics.get(k, 0.0) + v / len(executions)
        metrics.update({
            "epochs": float(sum(len(o["rows"]) for o in executions)),
            "fit_seconds": float(sum(o["fit_seconds"] for o in executions)),
            "best_epoch": float(sum(o["best_epoch"] for o in executions)
                                / len(executions)),
            "rss_mb": float(rss_mb()),
            "seconds": float(time.time() - started),
        })
        return metrics

    def _run_in_process(self, tdir, config, tb_dirs, kwargs):
        """Run the trial in a fresh Python process (`tuning.trial`)."""
        module = self.recipe.config_class.__module__
        if module == "__main__":
            raise RunError("--trial-isolation process needs the recipe "
                           "defined in an importable module")
        request = {"recipe": self.recipe.name, "recipe_module": module,
                   "config": space_lib.config_dict(config),
                   "executions": self.executions,
                   "initial_epoch": kwargs["initial_epoch"],
                   "warm_start": kwargs["warm_start"],
                   "checkpoint": kwargs["checkpoint"],
                   "tensorboard_dirs": tb_dirs, "hparams": kwargs["hparams"],
                   "trial_id": kwargs["trial_id"]}
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
                   if proc.returncode < 0 else
                   f"exited with {proc.returncode}")
            raise RuntimeError(f"trial process {how} without a result")
        with open(result_path) as f:
            result = json.load(f)
        if result["status"] == "failed":
            raise TrialFailed(result["message"])
        if result["status"] != "ok":
            raise RuntimeError(f"{result['error']} (in the trial process; "
                               f"traceback in {result_path})")
        return result["executions"]

    def _write_history(self, tdir, executions):
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

    def after_trial(self, trial):
        # The next trial starts with `keras.backend.clear_session()`, which
        # frees this one's graph and model (and collects garbage).
        if trial.status != "COMPLETED" and self.base.verbose:
            print(f"trial {trial.trial_id} {trial.status.lower()}: "
                  f"{results.error_line(trial.message)}", flush=True)
        if self.role is None:
            self.write_tables()

    # --------------------------------------------------------- results

    def read_trials(self):
        return results.read_trials(self.project_dir)

    def write_tables(self, rows=None, plot=False):
        rows = self.read_trials() if rows is None else rows
        name, direction = self.objective
        results.write_tables(self.directory, rows, self.hp_names, name,
                             direction)
        if plot:
            log_hps = [n for n, s in self.space.items()
                       if getattr(s, "sampling", "linear") != "linear"]
            results.plot_search(rows, self.hp_names, name, direction,
                                os.path.join(self.directory, "search.png"),
                                log_hps=log_hps)
        return rows

    def finalize(self):
        """Tables, plot, the all-failed check, and the best config
        retrained and saved under best/."""
        rows = self.write_tables(plot=True)
        name, direction = self.objective
        best = results.best_row(rows, direction)
        if best is None:
            errors = [results.error_line(r["message"]) for r in rows
                      if r["message"]]
            first = f"; first error: {errors[0]}" if errors else ""
            raise RunError(f"all {len(rows)} trials failed{first} (see "
                           f"{os.path.join(self.directory, 'trials.md')})")
        best_config = self.trial_config(best["values"])
        metrics = None
        if self.retrain:
            metrics = self.retrain_best(best_config, best)
        return SearchResult(self.directory, self.objective, rows, best,
                            best_config, metrics)

    def retrain_best(self, best_config, best):
        """`run_recipe` with the best config (train split, validation for
        checkpointing, test split evaluated); copies its model and metrics
        to best/ and writes best/config.json, which `dlrecipes run RECIPE
        --config best/config.json` reproduces. Skipped when best/ already
        holds this config."""
        from dlrecipes.training import run_recipe

        best_dir = os.path.join(self.directory, "best")
        user_config = best_config.replace(output_dir=self.base.output_dir)
        config_json = {"recipe": self.recipe.name, **json.loads(json.dumps(
            space_lib.config_dict(user_config), default=str))}
        config_path = os.path.join(best_dir, "config.json")
        metrics_path = os.path.join(best_dir, "metrics.json")
        if os.path.isfile(config_path) and os.path.isfile(metrics_path) \
                and os.path.isfile(os.path.join(best_dir, "model.keras")):
            with open(config_path) as f:
                if json.load(f) == config_json:
                    with open(metrics_path) as g:
                        return json.load(g)
        if self.base.verbose:
            print(f"\nRetraining the best config (trial {best['trial']}) "
                  f"with run_recipe ...")
        result = run_recipe(
            self.recipe,
            best_config.replace(output_dir=os.path.join(self.directory,
                                                        "retrain")),
            data=self.data_for(best_config), resume=True,
            print_summary=False)
        os.makedirs(best_dir, exist_ok=True)
        with open(os.path.join(result.run_dir, "model.keras"), "rb") as f:
            atomic_write_bytes(os.path.join(best_dir, "model.keras"),
                               f.read())
        metrics = dict(result.metrics)
        metrics.update({"trial": best["trial"], "search_score": best["score"],
                        "run_dir": result.run_dir})
        atomic_write_json(metrics_path, metrics)
        atomic_write_json(config_path, config_json)  # last: marks done
        return metrics


# ------------------------------------------------------------- processes


def child_env(extra=None):
    """The environment of a child Python: this repository importable."""
    env = dict(os.environ)
    paths = [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                      if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.update(extra or {})
    return env


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when its parent dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def lock(directory):
    locks.acquire(os.path.join(directory, LOCK_FILE),
                  f"tuning directory {directory}")


def unlock(directory):
    locks.release(os.path.join(directory, LOCK_FILE))


# ----------------------------------------------------------------- checks


def check_dependencies(search):
    """Fail at start, not once per trial, when something is missing."""
    missing = []

    def need(module, what):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{what} (pip install {what})")

    need("keras_tuner", "keras-tuner")
    if search.tuner == "bayesian":
        need("sklearn", "scikit-learn")
        need("scipy", "scipy")
    if search.workers or _kt_role():
        need("grpc", "grpcio")
        need("google.protobuf", "protobuf")
    if search.tensorboard != "off":
        import keras

        tf_backend = keras.backend.backend() == "tensorflow"
        if search.tensorboard == "on" and not tf_backend:
            raise UsageError("--tensorboard on needs KERAS_BACKEND="
                             "tensorflow (use --tensorboard off)")
        if tf_backend or search.tensorboard == "on":
            if importlib.util.find_spec("tensorboard") is None:
                missing.append("tensorboard (pip install tensorboard, or "
                               "pass --tensorboard off)")
    if missing:
        raise RunError("missing dependency: " + "; ".join(missing))


def _kt_role():
    """"chief", "worker" or None from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if name not in os.environ:
            raise UsageError(f"KERASTUNER_ORACLE_IP is set but {name} is not")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] \
        else "worker"


def validate_options(search):
    if search.tuner not in TUNERS:
        raise UsageError("--tuner: " + choices_message("tuner", search.tuner,
                                                       TUNERS))
    if search.isolation not in ISOLATION:
        raise UsageError("--trial-isolation: " + choices_message(
            "trial isolation", search.isolation, ISOLATION))
    if search.tensorboard not in TENSORBOARD:
        raise UsageError("--tensorboard: " + choices_message(
            "tensorboard setting", search.tensorboard, TENSORBOARD))
    for flag, value, lo in (("--max-trials", search.max_trials, 1),
                            ("--executions-per-trial", search.executions, 1),
                            ("--workers", search.workers, 0),
                            ("--max-failures", search.max_failures, 0),
                            ("--factor", search.factor, 2),
                            ("--hyperband-iterations",
                             search.hyperband_iterations, 1),
                            ("--max-epochs", search.max_epochs, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < lo:
            name = flag[2:].replace("-", "_")
            raise UsageError(f"{flag} must be an integer >= {lo}. "
                             f"Received: {name}={value!r}")
    if search.tuner == "hyperband":
        if search.max_trials is not None:
            raise UsageError("--max-trials does not apply to hyperband; its "
                             "budget is --max-epochs, --factor and "
                             "--hyperband-iterations")
    elif search.max_epochs is not None and search.max_epochs != \
            search.base.epochs:
        raise UsageError(f"--max-epochs applies to --tuner hyperband only "
                         f"(use --epochs). Received: tuner={search.tuner}")
    if not search.space:
        raise UsageError("empty search space: every hp is fixed (--set, "
                         "flags or --space); nothing to search")
    if search.tuner == "grid":
        space_lib.check_grid(search.space)
        if not space_lib.grid_size(search.space):
            raise UsageError("empty grid: no combination to run")


def check_directory(search, overwrite):
    """UsageError for a directory holding another recipe's or another
    search; with `overwrite`, clear a previous search there."""
    if os.path.exists(search.directory) and not os.path.isdir(
            search.directory):
        raise UsageError(f"--directory {search.directory} exists and is not "
                         "a directory; pass another --directory")
    path = os.path.join(search.directory, SEARCH_FILE)
    if os.path.isfile(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            raise UsageError(f"{path} is unreadable; remove the directory "
                             "or pass another --directory") from None
        if saved.get("recipe") != search.recipe.name:
            raise UsageError(f"{search.directory} holds a search of recipe "
                             f"{saved.get('recipe')!r}, not "
                             f"{search.recipe.name!r}; pass another "
                             "--directory")
        if overwrite:
            return "overwrite"
        try:
            previous = Search.from_json(saved, search.directory).identity()
        except (UsageError, KeyError, TypeError, ValueError):
            previous = None
        if previous != search.identity():
            what = _difference(previous, search.identity())
            raise UsageError(f"{search.directory} holds a different search "
                             f"({what}); pass another --directory, or "
                             "--overwrite to start over")
        return "resume"
    if os.path.isdir(search.directory) and set(
            os.listdir(search.directory)) - {LOCK_FILE}:
        raise UsageError(f"{search.directory} exists and is not a search "
                         "directory; pass another --directory")
    return "new"


def _difference(old, new):
    if not isinstance(old, dict):
        return "unreadable definition"
    for key in new:
        if old.get(key) != new.get(key):
            if isinstance(new[key], dict) and isinstance(old.get(key), dict):
                for k in new[key]:
                    if old[key].get(k) != new[key].get(k):
                        return (f"{k}: {old[key].get(k)!r} there, "
                                f"{new[key][k]!r} now")
            return f"{key} differs"
    return "definition differs"


# -------------------------------------------------------------------- run


def prepare(recipe, *, tuner="random", space=None, config=None, fixed=None,
            max_trials=None, executions_per_trial=1, directory=None,
            workers=0, trial_isolation="none", tensorboard="auto",
            max_failures=0, retrain=True, max_epochs=None, factor=3,
            hyperband_iterations=1):
    """Resolve and validate a search without touching the disk."""
    recipe = space_lib._recipe(recipe)
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
    if tuner == "hyperband" and max_epochs is None:
        max_epochs = config.epochs
    search = Search(recipe, config, space, tuner=tuner, max_trials=max_trials,
                    executions_per_trial=executions_per_trial,
                    max_epochs=max_epochs, factor=factor,
                    hyperband_iterations=hyperband_iterations,
                    trial_isolation=trial_isolation, tensorboard=tensorboard,
                    max_failures=max_failures, retrain=retrain,
                    workers=workers)
    validate_options(search)
    check_dependencies(search)
    return search


def run_search(recipe, *, tuner="random", space=None, config=None,
               fixed=None, max_trials=None, executions_per_trial=1,
               directory=None, overwrite=False, workers=0,
               trial_isolation="none", tensorboard="auto", max_failures=0,
               retrain=True, max_epochs=None, factor=3,
               hyperband_iterations=1):
    """Search `recipe`'s hyperparameters with KerasTuner; resumable.

    Args:
        recipe: a recipe name or `Recipe`.
        tuner: "random", "grid", "hyperband" or "bayesian".
        space: {config field: Choice/Float/Int/Boolean}; default: the
            recipe's `SPACE` (`search_space(recipe)`).
        config: the base config (instance or dict of fields); hps not in
            a trial keep its values.
        fixed: {field: value} set on the base config and removed from the
            space.
        max_trials: trials at most (random/bayesian default 10; grid: all
            combinations; not for hyperband).
        executions_per_trial: trainings per trial (seeds seed, seed+1 ...),
            scores averaged.
        directory: the search directory (default
            `tuning/<recipe>/<tuner>-<hash of the definition>` under the
            current directory). The same definition resumes there.
        overwrite: delete a previous search in `directory` first.
        workers: 0: trials in this process; N: a KerasTuner chief and N
            worker processes on this machine.
        trial_isolation: "none", or "process" (each trial in a fresh
            Python process: memory stays flat).
        tensorboard: "auto" (on under the TensorFlow backend), "on", "off".
        max_failures: stop after this many consecutive failed trials
            (0: never).
        retrain: retrain the best config with `run_recipe` into best/.
        max_epochs, factor, hyperband_iterations: Hyperband's budget
            (`max_epochs` defaults to the config's epochs).

    Returns:
        `SearchResult`.

    Raises:
        UsageError: bad input (nothing written).
        RunError: every trial failed, or a worker failed.
    """
    search = prepare(recipe, tuner=tuner, space=space, config=config,
                     fixed=fixed, max_trials=max_trials,
                     executions_per_trial=executions_per_trial,
                     workers=workers, trial_isolation=trial_isolation,
                     tensorboard=tensorboard, max_failures=max_failures,
                     retrain=retrain, max_epochs=max_epochs, factor=factor,
                     hyperband_iterations=hyperband_iterations)
    return execute(search, directory=directory, overwrite=overwrite)


def execute(search, directory=None, overwrite=False):
    """Claim the directory, load data, run the search, finalize.

    Under KerasTuner's environment variables this process is the chief
    (serves the oracle, then finalizes) or a worker (runs trials only);
    the `--workers` children (CHILD_ENV set) never finalize.
    """
    role = _kt_role()
    child = bool(os.environ.get(CHILD_ENV))
    if search.workers and role:
        raise UsageError("--workers starts its own chief and workers; do "
                         "not set KERASTUNER_* variables with it")
    if child and role is None:
        raise UsageError(f"{CHILD_ENV} is set without KERASTUNER_* variables")
    search.directory = directory or os.path.join(
        "tuning", search.recipe.name, search.default_id())
    owner = not child and role != "worker"
    if owner and os.path.isdir(search.directory):
        lock(search.directory)  # before reading it: another search may write
    try:
        state = check_directory(search, overwrite)
        if search.objective is None:
            data = search.recipe.load_data(search.base)  # fails early
            search._data, search._data_key = data, json.dumps(
                [getattr(search.base, f) for f in search.data_fields],
                default=str)
            search.objective = search.recipe.monitor(data)
            if role != "worker" and not child:
                preflight(search, data)
        if not child:
            os.makedirs(search.directory, exist_ok=True)
        if owner:
            lock(search.directory)
            if state == "new":  # another search may have started meanwhile
                state = check_directory(search, overwrite)
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
                              search.to_json())
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

    tuner = search.make_tuner()
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
    spec_path = os.path.join(path, SEARCH_FILE)
    if not os.path.isfile(spec_path):
        raise UsageError(f"{path} is neither a run nor a search directory")
    try:
        with open(spec_path) as f:
            spec = json.load(f)
        search = Search.from_json(spec, path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{spec_path} is unreadable: {e}") from None
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
