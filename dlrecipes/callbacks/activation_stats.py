"""Mean and standard deviation of chosen layers' activations on a fixed batch."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="dlrecipes")
class ActivationStats(keras.callbacks.Callback):
    """Logs the mean and std of chosen layers' outputs on a fixed batch.

    In `on_train_begin` the callback builds a probe
    `keras.Model(model.inputs, [model.get_layer(n).output for n in
    layer_names])`, which shares the model's layers (hence its current
    weights). Every `every`-th epoch of a `fit` call (counting from its
    first epoch, which is always measured) it runs the probe on `x` in
    inference mode (`training=False`) and computes, over all elements of
    each layer's output,

    ```
    act_mean/<name> = mean(a)        act_std/<name> = std(a)   (ddof = 0)
    ```

    written into the epoch `logs` (so `History`, `CSVLogger` and
    `TensorBoard` record them) and into `self.history`. Put this callback
    before `CSVLogger`/`TensorBoard` in the `callbacks` list: callbacks run
    in list order and those two read the logs when their turn comes.

    The model must be functional or a built `Sequential` model (it needs
    `model.inputs` and layer outputs); subclassed models are rejected with a
    `ValueError`, and so are layers with several outputs.

    `get_config` holds `layer_names` and `every` but not the batch `x`,
    which is data, not configuration: rebuild with
    `ActivationStats.from_config({**config, "x": x})`.

    Args:
        layer_names: list of layer names (or one name) of the model.
        x: the fixed input batch: an array, or a list/dict of arrays
            matching `model.inputs`. Keep it small (one batch).
        every: int >= 1, measure every `every`-th epoch.

    Attributes:
        history: dict `act_mean/<name>` and `act_std/<name>` -> list of
            values, one per measured epoch; `epoch` lists those epochs.
            Reset in `on_train_begin`.

    Example:

    >>> stats = ActivationStats(["block_1", "block_2"], x_val[:64])
    >>> # model.fit(x, y, callbacks=[stats, keras.callbacks.CSVLogger(p)])
    """

    def __init__(self, layer_names, x, every=1):
        super().__init__()
        if isinstance(layer_names, str):
            layer_names = [layer_names]
        layer_names = list(layer_names)
        if not layer_names or not all(isinstance(n, str) for n in layer_names):
            raise ValueError(
                "`layer_names` must be a non-empty list of layer names. "
                f"Received: layer_names={layer_names}"
            )
        if x is None:
            raise ValueError(
                "`x` must be an input batch for the model. Received: x=None"
            )
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(
                f"`every` must be a positive integer. Received: every={every}"
            )
        self.layer_names = layer_names
        self.x = x
        self.every = every
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []
        self._epochs_seen = 0
        model = self.model
        inputs = getattr(model, "inputs", None)
        if inputs:
            # The structure `x` follows: one tensor, or the model's list/dict.
            inputs = inputs[0] if len(inputs) == 1 else model.input
        else:
            raise ValueError(
                "ActivationStats needs a functional or built Sequential model "
                "(one with `model.inputs` and layer outputs); subclassed "
                "models have no layer outputs to probe. "
                f"Received: model={type(model).__name__}"
            )
        names = [layer.name for layer in model.layers]
        outputs = []
        for name in self.layer_names:
            if name not in names:
                raise ValueError(
                    f"ActivationStats: no layer named '{name}'. The model's "
                    f"layers are: {', '.join(names)}. "
                    f"Received: layer_names={self.layer_names}"
                )
            output = model.get_layer(name).output
            if isinstance(output, (list, tuple, dict)):
                raise ValueError(
                    f"ActivationStats: layer '{name}' has several outputs; "
                    "choose single-output layers. "
                    f"Received: layer_names={self.layer_names}"
                )
            outputs.append(output)
        self._probe = keras.Model(inputs, outputs, name="activation_probe")

    def on_epoch_end(self, epoch, logs=None):
        measure = self._epochs_seen % self.every == 0
        self._epochs_seen += 1
        if not measure:
            return
        self.model  # noqa: B018  (under JAX, reading .model syncs weights)
        activations = self._probe(self.x, training=False)
        if len(self.layer_names) == 1:  # a one-output model returns a tensor
            activations = [activations]
        self.epoch.append(epoch)
        for name, a in zip(self.layer_names, activations):
            a = np.asarray(keras.ops.convert_to_numpy(a), dtype=np.float64)
            for key, value in (
                (f"act_mean/{name}", float(np.mean(a))),
                (f"act_std/{name}", float(np.std(a))),
            ):
                self.history.setdefault(key, []).append(value)
                if logs is not None:
                    logs[key] = value

    def on_train_end(self, logs=None):
        self._probe = None

    def get_config(self):
        return {"layer_names": self.layer_names, "every": self.every}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
