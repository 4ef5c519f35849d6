"""`Search`: a `tuning.spec.SearchSpec` at work in a directory.

It holds what the spec does not: the directory, this process' role in
it, and the data of the current trials (loaded once per distinct value of
the fields `load_data` reads). The tuner (`tuning.tuner`) asks it for a
trial's config, data and directory; the runner for the tables, the plot
and the best config retrained into best/ (`finalize`).
"""

import dataclasses
import gc
import json
import os

from dlrecipes.errors import RunError
from dlrecipes.training.rundir import atomic_write_bytes, atomic_write_json
from tuning import results, space as space_lib
from tuning.spec import KT_PROJECT, SearchSpec

SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(SearchSpec))


@dataclasses.dataclass
class SearchResult:
    """What `run_search` returns."""

    directory: str
    objective: tuple
    trials: list
    best_trial: dict
    best_config: object
    test_metrics: dict = None


class Search:
    """A `SearchSpec` at work: its directory, this process' role in it
    ("chief", "worker" or None), and the data of the current trials.
    The spec's fields read as attributes (`search.tuner`, `search.base`)."""

    def __init__(self, spec, directory=None):
        self.spec = spec
        self.directory = directory
        self.role = None
        self.data_fields = space_lib.data_fields(spec.recipe)
        self._data_key = self._data = None

    def __getattr__(self, name):
        if name.startswith("_") or name == "spec":
            raise AttributeError(name)
        return getattr(self.spec, name)

    def __setattr__(self, name, value):
        if name in SPEC_FIELDS:  # the spec is frozen: no silent copy here
            raise AttributeError(f"search.{name} is the spec's; use search."
                                 f"spec = dataclasses.replace(search.spec, "
                                 f"{name}=...)")
        super().__setattr__(name, value)

    @property
    def hp_names(self):
        return list(self.spec.space)

    @property
    def project_dir(self):
        return os.path.join(self.directory, KT_PROJECT)

    def use_tensorboard(self):
        if self.tensorboard == "off":
            return False
        import keras

        return keras.backend.backend() == "tensorflow"

    # ------------------------------------------------------- trial parts

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

    def trial_dir(self, trial_id):
        path = os.path.join(self.directory, "trials", str(trial_id))
        os.makedirs(path, exist_ok=True)
        return path

    def trial_config(self, values):
        config = space_lib.trial_config(self.base, values)
        if "tuner/epochs" in values:
            config = config.replace(epochs=int(values["tuner/epochs"]))
        return config

    def after_trial(self, trial):
        # The next trial starts with `keras.backend.clear_session()`, which
        # frees this one's graph and model (and collects garbage).
        if trial.status != "COMPLETED" and self.base.verbose:
            print(f"trial {trial.trial_id} {trial.status.lower()}: "
                  f"{results.error_line(trial.message)}", flush=True)
        if self.role is None:
            self.write_tables()

    # ----------------------------------------------------------- results

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
        metrics = self.retrain_best(best_config, best) if self.retrain \
            else None
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
