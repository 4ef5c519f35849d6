"""The timeseries-forecasting recipe and `dlrecipes.data.series`: windows,
chronological split without leakage, train-only scaling, baselines against
hand-computed values, CSV validation, and every model through a smoke run.
Tests marked `backends` also run under JAX (of the per-model smoke runs,
transformer only, to keep the JAX pass short)."""

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.config import config_from_dict
from dlrecipes.data import series as ts
from dlrecipes.registry import get_recipe
from recipes import timeseries_forecasting as tsf
from results_table import figure, printed, results_table

RECIPE = "timeseries-forecasting"
# The recipe's Results table (sunspots, one step ahead): its baselines are
# numpy, exact on every platform, and checked here to the printed digits.
RESULTS = results_table(tsf)


def table_mae(forecast):
    return figure(RESULTS, "test MAE", forecast=forecast)


def load_data(config):
    return get_recipe(RECIPE).load_data(config)


def build_model(config, data):
    return get_recipe(RECIPE).build_model(config, data)


def make_config(**values):
    return config_from_dict(get_recipe(RECIPE).config_class,
                            {"verbose": 0, **values})


def cli(tmp_path, *flags):
    out = tmp_path / "runs"
    args = ["run", RECIPE, "--output-dir", str(out), "--verbose", "0",
            "--epochs", "1", "--units", "8", *map(str, flags)]
    return main(args), out


def run_dir_of(out):
    (name,) = os.listdir(out / RECIPE)
    return out / RECIPE / name


def write_csv(path, values, header="date,value", times=None):
    times = times if times is not None else [
        f"2020-01-{i % 28 + 1:02d}" for i in range(len(values))]
    lines = [header] + [f"{t},{v}" for t, v in zip(times, values)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------- windows


@pytest.mark.backends
def test_windows_hold_the_next_horizon_values():
    values = np.arange(100.0) * 3 + 7
    x, y, origins = ts.make_windows(values, lookback=5, horizon=3,
                                    first_origin=20, end=60)
    assert x.shape == (len(origins), 5) and y.shape == (len(origins), 3)
    assert origins[0] == 20 and origins[-1] == 57  # last targets 57..59
    for xi, yi, o in zip(x, y, origins):
        np.testing.assert_array_equal(xi, values[o - 5:o])
        np.testing.assert_array_equal(yi, values[o:o + 3])


@pytest.mark.backends
@settings(max_examples=60, deadline=None)
@given(n=st.integers(20, 300), lookback=st.integers(1, 12),
       horizon=st.integers(1, 5))
def test_no_window_crosses_a_split_boundary(n, lookback, horizon):
    if n < ts.min_length(lookback, horizon):
        return
    train_end, val_end = ts.split_points(n)
    positions = np.arange(n)  # values are their own positions
    parts = ts.split_windows(positions, lookback, horizon, train_end, val_end)
    x, y, _ = parts["train"]
    assert len(y) and x.min() >= 0 and y.max() < train_end
    x, y, _ = parts["val"]
    assert len(y) and y.min() >= train_end and y.max() < val_end
    assert (x.max(axis=1) < y.min(axis=1)).all()  # inputs precede targets
    x, y, origins = parts["test"]
    assert len(y) and y.min() >= val_end and y.max() < n
    # Every test step is a target (the first step of some window).
    np.testing.assert_array_equal(origins, np.arange(val_end,
                                                     n - horizon + 1))
    np.testing.assert_array_equal(y[:, 0], origins)


@pytest.mark.backends
def test_split_is_70_10_20_in_time_order():
    assert ts.split_points(309) == (216, 247)  # sunspots: 62 test years
    assert ts.split_points(100) == (70, 80)


@pytest.mark.backends
def test_min_length_is_the_shortest_series_with_windows_everywhere():
    for lookback, horizon in [(1, 1), (11, 1), (15, 4), (3, 10)]:
        n = ts.min_length(lookback, horizon)
        for m in (n - 1, n):
            train_end, val_end = ts.split_points(m)
            ok = (train_end >= lookback + horizon
                  and val_end - train_end >= horizon
                  and m - val_end >= horizon)
            assert ok == (m == n)


# ------------------------------------------------------------- no leakage


@pytest.mark.backends
def test_scaler_and_training_windows_ignore_the_future(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(50, 5, 120)
    changed = base.copy()
    changed[84:] *= 1000  # validation and test parts (split at 84, 96)
    datas = []
    for name, values in (("a.csv", base), ("b.csv", changed)):
        path = write_csv(tmp_path / name, values)
        datas.append(load_data(make_config(
            dataset=f"csv:{path}", column="value", lookback="6")))
    a, b = datas
    assert a.train_end == 84
    scaler = a.scaler
    assert scaler.mean == pytest.approx(base[:84].mean())
    assert scaler.scale == pytest.approx(base[:84].std())
    assert b.scaler.to_dict() == scaler.to_dict()
    np.testing.assert_array_equal(a.train[0], b.train[0])
    np.testing.assert_array_equal(a.train[1], b.train[1])
    # The standardized training targets are (value - mean) / std.
    np.testing.assert_allclose(a.train[1][:, 0],
                               (base[6:84] - base[:84].mean())
                               / base[:84].std(), rtol=1e-5)


@pytest.mark.backends
def test_co2_gaps_are_filled_within_each_split():
    values = np.array([1.0, np.nan, 3.0, np.nan, 10.0, np.nan, np.nan, 4.0])
    filled = ts.interpolate_gaps(values, boundaries=(4, 6))
    # [1, nan, 3, nan | 10, nan | nan, 4]: edges take their segment's value.
    np.testing.assert_array_equal(filled, [1, 2, 3, 3, 10, 10, 4, 4])
    assert np.isnan(values).sum() == 4  # input untouched
    series = ts.load_co2()
    assert len(series) == 2284 and series.missing == 59
    data = load_data(make_config(dataset="co2"))
    assert data.input_shape == (52, 1)  # lookback auto = season 52
    for part in (data.train, data.val, data.test):
        assert np.isfinite(part[0]).all() and np.isfinite(part[1]).all()


# --------------------------------------------------------------- baselines


@pytest.mark.backends
def test_baselines_match_hand_computed_values():
    values = np.array([3.0, 5.0, 4.0, 6.0, 8.0, 7.0, 9.0])
    x, y, origins = ts.make_windows(values, lookback=2, horizon=2,
                                    first_origin=4, end=7)
    # Windows at origins 4, 5: inputs [4, 6] / [6, 8], targets [8, 7] / [7, 9].
    np.testing.assert_array_equal(ts.persistence(x, 2), [[6, 6], [8, 8]])
    # Season 2: target o+h from o+h-2 (h=0, 1).
    np.testing.assert_array_equal(
        ts.seasonal_naive(values, origins, 2, season=2), [[4, 6], [6, 8]])
    # Season 3, horizon 4 at origin 4: index 4 + h - 3 * ceil((h + 1) / 3),
    # i.e. 1, 2, 3, then 1 again (two seasons back for h = 3).
    np.testing.assert_array_equal(
        ts.seasonal_naive(values, np.array([4]), 4, season=3),
        [[5.0, 4.0, 6.0, 5.0]])  # indices 1, 2, 3, then 7-6=1
    e = ts.errors([[1.0, 2.0]], [[2.0, 4.0]])
    assert e["mae"] == pytest.approx(1.5)
    assert e["rmse"] == pytest.approx(np.sqrt(2.5))


@pytest.mark.backends
def test_linear_ar_is_least_squares_with_intercept():
    # One input: y = a x + b by the textbook formulas. x = 1, 2, 3;
    # y = 2, 4, 7: slope 2.5, intercept -2/3.
    ar = ts.LinearAR().fit([[1.0], [2.0], [3.0]], [[2.0], [4.0], [7.0]])
    np.testing.assert_allclose(ar.coef[:, 0], [2.5, -2 / 3])
    np.testing.assert_allclose(ar.predict([[4.0]]), [[10 - 2 / 3]])
    # An exact AR(2) process is recovered exactly, for every horizon step.
    values = [1.0, 2.0]
    for _ in range(40):
        values.append(0.5 * values[-1] - 0.3 * values[-2] + 1.0)
    x, y, _ = ts.make_windows(np.array(values), 2, 2, 0, 30)
    xt, yt, _ = ts.make_windows(np.array(values), 2, 2, 30, 42)
    np.testing.assert_allclose(ts.LinearAR().fit(x, y).predict(xt), yt,
                               atol=1e-8)


@pytest.mark.backends
def test_sunspot_baselines_in_the_report():
    data = load_data(make_config())
    values = ts.load_sunspots().values
    assert data.lookback == 11 and data.season == 11
    test = values[247:]
    preds = data.baselines()
    assert ts.errors(preds["persistence"], test[:, None])["mae"] == \
        pytest.approx(np.abs(test - values[246:-1]).mean())
    assert ts.errors(preds["seasonal_naive"], test[:, None])["mae"] == \
        pytest.approx(np.abs(test - values[236:-11]).mean())
    # The Results table: persistence, seasonal naive, AR(11) fitted on the
    # training windows.
    for name, row in (("persistence", "persistence"),
                      ("seasonal_naive", "seasonal naive (11)"),
                      ("linear_ar", "linear AR(11)")):
        mae = ts.errors(preds[name], test[:, None])["mae"]
        assert printed(mae, table_mae(row)) == table_mae(row), (name, mae)


# ---------------------------------------------------------------- lookback


@pytest.mark.backends
def test_tcn_lookback_defaults_to_its_receptive_field():
    data = load_data(make_config(model="tcn", kernel_size=2,
                                 dilations=(1, 2, 4, 8)))
    assert data.input_shape == (31, 1)  # 1 + 2 * 1 * (1 + 2 + 4 + 8)
    data = load_data(make_config(model="gru"))
    assert data.input_shape == (11, 1)  # the season


@pytest.mark.backends
def test_short_tcn_window_warns():
    with pytest.warns(UserWarning, match="receptive field"):
        load_data(make_config(model="tcn", lookback="5"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_data(make_config(model="tcn", lookback="13"))
    assert not [w for w in caught if "receptive field" in str(w.message)]


@pytest.mark.backends
@pytest.mark.parametrize("model", tsf.MODELS)
def test_window_norm_makes_forecasts_shift_with_the_level(model):
    # window_norm="last": forecast(x + c) == forecast(x) + c, for any model.
    config = make_config(model=model, units=8, horizon=2)
    data = load_data(config)
    model = build_model(config, data)
    x = data.test[0][:8]
    shifted = model.predict(x + 3.0, verbose=0)
    np.testing.assert_allclose(shifted, model.predict(x, verbose=0) + 3.0,
                               atol=1e-4)
    raw = build_model(config.replace(window_norm="none"), data)
    assert not np.allclose(raw.predict(x + 3.0, verbose=0),
                           raw.predict(x, verbose=0) + 3.0, atol=1e-2)


# -------------------------------------------------------------- end to end


@pytest.mark.parametrize("model", [
    pytest.param(m, marks=pytest.mark.backends) if m == "transformer" else m
    for m in tsf.MODELS])
def test_models_smoke(model, tmp_path):
    code, out = cli(tmp_path, "--model", model)
    assert code == 0
    run_dir = run_dir_of(out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("", "_persistence", "_seasonal_naive", "_linear_ar"):
        for err in ("mae", "rmse"):
            assert np.isfinite(metrics[f"test{name}_{err}"])
    persistence = table_mae("persistence")
    assert printed(metrics["test_persistence_mae"], persistence) == \
        persistence
    assert (run_dir / "forecast.png").is_file()


@pytest.mark.backends
def test_csv_multi_step(tmp_path):
    t = np.arange(160)
    values = 10 + np.sin(2 * np.pi * t / 12) * 3 + 0.01 * t
    path = write_csv(tmp_path / "series.csv", values, header="when,level",
                     times=[f"t{i}" for i in t])
    code, out = cli(tmp_path, "--dataset", f"csv:{path}", "--column",
                    "level", "--time-column", "when", "--season", "12",
                    "--lookback", "12", "--horizon", "3", "--model", "dense")
    assert code == 0
    run_dir = run_dir_of(out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["horizon"] == 3 and metrics["season"] == 12
    assert metrics["test_windows"] == 32 - 3 + 1  # 20% of 160, H=3
    # A clean 12-periodic series (plus a small trend): seasonal naive is
    # nearly exact, persistence is not.
    assert metrics["test_seasonal_naive_mae"] < 0.2
    assert metrics["test_persistence_mae"] > 1.0
    assert (run_dir / "forecast.png").is_file()
    import keras

    model = keras.saving.load_model(run_dir / "model.keras")
    assert tuple(model.output_shape) == (None, 3)


# --------------------------------------------------------------- bad input


def bad_csvs(tmp_path):
    good = np.linspace(1, 2, 40)
    text_bad = [f"{v}" for v in good]
    text_bad[6] = "abc"
    missing = [f"{v}" for v in good]
    missing[9] = ""
    return {
        "missing file": ([f"csv:{tmp_path / 'nope.csv'}"], "not found"),
        "no such column": (
            [f"csv:{write_csv(tmp_path / 'a.csv', good)}", "--column", "x"],
            "no column 'x'"),
        "non-numeric": (
            [f"csv:{write_csv(tmp_path / 'b.csv', text_bad)}", "--column",
             "value"],
            "non-numeric value 'abc' in column 'value' at line 8"),
        "missing value": (
            [f"csv:{write_csv(tmp_path / 'c.csv', missing)}", "--time-column",
             "date"],
            "missing value in column 'value' at line 11"),
        "too short": (
            [f"csv:{write_csv(tmp_path / 'd.csv', good[:20])}", "--column",
             "value", "--lookback", "15"], "too few"),
        "ambiguous column": (
            [f"csv:{write_csv(tmp_path / 'e.csv', good)}"],
            "pass --column, one of: date, value"),
    }


@pytest.mark.backends
@pytest.mark.parametrize("case", ["missing file", "no such column",
                                  "non-numeric", "missing value",
                                  "too short", "ambiguous column"])
def test_bad_csv(case, tmp_path, capsys):
    flags, needle = bad_csvs(tmp_path)[case]
    code, out = cli(tmp_path, "--dataset", *flags)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.backends
@pytest.mark.parametrize("flags,needle", [
    (["--horizon", "0"], "--horizon must be >= 1"),
    (["--lookback", "0"], "--lookback must be a positive integer"),
    (["--lookback", "-4"], "--lookback must be a positive integer"),
    (["--lookback", "ten"], "Received: lookback=ten"),
    (["--lookback", "400"], "too few"),
    (["--dataset", "weather"], "sunspots, co2, csv:PATH"),
    (["--column", "x"], "csv:PATH only"),
    (["--model", "transformer", "--units", "6", "--num-heads", "4"],
     "--num-heads must divide"),
])
def test_bad_flags(flags, needle, tmp_path, capsys):
    code, out = cli(tmp_path, *flags)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err
    assert not out.exists()
