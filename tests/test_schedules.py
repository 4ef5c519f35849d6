"""Schedules: closed forms of every factory name, InverseSqrtDecay and
LinearWarmup numerics and serialization, factory errors."""

import math
import os

import keras
import numpy as np
import pytest

from dlrecipes import schedules
from dlrecipes.config import SCHEDULES, TrainConfig  # --schedule's names
from dlrecipes.schedules import InverseSqrtDecay, LinearWarmup

pytestmark = pytest.mark.backends

LR = 0.1
TOTAL = 100


def _value(schedule, step):
    if isinstance(schedule, float):
        return schedule
    return float(keras.ops.convert_to_numpy(schedule(step)))


def _with_warmup(after, warmup):
    """Reference linear warm-up from 0 in front of `after(t)`, t = s - W."""

    def f(s):
        if s < warmup:
            return after(0) * s / warmup
        return after(s - warmup)

    return f


def _restarts(t, first, t_mul=2.0, m_mul=1.0):
    """SGDR by walking the cycles (no closed-form log trick)."""
    start, length, i = 0.0, float(first), 0
    while t >= start + length:
        start, length, i = start + length, length * t_mul, i + 1
    frac = (t - start) / length
    return LR * m_mul**i * 0.5 * (1.0 + math.cos(math.pi * frac))


def _reference(name, warmup):
    """Closed form of `get(name, LR, TOTAL, warmup)`, written independently."""
    h = TOTAL - warmup
    if name == "inverse_sqrt":
        if warmup == 0:
            return lambda s: LR / math.sqrt(max(s, 1))
        return lambda s: LR * s / warmup if s < warmup else LR * math.sqrt(warmup / s)
    after = {
        "constant": lambda t: LR,
        "step": lambda t: LR * 0.1 ** math.floor(t / math.ceil(h / 3)),
        "exponential": lambda t: LR * 0.01 ** (t / h),
        "inverse_time": lambda t: LR / (1.0 + 9.0 * t / h),
        "cosine": lambda t: LR * 0.5 * (1 + math.cos(math.pi * min(t, h) / h)),
        "warmup_cosine": lambda t: LR * 0.5 * (1 + math.cos(math.pi * min(t, h) / h)),
        "cosine_restarts": lambda t: _restarts(t, math.ceil(h / 7)),
        "piecewise": lambda t: (
            LR if t <= h // 2 else LR / 10 if t <= (3 * h) // 4 else LR / 100
        ),
        "polynomial": lambda t: LR * (1.0 - min(t, h) / h),
    }[name]
    return _with_warmup(after, warmup)


def _steps(warmup):
    steps = {0, 1, 2, 13, 37, 50, 61, 80, TOTAL - 1, TOTAL, TOTAL + 25}
    if warmup:
        steps |= {warmup - 1, warmup, warmup + 1}
    first = math.ceil((TOTAL - warmup) / 7)  # cosine_restarts' first cycle
    steps |= {warmup + first, warmup + 3 * first}  # its restarts
    return sorted(steps)


@pytest.mark.parametrize("warmup", [0, 10])
@pytest.mark.parametrize("name", SCHEDULES)
def test_factory_matches_closed_form(name, warmup):
    schedule = schedules.get(name, LR, total_steps=TOTAL, warmup_steps=warmup)
    reference = _reference(name, warmup)
    for s in _steps(warmup):
        np.testing.assert_allclose(
            _value(schedule, s), reference(s), rtol=2e-5, atol=1e-8,
            err_msg=f"{name} warmup={warmup} step={s}",
        )


@pytest.mark.parametrize("name", SCHEDULES)
def test_factory_schedule_drives_an_optimizer(name):
    """The optimizer reads the schedule at its int64 `iterations` counter."""
    schedule = schedules.get(name, LR, total_steps=TOTAL, warmup_steps=10)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    reference = _reference(name, 10)
    for s in (0, 5, 10, 60):
        optimizer.iterations.assign(s)
        np.testing.assert_allclose(
            float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
            reference(s), rtol=2e-5, atol=1e-8,
        )


def test_constant_without_warmup_is_a_float():
    schedule = schedules.get("constant", 0.3)
    assert isinstance(schedule, float) and schedule == 0.3
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(optimizer.learning_rate)), 0.3, rtol=1e-6
    )


def test_warmup_defaults():
    # warmup_cosine and inverse_sqrt default to total_steps // 10 of warm-up.
    for name in ("warmup_cosine", "inverse_sqrt"):
        schedule = schedules.get(name, LR, total_steps=TOTAL)
        reference = _reference(name, TOTAL // 10)
        for s in (0, 5, 9, 10, 11, 70):
            np.testing.assert_allclose(_value(schedule, s), reference(s), rtol=2e-5)
    # Every other name defaults to no warm-up.
    schedule = schedules.get("cosine", LR, total_steps=TOTAL)
    np.testing.assert_allclose(_value(schedule, 0), LR, rtol=1e-6)
    assert isinstance(schedules.get("inverse_sqrt", LR), InverseSqrtDecay)
    np.testing.assert_allclose(_value(schedules.get("inverse_sqrt", LR), 4), LR / 2)


def test_overrides():
    schedule = schedules.get("step", LR, decay_steps=20, decay_rate=0.5)
    for s in (0, 19, 20, 45):
        np.testing.assert_allclose(
            _value(schedule, s), LR * 0.5 ** math.floor(s / 20), rtol=1e-6
        )
    schedule = schedules.get(
        "piecewise", LR, warmup_steps=4, boundaries=[10], values=[LR, 0.02]
    )
    # Override steps count from the end of warm-up: the drop is after 4 + 10.
    for s, expected in ((2, LR / 2), (14, LR), (15, 0.02)):
        np.testing.assert_allclose(_value(schedule, s), expected, rtol=1e-6)
    schedule = schedules.get(
        "cosine_restarts", LR, first_decay_steps=10, t_mul=1.0, m_mul=0.5
    )
    for s in (0, 3, 12, 25):
        np.testing.assert_allclose(
            _value(schedule, s), _restarts(s, 10, t_mul=1.0, m_mul=0.5), rtol=1e-5
        )
    schedule = schedules.get("polynomial", LR, total_steps=10, power=2.0,
                             end_learning_rate=0.01)
    np.testing.assert_allclose(
        _value(schedule, 5), (LR - 0.01) * 0.25 + 0.01, rtol=1e-6
    )


def test_inverse_sqrt_decay_formula_and_continuity():
    schedule = InverseSqrtDecay(2e-3, warmup_steps=400)
    for s in (0, 1, 200, 399, 400, 401, 1600, 10_000):
        expected = 2e-3 * min(s / 400, math.sqrt(400 / max(s, 400)))
        np.testing.assert_allclose(_value(schedule, s), expected, rtol=1e-6)
    # Continuous at the boundary, with the peak there.
    left, peak, right = (_value(schedule, s) for s in (399.999, 400.0, 400.001))
    assert abs(left - peak) < 1e-8 and abs(right - peak) < 1e-8
    assert peak == pytest.approx(2e-3, rel=1e-6)
    assert max(_value(schedule, s) for s in range(0, 2000, 7)) <= peak + 1e-9


def test_inverse_sqrt_decay_serialization_round_trip():
    schedule = InverseSqrtDecay(3e-4, warmup_steps=50, name="isd")
    config = keras.optimizers.schedules.serialize(schedule)
    assert config["registered_name"] == "dlrecipes>InverseSqrtDecay"
    restored = keras.optimizers.schedules.deserialize(config)
    assert isinstance(restored, InverseSqrtDecay)
    assert restored.get_config() == schedule.get_config()
    for s in (0, 25, 50, 400):
        assert _value(restored, s) == _value(schedule, s)


def test_linear_warmup_serialization_round_trip():
    after = keras.optimizers.schedules.ExponentialDecay(0.2, 30, 0.5)
    schedule = LinearWarmup(after, warmup_steps=7)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, LinearWarmup)
    assert isinstance(restored.schedule, keras.optimizers.schedules.ExponentialDecay)
    for s in (0, 3, 7, 8, 60):
        expected = 0.2 * s / 7 if s < 7 else 0.2 * 0.5 ** ((s - 7) / 30)
        np.testing.assert_allclose(_value(restored, s), expected, rtol=1e-6)
    constant = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(LinearWarmup(0.05, 4))
    )
    assert constant.schedule == 0.05 and _value(constant, 2) == pytest.approx(0.025)


@pytest.mark.parametrize(
    "make",
    [
        lambda: InverseSqrtDecay(1e-2, warmup_steps=3),
        lambda: schedules.get("step", 1e-2, total_steps=12, warmup_steps=3),
    ],
    ids=["inverse_sqrt", "warmup_step"],
)
def test_schedule_survives_keras_save_and_safe_load(tmp_path, make):
    schedule = make()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 5 optimizer steps
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    config = loaded.optimizer.get_config()["learning_rate"]
    assert config["registered_name"] == f"dlrecipes>{type(schedule).__name__}"
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 5
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(loaded.optimizer.learning_rate)),
        _value(schedule, 5), rtol=1e-6,
    )


def test_every_flag_name_has_a_factory_and_nothing_more():
    """`--schedule` choices (config.SCHEDULES, Keras-free) and the factory
    (schedules.get) name the same schedules."""
    assert schedules.SCHEDULES is SCHEDULES
    assert set(schedules._OVERRIDES) == set(SCHEDULES)
    for name in SCHEDULES:  # no name falls through to another's branch
        assert schedules.get(name, LR, total_steps=TOTAL) is not None
    assert TrainConfig.__dataclass_fields__["schedule"].metadata[
        "choices"] == SCHEDULES


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Received: name=linear_warmup$") as info:
        schedules.get("linear_warmup", 0.1, total_steps=10)
    for name in SCHEDULES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "cosine", "learning_rate": -0.1, "total_steps": 10},
         "Received: learning_rate=-0.1"),
        ({"name": "cosine", "learning_rate": float("nan"), "total_steps": 10},
         "Received: learning_rate=nan"),
        ({"name": "cosine", "learning_rate": 0.1, "total_steps": 0},
         "Received: total_steps=0"),
        ({"name": "cosine", "learning_rate": 0.1, "total_steps": 10.5},
         "Received: total_steps=10.5"),
        ({"name": "step", "learning_rate": 0.1, "total_steps": 10, "warmup_steps": -1},
         "Received: warmup_steps=-1"),
        ({"name": "step", "learning_rate": 0.1, "total_steps": 10, "warmup_steps": 10},
         "Received: warmup_steps=10"),
        ({"name": "cosine", "learning_rate": 0.1}, "Received: total_steps=None"),
        ({"name": "exponential", "learning_rate": 0.1}, "Received: total_steps=None"),
        ({"name": "step", "learning_rate": 0.1, "decay_steps": 0},
         "Received: decay_steps=0"),
        ({"name": "cosine", "learning_rate": 0.1, "total_steps": 10, "t_mul": 2.0},
         "t_mul"),
    ],
)
def test_factory_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedules.get(**kwargs)


def test_classes_reject_invalid_arguments():
    with pytest.raises(ValueError, match="Received: initial_learning_rate=-1"):
        InverseSqrtDecay(-1)
    with pytest.raises(ValueError, match="Received: warmup_steps=-5"):
        InverseSqrtDecay(0.1, warmup_steps=-5)
    with pytest.raises(ValueError, match="Received: warmup_steps=2.5"):
        LinearWarmup(0.1, warmup_steps=2.5)
    with pytest.raises(ValueError, match="Received: schedule=-0.5"):
        LinearWarmup(-0.5, warmup_steps=2)


# --- Keras' argument names ---------------------------------------------------

S = keras.optimizers.schedules


@pytest.mark.parametrize("name, kwargs, keras_schedule", [
    ("exponential", dict(initial_learning_rate=0.1, decay_steps=7,
                         decay_rate=0.5, staircase=True),
     lambda: S.ExponentialDecay(initial_learning_rate=0.1, decay_steps=7,
                                decay_rate=0.5, staircase=True)),
    ("exponential", dict(initial_learning_rate=0.1, decay_steps=30,
                         decay_rate=0.2),
     lambda: S.ExponentialDecay(0.1, 30, 0.2)),
    ("inverse_time", dict(initial_learning_rate=0.1, decay_steps=10,
                          decay_rate=1.5, staircase=True),
     lambda: S.InverseTimeDecay(0.1, 10, 1.5, staircase=True)),
    ("cosine", dict(initial_learning_rate=0.1, decay_steps=50, alpha=0.1),
     lambda: S.CosineDecay(0.1, 50, alpha=0.1)),
    ("cosine", dict(initial_learning_rate=0.0, decay_steps=50,
                    warmup_target=0.1, warmup_steps=10),
     lambda: S.CosineDecay(0.0, 50, warmup_target=0.1, warmup_steps=10)),
    ("cosine_restarts", dict(initial_learning_rate=0.1, first_decay_steps=10,
                             t_mul=2.0, m_mul=0.5, alpha=0.05),
     lambda: S.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5,
                                   alpha=0.05)),
    ("piecewise", dict(boundaries=[10, 40], values=[0.1, 0.05, 0.01]),
     lambda: S.PiecewiseConstantDecay([10, 40], [0.1, 0.05, 0.01])),
    ("polynomial", dict(initial_learning_rate=0.1, decay_steps=30,
                        end_learning_rate=0.01, power=2.0, cycle=True),
     lambda: S.PolynomialDecay(0.1, 30, end_learning_rate=0.01, power=2.0,
                               cycle=True)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_keras_keywords_give_the_keras_schedule(name, kwargs, keras_schedule):
    """A Keras user's keywords work unchanged and mean what they mean in
    `keras.optimizers.schedules`."""
    ours = schedules.get(name, **kwargs)
    theirs = keras_schedule()
    for s in (0, 1, 5, 9, 10, 11, 25, 40, 45, 59, 60, 61, 75, 100):
        np.testing.assert_allclose(_value(ours, s), _value(theirs, s),
                                   rtol=1e-5, atol=1e-8,
                                   err_msg=f"{name} step={s}")


def test_initial_learning_rate_is_learning_rate():
    a = schedules.get("cosine", initial_learning_rate=0.3, total_steps=40)
    b = schedules.get("cosine", 0.3, total_steps=40)
    for s in (0, 10, 39):
        assert _value(a, s) == _value(b, s)
    assert schedules.get("constant", initial_learning_rate=0.2) == 0.2
    # The same value twice is fine; two different ones are not.
    schedules.get("constant", 0.2, initial_learning_rate=0.2)
    with pytest.raises(ValueError, match="Received: learning_rate=0.1, "
                       "initial_learning_rate=0.2$"):
        schedules.get("constant", 0.1, initial_learning_rate=0.2)
    with pytest.raises(ValueError, match="Received: learning_rate=None$"):
        schedules.get("cosine", total_steps=10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="exponential", learning_rate=0.1, decay_steps=5,
          staircase="yes"), "Received: staircase='yes'$"),
    (dict(name="polynomial", learning_rate=0.1, decay_steps=5, cycle=1),
     "Received: cycle=1$"),
    (dict(name="cosine", learning_rate=0.1, decay_steps=0),
     "Received: decay_steps=0$"),
    (dict(name="cosine", learning_rate=0.1, decay_steps=5,
          warmup_target=-1.0), "Received: warmup_target=-1.0$"),
    (dict(name="step", learning_rate=0.1, decay_steps=5, staircase=True),
     "staircase"),
])
def test_keras_keywords_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedules.get(**kwargs)
