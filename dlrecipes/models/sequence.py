"""Sequence encoders: one `(batch, time, channels)` -> `(batch, features)`
function for the forecasting, sequence- and text-classification recipes.

`sequence_encoder(x, model, ...)` builds one of the `ENCODERS` from Keras
layers and `dlrecipes.layers` (TCN, TransformerEncoder, position
encodings); a recipe adds its own inputs and head. `auto_dilations` and
`tcn_receptive_field` size a TCN without building one.

Importing this module imports no Keras (`dlrecipes.lazy`): a recipe module
imports it at the top, and Keras loads when a model is built.
"""

from dlrecipes.lazy import dl_layers, keras

ENCODERS = ("dense", "rnn", "lstm", "gru", "bilstm", "bigru", "cnn1d", "fcn",
            "tcn", "transformer")
# The fully convolutional network of Wang et al. 2017 (the time-series
# classification baseline): three conv-batch norm-ReLU blocks, then global
# average pooling; widths as multiples of `units` (64: their 128, 256, 128).
FCN_BLOCKS = ((2, 8), (4, 5), (2, 3))
# The recurrent encoders: Keras layer and whether it reads both directions.
RECURRENT = {"rnn": ("SimpleRNN", False), "lstm": ("LSTM", False),
             "gru": ("GRU", False), "bilstm": ("LSTM", True),
             "bigru": ("GRU", True)}


def tcn_receptive_field(kernel_size, dilations):
    """Input steps one output of `tcn_layer(units, kernel_size, dilations)`
    depends on: `1 + 2 (kernel_size - 1) sum(dilations)` (two causal
    convolutions per residual block), as `dlrecipes.layers.TCN`'s
    `receptive_field`."""
    return 1 + 2 * (kernel_size - 1) * sum(dilations)


def auto_dilations(length, kernel_size):
    """TCN dilations for sequences of `length` steps: 1, 2, 4 ... and one
    last rate that brings the receptive field as close to `length` as it
    gets without exceeding it (a field longer than the input only sees
    padding; one shorter by a step or two loses little). `(1,)` at least.

    Example: length 28, kernel_size 2 -> (1, 2, 4, 6), receptive field 27.
    """
    step = 2 * (kernel_size - 1)  # receptive field added per unit dilation
    if step == 0:
        return (1,)

    def field(dilations):
        return tcn_receptive_field(kernel_size, dilations)

    dilations = [1]
    while field(dilations + [2 * dilations[-1]]) <= length:
        dilations.append(2 * dilations[-1])
    rest = (length - field(dilations)) // step
    if rest > 0:
        dilations.append(rest)
    return tuple(dilations)


def tcn_layer(units, kernel_size, dilations, dropout=0.0,
              kernel_initializer="he_normal", activation="relu", name="tcn"):
    """The recipes' TCN: causal, last step out, skip connections, layer
    norm."""
    return dl_layers.TCN(filters=units, kernel_size=kernel_size,
               dilations=tuple(dilations), dropout=dropout, norm="layer",
               return_sequences=False, causal=True,
               kernel_initializer=kernel_initializer, activation=activation,
               name=name)


def sequence_encoder(x, model, *, units, num_layers=1, dropout=0.0,
                     kernel_size=3, dilations=(1, 2, 4), num_heads=2,
                     causal=False, position="sine", pool="mean",
                     kernel_initializer="he_normal", activation=None):
    """Encode `x` `(batch, time, channels)` into `(batch, features)`.

    Args:
        x: a symbolic Keras tensor `(batch, time, channels)`; it may carry a
            Keras mask (text), which the recurrent and transformer
            encoders use.
        model: one of `ENCODERS`.
        units: width: dense units, RNN units (per direction), conv filters,
            transformer hidden size (when it projects its input, see
            `position`) and half its feed-forward width.
        num_layers: stacked layers (TCN: one TCN, of `len(dilations)`
            residual blocks).
        dropout: dropout rate between layers.
        kernel_size: kernel length of `cnn1d` and `tcn`.
        dilations: the TCN's dilation rates.
        num_heads: attention heads of `transformer`.
        causal: `transformer` attends to the past only and the encoding is
            the last step (forecasting); otherwise see `pool`. `cnn1d` pads
            causally.
        position: `transformer` only: "sine" (`SinePositionEncoding`),
            "learned" (`PositionEmbedding`) or "none" (the input already
            holds positions, e.g. `TokenAndPositionEmbedding`).
        pool: non-causal `transformer` only: "mean" over the (unmasked)
            steps, or "flatten" (fixed-length inputs without masks; keeps
            where each feature came from).
        kernel_initializer: initializer of the dense and conv kernels
            (recurrent layers keep Keras' defaults).
        activation: the hidden layers' activation (dense, conv, TCN, the
            transformer's feed-forward); None: each model's own (relu;
            gelu in the transformer). Recurrent cells keep tanh.

    Returns:
        A symbolic tensor `(batch, features)`.
    """
    init = kernel_initializer
    act = activation or "relu"
    if model == "dense":
        x = keras.layers.Flatten(name="flatten")(x)
        for i in range(num_layers):
            x = keras.layers.Dense(units, activation=act,
                                   kernel_initializer=init,
                                   name=f"dense_{i}")(x)
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        return x
    if model in RECURRENT:
        kind, both = RECURRENT[model]
        rnn = getattr(keras.layers, kind)
        for i in range(num_layers):
            last = i == num_layers - 1
            layer = rnn(units, return_sequences=not last, name=f"{model}_{i}")
            if both:
                layer = keras.layers.Bidirectional(layer, name=f"{model}_{i}")
            x = layer(x)  # (batch, time, units) or (batch, units) at last
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        return x
    if model == "cnn1d":
        padding = "causal" if causal else "same"
        for i in range(num_layers):
            x = keras.layers.Conv1D(units, kernel_size, padding=padding,
                                    activation=act,
                                    kernel_initializer=init,
                                    name=f"conv_{i}")(x)
        x = keras.layers.GlobalMaxPooling1D(name="max_pool")(x)
        return keras.layers.Dropout(dropout, name="dropout")(x)
    if model == "fcn":
        for i, (factor, size) in enumerate(FCN_BLOCKS):
            x = dl_layers.ConvNormAct(
                units * factor, size, rank=1, norm="batch", activation=act,
                kernel_initializer=init, name=f"fcn_{i}")(x)
        x = keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
        return keras.layers.Dropout(dropout, name="dropout")(x)
    if model == "tcn":
        x = tcn_layer(units, kernel_size, dilations, dropout=dropout,
                      kernel_initializer=init, activation=act)(x)  # (batch, units)
        return x
    if model == "transformer":
        if position != "none":
            x = keras.layers.Dense(units, kernel_initializer="glorot_uniform",
                                   name="projection")(x)  # (b, time, units)
            if position == "learned":
                positions = dl_layers.PositionEmbedding(
                    x.shape[1], name="position_embedding")(x)
            else:
                positions = dl_layers.SinePositionEncoding(
                    name="position_encoding")(x)
            x = keras.layers.Add(name="add_position")([x, positions])
        for i in range(num_layers):
            x = dl_layers.TransformerEncoder(
                num_heads=num_heads, intermediate_dim=2 * units,
                dropout=dropout, causal=causal,
                activation=activation or "gelu", name=f"transformer_{i}")(x)
        if causal:
            return x[:, -1, :]  # (batch, units): the step that saw it all
        if pool == "flatten":
            return keras.layers.Flatten(name="flatten")(x)  # (b, time*units)
        return keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    raise ValueError(f"`model` must be one of {', '.join(ENCODERS)}. "
                     f"Received: model={model!r}")

