"""Every KerasTuner patch and private access of the project, in one place.

KerasTuner 1.4.8 has three behaviours a resumable search cannot live with;
each is worked around here, and nothing else in the project imports
`keras_tuner.src` or touches a KerasTuner private attribute:

1. Non-atomic JSON records: `Oracle.save` and `Oracle._save_trial` write
   `oracle.json` and `trial.json` in place, so a SIGKILL mid-write leaves a
   truncated file that no resume can read. `atomic_oracle` writes the same
   content through a temporary file and a rename.
2. GridSearch does not resume (keras-tuner #1055): `GridSearchOracle`
   keeps its grid order (`_ordered_ids`, a `LinkedList`) and its queue of
   trials whose successor is still to be generated (`_populate_next`) in
   memory only, so a reloaded oracle raises KeyError at the first finished
   trial. `ResumableGridSearchOracle.set_state` rebuilds both.
3. Failed trials print their traceback to stderr
   (`keras_tuner.src.config.DEBUG`, no public switch); the trials table
   keeps the message, so `quiet_failures` turns it off.

`problems()` lists what of the above a KerasTuner release no longer has
(tests/test_tuning.py fails on any), and `CHECKED_VERSIONS` the releases
these patches were checked against.
"""

import functools
import inspect
import json
import os

from dlrecipes.training.rundir import atomic_write_text

CHECKED_VERSIONS = ("1.4.8",)

# What the patches and overrides rely on: (class, method, signature).
PATCHED_METHODS = (
    ("keras_tuner.Oracle", "save", "(self)"),
    ("keras_tuner.Oracle", "_save_trial", "(self, trial)"),
    ("keras_tuner.Oracle", "_get_trial_dir", "(self, trial_id)"),
    ("keras_tuner.Oracle", "get_state", "(self)"),
    ("keras_tuner.Oracle", "set_state", "(self, state)"),
    ("keras_tuner.oracles.GridSearchOracle", "_compare", "(self, a, b)"),
    ("keras_tuner.oracles.GridSearchOracle", "set_state", "(self, state)"),
    # Public, and overridden by tuning.tuner's `Tuner` subclass.
    ("keras_tuner.Tuner", "run_trial", "(self, trial, *args, **kwargs)"),
    ("keras_tuner.Tuner", "on_trial_end", "(self, trial)"),
    ("keras_tuner.Tuner", "get_trial_dir", "(self, trial_id)"),
)
# Attributes of a GridSearchOracle (instance) the patches read or replace.
PATCHED_GRID_ATTRIBUTES = ("_project_dir", "start_order", "trials",
                           "_ordered_ids", "_populate_next")


def atomic_oracle(cls):
    """`cls` (an `Oracle` subclass) with its JSON records written
    atomically (write + rename): a SIGKILL never leaves a truncated
    oracle.json or trial.json."""

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


@functools.lru_cache(maxsize=None)
def oracle_classes():
    """{tuner name: the patched oracle class}."""
    import keras_tuner

    oracles = keras_tuner.oracles

    class ResumableGridSearchOracle(
            atomic_oracle(oracles.GridSearchOracle)):
        """GridSearchOracle that resumes (keras-tuner #1055): the grid's
        ordered trial list and the queue of trials whose successor is
        still to be generated, rebuilt from the reloaded trials (sorted in
        grid order, every trial queued again: one whose successor was
        already tried is skipped by the oracle's own check)."""

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
        "random": atomic_oracle(oracles.RandomSearchOracle),
        "grid": ResumableGridSearchOracle,
        "hyperband": atomic_oracle(oracles.HyperbandOracle),
        "bayesian": atomic_oracle(oracles.BayesianOptimizationOracle),
    }


def quiet_failures(quiet=True):
    """Whether KerasTuner prints a failed trial's traceback (it does by
    default, through a private flag)."""
    try:
        from keras_tuner.src import config as kt_config
    except ImportError:  # another KerasTuner layout: leave it as it is
        return
    kt_config.DEBUG = not quiet


def problems():
    """What the patches rely on and the installed KerasTuner lacks: a list
    of one-line descriptions (empty when everything is in place)."""
    import keras_tuner

    found = []
    for path, method, signature in PATCHED_METHODS:
        module, _, name = path.rpartition(".")
        cls = _resolve(module, name)
        fn = getattr(cls, method, None)
        if fn is None:
            found.append(f"{path}.{method} is gone")
            continue
        actual = str(inspect.signature(fn))
        if actual != signature:
            found.append(f"{path}.{method}{actual}, expected {signature}")
    try:
        from keras_tuner.src import config as kt_config

        if not isinstance(getattr(kt_config, "DEBUG", None), bool):
            found.append("keras_tuner.src.config.DEBUG is not a bool flag")
    except ImportError:
        found.append("keras_tuner.src.config is gone")
    oracle = keras_tuner.oracles.GridSearchOracle(
        objective="loss", hyperparameters=keras_tuner.HyperParameters())
    for name in PATCHED_GRID_ATTRIBUTES:
        if name == "_project_dir":
            ok = isinstance(inspect.getattr_static(type(oracle), name, None),
                            property)
        else:
            ok = hasattr(oracle, name)
        if not ok:
            found.append(f"GridSearchOracle.{name} is gone")
    ordered = getattr(oracle, "_ordered_ids", None)
    if ordered is not None and not callable(getattr(ordered, "insert",
                                                    None)):
        found.append("GridSearchOracle._ordered_ids has no insert()")
    return found


def _resolve(module, name):
    import importlib

    obj = importlib.import_module(module.split(".")[0])
    for part in module.split(".")[1:] + [name]:
        obj = getattr(obj, part)
    return obj
