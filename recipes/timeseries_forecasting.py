"""
Title: Time-series forecasting with LSTM, GRU, TCN, Transformer and MLP
Description: Forecast a univariate series (sunspots, co2 or a CSV column) and compare with persistence, seasonal-naive and linear-AR baselines.

Commands:

    dlrecipes run timeseries-forecasting                  # sunspots, offline
    dlrecipes run timeseries-forecasting --model tcn --dilations 1,2,4
    dlrecipes run timeseries-forecasting --dataset co2 --horizon 4
    dlrecipes run timeseries-forecasting --dataset csv:load.csv \\
        --column load --time-column date --season 24 --lookback 48
    python -m recipes.timeseries_forecasting --help

Data: `sunspots` (yearly, 1700-2008, season 11) and `co2` (weekly Mauna
Loa CO2, 1958-2001, season 52) ship with dlrecipes (copies of statsmodels'
datasets). co2 misses 59 weeks;
they are filled by linear interpolation inside each split (so no filled
value borrows from a later split). A `csv:PATH` column must be complete
and numeric: a missing or non-numeric value is an error naming its line.

The series is split chronologically, 70% train / 10% validation / 20%
test, and standardized with the mean and standard deviation of the
training part only. A window of `--lookback` values forecasts the next
`--horizon` values at once (one linear output per step). Training windows
lie inside the training part; validation and test windows are the ones
whose targets lie in those parts (their inputs are the values just before,
the observed history at forecast time), so every step of the test part is
forecast. By default (`--window-norm last`, as NLinear, Zeng et al. 2023,
https://arxiv.org/abs/2205.13504) each window is shifted so that its last
value is 0 and the forecast is shifted back: the networks learn changes,
not levels, which keeps them right on trending series (co2) whose test
values lie above anything seen in training. `--lookback auto` is the TCN's
receptive field for `--model tcn`
(`1 + 2 (kernel_size - 1) sum(dilations)`, 13 by default) and the season
otherwise (a CSV without `--season`: the TCN's receptive field too); a TCN
whose window is shorter than its receptive field gets a warning.

Every run writes MAE and RMSE in the series' units to `metrics.json`
(`test_mae`, `test_rmse`), next to three baselines on the same test
windows: persistence (the last value), seasonal naive (the value one
season back) and a linear autoregression on the same window (least
squares with an intercept, fitted on the training windows), plus
`forecast.png` (the test period with the forecasts and baselines).

Results (default config except `--model`: sunspots, one step ahead, the
last 62 years (1947-2008) as test, 30 epochs, batch 16, Adam 3e-3,
`--window-norm last`, TensorFlow on CPU, seed 0; checked by
tests/test_sequence_quality.py: every model beats persistence, the best
is within 1.05x of linear AR(11) or better):

    model / baseline        lookback   test MAE   test RMSE
    tcn                        13        13.01      16.97
    lstm                       11        13.25      17.09
    gru (default)              11        13.90      17.67
    transformer                11        15.98      21.55
    dense                      11        17.01      21.12
    linear AR(11)              11        15.61      20.08
    linear AR(13)              13        16.02
    persistence                 -        25.44      33.28
    seasonal naive (11)         -        27.95      37.86

The linear AR is fitted on the training windows only (fitted on training
and validation windows, AR(11) reaches 15.26). Sunspots is small (205
training windows): neural results move by about +-1.5 MAE with the seed
and the backend (seeds 0-2 under JAX: dense 13.3-14.5, tcn 13.3-15.0,
transformer 13.0-15.4), so the ranking above is one seed's.

co2, same defaults (gru, lookback 52, 457 test weeks): MAE 0.327 ppm,
linear AR(52) 0.327, persistence 0.405, seasonal naive 1.65.
"""

import dataclasses
import os
import warnings

import keras
import numpy as np

from dlrecipes.paths import check_file
from dlrecipes.config import TrainConfig, option
from dlrecipes.data import series as ts
from dlrecipes.errors import UsageError, choices_message
from dlrecipes.recipe import Phase, Recipe, register_recipe
from dlrecipes.search_space import Boolean, Choice, Float, Int  # noqa: F401
from dlrecipes.training import Data
from recipes._sequence_models import sequence_encoder, tcn_layer

MODELS = ("dense", "lstm", "gru", "tcn", "transformer")
LOADERS = {"sunspots": ts.load_sunspots, "co2": ts.load_co2}
DATASETS = tuple(LOADERS) + ("csv:PATH",)
VAL_FRACTION, TEST_FRACTION = 0.1, 0.2
OBJECTIVE = ("val_loss", "min")
SMOKE = {"epochs": 1, "units": 8}


@dataclasses.dataclass(frozen=True)
class TimeseriesForecastingConfig(TrainConfig):
    model: str = option("gru", "architecture", choices=MODELS)
    dataset: str = option("sunspots", "sunspots | co2 | csv:PATH")
    column: str = option("", "value column of a csv dataset (default: the "
                         "only column that is not --time-column)")
    time_column: str = option("", "time column of a csv dataset (plot "
                              "labels)")
    lookback: str = option("auto", "input window, a positive integer or "
                           "auto (tcn: its receptive field; others: the "
                           "season)")
    horizon: int = option(1, "steps forecast at once (direct multi-output)",
                          min=1)
    season: int = option(0, "period of the seasonal-naive baseline (0: 11 "
                         "for sunspots, 52 for co2, 1 for csv)", min=0)
    units: int = option(32, "width: dense units, RNN units, TCN filters, "
                        "transformer hidden size", min=1)
    num_layers: int = option(1, "stacked layers (not tcn)", min=1)
    dropout: float = option(0.0, "dropout rate", min=0, max=0.9)
    kernel_size: int = option(3, "TCN kernel size", min=1)
    dilations: tuple[int, ...] = option((1, 2), "TCN dilation rates",
                                        min=1)
    num_heads: int = option(2, "transformer attention heads", min=1)
    loss: str = option("mse", "training loss on the standardized series",
                       choices=("mse", "mae", "huber"))
    window_norm: str = option(
        "last", "last: subtract each window's last value from its inputs "
        "and add it back to the forecast (NLinear); none: raw windows",
        choices=("last", "none"))
    # Training defaults tuned for sunspots (see Results).
    epochs: int = option(30, "training epochs", min=1)
    batch_size: int = option(16, "global batch size", min=1)
    learning_rate: float = option(3e-3, "peak learning rate", min=0,
                                  exclusive_min=True)

    def check(self):
        if self.dataset.startswith("csv:"):
            path = self.dataset[len("csv:"):]
            if not path:
                raise UsageError("--dataset csv:PATH needs a file path. "
                                 f"Received: dataset={self.dataset!r}")
            check_file(path, "--dataset", "csv:PATH naming a CSV file")
        elif self.dataset in LOADERS:
            for name in ("column", "time_column"):
                if getattr(self, name):
                    raise UsageError(
                        f"--{name.replace('_', '-')} works with --dataset "
                        f"csv:PATH only. Received: dataset={self.dataset}")
        else:
            raise UsageError("--dataset: " + choices_message(
                "dataset", self.dataset, DATASETS))
        if self.lookback != "auto":
            try:
                value = int(self.lookback)
            except ValueError:
                value = 0
            if value <= 0:
                raise UsageError("--lookback must be a positive integer or "
                                 f"'auto'. Received: lookback={self.lookback}")
        if not self.dilations:
            raise UsageError("--dilations needs at least one rate, e.g. "
                             "1,2,4. Received: dilations=()")
        if self.model == "transformer" and self.units % self.num_heads:
            raise UsageError(f"--num-heads must divide --units "
                             f"({self.units}). Received: "
                             f"num_heads={self.num_heads}")


# --------------------------------------------------------------------- data


def receptive_field(config):
    """The TCN's receptive field for `config` (whatever the model)."""
    return tcn_layer(config.units, config.kernel_size,
                     config.dilations).receptive_field


def resolve_lookback(config, season):
    """The input window length `config.lookback` stands for."""
    if config.lookback != "auto":
        return int(config.lookback)
    if config.model == "tcn" or season <= 1:
        return receptive_field(config)
    return season


def load_series(config):
    """The `Series` named by `config.dataset` (not yet split or filled)."""
    if config.dataset.startswith("csv:"):
        return ts.load_csv(config.dataset[len("csv:"):], config.column,
                           config.time_column)
    return LOADERS[config.dataset]()


def load_data(config):
    """Windows of the standardized series, split 70/10/20 in time order.

    `x` is `(windows, lookback, 1)` and `y` `(windows, horizon)`, both
    standardized with training statistics; `info` keeps what `report`
    needs to turn forecasts back into the series' units.
    """
    series = load_series(config)
    season = config.season or series.season
    lookback = resolve_lookback(config, season)
    horizon = config.horizon
    n = len(series)
    needed = ts.min_length(lookback, horizon, VAL_FRACTION, TEST_FRACTION)
    if n < needed:
        raise UsageError(
            f"--dataset {config.dataset}: {n} values are too few for "
            f"lookback {lookback} + horizon {horizon} with a 70/10/20 "
            f"chronological split (needs at least {needed}); lower "
            "--lookback or --horizon")
    train_end, val_end = ts.split_points(n, VAL_FRACTION, TEST_FRACTION)
    if season > val_end:
        raise UsageError(f"--season {season} is longer than the history "
                         f"before the test part ({val_end} steps). "
                         f"Received: season={season}")
    rf = receptive_field(config)
    if config.model == "tcn" and lookback < rf:
        warnings.warn(f"--lookback {lookback} is shorter than the TCN's "
                      f"receptive field ({rf} steps): the largest dilations "
                      "see zero padding", UserWarning, stacklevel=2)
    values = series.values
    if np.isnan(values).any():  # co2: fill within each split, no leakage
        values = ts.interpolate_gaps(values, (train_end, val_end))
    scaler = ts.Scaler.fit(values[:train_end])
    scaled = scaler.transform(values).astype("float32")
    windows = ts.split_windows(scaled, lookback, horizon, train_end, val_end)
    parts = [(w[0][..., None], w[1]) for w in
             (windows["train"], windows["val"], windows["test"])]
    raw = ts.split_windows(values, lookback, horizon, train_end, val_end)
    info = {
        "series": series, "values": values, "scaler": scaler,
        "lookback": lookback, "horizon": horizon, "season": season,
        "train_end": train_end, "val_end": val_end, "raw_windows": raw,
        "receptive_field": rf,
    }
    return Data(*parts, input_shape=(lookback, 1), info=info)


# -------------------------------------------------------------------- model


def build_model(config, data):
    """An uncompiled model: a window `(lookback, 1)` of standardized values
    to the next `horizon` standardized values (float32 output)."""
    inputs = keras.Input(data.input_shape, name="window")  # (b, lookback, 1)
    x = inputs
    if config.window_norm == "last":
        last = inputs[:, -1, :]  # (batch, 1)
        x = inputs - inputs[:, -1:, :]  # the window relative to its end
    with warnings.catch_warnings():  # load_data already warned about it
        warnings.filterwarnings("ignore", message="TCN receptive field")
        x = sequence_encoder(
            x, config.model, units=config.units,
            num_layers=config.num_layers, dropout=config.dropout,
            kernel_size=config.kernel_size, dilations=config.dilations,
            num_heads=config.num_heads, causal=True, position="sine",
            kernel_initializer=config.kernel_initializer)
    outputs = keras.layers.Dense(data.info["horizon"], dtype="float32",
                                 name="forecast")(x)  # (batch, horizon)
    if config.window_norm == "last":
        outputs = outputs + last  # (batch, horizon) + (batch, 1)
    return keras.Model(inputs, outputs, name=f"{config.model}_forecaster")


def compile_kwargs(config, data):
    loss = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
            "huber": keras.losses.Huber()}[config.loss]
    return {"loss": loss,
            "metrics": [keras.metrics.MeanAbsoluteError(name="scaled_mae")]}


# ------------------------------------------------------------------- report


def baselines(data):
    """Forecasts of the three baselines on the test windows (series units)."""
    info = data.info
    (x_train, y_train, _) = info["raw_windows"]["train"]
    (x_test, _, origins) = info["raw_windows"]["test"]
    horizon = info["horizon"]
    return {
        "persistence": ts.persistence(x_test, horizon),
        "seasonal_naive": ts.seasonal_naive(info["values"], origins, horizon,
                                            info["season"]),
        "linear_ar": ts.LinearAR().fit(x_train, y_train).predict(x_test),
    }


def report(model, data, run_dir, config):
    """Test MAE / RMSE in the series' units, baselines, `forecast.png`."""
    info = data.info
    _, y_test, origins = info["raw_windows"]["test"]
    scaled = model.predict(data.test[0], batch_size=256, verbose=0)
    forecast = info["scaler"].inverse_transform(scaled)
    metrics = {f"test_{k}": v for k, v in ts.errors(forecast, y_test).items()}
    others = baselines(data)
    for name, pred in others.items():
        for k, v in ts.errors(pred, y_test).items():
            metrics[f"test_{name}_{k}"] = v
    metrics.update({"lookback": info["lookback"], "horizon": info["horizon"],
                    "season": info["season"],
                    "test_windows": int(len(y_test)),
                    "scaler": info["scaler"].to_dict()})
    plot_forecast(info["series"], origins, y_test, forecast, others,
                  os.path.join(run_dir, "forecast.png"), config.model)
    return metrics


BASELINE_LABELS = {"persistence": "persistence",
                   "seasonal_naive": "seasonal naive",
                   "linear_ar": "linear AR"}


def _time_axis(labels):
    """Plot coordinates: numbers as they are, ISO dates as datetimes,
    anything else as positions."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iuf":
        return labels
    try:
        return labels.astype("datetime64[D]")
    except ValueError:
        return np.arange(len(labels))


def plot_forecast(series, origins, targets, forecast, others, path, label):
    """The test period: actual values, the model and the baselines, for the
    first and (when `horizon > 1`) the last step of the horizon."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    time = _time_axis(series.time)
    horizon = targets.shape[1]
    steps = [0] if horizon == 1 else [0, horizon - 1]
    fig, axes = plt.subplots(len(steps), 1, figsize=(10, 3.6 * len(steps)),
                             squeeze=False)
    for ax, h in zip(axes[:, 0], steps):
        t = time[origins + h]
        ax.plot(t, targets[:, h], color="black", lw=2, label="actual")
        ax.plot(t, forecast[:, h], lw=1.6, label=label)
        for name, pred in others.items():
            ax.plot(t, pred[:, h], lw=1, ls="--", label=BASELINE_LABELS[name])
        ax.set_title(f"{series.name}: {h + 1}-step-ahead forecasts, "
                     "test period")
        ax.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    plots.save_figure(fig, path)



# ------------------------------------------------------------ search space
# Names are TimeseriesForecastingConfig fields (see `dlrecipes.search_space`).

SEARCH_SPACE = {
    "model": Choice(("dense", "lstm", "gru", "tcn", "transformer")),
    "units": Choice((16, 32, 64), grid=(16, 32)),
    "num_layers": Choice((1, 2), when=("model", ("dense", "lstm", "gru", "transformer"))),
    "kernel_size": Choice((2, 3), when=("model", ("tcn",))),
    "dilations": Choice(("1,2,4", "1,2,4,8"), when=("model", ("tcn",)),
                      grid=("1,2,4",)),
    "num_heads": Choice((1, 2, 4), when=("model", ("transformer",)),
                      grid=(2,)),
    "dropout": Float(0.0, 0.3, grid=(0.0, 0.1)),
    "lookback": Choice(("auto", "16", "32"), grid=("auto",)),
    "optimizer": Choice(("adam", "adamw", "rmsprop"), grid=("adam",)),
    "learning_rate": Float(3e-4, 1e-2, sampling="log", grid=(1e-3, 3e-3)),
    "schedule": Choice(("constant", "cosine", "warmup_cosine"),
                     grid=("constant",)),
    "batch_size": Choice((16, 32, 64), grid=(32,)),
}

# Fields `load_data` reads: a tuning trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "column", "time_column", "lookback", "horizon",
               "season", "model", "units", "kernel_size", "dilations")


@register_recipe
class TimeseriesForecasting(Recipe):
    name = "timeseries-forecasting"
    config_class = TimeseriesForecastingConfig
    description = 'Forecast a univariate series (sunspots, co2 or a CSV column) and compare with persistence, seasonal-naive and linear-AR baselines.'
    objective = OBJECTIVE
    smoke = SMOKE
    search_space = SEARCH_SPACE
    data_fields = DATA_FIELDS
    datasets = DATASETS

    def load_data(self, config):
        return load_data(config)

    def build_model(self, config, data):
        return build_model(config, data)

    def compile(self, model, config, data, optimizer, **options):
        model.compile(optimizer=optimizer, **compile_kwargs(config, data),
                      **options)

    def report(self, model, data, run_dir, config):
        return report(model, data, run_dir, config)


def main(argv=None):
    from dlrecipes.cli import run_recipe_main

    return run_recipe_main("timeseries-forecasting", argv)


if __name__ == "__main__":
    raise SystemExit(main())
