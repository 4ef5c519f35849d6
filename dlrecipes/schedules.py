"""Learning-rate schedules and a name -> schedule factory.

Keras' own schedules (`keras.optimizers.schedules`) are used wherever they
exist; this module adds only what Keras lacks:

- `InverseSqrtDecay`: linear warm-up then 1/sqrt(step) decay (Vaswani et
  al., 2017; fairseq's `inverse_sqrt`).
- `LinearWarmup`: a linear warm-up from 0 in front of any schedule (or of a
  constant learning rate).

and `get(name, learning_rate, total_steps, warmup_steps, **overrides)`, the
one calling convention the training harness uses for every schedule. `get`
also reads Keras' own argument names (`initial_learning_rate`,
`decay_steps`, `decay_rate`, `staircase`, `alpha`, `warmup_target`,
`first_decay_steps`, `t_mul`, `m_mul`, `boundaries`, `values`,
`end_learning_rate`, `power`, `cycle`), so the keywords of a
`keras.optimizers.schedules` call work here unchanged.

Steps are optimizer steps (`optimizer.iterations`, 0 on the first update),
so a recipe passes `total_steps = epochs * steps_per_epoch`.
"""

import math
import numbers

from dlrecipes.config import SCHEDULES  # noqa: F401  (the names; Keras-free)
from dlrecipes.lazy import import_keras

keras = import_keras()  # quietly, if this is the first import of Keras
ops = keras.ops

# Warm-up length, as a fraction of `total_steps`, that `warmup_cosine` and
# `inverse_sqrt` use when `warmup_steps=None`.
DEFAULT_WARMUP_FRACTION = 0.1


def _check_learning_rate(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"`{name}` must be a non-negative finite number. "
            f"Received: {name}={value}"
        )
    return float(value)


def _check_steps(value, name, minimum=0):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(
            f"`{name}` must be a {kind} integer. Received: {name}={value}"
        )
    return int(value)


@keras.saving.register_keras_serializable(package="dlrecipes")
class InverseSqrtDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then inverse-square-root decay.

    With `lr0 = initial_learning_rate`, `W = warmup_steps` and `s` the
    optimizer step:

    ```
    W > 0:  lr(s) = lr0 * min(s / W, sqrt(W / max(s, W)))
            = lr0 * s / W            for s <  W  (0 at s = 0)
            = lr0 * sqrt(W / s)      for s >= W  (lr0 at s = W)
    W = 0:  lr(s) = lr0 * sqrt(1 / max(s, 1))
    ```

    Both pieces equal `lr0` at `s = W`, so the schedule is continuous and
    peaks at `lr0` there. This is the Transformer schedule of Vaswani et al.
    with the peak written explicitly as `lr0` instead of
    `d_model ** -0.5 * W ** -0.5`.

    Args:
        initial_learning_rate: float >= 0, the peak learning rate, reached
            at step `warmup_steps`.
        warmup_steps: int >= 0, length of the linear warm-up from 0.
        name: string, name of the schedule.

    Example:

    >>> schedule = InverseSqrtDecay(1e-3, warmup_steps=4000)
    >>> optimizer = keras.optimizers.Adam(learning_rate=schedule)

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762), §5.3.
    """

    def __init__(
        self, initial_learning_rate, warmup_steps=0, name="InverseSqrtDecay"
    ):
        super().__init__()
        self.initial_learning_rate = _check_learning_rate(
            initial_learning_rate, "initial_learning_rate"
        )
        self.warmup_steps = _check_steps(warmup_steps, "warmup_steps")
        self.name = name

    def __call__(self, step):
        with keras.name_scope(self.name):
            lr0 = ops.convert_to_tensor(self.initial_learning_rate)
            dtype = lr0.dtype
            s = ops.cast(step, dtype)
            w = float(max(self.warmup_steps, 1))
            decay = ops.sqrt(w / ops.maximum(s, w))  # 1 for s <= w
            if self.warmup_steps > 0:
                decay = ops.minimum(s / w, decay)
            return ops.multiply(lr0, decay)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="dlrecipes")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from 0 in front of another schedule.

    With `W = warmup_steps` and `after` the wrapped schedule (or constant):

    ```
    lr(s) = after(0) * s / W      for s <  W
    lr(s) = after(s - W)          for s >= W
    ```

    The wrapped schedule starts its own clock at the end of the warm-up, so
    the result is continuous at `s = W`. (Keras' `CosineDecay` has the same
    warm-up built in through `warmup_target`; `get` uses that one.)

    Args:
        schedule: a `keras.optimizers.schedules.LearningRateSchedule`, or a
            float for a constant learning rate after the warm-up.
        warmup_steps: int >= 0, length of the warm-up. 0 means no warm-up.
        name: string, name of the schedule.

    Example:

    >>> after = keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.5)
    >>> schedule = LinearWarmup(after, warmup_steps=100)
    """

    def __init__(self, schedule, warmup_steps, name="LinearWarmup"):
        super().__init__()
        if isinstance(schedule, dict):
            schedule = keras.saving.deserialize_keras_object(schedule)
        if not isinstance(
            schedule, keras.optimizers.schedules.LearningRateSchedule
        ):
            schedule = _check_learning_rate(schedule, "schedule")
        self.schedule = schedule
        self.warmup_steps = _check_steps(warmup_steps, "warmup_steps")
        self.name = name

    def _after(self, step):
        if isinstance(self.schedule, float):
            return ops.convert_to_tensor(self.schedule)
        return ops.convert_to_tensor(self.schedule(step))

    def __call__(self, step):
        with keras.name_scope(self.name):
            step = ops.convert_to_tensor(step)
            if self.warmup_steps == 0:
                return self._after(step)
            peak = self._after(0)
            s = ops.cast(step, peak.dtype)
            w = float(self.warmup_steps)
            shifted = ops.maximum(step - self.warmup_steps, 0)  # after's clock
            after = ops.cast(self._after(shifted), peak.dtype)
            return ops.where(s < w, peak * s / w, after)

    def get_config(self):
        schedule = self.schedule
        if not isinstance(schedule, float):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {
            "schedule": schedule,
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }


# name -> overrides it accepts, with the names of the Keras schedule that
# implements it (all step counts count from the end of warm-up).
_OVERRIDES = {
    "constant": (),
    "step": ("decay_steps", "decay_rate"),
    "exponential": ("decay_steps", "decay_rate", "staircase"),
    "inverse_time": ("decay_steps", "decay_rate", "staircase"),
    "inverse_sqrt": (),
    "cosine": ("decay_steps", "alpha", "warmup_target"),
    "warmup_cosine": ("decay_steps", "alpha", "warmup_target"),
    "cosine_restarts": ("first_decay_steps", "t_mul", "m_mul", "alpha"),
    "piecewise": ("boundaries", "values"),
    "polynomial": ("decay_steps", "end_learning_rate", "power", "cycle"),
}

_missing = sorted(set(SCHEDULES) ^ set(_OVERRIDES))
if _missing:  # a name added to config.SCHEDULES needs a factory here
    raise ImportError(f"dlrecipes.schedules and dlrecipes.config.SCHEDULES "
                      f"disagree about: {', '.join(_missing)}")
del _missing


class _Plan:
    """What a schedule factory reads: the peak rate, the warm-up, the
    overrides, and the decay length after warm-up (`horizon`)."""

    def __init__(self, name, lr, total_steps, warmup_steps, overrides):
        self.name, self.lr = name, lr
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.overrides = overrides

    def get(self, key, default):
        return self.overrides.get(key, default)

    def horizon(self, reason):
        """Decay length after warm-up; needs `total_steps`."""
        if self.total_steps is None:
            raise ValueError(
                f"Schedule '{self.name}' needs `total_steps` {reason}. "
                f"Received: total_steps=None"
            )
        return self.total_steps - self.warmup_steps

    def steps(self, key, default):
        """An override counted in steps, or `default()`."""
        if key in self.overrides:
            return _check_steps(self.overrides[key], key, minimum=1)
        return default()

    def flag(self, key, default):
        """A bool override, or `default`."""
        value = self.overrides.get(key, default)
        if not isinstance(value, bool):
            raise ValueError(f"`{key}` must be a bool. Received: {key}={value!r}")
        return value


def _inverse_sqrt(p):
    return InverseSqrtDecay(p.lr, warmup_steps=p.warmup_steps)


def _cosine(p):
    decay_steps = p.steps("decay_steps",
                          lambda: p.horizon("(or `decay_steps`)"))
    alpha = p.get("alpha", 0.0)
    if "warmup_target" in p.overrides:
        # Keras' own meaning: warm up from `initial_learning_rate` to
        # `warmup_target`, then decay from `warmup_target`.
        return keras.optimizers.schedules.CosineDecay(
            p.lr, decay_steps, alpha=alpha,
            warmup_target=_check_learning_rate(p.overrides["warmup_target"],
                                               "warmup_target"),
            warmup_steps=p.warmup_steps)
    if p.warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(p.lr, decay_steps,
                                                      alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, alpha=alpha, warmup_target=p.lr,
        warmup_steps=p.warmup_steps)


def _step(p):
    decay = p.steps("decay_steps", lambda: max(
        1, math.ceil(p.horizon("(or `decay_steps`)") / 3)))
    return keras.optimizers.schedules.ExponentialDecay(
        p.lr, decay, p.get("decay_rate", 0.1), staircase=True)


def _exponential(p):
    decay = p.steps("decay_steps", lambda: p.horizon("(or `decay_steps`)"))
    return keras.optimizers.schedules.ExponentialDecay(
        p.lr, decay, p.get("decay_rate", 0.01),
        staircase=p.flag("staircase", False))


def _inverse_time(p):
    decay = p.steps("decay_steps", lambda: p.horizon("(or `decay_steps`)"))
    return keras.optimizers.schedules.InverseTimeDecay(
        p.lr, decay, p.get("decay_rate", 9.0),
        staircase=p.flag("staircase", False))


def _cosine_restarts(p):
    t_mul = p.get("t_mul", 2.0)
    first = p.steps("first_decay_steps", lambda: max(1, math.ceil(
        p.horizon("(or `first_decay_steps`)") / (1.0 + t_mul + t_mul**2))))
    return keras.optimizers.schedules.CosineDecayRestarts(
        p.lr, first, t_mul=t_mul, m_mul=p.get("m_mul", 1.0),
        alpha=p.get("alpha", 0.0))


def _piecewise(p):
    if "boundaries" in p.overrides:
        boundaries = list(p.overrides["boundaries"])
    else:
        h = p.horizon("(or `boundaries`)")
        boundaries = [h // 2, (3 * h) // 4]
    values = p.get("values",
                   [p.lr * 0.1**i for i in range(len(boundaries) + 1)])
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries,
                                                             list(values))


def _polynomial(p):
    return keras.optimizers.schedules.PolynomialDecay(
        p.lr, p.steps("decay_steps", lambda: p.horizon("(or `decay_steps`)")),
        end_learning_rate=p.get("end_learning_rate", 0.0),
        power=p.get("power", 1.0), cycle=p.flag("cycle", False))


# Schedules that handle warm-up themselves, and those wrapped in
# `LinearWarmup` when there is one.
_WHOLE = {"inverse_sqrt": _inverse_sqrt, "cosine": _cosine,
          "warmup_cosine": _cosine}
_AFTER_WARMUP = {"constant": lambda p: p.lr, "step": _step,
                 "exponential": _exponential, "inverse_time": _inverse_time,
                 "cosine_restarts": _cosine_restarts,
                 "piecewise": _piecewise, "polynomial": _polynomial}
if set(_WHOLE) | set(_AFTER_WARMUP) != set(SCHEDULES):
    raise ImportError("dlrecipes.schedules has no factory for "
                      f"{sorted(set(SCHEDULES) - set(_WHOLE) - set(_AFTER_WARMUP))}")


def get(name, learning_rate=None, total_steps=None, warmup_steps=None, *,
        initial_learning_rate=None, **overrides):
    """Builds a learning-rate schedule by name from one calling convention.

    Every schedule is an optional linear warm-up from 0 to `learning_rate`
    over `W = warmup_steps` steps, then a decay over the remaining
    `H = total_steps - W` steps whose clock starts at the end of the
    warm-up (`t = s - W`). With `lr = learning_rate` and the defaults:

    | name              | after warm-up, at t = s - W                     |
    |-------------------|-------------------------------------------------|
    | `constant`        | `lr` (a plain float when `W = 0`)               |
    | `step`            | `lr * 0.1 ** floor(t / D)`, `D = ceil(H / 3)`   |
    | `exponential`     | `lr * 0.01 ** (t / H)`                          |
    | `inverse_time`    | `lr / (1 + 9 * t / H)` (`lr / 10` at the end)   |
    | `inverse_sqrt`    | `lr * sqrt(W / s)` (no shift: `InverseSqrtDecay`)|
    | `cosine`          | `lr * (1 + cos(pi * min(t, H) / H)) / 2`        |
    | `warmup_cosine`   | as `cosine`                                     |
    | `cosine_restarts` | SGDR: cycles `D, 2D, 4D`, `D = ceil(H / 7)`     |
    | `piecewise`       | `lr`, `lr/10`, `lr/100`; drops after `H/2`, `3H/4`|
    | `polynomial`      | `lr * (1 - min(t, H) / H)` (linear to 0)        |

    `warmup_steps=None` means `total_steps // 10` for `warmup_cosine` and
    `inverse_sqrt` (0 for `inverse_sqrt` when `total_steps` is None) and 0
    for every other name. Keras' schedules do the work (`ExponentialDecay`,
    staircase for `step`; `InverseTimeDecay`; `CosineDecay` with
    `warmup_target`; `CosineDecayRestarts`; `PiecewiseConstantDecay`;
    `PolynomialDecay`), wrapped in `LinearWarmup` when `W > 0`.

    `overrides` take the names of the Keras schedule behind each name and
    replace the defaults above, step counts counting from the end of
    warm-up: `decay_steps`/`decay_rate` (`step`, `exponential`,
    `inverse_time`), `staircase` (`exponential`, `inverse_time`),
    `decay_steps`/`alpha`/`warmup_target` (`cosine`, `warmup_cosine`;
    with `warmup_target`, Keras' meaning: the warm-up goes from
    `learning_rate` to `warmup_target`, the peak),
    `first_decay_steps`/`t_mul`/`m_mul`/`alpha` (`cosine_restarts`),
    `boundaries`/`values` (`piecewise`; `learning_rate` may then be left
    out), `decay_steps`/`end_learning_rate`/`power`/`cycle`
    (`polynomial`). A given `decay_steps` (or `first_decay_steps`,
    `boundaries`) makes `total_steps` unnecessary. `initial_learning_rate`
    is Keras' name for `learning_rate`. So a Keras call's keywords work
    here unchanged, and give the same schedule:

        keras.optimizers.schedules.ExponentialDecay(
            initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.5)
        get("exponential", initial_learning_rate=0.1, decay_steps=1000,
            decay_rate=0.5)

    The `constant` float is what `ReduceLROnPlateau` needs.

    Args:
        name: one of `SCHEDULES`.
        learning_rate: float >= 0, the initial (peak) learning rate.
        total_steps: int > 0, the training length in optimizer steps
            (`epochs * steps_per_epoch`). Required unless the name and the
            overrides need no horizon (`constant`, `inverse_sqrt`, or a
            given `decay_steps` / `first_decay_steps` / `boundaries`).
        warmup_steps: int >= 0 and < `total_steps`, or None (see above).
        initial_learning_rate: Keras' name for `learning_rate` (give one of
            them).
        **overrides: schedule-specific arguments listed above.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`, or a float for
        `constant` without warm-up; both are valid optimizer learning rates.

    Example:

    >>> schedule = get("warmup_cosine", 1e-3, total_steps=20 * 100)
    >>> optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    >>> keras_style = get("cosine", initial_learning_rate=1e-3,
    ...                   decay_steps=2000, alpha=0.1)
    >>> float(keras_style(2000))
    0.0001...
    """
    if name not in SCHEDULES:
        raise ValueError(
            f"Unknown schedule. Valid names: {', '.join(SCHEDULES)}. "
            f"Received: name={name}"
        )
    if initial_learning_rate is not None:
        if learning_rate is not None and learning_rate != initial_learning_rate:
            raise ValueError(
                "`initial_learning_rate` is Keras' name for `learning_rate`: "
                f"pass one of them. Received: learning_rate={learning_rate}, "
                f"initial_learning_rate={initial_learning_rate}")
        learning_rate = initial_learning_rate
    if learning_rate is None and name == "piecewise" and "values" in overrides:
        learning_rate = max(overrides["values"], default=0.0)  # not used
    if learning_rate is None:
        raise ValueError(
            f"Schedule '{name}' needs `learning_rate` (or Keras' "
            "`initial_learning_rate`). Received: learning_rate=None")
    lr = _check_learning_rate(learning_rate, "learning_rate")
    unknown = sorted(set(overrides) - set(_OVERRIDES[name]))
    if unknown:
        allowed = ", ".join(_OVERRIDES[name]) or "none"
        raise ValueError(
            f"Schedule '{name}' does not accept {', '.join(unknown)} "
            f"(accepted overrides: {allowed}). Received: overrides={overrides}"
        )
    if total_steps is not None:
        total_steps = _check_steps(total_steps, "total_steps", minimum=1)
    if warmup_steps is None:
        warmup_steps = 0
        if name in ("warmup_cosine", "inverse_sqrt") and total_steps:
            warmup_steps = int(total_steps * DEFAULT_WARMUP_FRACTION)
    warmup_steps = _check_steps(warmup_steps, "warmup_steps")
    if total_steps is not None and warmup_steps >= total_steps:
        raise ValueError(
            f"`warmup_steps` must be smaller than `total_steps` "
            f"({total_steps}). Received: warmup_steps={warmup_steps}"
        )

    plan = _Plan(name, lr, total_steps, warmup_steps, overrides)
    if name in _WHOLE:  # their own warm-up (or none)
        return _WHOLE[name](plan)
    after = _AFTER_WARMUP[name](plan)
    if warmup_steps == 0:
        return after
    return LinearWarmup(after, warmup_steps)
