"""Search space of the text-classification recipe (TensorFlow backend).

Names are `TextClassificationConfig` fields. `max_tokens` changes the
vocabulary adapted in `load_data` (a trial that changes it reloads the
data); `sequence_length` is the vectorizer's, inside the model. Head
counts divide every `embedding_dim` choice. `grid=` marks the values grid
search takes.
"""

from tuning.space import Choice, Float

MODEL = "model"
MAX_TOKENS = "max_tokens"
SEQUENCE_LENGTH = "sequence_length"
EMBEDDING_DIM = "embedding_dim"
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
    MODEL: Choice(("cnn1d", "lstm", "gru", "bilstm", "transformer")),
    MAX_TOKENS: Choice((10000, 20000), grid=(20000,)),
    SEQUENCE_LENGTH: Choice((100, 200, 400), grid=(200,)),
    EMBEDDING_DIM: Choice((32, 64, 128), grid=(32, 64)),
    UNITS: Choice((32, 64, 128), grid=(64,)),
    NUM_LAYERS: Choice((1, 2)),
    KERNEL_SIZE: Choice((3, 5, 7), when=(MODEL, ("cnn1d",)), grid=(5,)),
    NUM_HEADS: Choice((2, 4), when=(MODEL, ("transformer",)), grid=(2,)),
    DROPOUT: Float(0.0, 0.5, grid=(0.2,)),
    OPTIMIZER: Choice(("adam", "adamw"), grid=("adam",)),
    LEARNING_RATE: Float(1e-4, 3e-3, sampling="log", grid=(3e-4, 1e-3)),
    SCHEDULE: Choice(("constant", "cosine", "warmup_cosine"),
                     grid=("constant",)),
    BATCH_SIZE: Choice((32, 64), grid=(32,)),
}

# Fields `load_data` reads: a trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "data_dir", "val_fraction", "max_tokens",
               "batch_size", "seed")
