"""Search space of the timeseries-forecasting recipe.

Names are `TimeseriesForecastingConfig` fields. The objective is the
recipe's `val_loss`, so `loss` (which changes what val_loss measures) is
not searched. `dilations` and `lookback` choices are strings, as on the
command line ("1,2,4"). `grid=` marks the values grid search takes.
"""

from tuning.space import Choice, Float

MODEL = "model"
UNITS = "units"
NUM_LAYERS = "num_layers"
KERNEL_SIZE = "kernel_size"
DILATIONS = "dilations"
NUM_HEADS = "num_heads"
DROPOUT = "dropout"
LOOKBACK = "lookback"
OPTIMIZER = "optimizer"
LEARNING_RATE = "learning_rate"
SCHEDULE = "schedule"
BATCH_SIZE = "batch_size"

STACKED = ("dense", "lstm", "gru", "transformer")

SPACE = {
    MODEL: Choice(("dense", "lstm", "gru", "tcn", "transformer")),
    UNITS: Choice((16, 32, 64), grid=(16, 32)),
    NUM_LAYERS: Choice((1, 2), when=(MODEL, STACKED)),
    KERNEL_SIZE: Choice((2, 3), when=(MODEL, ("tcn",))),
    DILATIONS: Choice(("1,2,4", "1,2,4,8"), when=(MODEL, ("tcn",)),
                      grid=("1,2,4",)),
    NUM_HEADS: Choice((1, 2, 4), when=(MODEL, ("transformer",)),
                      grid=(2,)),
    DROPOUT: Float(0.0, 0.3, grid=(0.0, 0.1)),
    LOOKBACK: Choice(("auto", "16", "32"), grid=("auto",)),
    OPTIMIZER: Choice(("adam", "adamw", "rmsprop"), grid=("adam",)),
    LEARNING_RATE: Float(3e-4, 1e-2, sampling="log", grid=(1e-3, 3e-3)),
    SCHEDULE: Choice(("constant", "cosine", "warmup_cosine"),
                     grid=("constant",)),
    BATCH_SIZE: Choice((16, 32, 64), grid=(32,)),
}

# Fields `load_data` reads (the window length depends on the model when
# lookback is "auto"): a trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "column", "time_column", "lookback", "horizon",
               "season", "model", "units", "kernel_size", "dilations")
