"""
Title: Text classification with 1D CNN, LSTM, GRU, BiLSTM and Transformer
Description: Classify raw text (imdb_reviews or a folder of .txt files) with TextVectorization inside the model and a token + position embedding.

Commands:

    dlrecipes run text-classification                    # imdb_reviews (tfds)
    dlrecipes run text-classification --model bilstm --epochs 5
    dlrecipes run text-classification --dataset folder:path/to/texts
    dlrecipes run text-classification --dataset toy       # offline, generated
    python -m recipes.text_classification --help

This recipe needs TensorFlow and `KERAS_BACKEND=tensorflow`: the string
processing runs inside the model.
"""

import dataclasses

from dlrecipes.config import INITIALIZERS, TrainConfig, default, option
from dlrecipes.data.text import (SOURCES, check_source, load_text,
                                 require_tensorflow)
from dlrecipes.errors import UsageError
from dlrecipes.lazy import dl_layers, keras
from dlrecipes.recipe import Recipe, register_recipe
from dlrecipes.search_space import Choice, Float

MODELS = ("cnn1d", "rnn", "lstm", "gru", "bilstm", "bigru", "transformer")


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
    epochs: int = default(3)
    kernel_initializer: str = option("glorot_uniform", "kernel initializer",
                                     choices=INITIALIZERS)

    def check(self):
        check_source(self.dataset)
        if self.model == "transformer" and self.embedding_dim % self.num_heads:
            raise UsageError(f"--num-heads must divide --embedding-dim "
                             f"({self.embedding_dim}). Received: "
                             f"num_heads={self.num_heads}")


@register_recipe
class TextClassification(Recipe):
    name = "text-classification"
    config_class = TextClassificationConfig
    description = ("Classify raw text (imdb_reviews or a folder of .txt "
                   "files) with TextVectorization inside the model and a "
                   "token + position embedding.")
    datasets = SOURCES
    tfds_datasets = ("imdb_reviews",)
    data_fields = ("dataset", "data_dir", "val_fraction", "max_tokens",
                   "batch_size", "seed")

    def check(self, config):
        require_tensorflow(self.name)

    # ## Load the data
    #
    # `imdb_reviews` (tensorflow-datasets: 90% of its train split trains,
    # 10% validates, its test split tests), `folder:PATH` (one sub-folder
    # of .txt files per class; 70% train, 15% validation, 15% test) or
    # `toy` (a generated two-class corpus for offline smoke runs; not a
    # benchmark). The splits hold raw strings; the vocabulary of the
    # `--max-tokens` most frequent tokens is adapted on the training texts
    # only, before the model is built (`TextData.vocabulary`).

    def load_data(self, config):
        require_tensorflow(self.name)
        return load_text(config.dataset, max_tokens=config.max_tokens,
                         batch_size=config.batch_size, seed=config.seed,
                         val_fraction=config.val_fraction,
                         data_dir=config.data_dir)

    # ## Build the model
    #
    # The model takes raw strings: its first layer is a `TextVectorization`
    # (lower-case, strip punctuation, split on whitespace) holding the
    # vocabulary, then `dlrecipes.layers.TokenAndPositionEmbedding` and an
    # encoder of `dlrecipes.models.sequence`: `cnn1d` (1D convolutions,
    # global max pooling; it sees the padding as token 0), `rnn`, `lstm`,
    # `gru`, `bilstm`, `bigru` (these skip the padding through the
    # embedding's mask) or
    # `transformer` (padding mask, mean pooling over the real tokens). The
    # vocabulary is saved inside `model.keras`, which reloads with
    # `safe_mode` on and classifies strings directly:
    #
    #     model = dlrecipes.load_model("runs/.../model.keras")
    #     model.predict(np.array(["a gripping, beautifully shot film"],
    #                            dtype=object))

    def build_model(self, config, data):
        from dlrecipes.models.sequence import sequence_encoder

        inputs = keras.Input(shape=(), dtype="string", name="text")
        token_ids = keras.layers.TextVectorization(
            max_tokens=config.max_tokens,
            output_sequence_length=config.sequence_length,
            vocabulary=data.vocabulary, name="vectorize")(inputs)
        x = dl_layers.TokenAndPositionEmbedding(
            vocabulary_size=len(data.vocabulary),
            sequence_length=config.sequence_length,
            embedding_dim=config.embedding_dim,
            mask_zero=config.model != "cnn1d",  # Conv1D ignores masks
            name="embedding")(token_ids)  # (batch, tokens, embedding_dim)
        x = sequence_encoder(
            x, config.model, units=config.units, num_layers=config.num_layers,
            dropout=config.dropout, kernel_size=config.kernel_size,
            num_heads=config.num_heads, causal=False, position="none",
            kernel_initializer=config.initializer,
            activation=config.hidden_activation)
        outputs = keras.layers.Dense(data.num_classes, activation="softmax",
                                     dtype="float32", name="classifier")(x)
        return keras.Model(inputs, outputs, name=f"{config.model}_text")

    # ## Train
    #
    # Sparse cross-entropy and accuracy (the `Recipe` defaults); the best
    # validation accuracy is kept. The defaults (3 epochs) are for
    # imdb_reviews; `dlrecipes tune` searches the space below.

    objective = ("val_accuracy", "max")
    classifier = True
    smoke = {"epochs": 1, "dataset": "toy", "units": 8, "embedding_dim": 8,
             "sequence_length": 16, "max_tokens": 100}
    search_space = {
        "model": Choice(MODELS, grid=("cnn1d", "lstm", "gru", "bilstm",
                                      "transformer")),
        "max_tokens": Choice((10000, 20000), grid=(20000,)),
        "sequence_length": Choice((100, 200, 400), grid=(200,)),
        "embedding_dim": Choice((32, 64, 128), grid=(32, 64)),
        "units": Choice((32, 64, 128), grid=(64,)),
        "num_layers": Choice((1, 2)),
        "kernel_size": Choice((3, 5, 7), when=("model", ("cnn1d",)),
                              grid=(5,)),
        "num_heads": Choice((2, 4), when=("model", ("transformer",)),
                            grid=(2,)),
        "dropout": Float(0.0, 0.5, grid=(0.2,)),
        "optimizer": Choice(("adam", "adamw"), grid=("adam",)),
        "learning_rate": Float(1e-4, 3e-3, sampling="log",
                               grid=(3e-4, 1e-3)),
        "schedule": Choice(("constant", "cosine", "warmup_cosine"),
                           grid=("constant",)),
        "batch_size": Choice((32, 64), grid=(32,)),
    }

    # ## Results
    #
    # A two-class folder with disjoint vocabularies that tests/test_text.py
    # writes (30 files per class, 6-10 words each), `--epochs 5
    # --batch-size 8 --learning-rate 0.005 --max-tokens 64
    # --sequence-length 12 --embedding-dim 16 --units 16`, TensorFlow on
    # CPU, seed 0; checked by tests/test_text.py. `imdb_reviews` runs end to
    # end through `tfds.testing.mock_data` (no accuracy claim: the default
    # imdb run needs the download).
    #
    # | model       | test accuracy |
    # |-------------|---------------|
    # | cnn1d       | 1.0           |
    # | rnn         | 0.889         |
    # | lstm        | 1.0           |
    # | gru         | 1.0           |
    # | bilstm      | 1.0           |
    # | bigru       | 0.889         |
    # | transformer | 1.0           |


if __name__ == "__main__":
    from dlrecipes.cli import run_recipe_main

    raise SystemExit(run_recipe_main("text-classification"))
