"""Encoder-decoder models for character sequences, and their greedy decoder.

`build_seq2seq(kind, ...)` builds a teacher-forced model `[source ids,
decoder input ids] -> (batch, target_length, vocabulary)` probabilities:

- `lstm`: an LSTM encoder whose final states start an LSTM decoder
  (Sutskever et al. 2014; Cho et al. 2014), one encoder and decoder layer
  per `num_layers`, layer `i` of the decoder starting from layer `i` of
  the encoder.
- `lstm-attention`: the same, and each decoder step attends to every
  encoder step with additive (Bahdanau) scores,
  `keras.layers.AdditiveAttention`; the context vector and the decoder's
  output make the prediction (the attention is read after the decoder
  LSTM, as in Luong et al. 2015, not fed into its next step).
- `transformer`: `TokenAndPositionEmbedding` + `TransformerEncoder` blocks,
  then `TransformerDecoder` blocks (causal self-attention and
  cross-attention), Vaswani et al. 2017.

The graph of each model is written once (`_lstm_graph`,
`_transformer_graph`) and run twice: symbolically to build the model, and
eagerly on a built model's own layers to read its attention maps
(`attention_maps`).

`dlrecipes.models.translator.GreedyTranslator` wraps a trained model: it
decodes one character at a time, feeding each prediction back, and turns
raw strings into answers (`translate`), on every backend.

Importing this module imports no Keras (`dlrecipes.lazy`).
"""

import numpy as np

from dlrecipes.lazy import dl_layers, keras

MODELS = ("lstm", "lstm-attention", "transformer")
ATTENTION_MODELS = ("lstm-attention", "transformer")


def build_seq2seq(kind, vocabulary_size, source_length, target_length,
                  units=128, embedding_dim=32, num_layers=1, num_heads=4,
                  dropout=0.0, kernel_initializer="glorot_uniform"):
    """The teacher-forced model `[source, decoder_input] -> probabilities`
    (float32 softmax over the vocabulary at every target position)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; valid choices: "
                         f"{', '.join(MODELS)}")
    source = keras.Input((source_length,), dtype="int32", name="source")
    target_in = keras.Input((target_length,), dtype="int32",
                            name="decoder_input")
    make = _transformer_layers if kind == "transformer" else _lstm_layers
    layers = make(kind, vocabulary_size, source_length, target_length,
                  units, embedding_dim, num_layers, num_heads, dropout,
                  kernel_initializer)
    graph = _transformer_graph if kind == "transformer" else _lstm_graph
    outputs, _ = graph(layers, source, target_in, num_layers)
    return keras.Model([source, target_in], outputs,
                       name=kind.replace("-", "_") + "_seq2seq")


def model_kind(model):
    """Which of `MODELS` a model of `build_seq2seq` is (from its name)."""
    return model.name.removesuffix("_seq2seq").replace("_", "-")


# --- LSTM encoder-decoders ---------------------------------------------------

def _lstm_layers(kind, vocabulary_size, source_length, target_length, units,
                 embedding_dim, num_layers, num_heads, dropout,
                 kernel_initializer):
    def lstm(name):
        return keras.layers.LSTM(
            units, return_sequences=True, return_state=True,
            dropout=dropout, kernel_initializer=kernel_initializer,
            name=name)

    layers = {
        "source_embedding": keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="source_embedding"),
        "target_embedding": keras.layers.Embedding(
            vocabulary_size, embedding_dim, name="target_embedding"),
        "output": keras.layers.Dense(
            vocabulary_size, activation="softmax", dtype="float32",
            kernel_initializer=kernel_initializer, name="next_character"),
    }
    for i in range(num_layers):
        layers[f"encoder_{i}"] = lstm(f"encoder_lstm_{i}")
        layers[f"decoder_{i}"] = lstm(f"decoder_lstm_{i}")
    if kind == "lstm-attention":
        layers["attention"] = keras.layers.AdditiveAttention(
            name="attention")
        layers["combine"] = keras.layers.Dense(
            units, activation="tanh", kernel_initializer=kernel_initializer,
            name="attentional_state")
    return layers


def _lstm_graph(layers, source, target_in, num_layers):
    """`(probabilities, attention scores or None)`; `(batch, target,
    source)` scores for `lstm-attention`."""
    x = layers["source_embedding"](source)
    states = []
    for i in range(num_layers):
        x, h, c = layers[f"encoder_{i}"](x)
        states.append([h, c])
    memory = x
    y = layers["target_embedding"](target_in)
    for i in range(num_layers):
        y, _, _ = layers[f"decoder_{i}"](y, initial_state=states[i])
    scores = None
    if "attention" in layers:
        context, scores = layers["attention"](
            [y, memory], return_attention_scores=True)
        y = layers["combine"](keras.layers.Concatenate()([y, context]))
    return layers["output"](y), scores


# --- Transformer ---------------------------------------------------------------

def _transformer_layers(kind, vocabulary_size, source_length, target_length,
                        units, embedding_dim, num_layers, num_heads, dropout,
                        kernel_initializer):
    def block(cls, name):
        return cls(num_heads=num_heads, intermediate_dim=2 * units,
                   dropout=dropout, kernel_initializer=kernel_initializer,
                   name=name)

    layers = {
        "source_embedding": dl_layers.TokenAndPositionEmbedding(
            vocabulary_size, source_length, units,
            embeddings_initializer="glorot_uniform", name="source_embedding"),
        "target_embedding": dl_layers.TokenAndPositionEmbedding(
            vocabulary_size, target_length, units,
            embeddings_initializer="glorot_uniform", name="target_embedding"),
        "output": keras.layers.Dense(
            vocabulary_size, activation="softmax", dtype="float32",
            kernel_initializer=kernel_initializer, name="next_character"),
    }
    for i in range(num_layers):
        layers[f"encoder_{i}"] = block(dl_layers.TransformerEncoder,
                                       f"encoder_{i}")
        layers[f"decoder_{i}"] = block(dl_layers.TransformerDecoder,
                                       f"decoder_{i}")
    return layers


def _transformer_graph(layers, source, target_in, num_layers):
    """`(probabilities, scores)`: the last decoder block's cross-attention
    `(batch, heads, target, source)` when called eagerly, else None."""
    memory = layers["source_embedding"](source)
    for i in range(num_layers):
        memory = layers[f"encoder_{i}"](memory)
    y = layers["target_embedding"](target_in)
    scores = None
    for i in range(num_layers):
        decoder = layers[f"decoder_{i}"]
        if decoder.built and i == num_layers - 1 and not isinstance(
                y, keras.KerasTensor):
            y, _, scores = decoder(y, memory, return_attention_scores=True)
        else:
            y = decoder(y, memory)
    return layers["output"](y), scores


def _layers_of(model):
    """The named layers `_lstm_graph`/`_transformer_graph` read, taken from
    a built (or loaded) model."""
    names = {layer.name: layer for layer in model.layers}
    layers = {}
    for key, name in (("source_embedding", "source_embedding"),
                      ("target_embedding", "target_embedding"),
                      ("output", "next_character"),
                      ("attention", "attention"),
                      ("combine", "attentional_state")):
        if name in names:
            layers[key] = names[name]
    num_layers = 0
    for prefix in ("encoder_lstm_", "encoder_"):
        while f"{prefix}{num_layers}" in names:
            layers[f"encoder_{num_layers}"] = names[f"{prefix}{num_layers}"]
            layers[f"decoder_{num_layers}"] = names[
                prefix.replace("encoder", "decoder") + str(num_layers)]
            num_layers += 1
    return layers, num_layers


def attention_maps(model, source, target_in):
    """Attention of a trained `lstm-attention` or `transformer` model:
    `(batch, target_length, source_length)` numpy weights (the
    transformer's last decoder block, averaged over heads), for the given
    source and teacher-forced decoder inputs."""
    kind = model_kind(model)
    if kind not in ATTENTION_MODELS:
        raise ValueError(f"a {kind} model has no attention")
    layers, num_layers = _layers_of(model)
    graph = _transformer_graph if kind == "transformer" else _lstm_graph
    _, scores = graph(layers, np.asarray(source, "int32"),
                      np.asarray(target_in, "int32"), num_layers)
    scores = keras.ops.convert_to_numpy(keras.ops.cast(scores, "float32"))
    return scores.mean(axis=1) if scores.ndim == 4 else scores


# --- report --------------------------------------------------------------------

ATTENTION_EXAMPLES = 4  # panels of attention.png
TEXT_EXAMPLES = 30  # lines of examples.txt


def translator_for(model, data):
    """The `GreedyTranslator` of a trained model on `data`'s vocabulary."""
    from dlrecipes.data.seq2seq import START
    from dlrecipes.models.translator import GreedyTranslator

    # A new functional model over the same layers: the translator saves
    # the weights, not the training run's compiled state.
    model = keras.Model(model.inputs, model.outputs, name=model.name)
    return GreedyTranslator(model, data.vocabulary,
                            data.vocabulary.index(START),
                            reverse=data.reverse, name="greedy_translator")


def seq2seq_report(model, data, run_dir, batch_size=256):
    """Greedy decoding of the test split, its scores beside the classical
    baselines', `translator.keras` (raw strings in, answers out),
    `examples.txt` and, for attention models, `attention.png`.

    Returns:
        metrics: `test_exact_match`, `test_char_accuracy` (greedy
        decoding: each step reads the model's own previous characters),
        the same for `test_1nn_*` (the nearest training query's answer)
        and `test_majority_*` (the commonest training character per
        position), and `examples` (test problems).
    """
    import os

    from dlrecipes.data import seq2seq as problems
    from dlrecipes.training.rundir import atomic_write_bytes

    translator = translator_for(model, data)
    queries = list(data.test_queries)
    predicted_ids = translator.predict(translator.encode(queries),
                                       batch_size=batch_size, verbose=0)
    (train_sources, _), train_targets = data.train
    (test_sources, _), test_targets = data.test
    metrics = {"test_" + k: v for k, v in
               problems.sequence_scores(predicted_ids, test_targets).items()}
    for name, guess in (
            ("1nn", problems.nearest_neighbour_baseline(
                train_sources, train_targets, test_sources)),
            ("majority", problems.majority_baseline(train_targets,
                                                    len(test_targets)))):
        for key, value in problems.sequence_scores(guess,
                                                   test_targets).items():
            metrics[f"test_{name}_{key}"] = value
    metrics["examples"] = len(queries)
    translator.save(os.path.join(run_dir, "translator.keras"))

    predicted = translator.decode(predicted_ids)
    width = max(len(q) for q in queries)
    lines = [f"{q:>{width}} = {p:<{data.target_length}}  "
             f"{'ok' if p == a else 'WRONG, ' + a}"
             for q, p, a in list(zip(queries, predicted,
                                     data.test_answers))[:TEXT_EXAMPLES]]
    atomic_write_bytes(os.path.join(run_dir, "examples.txt"),
                       ("\n".join(lines) + "\n").encode())
    if model_kind(model) in ATTENTION_MODELS:
        count = min(ATTENTION_EXAMPLES, len(queries))
        decoder_in = problems.decoder_inputs(predicted_ids[:count])
        maps = attention_maps(model, test_sources[:count], decoder_in)
        attention_figure(maps, test_sources[:count], predicted_ids[:count],
                         data.vocabulary, queries[:count],
                         os.path.join(run_dir, "attention.png"))
    return metrics


def attention_figure(maps, sources, predicted, vocabulary, titles, path):
    """One heat map per example: answer characters (rows) by the source
    characters as the encoder read them (columns)."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return

    def labels(ids):
        return ["_" if vocabulary[int(i)] == " " else vocabulary[int(i)]
                for i in ids]

    fig, axes = plt.subplots(1, len(maps), figsize=(3 * len(maps), 3),
                             squeeze=False)
    for ax, weights, source, answer, title in zip(axes[0], maps, sources,
                                                   predicted, titles):
        ax.imshow(weights, cmap="viridis", vmin=0, aspect="auto")
        ax.set_xticks(range(len(source)), labels(source))
        ax.set_yticks(range(len(answer)), labels(answer))
        ax.set_xlabel("source (as read)")
        ax.set_title(title)
    axes[0][0].set_ylabel("answer (greedy)")
    fig.suptitle("attention of each answer character ('_': padding)",
                 y=1.04)
    plots.save_figure(fig, path)
