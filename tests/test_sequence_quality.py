"""Quality of the sequence recipes with their default configs (CPU, seed 0),
as stated in their Results sections:

- timeseries-forecasting, sunspots one step ahead: every model beats
  persistence (MAE about 25.4 on the last 62 years); the best comes within
  1.05x of the linear AR(11) baseline (about 15.6) or beats it.
- sequence-classification, digits rows: tcn and transformer reach test
  accuracy >= 0.96 (logistic regression on the flat pixels: 0.967), every
  model >= 0.90.
"""

import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.config import config_from_dict
from dlrecipes.registry import get_recipe
from dlrecipes.training import run_recipe
from recipes import sequence_classification as sc
from recipes import timeseries_forecasting as tsf

pytestmark = pytest.mark.slow


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
              f"{r['test_linear_ar_mae']:.2f})")
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


def test_sunspot_baselines(sunspots):
    for r in sunspots.values():
        assert r["test_persistence_mae"] == pytest.approx(25.44, abs=0.01)
        assert r["test_windows"] == 62
    ar11 = sunspots["gru"]["test_linear_ar_mae"]
    assert sunspots["gru"]["lookback"] == 11
    assert 15.0 < ar11 < 16.0


@pytest.mark.parametrize("model", tsf.MODELS)
def test_every_forecaster_beats_persistence(sunspots, model):
    r = sunspots[model]
    assert r["test_mae"] < r["test_persistence_mae"], r["test_mae"]


def test_best_forecaster_matches_linear_ar(sunspots):
    best = min(r["test_mae"] for r in sunspots.values())
    ar11 = sunspots["gru"]["test_linear_ar_mae"]
    assert best <= 1.05 * ar11, (best, ar11)


def test_logistic_regression_reference():
    from sklearn.linear_model import LogisticRegression

    from dlrecipes.data import load_digits, stratified_split

    x, y = load_digits()
    train, _, test = stratified_split(x.reshape(len(x), -1) / 16, y)
    model = LogisticRegression(max_iter=2000).fit(*train)
    assert model.score(*test) == pytest.approx(0.967, abs=0.001)


@pytest.mark.parametrize("model", sc.MODELS)
def test_digit_sequences(digits, model):
    accuracy = digits[model]["test_accuracy"]
    assert accuracy >= (0.96 if model in ("tcn", "transformer") else 0.90)
    assert np.isfinite(digits[model]["test_loss"])
