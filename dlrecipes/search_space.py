"""Search-space specs a recipe declares: `{config field: Choice | Float |
Int | Boolean}` (its `search_space` class attribute).

    search_space = {
        "model": Choice(("mlp", "resnet")),
        "depth": Choice((1, 2), when=("model", ("resnet",))),
        "learning_rate": Float(1e-4, 1e-2, sampling="log", grid=(1e-3, 3e-3)),
    }

`when=(parent, values)` makes an entry active only when `parent` takes one
of `values` (KerasTuner's conditional scopes). Grid search enumerates
discrete values only: `Choice` values, stepped `Int`/`Float` ranges, or a
continuous range's `grid=` values. Plain data: nothing here imports Keras or
KerasTuner (`tuning.space.declare` puts a space on a
`keras_tuner.HyperParameters`).
"""

import dataclasses
import math
import numbers

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
