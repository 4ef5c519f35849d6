"""Search space of the sequence-classification recipe.

Names are `SequenceClassificationConfig` fields. `sequence` (rows or
pixels) changes the data: a trial that changes it reloads the data.
`grid=` marks the values grid search takes.
"""

from tuning.space import Choice, Float

MODEL = "model"
SEQUENCE = "sequence"
UNITS = "units"
NUM_LAYERS = "num_layers"
KERNEL_SIZE = "kernel_size"
NUM_HEADS = "num_heads"
DROPOUT = "dropout"
OPTIMIZER = "optimizer"
LEARNING_RATE = "learning_rate"
SCHEDULE = "schedule"
BATCH_SIZE = "batch_size"

SPACE = {
    MODEL: Choice(("dense", "lstm", "gru", "bilstm", "cnn1d", "tcn",
                   "transformer")),
    SEQUENCE: Choice(("rows", "pixels"), grid=("rows",)),
    UNITS: Choice((32, 64, 128), grid=(32, 64)),
    NUM_LAYERS: Choice((1, 2), when=(MODEL, ("dense", "lstm", "gru",
                                             "bilstm", "cnn1d",
                                             "transformer"))),
    KERNEL_SIZE: Choice((3, 5), when=(MODEL, ("cnn1d", "tcn")), grid=(3,)),
    NUM_HEADS: Choice((2, 4), when=(MODEL, ("transformer",)), grid=(4,)),
    DROPOUT: Float(0.0, 0.3, grid=(0.0, 0.1)),
    OPTIMIZER: Choice(("adam", "adamw", "rmsprop"), grid=("adam",)),
    LEARNING_RATE: Float(3e-4, 1e-2, sampling="log", grid=(1e-3, 3e-3)),
    SCHEDULE: Choice(("constant", "cosine", "warmup_cosine"),
                     grid=("constant",)),
    BATCH_SIZE: Choice((32, 64, 128), grid=(64,)),
}

# Fields `load_data` reads: a trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "sequence", "data_dir", "val_fraction",
               "batch_size", "seed")
