"""A search's definition: one frozen `SearchSpec`, its JSON and identity.

Every option of a search is a field of `SearchSpec`, declared once with
what it is checked against (`choices`, `min`) and what it is part of:

- the **identity** (what makes two searches the same: the recipe, the
  tuner, the space, the base config without its presentation fields, the
  executions per trial, and Hyperband's budget under Hyperband). It is
  hashed into the default directory name, and a directory whose saved
  identity differs is not resumed;
- the **JSON** written to `search.json` (every field), read back by
  `--workers`' processes, `dlrecipes report` and a resume.

Both are derived from the fields (`dataclasses.fields`), so a new option
is one new field. Nothing here imports Keras or KerasTuner.
"""

import dataclasses
import hashlib
import importlib
import json
import os
import types

from dlrecipes.config import presentation_fields
from dlrecipes.errors import UsageError, choices_message
from tuning import space as space_lib

TUNERS = ("random", "grid", "hyperband", "bayesian")
ISOLATION = ("none", "process")
TENSORBOARD = ("auto", "on", "off")
DEFAULT_MAX_TRIALS = 10
FORMAT = 2  # of search.json (1: options nested, read by `_upgrade`)
SEARCH_FILE = "search.json"
LOCK_FILE = "search.lock"
KT_PROJECT = "kt"


# --------------------------------------------------------- field codecs


def _get_recipe(name, values, source):
    from dlrecipes.recipe import get_recipe

    return get_recipe(name)


def _config_json(config):
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _model_fields(encoded, spec):
    """The base config's identity: without fields that only change how a
    run is shown (`output_dir`, `verbose`)."""
    ignore = presentation_fields(spec.recipe.config_class)
    return {k: v for k, v in encoded.items() if k not in ignore}


def _config_from_json(values, decoded, source):
    from dlrecipes.config import config_from_dict

    return config_from_dict(decoded["recipe"].config_class, values,
                            source=source)


# (encode, decode) for the fields that JSON does not hold as they are.
_RECIPE = (lambda recipe: recipe.name, _get_recipe)
_CONFIG = (_config_json, _config_from_json)
_SPACE = (space_lib.to_json, lambda v, decoded, source:
          space_lib.from_json(v))
_PAIR = (lambda v: None if v is None else list(v),
         lambda v, decoded, source: None if v is None else tuple(v))


def _option(default=dataclasses.MISSING, *, identity=False, codec=None,
            choices=None, what=None, min=None):
    """A `SearchSpec` field.

    Args:
        identity: True (part of the identity), a tuner name (part of it
            under that tuner only, its fields grouped in one list under
            that name), or False (how the search runs, not what it is).
        codec: `(encode, decode(value, decoded fields, source))` for JSON.
        choices, what: the valid values, and their name in the error.
        min: the smallest valid integer (None allowed as "default").
    """
    return dataclasses.field(default=default, metadata={
        "identity": identity, "codec": codec, "choices": choices,
        "what": what, "min": min})


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """What a search is and how it runs; checked when made.

    Attributes:
        recipe: the `Recipe`.
        base: the base config; hps not in a trial keep its values.
        space: {config field: Choice/Float/Int/Boolean}, resolved against
            `base` (`tuning.space.resolve`).
        tuner: "random", "grid", "hyperband" or "bayesian".
        executions_per_trial: trainings per trial (seeds seed, seed+1 ...),
            scores averaged.
        max_epochs, factor, hyperband_iterations: Hyperband's budget
            (`max_epochs` defaults to the base config's epochs).
        objective: (monitor, "min" | "max"); None: the recipe's, settled
            on the data when the search starts.
        max_trials: trials at most (random/bayesian default 10; grid: all
            combinations; not for hyperband).
        trial_isolation: "none", or "process" (each trial in a fresh
            Python process: memory stays flat).
        tensorboard: "auto" (on under the TensorFlow backend), "on", "off".
        max_failures: stop after this many consecutive failed trials
            (0: never).
        retrain: retrain the best config with `run_recipe` into best/.
        workers: 0: trials in this process; N: a KerasTuner chief and N
            worker processes on this machine.
    """

    recipe: object = _option(identity=True, codec=_RECIPE)
    base: object = _option(identity=_model_fields, codec=_CONFIG)
    space: dict = _option(identity=True, codec=_SPACE)
    tuner: str = _option("random", identity=True, choices=TUNERS,
                         what="tuner")
    executions_per_trial: int = _option(1, identity=True, min=1)
    max_epochs: int = _option(None, identity="hyperband", min=1)
    factor: int = _option(3, identity="hyperband", min=2)
    hyperband_iterations: int = _option(1, identity="hyperband", min=1)
    objective: tuple = _option(None, codec=_PAIR)
    max_trials: int = _option(None, min=1)
    trial_isolation: str = _option("none", choices=ISOLATION,
                                   what="trial isolation")
    tensorboard: str = _option("auto", choices=TENSORBOARD,
                               what="tensorboard setting")
    max_failures: int = _option(0, min=0)
    retrain: bool = _option(True)
    workers: int = _option(0, min=0)

    def __post_init__(self):
        # A read-only copy: the spec is what search.json and the directory
        # name say; nothing changes it behind their back.
        object.__setattr__(self, "space",
                           types.MappingProxyType(dict(self.space)))
        if self.tuner == "hyperband" and self.max_epochs is None:
            object.__setattr__(self, "max_epochs", self.base.epochs)
        if self.objective is not None:
            object.__setattr__(self, "objective", tuple(self.objective))
        self._check()

    # ------------------------------------------------------------ checks

    def _check(self):
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            flag = "--" + f.name.replace("_", "-")
            if meta["choices"] and value not in meta["choices"]:
                raise UsageError(f"{flag}: " + choices_message(
                    meta["what"], value, meta["choices"]))
            if meta["min"] is not None and value is not None and (
                    isinstance(value, bool) or not isinstance(value, int)
                    or value < meta["min"]):
                raise UsageError(f"{flag} must be an integer >= "
                                 f"{meta['min']}. Received: "
                                 f"{f.name}={value!r}")
        from dlrecipes import techniques

        techniques.check(self.recipe, self.base)
        if self.tuner == "hyperband" and getattr(self.base, "snapshots", 0):
            raise UsageError("--snapshots does not go with --tuner "
                             "hyperband (its brackets cut the cycles short)")
        if self.tuner == "hyperband":
            if self.max_trials is not None:
                raise UsageError("--max-trials does not apply to hyperband; "
                                 "its budget is --max-epochs, --factor and "
                                 "--hyperband-iterations")
        elif self.max_epochs is not None and \
                self.max_epochs != self.base.epochs:
            raise UsageError(f"--max-epochs applies to --tuner hyperband "
                             f"only (use --epochs). Received: "
                             f"tuner={self.tuner}")
        if not self.space:
            raise UsageError("empty search space: every hp is fixed (--set, "
                             "flags or --space); nothing to search")
        if self.tuner == "grid":
            space_lib.check_grid(self.space)
            if not space_lib.grid_size(self.space):
                raise UsageError("empty grid: no combination to run")

    # ---------------------------------------------------- JSON, identity

    def to_json(self):
        """search.json's content: every field, plus the format and the
        module that registers the recipe."""
        out = {"format": FORMAT,
               "recipe_module": type(self.recipe).__module__}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            codec = f.metadata["codec"]
            out[f.name] = codec[0](value) if codec else value
        return json.loads(json.dumps(out, default=str))

    @classmethod
    def from_json(cls, data, source=SEARCH_FILE):
        """The spec `to_json` wrote (KeyError, TypeError, ValueError,
        ImportError or UsageError if it is not one)."""
        data = _upgrade(dict(data))
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"not a format {FORMAT} search definition")
        importlib.import_module(data.pop("recipe_module"))  # registers it
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown entries: {', '.join(unknown)}")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                codec = f.metadata["codec"]
                raw = data[f.name]
                values[f.name] = codec[1](raw, values, source) if codec \
                    else raw
        return cls(**values)

    def identity(self):
        """What makes two searches the same (a JSON-able dict)."""
        encoded = self.to_json()
        ident = {}
        for f in dataclasses.fields(self):
            role = f.metadata["identity"]
            if role is True:
                ident[f.name] = encoded[f.name]
            elif callable(role):
                ident[f.name] = role(encoded[f.name], self)
            elif role and role == self.tuner:
                ident.setdefault(role, []).append(encoded[f.name])
        return ident

    def default_id(self):
        """`<tuner>-<hash of the identity>`: the default directory name."""
        digest = hashlib.sha256(json.dumps(
            self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.tuner}-{digest}"


def _upgrade(data):
    """A format-1 search.json (options nested) in format 2."""
    if data.get("format") != 1:
        return data
    hb = data["hyperband"]
    return {"format": FORMAT, "recipe_module": data["recipe_module"],
            "recipe": data["recipe"], "base": data["base_config"],
            "space": data["space"], "tuner": data["tuner"],
            "objective": data["objective"],
            "executions_per_trial": data["executions_per_trial"],
            "max_epochs": hb["max_epochs"], "factor": hb["factor"],
            "hyperband_iterations": hb["iterations"], **data["options"]}


# ------------------------------------------------------------ directory


def read_spec(directory):
    """The `SearchSpec` saved in `directory` (UsageError if unreadable)."""
    path = os.path.join(directory, SEARCH_FILE)
    try:
        with open(path) as f:
            return SearchSpec.from_json(json.load(f), source=path)
    except (OSError, ValueError, KeyError, TypeError, ImportError,
            UsageError) as e:
        raise UsageError(f"{path} is unreadable: {e}") from None


def check_directory(spec, directory, overwrite):
    """"new", "resume" or "overwrite" for a search of `spec` in
    `directory`; UsageError for a directory holding another recipe's or
    another search (every difference named), or no search at all."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--directory {directory} exists and is not a "
                         "directory; pass another --directory")
    path = os.path.join(directory, SEARCH_FILE)
    if os.path.isfile(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            raise UsageError(f"{path} is unreadable; remove the directory "
                             "or pass another --directory") from None
        if not isinstance(saved, dict) or \
                saved.get("recipe") != spec.recipe.name:
            other = saved.get("recipe") if isinstance(saved, dict) else None
            raise UsageError(f"{directory} holds a search of recipe "
                             f"{other!r}, not {spec.recipe.name!r}; pass "
                             "another --directory")
        if overwrite:
            return "overwrite"
        try:
            previous = SearchSpec.from_json(saved, source=path).identity()
        except (UsageError, KeyError, TypeError, ValueError, ImportError):
            previous = None
        if previous != spec.identity():
            raise UsageError(f"{directory} holds a different search "
                             f"({difference(previous, spec.identity())}); "
                             "pass another --directory, or --overwrite to "
                             "start over")
        return "resume"
    if os.path.isdir(directory) and set(os.listdir(directory)) - {LOCK_FILE}:
        raise UsageError(f"{directory} exists and is not a search "
                         "directory; pass another --directory")
    return "new"


def difference(old, new):
    """Every difference between two identities, on one line:
    `tuner: 'grid' there, 'random' now; width: 8 there, 16 now` (a base
    config field by its name, a space entry as `space NAME`)."""
    if not isinstance(old, dict):
        return "unreadable definition"
    found = []
    for key in _keys(old, new):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if key == "space" and _is_space(a) and _is_space(b):
            a, b = ({e["name"]: {k: v for k, v in e.items() if k != "name"}
                     for e in x} for x in (a, b))
            prefix = "space "
        elif key == "base" and isinstance(a, dict) and isinstance(b, dict):
            prefix = ""
        else:
            a, b, prefix = {key: a}, {key: b}, ""
        for k in _keys(a, b):
            x, y = a.get(k, _ABSENT), b.get(k, _ABSENT)
            if x != y:
                found.append(f"{prefix}{k}: {_short(x)} there, "
                             f"{_short(y)} now")
    return "; ".join(found) or "definition differs"


def _keys(old, new):
    return list(new) + [k for k in old if k not in new]


class _Absent:
    def __repr__(self):
        return "absent"


_ABSENT = _Absent()


def _is_space(value):
    return isinstance(value, list) and all(
        isinstance(e, dict) and "name" in e for e in value)


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
