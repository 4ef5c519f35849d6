"""`Data`: what a recipe's `load_data` returns, typed.

It is the whole contract between `load_data`, `build_model`, the training
engine and `report`. A task that needs more (a text vocabulary, a forecast's
scaler) subclasses it with typed fields of its own (`TextData`,
`ForecastData`); nothing travels in an untyped dict.
"""

import dataclasses
import typing


@dataclasses.dataclass
class Data:
    """Splits and what the model needs to know about them.

    Attributes:
        train, val, test: `(x, y)` tuples of arrays (fed to `fit` with the
            config's `batch_size`; an autoencoder's is `(x, x)`), or batched
            iterables (`tf.data.Dataset`, `keras.utils.PyDataset`). `val`
            may be None (the objective then drops `val_`).
        input_shape: one example's shape, without the batch axis.
        num_classes: classes of a classifier, else None.
        class_names: their names, for reports.
        scale: the factor a model's `Rescaling` applies to raw inputs
            (1/255 for 8-bit pixels, 1/16 for digits).
        flip: a horizontal flip keeps the label (augmentation may use it).
        train_repeats: a tiny training set is repeated this many times per
            epoch (reports show it).
        num_train, num_val, num_test: examples per split where the splits
            are datasets (arrays know their length).
        source: the dataset's name, for reports.
    """

    train: object
    val: object
    test: object
    input_shape: tuple
    num_classes: typing.Optional[int] = None
    class_names: typing.Optional[tuple] = None
    scale: float = 1.0
    flip: bool = False
    train_repeats: int = 1
    num_train: typing.Optional[int] = None
    num_val: typing.Optional[int] = None
    num_test: typing.Optional[int] = None
    source: str = ""

    def num_examples(self, split):
        """Examples in `split` ("train", "val", "test"), or None."""
        part = getattr(self, split)
        if isinstance(part, tuple):
            return len(part[1])
        return getattr(self, f"num_{split}")
