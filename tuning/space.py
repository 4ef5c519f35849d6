"""Declarative search spaces: `{config field: Choice | Float | Int | Boolean}`.

A recipe's space lives in `tuning/<recipe module>.py` as `SPACE`, a dict
whose keys are the recipe's config field names, so a trial's config is
`base_config.replace(**hp.values)` and a trial builds exactly the model that
`dlrecipes run` builds with the same values:

    SPACE = {
        MODEL: Choice(("mlp", "resnet")),
        DEPTH: Choice((1, 2), when=(MODEL, ("resnet",))),
        LEARNING_RATE: Float(1e-4, 1e-2, sampling="log", grid=(1e-3, 3e-3)),
    }

`when=(parent, values)` makes an entry active only when `parent` takes one
of `values` (KerasTuner's conditional scopes). Grid search enumerates
discrete values only: `Choice` values, stepped `Int`/`Float` ranges, or a
continuous range's `grid=` values; a range with neither is an error.

Nothing here imports KerasTuner; `declare(hp, space)` registers a space on a
`keras_tuner.HyperParameters`.
"""

import dataclasses
import importlib
import json
import math
import numbers

from dlrecipes.config import config_from_dict, load_config_file
from dlrecipes.errors import UsageError

SAMPLINGS = ("linear", "log", "reverse_log")


def _check_when(when):
    if when is None:
        return None
    if (not isinstance(when, (tuple, list)) or len(when) != 2
            or not isinstance(when[0], str)):
        raise ValueError("`when` must be (parent_name, (values, ...)). "
                         f"Received: when={when!r}")
    values = when[1] if isinstance(when[1], (tuple, list)) else (when[1],)
    if not values:
        raise ValueError(f"`when` needs at least one parent value. "
                         f"Received: when={when!r}")
    return (when[0], tuple(values))


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of `values` (all of one type: str, int, float or bool).

    Args:
        values: the candidate values, in grid order.
        default: the value of the first grid trial (default: the base
            config's value when it is one of `values`, else the first).
        when: `(parent, values)`: active only when `parent` is one of them.
        grid: the subset of `values` grid search takes (default: all).
    """

    values: tuple
    default: object = None
    when: tuple = None
    grid: tuple = None

    def __post_init__(self):
        values = self.values
        if isinstance(values, (str, bytes)) or not isinstance(
                values, (tuple, list)):
            raise ValueError("`values` must be a list or tuple. "
                             f"Received: values={values!r}")
        values = tuple(values)
        if not values:
            raise ValueError("`values` must not be empty. Received: values=()")
        kinds = {_kind(v) for v in values}
        if len(kinds) != 1 or None in kinds:
            raise ValueError("`values` must all be str, int, float or bool, "
                             f"one type. Received: values={values!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"`values` has duplicates. Received: "
                             f"values={values!r}")
        if self.default is not None and self.default not in values:
            raise ValueError(f"`default` must be one of {values!r}. "
                             f"Received: default={self.default!r}")
        if self.grid is not None:
            grid = tuple(self.grid) if isinstance(self.grid, (tuple, list)) \
                else (self.grid,)
            bad = [v for v in grid if v not in values]
            if not grid or bad:
                raise ValueError(f"`grid` must be a non-empty subset of "
                                 f"{values!r}. Received: grid={self.grid!r}")
            object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "when", _check_when(self.when))

    def grid_values(self):
        return list(self.grid if self.grid is not None else self.values)

    def contains(self, value):
        return value in self.values


def _kind(value):
    if isinstance(value, bool):
        return bool
    if isinstance(value, numbers.Integral):
        return int
    if isinstance(value, numbers.Real):
        return float
    if isinstance(value, str):
        return str
    return None


@dataclasses.dataclass(frozen=True)
class _Range:
    min: float
    max: float
    sampling: str = "linear"
    step: float = None
    default: object = None
    when: tuple = None
    grid: tuple = None

    _type = float

    def __post_init__(self):
        t = self._type
        for name in ("min", "max"):
            v = getattr(self, name)
            if not self._is_value(v):
                raise ValueError(f"`{name}` must be a finite "
                                 f"{t.__name__}. Received: {name}={v!r}")
            object.__setattr__(self, name, t(v))
        if not self.min < self.max:
            raise ValueError("`min` must be below `max`. Received: "
                             f"min={self.min}, max={self.max}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"`sampling` must be one of {SAMPLINGS}. "
                             f"Received: sampling={self.sampling!r}")
        if self.sampling != "linear" and self.min <= 0:
            raise ValueError("log sampling needs `min` > 0. "
                             f"Received: min={self.min}")
        if self.step is not None:
            if _kind(self.step) not in (int, float) or self.step <= 0 or (
                    t is int and _kind(self.step) is not int):
                raise ValueError("`step` must be a positive "
                                 f"{t.__name__}. Received: step={self.step!r}")
            if self.sampling != "linear" and self.step <= 1:
                raise ValueError("with log sampling `step` is a factor and "
                                 f"must be > 1. Received: step={self.step}")
        if self.grid is not None:
            grid = self.grid if isinstance(self.grid, (tuple, list)) \
                else (self.grid,)
            if not all(self._is_value(v) for v in grid):
                raise ValueError(f"`grid` must be a list of {t.__name__}s. "
                                 f"Received: grid={self.grid!r}")
            grid = tuple(t(v) for v in grid)
            if not grid:
                raise ValueError("`grid` must not be empty. Received: grid=()")
            bad = [v for v in grid if not self.min <= v <= self.max]
            if bad:
                raise ValueError(f"`grid` values must lie in [{self.min}, "
                                 f"{self.max}]. Received: grid={grid!r}")
            object.__setattr__(self, "grid", grid)
        if self.default is not None and not self._is_value(self.default):
            raise ValueError(f"`default` must be a {t.__name__}. "
                             f"Received: default={self.default!r}")
        if self.default is not None and not (
                self.min <= self.default <= self.max):
            raise ValueError(f"`default` must lie in [{self.min}, "
                             f"{self.max}]. Received: default={self.default}")
        object.__setattr__(self, "when", _check_when(self.when))

    def _is_value(self, value):
        """A finite number of this range's type (an int also for floats)."""
        allowed = (int,) if self._type is int else (int, float)
        return _kind(value) in allowed and math.isfinite(value)

    def grid_values(self):
        """The discrete values grid search enumerates, or None."""
        if self.grid is not None:
            return list(self.grid)
        if self.step is None:
            return None
        values, v, i = [], self.min, 0
        while v <= self.max * (1 + 1e-9) + 1e-12:
            values.append(self._type(round(v, 12)) if self._type is float
                          else v)
            i += 1
            v = (self.min + i * self.step if self.sampling == "linear"
                 else self.min * self.step ** i)
        return values

    def contains(self, value):
        return (_kind(value) in (int, float)) and \
            self.min <= value <= self.max


@dataclasses.dataclass(frozen=True)
class Float(_Range):
    """A float in `[min, max]`.

    Args:
        min, max: the range (inclusive).
        sampling: "linear", "log" (learning rates, weight decay) or
            "reverse_log".
        step: optional; makes the range discrete (a factor with log
            sampling: `min, min*step, min*step**2 ...`).
        default: the value of the first grid trial.
        when: `(parent, values)`: active only for those parent values.
        grid: the values grid search takes from a continuous range.
    """

    _type = float


@dataclasses.dataclass(frozen=True)
class Int(_Range):
    """An integer in `[min, max]`; same arguments as `Float` (step 1)."""

    step: int = 1
    _type = int


@dataclasses.dataclass(frozen=True)
class Boolean:
    """True or False."""

    default: bool = None
    when: tuple = None

    def __post_init__(self):
        if self.default is not None and not isinstance(self.default, bool):
            raise ValueError("`default` must be true or false. "
                             f"Received: default={self.default!r}")
        object.__setattr__(self, "when", _check_when(self.when))

    values = (False, True)

    def grid_values(self):
        return [False, True]

    def contains(self, value):
        return isinstance(value, bool)


SPECS = {"choice": Choice, "float": Float, "int": Int, "bool": Boolean}


# ------------------------------------------------------------ recipe spaces


def space_module(recipe):
    """`tuning.<module>` holding `recipe`'s SPACE (None if there is none)."""
    name = recipe.config_class.__module__.rsplit(".", 1)[-1]
    try:
        return importlib.import_module(f"tuning.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"tuning.{name}":
            raise
        return None


def search_space(recipe):
    """A copy of the declared search space of `recipe` (a name or Recipe).

    Edit it and pass it to `run_search(..., space=...)`.
    """
    recipe = _recipe(recipe)
    module = space_module(recipe)
    if module is None or not hasattr(module, "SPACE"):
        name = recipe.config_class.__module__.rsplit(".", 1)[-1]
        raise UsageError(f"recipe {recipe.name!r} has no search space "
                         f"(tuning/{name}.py)")
    return dict(module.SPACE)


def data_fields(recipe):
    """Config fields that `load_data` reads (all of them if undeclared)."""
    module = space_module(_recipe(recipe))
    fields = getattr(module, "DATA_FIELDS", None)
    if fields is None:
        return tuple(f.name for f in dataclasses.fields(
            _recipe(recipe).config_class))
    return tuple(fields)


def _recipe(recipe):
    if isinstance(recipe, str):
        import recipes  # noqa: F401  (registers every recipe)
        from dlrecipes.registry import get_recipe

        return get_recipe(recipe)
    return recipe


# -------------------------------------------------------- overrides, checks


def field_types(config_class):
    import typing

    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class)}


def _unknown(name, config_class, source):
    valid = ", ".join(field_types(config_class))
    return UsageError(f"unknown hp name {name!r} in {source}; valid names "
                      f"(config fields): {valid}")


def apply_overrides(space, overrides, config_class, source="--space"):
    """Narrow or extend `space` with a dict read from a TOML/JSON file.

    `name = [a, b]` -> Choice; `name = {min=.., max=.., sampling=..,
    step=.., grid=[..], default=..}` -> narrows the declared range (or
    declares one, typed by the config field); `name = {values=[..]}` ->
    Choice; `name = scalar` fixes the field (returned in `fixed`).

    Returns:
        (space, fixed): the new space dict and {field: value} to fix.
    """
    types = field_types(config_class)
    space, fixed = dict(space), {}
    for name, raw in overrides.items():
        if name not in types:
            raise _unknown(name, config_class, source)
        old = space.get(name)
        when = getattr(old, "when", None)
        try:
            if isinstance(raw, list):
                space[name] = Choice(tuple(raw), when=when)
            elif isinstance(raw, dict):
                space[name] = _from_table(name, raw, old, types[name], when)
            else:
                fixed[name] = raw
                space.pop(name, None)
        except (TypeError, ValueError) as e:
            raise UsageError(f"{source}: {name}: {e}") from None
    return space, fixed


_TABLE_KEYS = ("type", "values", "min", "max", "sampling", "step", "default",
               "grid")
# The keys each kind of table takes ("range": an int or float range).
_KIND_KEYS = {"choice": ("type", "values", "default", "grid"),
              "bool": ("type", "default"),
              "range": ("type", "min", "max", "sampling", "step", "default",
                        "grid")}


def _table_kind(raw, old, field_type):
    """"choice", "bool", "int" or "float": what a `--space` table declares."""
    kind = raw.get("type")
    if kind is not None and kind not in SPECS:
        raise ValueError(f"unknown type {kind!r}; valid types: "
                         f"{', '.join(SPECS)}")
    if "values" in raw or kind == "choice":
        return "choice"
    if kind == "bool" or (kind is None and field_type is bool):
        return "bool"
    if kind is not None:
        return kind
    if isinstance(old, (Float, Int)):
        return "int" if isinstance(old, Int) else "float"
    if field_type is str:
        raise ValueError("a text field takes a list of values (e.g. "
                         "[\"a\", \"b\"]) or one value, not a range. "
                         f"Received: {raw!r}")
    return "int" if field_type is int else "float"


def _check_table_keys(raw, kind):
    unknown = sorted(set(raw) - set(_TABLE_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; valid keys: "
                         f"{', '.join(_TABLE_KEYS)}")
    valid = _KIND_KEYS.get(kind, _KIND_KEYS["range"])
    extra = sorted(set(raw) - set(valid))
    if extra:
        raise ValueError(f"a {kind} takes only {', '.join(valid)}; "
                         f"{extra[0]!r} does not apply. Received: {raw!r}")


def _from_table(name, raw, old, field_type, when):
    kind = _table_kind(raw, old, field_type)
    _check_table_keys(raw, kind)
    if kind == "choice":
        if "values" not in raw:
            raise ValueError("a choice needs `values`, a list. "
                             f"Received: {raw!r}")
        return Choice(raw["values"], default=raw.get("default"), when=when,
                      grid=raw.get("grid"))
    if kind == "bool":
        return Boolean(default=raw.get("default"), when=when)
    cls = SPECS[kind]
    base = dataclasses.asdict(old) if isinstance(old, cls) else {}
    base.pop("when", None)
    params = {**base, **{k: v for k, v in raw.items() if k != "type"}}
    missing = [k for k in ("min", "max") if k not in params]
    if missing:
        raise ValueError(
            f"a range needs both `min` and `max` ({name} has no declared "
            f"{kind} range to narrow), e.g. {name} = {{min = 1, max = 10}}; "
            f"or give a list of values. Received: {raw!r}")
    if isinstance(old, cls) and ("min" in raw or "max" in raw) and \
            "grid" not in raw and params.get("grid") is not None:
        lo, hi = params["min"], params["max"]
        params["grid"] = tuple(v for v in params["grid"]
                               if _in_range(v, lo, hi)) or None
    if isinstance(old, cls) and "default" not in raw and \
            params.get("default") is not None and \
            not _in_range(params["default"], params["min"], params["max"]):
        params["default"] = None
    return cls(when=when, **params)


def _in_range(value, lo, hi):
    """`lo <= value <= hi` for numbers; False for anything else."""
    numeric = all(_kind(v) in (int, float) for v in (value, lo, hi))
    return numeric and lo <= value <= hi


def resolve(space, base_config, fixed=()):
    """Drop fixed fields, settle conditions on parents outside the space,
    and check every name and value against the config class.

    Returns the resolved space (a new dict, declaration order kept).
    """
    config_class = type(base_config)
    types = field_types(config_class)
    out = {}
    for name, spec in space.items():
        if name not in types:
            raise _unknown(name, config_class, "the search space")
        if name in fixed:
            continue
        if spec.when is not None:
            parent, values = spec.when
            if parent not in types:
                raise _unknown(parent, config_class, f"`when` of {name!r}")
            if parent not in out:
                if parent in space and parent not in fixed:
                    raise UsageError(f"search space: {name!r} depends on "
                                     f"{parent!r}, declared after it")
                if getattr(base_config, parent) not in values:
                    continue  # never active
                spec = dataclasses.replace(spec, when=None)
        out[name] = spec
    for name, spec in out.items():
        if isinstance(spec, (Choice, Boolean)):
            candidates = list(spec.values)
        else:
            candidates = [spec.min, spec.max] + (spec.grid_values() or [])
        for value in candidates:
            check_value(base_config, name, value)
    return out


def check_value(base_config, name, value):
    """UsageError unless `name=value` is a valid config value."""
    values = {**config_dict(base_config), name: value}
    try:
        config_from_dict(type(base_config), values,
                         source=f"the search space ({name})")
    except UsageError as e:
        raise UsageError(f"search space: {name}={value!r} is not a valid "
                         f"value: {e}") from None


def config_dict(config):
    return dataclasses.asdict(config)


def trial_config(base_config, values):
    """`base_config` with the trial's hp values (KerasTuner's `tuner/*`
    bookkeeping entries dropped), converted and validated."""
    values = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return config_from_dict(type(base_config),
                            {**config_dict(base_config), **values},
                            source="trial values")


def grid_size(space):
    """Number of distinct active-value combinations (conditions respected);
    None if some entry is continuous."""
    children = {}
    for name, spec in space.items():
        parent = spec.when[0] if spec.when else None
        children.setdefault(parent, []).append(name)

    def count(name):
        values = space[name].grid_values()
        if values is None:
            return None
        total = 0
        for v in values:
            n = 1
            for child in children.get(name, []):
                if v in space[child].when[1]:
                    c = count(child)
                    if c is None:
                        return None
                    n *= c
            total += n
        return total

    result = 1
    for root in children.get(None, []):
        c = count(root)
        if c is None:
            return None
        result *= c
    return result


def check_grid(space):
    """UsageError unless every entry has discrete grid values."""
    for name, spec in space.items():
        if spec.grid_values() is None:
            kind = type(spec).__name__
            raise UsageError(
                f"grid search needs discrete values, but {name!r} is a "
                f"continuous {kind} range [{spec.min}, {spec.max}]; give it "
                f"a step or grid values in --space (e.g. {name} = "
                f"[{spec.min}, {spec.max}]) or fix it with --set {name}=VALUE")


# ----------------------------------------------------------- KerasTuner hps


def _default(name, spec, base_config):
    if spec.default is not None:
        return spec.default
    value = getattr(base_config, name, None)
    if value is not None and spec.contains(value):
        if isinstance(spec, (Choice, Boolean)) or spec.grid_values() is None:
            return value
        if value in spec.grid_values():
            return value
    return None


def declare(hp, space, base_config, grid=False):
    """Register `space` on a `keras_tuner.HyperParameters` `hp`.

    With `grid=True` every entry becomes a `Choice` of its grid values
    (call `check_grid` first). Defaults are the base config's values when
    they lie in the space, so the first grid trial is the recipe default.
    """
    for name, spec in space.items():
        kwargs = {}
        if spec.when is not None:
            kwargs = {"parent_name": spec.when[0],
                      "parent_values": list(spec.when[1])}
        default = _default(name, spec, base_config)
        if grid or isinstance(spec, Choice):
            values = spec.grid_values()
            if default is not None and default not in values:
                default = None
            hp.Choice(name, values, default=default, **kwargs)
        elif isinstance(spec, Boolean):
            hp.Boolean(name, default=bool(default), **kwargs)
        elif isinstance(spec, Int):
            hp.Int(name, spec.min, spec.max, step=spec.step,
                   sampling=spec.sampling, default=default, **kwargs)
        else:
            hp.Float(name, spec.min, spec.max, step=spec.step,
                     sampling=spec.sampling, default=default, **kwargs)
    return hp


# -------------------------------------------------------- (de)serialization


def to_json(space):
    """A JSON-able list of {name, type, ...} (declaration order kept)."""
    out = []
    for name, spec in space.items():
        kind = {Choice: "choice", Float: "float", Int: "int",
                Boolean: "bool"}[type(spec)]
        entry = {"name": name, "type": kind}
        for k, v in dataclasses.asdict(spec).items():
            if v is not None:
                entry[k] = list(v) if isinstance(v, tuple) else v
        if spec.when is not None:
            entry["when"] = [spec.when[0], list(spec.when[1])]
        out.append(entry)
    return out


def from_json(entries):
    space = {}
    for entry in entries:
        entry = dict(entry)
        name, cls = entry.pop("name"), SPECS[entry.pop("type")]
        for k in ("values", "grid"):
            if k in entry:
                entry[k] = tuple(entry[k])
        space[name] = cls(**entry)
    return space


def load_space_file(path):
    """Read a --space TOML/JSON file into a dict (UsageError if missing,
    not a regular file, or unreadable)."""
    return load_config_file(path, flag="--space")


def describe(space):
    """One line per entry, for `--help`-style listings."""
    lines = []
    for entry in to_json(space):
        name = entry.pop("name")
        lines.append(f"{name}: {json.dumps(entry)}")
    return "\n".join(lines)
