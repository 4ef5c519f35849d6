"""Search space of the transfer-learning recipe.

Names are `TransferLearningConfig` fields. `alpha` applies to MobileNetV2
only, the fine-tuning fields to `strategy=fine-tune` only; with
`--backbone PATH.keras` the backbone is fixed and `alpha` drops out.
`grid=` marks the values grid search takes. ImageNet weights download on
first use (the search builds the first trial's model at start, so a
missing network fails then, not in every trial).
"""

from tuning.space import Choice, Float

BACKBONE = "backbone"
ALPHA = "alpha"
STRATEGY = "strategy"
FINE_TUNE_LAYERS = "fine_tune_layers"
FINE_TUNE_LR_FACTOR = "fine_tune_lr_factor"
DROPOUT = "dropout"
AUGMENT = "augment"
OPTIMIZER = "optimizer"
LEARNING_RATE = "learning_rate"
SCHEDULE = "schedule"
BATCH_SIZE = "batch_size"

FINE_TUNE = (STRATEGY, ("fine-tune",))

SPACE = {
    BACKBONE: Choice(("mobilenet_v2", "efficientnet_b0", "resnet50"),
                     grid=("mobilenet_v2",)),
    ALPHA: Choice((0.35, 0.5, 1.0), when=(BACKBONE, ("mobilenet_v2",)),
                  grid=(1.0,)),
    STRATEGY: Choice(("fine-tune", "feature-extraction")),
    FINE_TUNE_LAYERS: Choice((0, 10, 30), when=FINE_TUNE, grid=(0,)),
    FINE_TUNE_LR_FACTOR: Float(0.01, 0.3, sampling="log", when=FINE_TUNE,
                               grid=(0.1,)),
    DROPOUT: Float(0.0, 0.5, grid=(0.2,)),
    AUGMENT: Choice(("none", "light", "strong"), grid=("light",)),
    OPTIMIZER: Choice(("adam", "adamw"), grid=("adam",)),
    LEARNING_RATE: Float(1e-4, 3e-3, sampling="log", grid=(3e-4, 1e-3)),
    SCHEDULE: Choice(("constant", "cosine"), grid=("constant",)),
    BATCH_SIZE: Choice((16, 32, 64), grid=(32,)),
}

# Fields `load_data` reads: a trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "data_dir", "image_size", "classes",
               "label_fraction", "val_fraction", "batch_size", "seed",
               "backbone")
