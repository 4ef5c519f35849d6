"""Search space of the image-classification recipe.

Names are `ImageClassificationConfig` fields. `grid=` marks the values
grid search takes (88 combinations over the four models, 32 for one);
random, Bayesian and Hyperband searches sample the full ranges.
"""

from tuning.space import Choice, Float

MODEL = "model"
WIDTH = "width"
STAGES = "stages"
DEPTH = "depth"
NORM = "norm"
DROPOUT = "dropout"
AUGMENT = "augment"
OPTIMIZER = "optimizer"
LEARNING_RATE = "learning_rate"
WEIGHT_DECAY = "weight_decay"
SCHEDULE = "schedule"
BATCH_SIZE = "batch_size"

CONV = ("vgg", "resnet")

SPACE = {
    MODEL: Choice(("mlp", "lenet", "vgg", "resnet")),
    WIDTH: Choice((16, 32, 64), grid=(16, 32)),
    STAGES: Choice((2, 3), when=(MODEL, CONV), grid=(2,)),
    DEPTH: Choice((1, 2), when=(MODEL, ("mlp",) + CONV)),
    NORM: Choice(("batch", "layer", "none"), when=(MODEL, CONV),
                 grid=("batch", "layer")),
    DROPOUT: Float(0.0, 0.5, grid=(0.0, 0.2)),
    AUGMENT: Choice(("none", "light", "strong"), grid=("light",)),
    OPTIMIZER: Choice(("adamw", "adam", "nesterov"), grid=("adamw",)),
    LEARNING_RATE: Float(1e-4, 1e-2, sampling="log", grid=(1e-3, 3e-3)),
    WEIGHT_DECAY: Float(1e-6, 1e-3, sampling="log", grid=(1e-4,)),
    SCHEDULE: Choice(("warmup_cosine", "cosine", "constant"),
                     grid=("warmup_cosine",)),
    BATCH_SIZE: Choice((32, 64, 128), grid=(64,)),
}

# Fields `load_data` reads: a trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "data_dir", "image_size", "classes",
               "val_fraction", "batch_size", "seed")
