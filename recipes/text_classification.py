"""
Title: Text classification with 1D CNN, LSTM, GRU, BiLSTM and Transformer
Description: Classify raw text (imdb_reviews or a folder of .txt files) with TextVectorization inside the model and a token + position embedding.

Commands:

    dlrecipes run text-classification                    # imdb_reviews (tfds)
    dlrecipes run text-classification --model bilstm --epochs 5
    dlrecipes run text-classification --dataset folder:path/to/texts
    dlrecipes run text-classification --dataset toy       # offline, generated
    python -m recipes.text_classification --help

The model takes raw strings: a `TextVectorization` layer (lower-case,
strip punctuation, split on whitespace; vocabulary of the `--max-tokens`
most frequent training tokens, adapted on the training texts only, before
the model is built) is its first layer, followed by
`dlrecipes.layers.TokenAndPositionEmbedding`. The vocabulary is saved
inside `model.keras`, which reloads with `safe_mode` on and classifies
strings directly:

    model = dlrecipes.load_model("runs/.../model.keras")
    model.predict(np.array(["a gripping, beautifully shot film"], object))

Models: `cnn1d` (1D convolutions, global max pooling), `lstm`, `gru`,
`bilstm` (these three skip padding through the embedding's mask) and
`transformer` (`TransformerEncoder` with the padding mask, mean pooling
over real tokens).

Datasets: `imdb_reviews` (tensorflow-datasets; 90% of its train split for
training, 10% for validation, its test split for testing), `folder:PATH`
(`keras.utils.text_dataset_from_directory`: one sub-folder of .txt files
per class; 70% train, 15% validation, 15% test) and `toy` (a generated
two-class corpus for offline smoke runs; not a benchmark).

This recipe needs TensorFlow and `KERAS_BACKEND=tensorflow`: the string
processing runs inside the model.

Results (CPU, seed 0; checked by tests/test_text.py): on a two-class
folder with disjoint vocabularies that the test writes (30 files per
class, 6-10 words each), every model reaches test accuracy 1.0 with
`--epochs 5 --batch-size 8 --learning-rate 0.005 --max-tokens 64
--sequence-length 12 --embedding-dim 16 --units 16`; `imdb_reviews` runs
end to end through `tfds.testing.mock_data` (no accuracy claim: the
default imdb run needs the download).
"""

import dataclasses
import importlib.util
import os

import keras

from dlrecipes.config import TrainConfig, option
from dlrecipes.data import stratified_split
from dlrecipes.data import text as text_data
from dlrecipes.errors import UsageError, choices_message
from dlrecipes.layers import TokenAndPositionEmbedding
from dlrecipes.recipe import Phase, Recipe, register_recipe
from dlrecipes.search_space import Boolean, Choice, Float, Int  # noqa: F401
from dlrecipes.training import Data
from recipes._sequence_models import count_examples, sequence_encoder

MODELS = ("cnn1d", "lstm", "gru", "bilstm", "transformer")
DATASETS = ("imdb_reviews", "toy", "folder:PATH")
OBJECTIVE = ("val_accuracy", "max")
SMOKE = {"epochs": 1, "dataset": "toy", "units": 8, "embedding_dim": 8,
         "sequence_length": 16, "max_tokens": 100}


def require_tensorflow():
    """UsageError unless TensorFlow is installed and the Keras backend."""
    if (importlib.util.find_spec("tensorflow") is None
            or keras.backend.backend() != "tensorflow"):
        raise UsageError(
            "text-classification needs TensorFlow (its TextVectorization "
            "runs inside the model on raw strings): pip install tensorflow "
            "and set KERAS_BACKEND=tensorflow. "
            f"Received: backend={keras.backend.backend()}")


@dataclasses.dataclass(frozen=True)
class TextClassificationConfig(TrainConfig):
    model: str = option("transformer", "architecture", choices=MODELS)
    dataset: str = option("imdb_reviews", "imdb_reviews | toy | "
                          "folder:PATH")
    data_dir: str = option("", "tensorflow-datasets data directory")
    max_tokens: int = option(20000, "vocabulary size (with padding and "
                             "out-of-vocabulary tokens)", min=3)
    sequence_length: int = option(200, "tokens per text (longer texts are "
                                  "cut, shorter ones padded)", min=1)
    embedding_dim: int = option(64, "token and position embedding width",
                                min=1)
    units: int = option(64, "RNN units (per direction), conv filters; "
                        "transformer feed-forward width 2 x units", min=1)
    num_layers: int = option(1, "stacked layers", min=1)
    dropout: float = option(0.2, "dropout rate", min=0, max=0.9)
    kernel_size: int = option(5, "cnn1d kernel size", min=1)
    num_heads: int = option(2, "transformer attention heads", min=1)
    val_fraction: float = option(0.1, "fraction of training data held out "
                                 "for validation (imdb_reviews, toy)",
                                 min=0, max=0.5)
    # Training defaults for imdb_reviews.
    epochs: int = option(3, "training epochs", min=1)
    kernel_initializer: str = option(
        "glorot_uniform", "kernel initializer",
        choices=TrainConfig.__dataclass_fields__[
            "kernel_initializer"].metadata["choices"])

    def check(self):
        require_tensorflow()
        if self.dataset.startswith("folder:"):
            path = self.dataset[len("folder:"):]
            if not os.path.isdir(path):
                raise UsageError(f"--dataset folder:{path}: folder not found")
        elif self.dataset not in ("imdb_reviews", "toy"):
            raise UsageError("--dataset: " + choices_message(
                "dataset", self.dataset, DATASETS))
        if self.model == "transformer" and self.embedding_dim % self.num_heads:
            raise UsageError(f"--num-heads must divide --embedding-dim "
                             f"({self.embedding_dim}). Received: "
                             f"num_heads={self.num_heads}")


# --------------------------------------------------------------------- data


def _pipeline(ds, config, training):
    import tensorflow as tf

    if ds is None:
        return None
    ds = ds.cache()
    if training:
        ds = ds.shuffle(10_000, seed=config.seed)
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def adapt_vocabulary(train, config):
    """The `TextVectorization` vocabulary of the training texts (a list of
    str: padding "", "[UNK]", then tokens by frequency)."""
    vectorizer = keras.layers.TextVectorization(max_tokens=config.max_tokens)
    vectorizer.adapt(train.map(lambda text, label: text).batch(1024))
    return [str(t) for t in vectorizer.get_vocabulary()]


def load_data(config):
    """Batched tf.data (text, label) splits and the training vocabulary."""
    require_tensorflow()
    import tensorflow as tf

    if config.dataset == "toy":
        texts, labels, names = text_data.toy_corpus(seed=0)
        parts = stratified_split(texts, labels, test_fraction=0.2,
                                 val_fraction=config.val_fraction)
        datasets = [None if p is None else tf.data.Dataset.from_tensor_slices(
            (p[0].astype(str), p[1])) for p in parts]
        num_train = len(parts[0][1])
    elif config.dataset.startswith("folder:"):
        datasets, names, num_train = _load_folder(config)
    else:
        datasets, names, num_train = _load_imdb(config)
    vocabulary = adapt_vocabulary(datasets[0], config)
    train, val, test = (_pipeline(d, config, i == 0)
                        for i, d in enumerate(datasets))
    return Data(train, val, test, input_shape=(), num_classes=len(names),
                class_names=tuple(names),
                info={"vocabulary": vocabulary, "num_train": num_train})


def _load_folder(config):
    path = config.dataset[len("folder:"):]
    names = text_data.check_text_folder(path)
    try:
        train, rest = keras.utils.text_dataset_from_directory(
            path, validation_split=0.3, subset="both", seed=config.seed,
            batch_size=None)
    except ValueError as e:
        raise UsageError(f"--dataset folder:{path}: "
                         f"{str(e).splitlines()[0]}") from None
    return ([train, rest.shard(2, 0), rest.shard(2, 1)], names,
            count_examples(train))


def _load_imdb(config):
    from dlrecipes.data import tfds_loader

    val_pct = int(round(config.val_fraction * 100))
    splits = ([f"train[:{100 - val_pct}%]", f"train[{100 - val_pct}%:]",
               "test"] if val_pct else ["train", "test"])
    datasets, info = tfds_loader.load("imdb_reviews", splits,
                                      data_dir=config.data_dir or None)
    if not val_pct:
        datasets = [datasets[0], None, datasets[1]]
    names = tuple(info.features["label"].names)
    return datasets, names, count_examples(datasets[0])


# -------------------------------------------------------------------- model


def build_model(config, data):
    """An uncompiled classifier of raw strings `(batch,)`; softmax in
    float32. The vectorizer's vocabulary is `data.info["vocabulary"]`."""
    vocabulary = data.info["vocabulary"]
    inputs = keras.Input(shape=(), dtype="string", name="text")  # (batch,)
    token_ids = keras.layers.TextVectorization(
        max_tokens=config.max_tokens,
        output_sequence_length=config.sequence_length,
        vocabulary=vocabulary, name="vectorize")(inputs)  # (batch, seq)
    x = TokenAndPositionEmbedding(
        vocabulary_size=len(vocabulary),
        sequence_length=config.sequence_length,
        embedding_dim=config.embedding_dim,
        # Conv1D ignores masks: cnn1d sees the padding as token 0.
        mask_zero=config.model != "cnn1d",
        name="embedding")(token_ids)  # (batch, seq, embedding_dim)
    x = sequence_encoder(
        x, config.model, units=config.units, num_layers=config.num_layers,
        dropout=config.dropout, kernel_size=config.kernel_size,
        num_heads=config.num_heads, causal=False, position="none",
        kernel_initializer=config.kernel_initializer)  # (batch, features)
    outputs = keras.layers.Dense(data.num_classes, activation="softmax",
                                 dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"{config.model}_text")


def compile_kwargs(config, data):
    return {"loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"]}



# ------------------------------------------------------------ search space
# Names are TextClassificationConfig fields (see `dlrecipes.search_space`).

SEARCH_SPACE = {
    "model": Choice(("cnn1d", "lstm", "gru", "bilstm", "transformer")),
    "max_tokens": Choice((10000, 20000), grid=(20000,)),
    "sequence_length": Choice((100, 200, 400), grid=(200,)),
    "embedding_dim": Choice((32, 64, 128), grid=(32, 64)),
    "units": Choice((32, 64, 128), grid=(64,)),
    "num_layers": Choice((1, 2)),
    "kernel_size": Choice((3, 5, 7), when=("model", ("cnn1d",)), grid=(5,)),
    "num_heads": Choice((2, 4), when=("model", ("transformer",)), grid=(2,)),
    "dropout": Float(0.0, 0.5, grid=(0.2,)),
    "optimizer": Choice(("adam", "adamw"), grid=("adam",)),
    "learning_rate": Float(1e-4, 3e-3, sampling="log", grid=(3e-4, 1e-3)),
    "schedule": Choice(("constant", "cosine", "warmup_cosine"),
                     grid=("constant",)),
    "batch_size": Choice((32, 64), grid=(32,)),
}

# Fields `load_data` reads: a tuning trial that changes one reloads the data.
DATA_FIELDS = ("dataset", "data_dir", "val_fraction", "max_tokens",
               "batch_size", "seed")


@register_recipe
class TextClassification(Recipe):
    name = "text-classification"
    config_class = TextClassificationConfig
    description = 'Classify raw text (imdb_reviews or a folder of .txt files) with TextVectorization inside the model and a token + position embedding.'
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


def main(argv=None):
    from dlrecipes.cli import run_recipe_main

    return run_recipe_main("text-classification", argv)


if __name__ == "__main__":
    raise SystemExit(main())
