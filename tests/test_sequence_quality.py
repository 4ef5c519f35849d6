"""Quality of the sequence recipes with their default configs (seed 0): the
figures of their Results tables.

- timeseries-forecasting, sunspots one step ahead: every model's lookback,
  test MAE and RMSE, and the baselines beside them (linear AR on the
  model's window, persistence, seasonal naive).
- sequence-classification, digits rows: every model's test accuracy and
  parameter count, and the logistic-regression reference.

The tables were measured under TensorFlow on CPU, where a run with a fixed
seed is deterministic: there each figure must match to the printed
digits. Under another backend or on a GPU the numbers differ by the seed's
spread (see the forecasting Results), so only the tables' claims are
checked: every forecaster beats persistence and the best comes within
1.05x of linear AR(11); tcn and transformer classify >= 0.96, every model
>= 0.90. Baselines and parameter counts are exact everywhere.
"""

import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.config import config_from_dict
from dlrecipes.registry import get_recipe
from dlrecipes.training import run_recipe
from recipes import sequence_classification as sc
from recipes import timeseries_forecasting as tsf
from results_table import figure, printed, results_table

pytestmark = pytest.mark.slow


def reference_platform():
    """TensorFlow on CPU: where the Results tables were measured."""
    import keras
    import tensorflow as tf

    return (keras.backend.backend() == "tensorflow"
            and not tf.config.list_physical_devices("GPU"))


def run_defaults(name, out, **values):
    recipe = get_recipe(name)
    config = config_from_dict(recipe.config_class, {
        "verbose": 0, "output_dir": str(out), **values})
    return run_recipe(recipe, config, resume=False,
                      print_summary=False).metrics


@pytest.fixture(scope="module")
def sunspots(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    results = {m: run_defaults("timeseries-forecasting", out, model=m)
               for m in tsf.MODELS}
    print("\nsunspots, one step ahead, test MAE / RMSE:")
    for m, r in results.items():
        print(f"  {m:12s} {r['test_mae']:6.2f} {r['test_rmse']:6.2f} "
              f"(lookback {r['lookback']}, linear AR on it "
              f"{r['test_linear_ar_mae']:.2f} {r['test_linear_ar_rmse']:.2f})")
    return results


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    results = {m: run_defaults("sequence-classification", out, model=m)
               for m in sc.MODELS}
    print("\ndigits rows, test accuracy:")
    for m, r in results.items():
        print(f"  {m:12s} {r['test_accuracy']:.4f} {r['params']:8d} params")
    return results


# ---------------------------------------------------------------- forecast

FORECASTS = results_table(tsf)


def test_forecast_table_lists_every_model():
    rows = [row["forecast"] for row in FORECASTS]
    assert sorted(rows[:len(tsf.MODELS)]) == sorted(tsf.MODELS)


def test_sunspot_baselines(sunspots):
    """Numpy baselines: exact on every platform."""
    for r in sunspots.values():
        assert r["test_windows"] == 62
        for name, row in (("persistence", "persistence"),
                          ("seasonal_naive", "seasonal naive (11)")):
            for err in ("MAE", "RMSE"):
                want = figure(FORECASTS, f"test {err}", forecast=row)
                got = r[f"test_{name}_{err.lower()}"]
                assert printed(got, want) == want, (name, err, got)
    # Linear AR on the window of the gru (11 = the season) and the tcn (13
    # = its receptive field).
    for model, row in (("gru", "linear AR(11)"), ("tcn", "linear AR(13)")):
        r = sunspots[model]
        assert str(r["lookback"]) == figure(FORECASTS, "lookback",
                                            forecast=row)
        for err in ("MAE", "RMSE"):
            want = figure(FORECASTS, f"test {err}", forecast=row)
            got = r[f"test_linear_ar_{err.lower()}"]
            assert printed(got, want) == want, (row, err, got)


@pytest.mark.parametrize("model", tsf.MODELS)
def test_forecaster(sunspots, model):
    r = sunspots[model]
    assert str(r["lookback"]) == figure(FORECASTS, "lookback",
                                        forecast=model)
    assert r["test_mae"] < r["test_persistence_mae"], r["test_mae"]
    if reference_platform():
        for err in ("MAE", "RMSE"):
            want = figure(FORECASTS, f"test {err}", forecast=model)
            got = r[f"test_{err.lower()}"]
            assert printed(got, want) == want, (err, got)


def test_best_forecaster_matches_linear_ar(sunspots):
    best = min(r["test_mae"] for r in sunspots.values())
    ar11 = sunspots["gru"]["test_linear_ar_mae"]
    assert best <= 1.05 * ar11, (best, ar11)


# ---------------------------------------------------------------- classify

ACCURACIES = results_table(sc)


def test_classifier_table_lists_every_model():
    rows = [row["model"] for row in ACCURACIES]
    assert sorted(rows[:len(sc.MODELS)]) == sorted(sc.MODELS)


def test_logistic_regression_reference():
    from sklearn.linear_model import LogisticRegression

    from dlrecipes.data import load_digits, stratified_split

    x, y = load_digits()
    train, _, test = stratified_split(x.reshape(len(x), -1) / 16, y)
    model = LogisticRegression(max_iter=2000).fit(*train)
    want = figure(ACCURACIES, "test accuracy",
                  model="logistic regression (reference)")
    assert printed(model.score(*test), want) == want


@pytest.mark.parametrize("model", sc.MODELS)
def test_digit_sequences(digits, model):
    r = digits[model]
    assert f"{r['params']:,}" == figure(ACCURACIES, "parameters",
                                        model=model)
    assert np.isfinite(r["test_loss"])
    accuracy = r["test_accuracy"]
    assert accuracy >= (0.96 if model in ("tcn", "transformer") else 0.90)
    if reference_platform():
        want = figure(ACCURACIES, "test accuracy", model=model)
        assert printed(accuracy, want) == want, accuracy
