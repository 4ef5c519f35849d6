"""Univariate time series: embedded series, CSV columns, windows, baselines.

Everything here is numpy (no TensorFlow), so forecasting runs under every
Keras backend. The pieces, in the order a forecasting run uses them:

1. a `Series` from `load_sunspots()`, `load_co2()` or `load_csv(...)`;
2. `forecast_data(series, lookback, horizon, season)`: a `ForecastData`
   of standardized windows, made of
   - `split_points(n)`: chronological train / validation / test boundaries;
   - `interpolate_gaps`: missing values filled within each split;
   - `Scaler.fit(values[:train_end])`: statistics of the training part only;
   - `split_windows(...)`: `make_windows` `(inputs, targets, origins)` per
     split;
3. baselines on the test windows (`ForecastData.baselines()`):
   `persistence`, `seasonal_naive`, `LinearAR` (least squares on the
   training windows), and `errors`.

Window convention: a window with origin `t` has the inputs
`values[t - lookback:t]` and the targets `values[t:t + horizon]` (the next
`horizon` values). A window belongs to the split that holds all of its
targets. Training windows lie wholly inside the training part (inputs and
targets); the first validation and test windows take their inputs from
the values just before their split, which are observed history at forecast
time, so every step of the validation and test parts is forecast.
"""

import csv
import dataclasses
import math
import os

import numpy as np

from dlrecipes.data import embedded
from dlrecipes.data.description import Data
from dlrecipes.errors import UsageError, choices_message
from dlrecipes.paths import check_file

_MISSING = ("", "na", "nan", "n/a", "null", "none", "-", "?")
# The largest magnitude a series value may have: standardization and the
# RMSE square differences of values, which overflow float64 (1.8e308)
# beyond about 1.3e154.
MAX_ABS_VALUE = 1e150


@dataclasses.dataclass
class Series:
    """A univariate series.

    Attributes:
        name: for plots and messages ("sunspots", "csv:load.csv").
        values: float64; NaN where a value is missing.
        time: one label per value (years, ISO dates, strings).
        season: its natural period (1: none known).
        frequency: "yearly", "weekly" ... ("" where unknown).
        missing: how many values are NaN.
        column: the CSV column the values come from ("" otherwise).
    """

    name: str
    values: np.ndarray
    time: np.ndarray
    season: int = 1
    frequency: str = ""
    missing: int = 0
    column: str = ""

    def __len__(self):
        return len(self.values)


# ----------------------------------------------------------------- loading


def load_sunspots():
    """Yearly mean sunspot numbers 1700-2008 (309 values; statsmodels'
    `sunspots`, shipped in `embedded.npz`).

    Season 11: the solar cycle is about 11 years long.
    """
    return Series("sunspots", embedded.array("sunspots_values"),
                  embedded.array("sunspots_years"), season=11,
                  frequency="yearly")


def load_co2():
    """Weekly atmospheric CO2 at Mauna Loa, March 1958 - December 2001
    (2,284 weeks, ppm; statsmodels' `co2`, shipped in `embedded.npz`).
    Season 52 (weeks in a year).

    59 weeks are missing; they stay NaN here. `interpolate_gaps` fills them
    within each split (see its docstring), which a forecasting run does
    after it knows the split.
    """
    values = embedded.array("co2_values")
    return Series("co2", values, embedded.array("co2_weeks"), season=52,
                  frequency="weekly", missing=int(np.isnan(values).sum()))


def interpolate_gaps(values, boundaries):
    """Fill NaNs by linear interpolation inside each segment.

    `boundaries` (e.g. `(train_end, val_end)`) cut `values` into segments
    that are filled independently, so no filled value borrows a value from
    a later split. Gaps at a segment's edge take the nearest value of the
    same segment.

    Returns:
        A new float64 array; the input is not modified.
    """
    values = np.array(values, dtype="float64")
    edges = [0, *boundaries, len(values)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = values[lo:hi]
        known = np.flatnonzero(~np.isnan(part))
        if len(known) == 0:
            raise UsageError(f"no values between positions {lo} and {hi}; "
                             "cannot fill the missing values of this part")
        missing = np.flatnonzero(np.isnan(part))
        part[missing] = np.interp(missing, known, part[known])
    return values


def _is_missing(text):
    return text.strip().lower() in _MISSING


def _parse_value(cell, where, place):
    """A CSV cell as a float within +-MAX_ABS_VALUE, or UsageError naming
    the file (`where`), the column and line (`place`) and the valid range."""
    if _is_missing(cell):
        raise UsageError(f"{where}: missing value {place}")
    try:
        value = float(cell)
    except ValueError:
        raise UsageError(f"{where}: non-numeric value {cell.strip()!r} "
                         f"{place}") from None
    if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        raise UsageError(f"{where}: value {cell.strip()!r} {place} is "
                         f"outside the finite range a series may take, "
                         f"[-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}]; rescale "
                         "the column")
    return value


def load_csv(path, column="", time_column=""):
    """One numeric column of a CSV file with a header row.

    Args:
        path: the CSV file.
        column: the value column; "" picks the only column that is not
            `time_column`.
        time_column: optional column of time labels (kept as strings).

    Raises:
        UsageError: the file is missing or unreadable, a column does not
            exist, or a value is missing, not a number or beyond
            +-MAX_ABS_VALUE (the message names the line of the file, the
            header being line 1).
    """
    where = f"--dataset csv:{path}"
    if not os.path.isfile(path):
        raise UsageError(f"{where}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"{where}: cannot read the file "
                         f"({str(e).splitlines()[0] if str(e) else e!r})"
                         ) from None
    if not rows or not any(h.strip() for h in rows[0]):
        raise UsageError(f"{where}: the file is empty; expected a header "
                         "row and one value per line")
    header = [h.strip() for h in rows[0]]
    if time_column and time_column not in header:
        raise UsageError(f"{where}: no time column {time_column!r}; columns: "
                         f"{', '.join(header)}. "
                         f"Received: time_column={time_column!r}")
    if not column:
        candidates = [h for h in header if h != time_column]
        if len(candidates) != 1:
            raise UsageError(f"{where}: pass --column, one of: "
                             f"{', '.join(candidates)}")
        column = candidates[0]
    if column not in header:
        raise UsageError(f"{where}: no column {column!r}; columns: "
                         f"{', '.join(header)}. Received: column={column!r}")
    col = header.index(column)
    tcol = header.index(time_column) if time_column else None
    values, times = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue  # blank line (e.g. at the end of the file)
        cell = row[col] if col < len(row) else ""
        values.append(_parse_value(cell, where, f"in column {column!r} at "
                                               f"line {line}"))
        if tcol is not None:
            times.append(row[tcol].strip() if tcol < len(row) else "")
    if not values:
        raise UsageError(f"{where}: column {column!r} has no values")
    time = np.array(times) if tcol is not None else np.arange(len(values))
    return Series(f"csv:{os.path.basename(path)}",
                  np.asarray(values, dtype="float64"), time, season=1,
                  column=column)


def check_source(dataset, column="", time_column=""):
    """UsageError unless `dataset` names an embedded series (`SERIES`) or is
    `csv:PATH` of a file; `column` and `time_column` belong to a CSV only.
    Checks the flags before anything is read."""
    if dataset.startswith("csv:"):
        path = dataset[len("csv:"):]
        if not path:
            raise UsageError("--dataset csv:PATH needs a file path. "
                             f"Received: dataset={dataset!r}")
        check_file(path, "--dataset", "csv:PATH naming a CSV file")
    elif dataset not in SERIES:
        raise UsageError("--dataset: " + choices_message(
            "dataset", dataset, SOURCES))
    elif column or time_column:
        name = "column" if column else "time-column"
        raise UsageError(f"--{name} works with --dataset csv:PATH only. "
                         f"Received: dataset={dataset}")


def load_series(dataset, column="", time_column=""):
    """The `Series` `dataset` names: an embedded one (`SERIES`), or
    `csv:PATH` (`load_csv(PATH, column, time_column)`)."""
    if dataset.startswith("csv:"):
        return load_csv(dataset[len("csv:"):], column, time_column)
    return SERIES[dataset]()


SERIES = {"sunspots": load_sunspots, "co2": load_co2}
SOURCES = tuple(SERIES) + ("csv:PATH",)  # what `load_series` takes


# --------------------------------------------------------- split and scale


def split_points(n, val_fraction=0.1, test_fraction=0.2):
    """Chronological split of `n` steps: `(train_end, val_end)`.

    The last `round(test_fraction * n)` steps are the test part, the
    `round(val_fraction * n)` before them validation, the rest training.
    """
    n_test = int(round(test_fraction * n))
    n_val = int(round(val_fraction * n))
    return n - n_val - n_test, n - n_test


def min_length(lookback, horizon, val_fraction=0.1, test_fraction=0.2):
    """Fewest steps for at least one window in every split."""
    n = lookback + horizon
    while True:
        train_end, val_end = split_points(n, val_fraction, test_fraction)
        if (train_end >= lookback + horizon
                and (val_fraction == 0 or val_end - train_end >= horizon)
                and n - val_end >= horizon):
            return n
        n += 1


class Scaler:
    """Standardization `(x - mean) / scale`, fitted on training values."""

    def __init__(self, mean=0.0, scale=1.0):
        self.mean = float(mean)
        self.scale = float(scale)

    @classmethod
    def fit(cls, values):
        values = np.asarray(values, dtype="float64")
        scale = float(values.std())
        return cls(values.mean(), scale if scale > 0 else 1.0)

    def transform(self, values):
        return (np.asarray(values, dtype="float64") - self.mean) / self.scale

    def inverse_transform(self, values):
        return np.asarray(values, dtype="float64") * self.scale + self.mean

    def to_dict(self):
        return {"mean": self.mean, "scale": self.scale}


# ----------------------------------------------------------------- windows


def make_windows(values, lookback, horizon, first_origin, end):
    """Windows whose targets lie in `[first_origin, end)`.

    Args:
        values: 1-D array.
        lookback: input steps per window.
        horizon: target steps per window (the next `horizon` values).
        first_origin: the first target step allowed; origins before
            `lookback` are skipped (they lack a full input window).
        end: one past the last target step allowed.

    Returns:
        `(inputs, targets, origins)`: `(n, lookback)`, `(n, horizon)` and
        `(n,)` arrays; window `i` has inputs `values[o - lookback:o]` and
        targets `values[o:o + horizon]` with `o = origins[i]`.
    """
    values = np.asarray(values)
    start = max(int(first_origin), int(lookback))
    origins = np.arange(start, int(end) - horizon + 1)
    if len(origins) == 0:
        return (np.zeros((0, lookback), values.dtype),
                np.zeros((0, horizon), values.dtype), origins)
    view = np.lib.stride_tricks.sliding_window_view(values, lookback + horizon)
    windows = view[origins - lookback]  # (n, lookback + horizon)
    return (np.ascontiguousarray(windows[:, :lookback]),
            np.ascontiguousarray(windows[:, lookback:]), origins)


def split_windows(values, lookback, horizon, train_end, val_end):
    """`{"train": ..., "val": ..., "test": ...}` of `make_windows` triples.

    Training windows lie inside `[0, train_end)`; validation targets inside
    `[train_end, val_end)`; test targets inside `[val_end, len(values))`.
    """
    n = len(values)
    return {
        "train": make_windows(values, lookback, horizon, 0, train_end),
        "val": make_windows(values, lookback, horizon, train_end, val_end),
        "test": make_windows(values, lookback, horizon, val_end, n),
    }


# --------------------------------------------------------------- baselines


def persistence(inputs, horizon):
    """The last input value, for every step of the horizon: `(n, horizon)`."""
    inputs = np.asarray(inputs)
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def seasonal_naive(values, origins, horizon, season):
    """The value one season before each target: `(n, horizon)`.

    Target `o + h` (h = 0 .. horizon - 1) is forecast by
    `values[o + h - season * k]` with `k = ceil((h + 1) / season)`, the
    latest same-phase value observed before the origin `o`. With
    `season=1` this is persistence.
    """
    values = np.asarray(values)
    origins = np.asarray(origins)
    steps = np.arange(horizon)
    back = season * ((steps + season) // season)  # season * ceil((h+1)/s)
    index = origins[:, None] + steps[None, :] - back[None, :]
    if len(index) and index.min() < 0:
        raise ValueError(
            f"`season` reaches before the start of the series for origin "
            f"{int(origins.min())}. Received: season={season}")
    return values[index]


class LinearAR:
    """Direct linear autoregression: least squares from the `lookback`
    inputs (plus an intercept) to each of the `horizon` targets."""

    def __init__(self, coef=None):
        self.coef = coef  # (lookback + 1, horizon)

    @staticmethod
    def _design(inputs):
        inputs = np.asarray(inputs, dtype="float64")
        return np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)

    def fit(self, inputs, targets):
        self.coef, *_ = np.linalg.lstsq(self._design(inputs),
                                        np.asarray(targets, "float64"),
                                        rcond=None)
        return self

    def predict(self, inputs):
        return self._design(inputs) @ self.coef


def errors(predictions, targets):
    """`{"mae": ..., "rmse": ...}` over every window and horizon step."""
    diff = (np.asarray(predictions, "float64")
            - np.asarray(targets, "float64"))
    return {"mae": float(np.mean(np.abs(diff))),
            "rmse": float(np.sqrt(np.mean(diff ** 2)))}


# --------------------------------------------------------- forecasting data


@dataclasses.dataclass(kw_only=True)
class ForecastData(Data):
    """`Data` of a forecaster, made by `forecast_data`.

    Each split is `(x, y)`: windows `(n, lookback, 1)` of the standardized
    series and their next `horizon` standardized values `(n, horizon)`
    (float32). The fields below turn forecasts back into the series' units
    and give the baselines their inputs.

    Attributes:
        series: the `Series` (name and time labels, for plots).
        values: its float64 values, gaps filled within each split.
        scaler: the `Scaler` fitted on the training part.
        lookback, horizon: input and forecast lengths.
        season: the seasonal-naive baseline's period.
        train_end, val_end: the split points (`split_points`).
        windows: `split_windows` of `values`: `{"train" | "val" | "test":
            (inputs, targets, origins)}` in the series' units.
    """

    series: Series
    values: np.ndarray
    scaler: Scaler
    lookback: int
    horizon: int
    season: int
    train_end: int
    val_end: int
    windows: dict

    def baselines(self):
        """`{"persistence", "seasonal_naive", "linear_ar": (n, horizon)}`
        forecasts of the test windows, in the series' units; the linear AR
        is fitted on the training windows."""
        x_train, y_train, _ = self.windows["train"]
        x_test, _, origins = self.windows["test"]
        return {
            "persistence": persistence(x_test, self.horizon),
            "seasonal_naive": seasonal_naive(self.values, origins,
                                             self.horizon, self.season),
            "linear_ar": LinearAR().fit(x_train, y_train).predict(x_test),
        }


def forecast_data(series, lookback, horizon, season, val_fraction=0.1,
                  test_fraction=0.2, where=""):
    """`series` as a `ForecastData`, split in time order (by default 70%
    train, 10% validation, 20% test) and standardized with the training
    part's statistics.

    Missing values are filled by `interpolate_gaps` inside each split (no
    filled value borrows from a later split).

    Raises:
        UsageError: the series is too short for one window in every split,
            or `season` reaches before its start (`where`, e.g. "--dataset
            co2", opens the message; the series' name by default).
    """
    where = where or series.name
    n = len(series)
    needed = min_length(lookback, horizon, val_fraction, test_fraction)
    if n < needed:
        parts = "/".join(f"{round(100 * f)}" for f in (
            1 - val_fraction - test_fraction, val_fraction, test_fraction))
        raise UsageError(
            f"{where}: {n} values are too few for lookback {lookback} + "
            f"horizon {horizon} with a {parts} chronological split (needs "
            f"at least {needed}); lower --lookback or --horizon")
    train_end, val_end = split_points(n, val_fraction, test_fraction)
    if season > val_end:
        raise UsageError(f"--season {season} is longer than the history "
                         f"before the test part ({val_end} steps). "
                         f"Received: season={season}")
    values = series.values
    if np.isnan(values).any():  # co2: fill within each split, no leakage
        values = interpolate_gaps(values, (train_end, val_end))
    scaler = Scaler.fit(values[:train_end])
    scaled = scaler.transform(values).astype("float32")
    windows = split_windows(scaled, lookback, horizon, train_end, val_end)
    parts = [(windows[k][0][..., None], windows[k][1])
             for k in ("train", "val", "test")]
    return ForecastData(
        *parts, input_shape=(lookback, 1), source=series.name,
        series=series, values=values, scaler=scaler, lookback=lookback,
        horizon=horizon, season=season, train_end=train_end,
        val_end=val_end,
        windows=split_windows(values, lookback, horizon, train_end, val_end))
