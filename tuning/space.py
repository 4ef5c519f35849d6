"""Search spaces: `{config field: Choice | Float | Int | Boolean}`.

A recipe declares its space as its `search_space` class attribute (the
specs are `dlrecipes.search_space`'s, plain data), keyed by its config
field names, so a trial's config is the base config with the trial's
values and a trial builds exactly the model that `dlrecipes run` builds
with the same values:

    search_space = {
        "model": Choice(("mlp", "resnet")),
        "depth": Choice((1, 2), when=("model", ("resnet",))),
        "learning_rate": Float(1e-4, 1e-2, sampling="log",
                               grid=(1e-3, 3e-3)),
    }

Here: reading a recipe's space (`search_space`, `data_fields`), a
`--space` file's overrides, resolving a space against a base config, grid
sizes, its JSON, and `declare(hp, space)`, which registers a space on a
`keras_tuner.HyperParameters`. Nothing here imports KerasTuner or Keras.
"""

import dataclasses
import json

from dlrecipes.config import config_from_dict, load_config_file
from dlrecipes.errors import UsageError
from dlrecipes.search_space import (  # noqa: F401
    SAMPLINGS, SPECS, Boolean, Choice, Float, Int, _kind)


# ------------------------------------------------------------ recipe spaces


def search_space(recipe):
    """A copy of the search space `recipe` (a name or Recipe) declares
    (its `search_space`). Edit it and pass it to `run_search(...,
    space=...)`."""
    recipe = resolve_recipe(recipe)
    if not recipe.search_space:
        raise UsageError(f"recipe {recipe.name!r} declares no search space "
                         "(its search_space is empty)")
    return dict(recipe.search_space)


def data_fields(recipe):
    """Config fields that `load_data` reads (all of them if undeclared)."""
    recipe = resolve_recipe(recipe)
    if not recipe.data_fields:
        return tuple(f.name for f in dataclasses.fields(recipe.config_class))
    return tuple(recipe.data_fields)


def resolve_recipe(recipe):
    """The registered `Recipe` called `recipe` (a `Recipe` passes through)."""
    if isinstance(recipe, str):
        import recipes  # noqa: F401  (registers every recipe)
        from dlrecipes.recipe import get_recipe

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
