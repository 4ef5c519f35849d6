"""What a forecasting run adds to its results: test MAE and RMSE in the
series' units beside the baselines of `ForecastData.baselines()` on the
same test windows, and `forecast.png` (the test period with the forecasts
and the baselines)."""

import os

import numpy as np

from dlrecipes.data.series import errors

BASELINE_LABELS = {"persistence": "persistence",
                   "seasonal_naive": "seasonal naive",
                   "linear_ar": "linear AR"}


def forecast_report(model, data, run_dir, label):
    """Metrics of `model` on `data.test` (a `ForecastData`): `test_mae`,
    `test_rmse`, `test_<baseline>_mae` and `_rmse` for each baseline, the
    window lengths, the test window count and the scaler; writes
    `forecast.png` into `run_dir`, the model's curve labelled `label`."""
    _, y_test, origins = data.windows["test"]
    scaled = model.predict(data.test[0], batch_size=256, verbose=0)
    forecast = data.scaler.inverse_transform(scaled)
    metrics = {f"test_{k}": v for k, v in errors(forecast, y_test).items()}
    baselines = data.baselines()
    for name, pred in baselines.items():
        for k, v in errors(pred, y_test).items():
            metrics[f"test_{name}_{k}"] = v
    metrics.update({"lookback": data.lookback, "horizon": data.horizon,
                    "season": data.season, "test_windows": int(len(y_test)),
                    "scaler": data.scaler.to_dict()})
    plot_forecast(data.series, origins, y_test, forecast, baselines,
                  os.path.join(run_dir, "forecast.png"), label)
    return metrics


def time_axis(labels):
    """Plot coordinates: numbers as they are, ISO dates as datetimes,
    anything else as positions."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iuf":
        return labels
    try:
        return labels.astype("datetime64[D]")
    except ValueError:
        return np.arange(len(labels))


def plot_forecast(series, origins, targets, forecast, baselines, path,
                  label):
    """The test period: actual values, the model and the baselines, for the
    first and (when `horizon > 1`) the last step of the horizon."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    time = time_axis(series.time)
    horizon = targets.shape[1]
    steps = [0] if horizon == 1 else [0, horizon - 1]
    fig, axes = plt.subplots(len(steps), 1, figsize=(10, 3.6 * len(steps)),
                             squeeze=False)
    for ax, h in zip(axes[:, 0], steps):
        t = time[origins + h]
        ax.plot(t, targets[:, h], color="black", lw=2, label="actual")
        ax.plot(t, forecast[:, h], lw=1.6, label=label)
        for name, pred in baselines.items():
            ax.plot(t, pred[:, h], lw=1, ls="--", label=BASELINE_LABELS[name])
        ax.set_title(f"{series.name}: {h + 1}-step-ahead forecasts, "
                     "test period")
        ax.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    plots.save_figure(fig, path)
