"""Per-layer update-to-weight ratio, the classic learning-rate health check."""

import warnings

import keras
import numpy as np

WINDOWS = ("step", "epoch")


def _snapshot(layer):
    return [
        np.asarray(keras.ops.convert_to_numpy(w.value), dtype=np.float64)
        for w in layer.trainable_weights
    ]


def _ratio(before, after):
    """||after - before|| / ||before|| over all the layer's weights at once."""
    delta = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before)))
    norm = np.sqrt(sum(np.sum(b**2) for b in before))
    if norm == 0.0:
        return 0.0 if delta == 0.0 else float("inf")
    return float(delta / norm)


@keras.saving.register_keras_serializable(package="dlrecipes")
class UpdateRatioMonitor(keras.callbacks.Callback):
    """Logs each layer's update-to-weight ratio and warns when it is off.

    For a layer with trainable weights `W_1 ... W_k` (kernel, bias, norm
    scales ...; all of them, taken as one vector) the ratio is

    ```
    ratio = sqrt(sum_i ||W_i_after - W_i_before||^2) / sqrt(sum_i ||W_i_before||^2)
    ```

    (`inf` when the weights were all zero and moved, 0 when they did not
    move). With `window="step"` (default) `before`/`after` bracket the first
    training step of the epoch (the first `steps_per_execution` steps when
    that is > 1): this per-step ratio is the quantity whose healthy value is
    about 1e-3 (Karpathy, CS231n), far below it the learning rate is too
    small, far above it too large. With `window="epoch"` they bracket the
    whole epoch (snapshot in `on_epoch_begin`, compare in `on_epoch_end`),
    which measures drift and is typically many times larger; widen the
    band accordingly.

    The ratio of every monitored layer is written into the epoch `logs` as
    `update_ratio/<layer name>` (so `History`, `CSVLogger` and
    `TensorBoard` record it) and into `self.history`. Put this callback
    before `CSVLogger`/`TensorBoard` in the `callbacks` list: callbacks run
    in list order and those two read the logs when their turn comes.

    An epoch with ratios outside `[low, high]` raises one `UserWarning`
    naming every offending layer (at most one warning per epoch).

    Args:
        low: float > 0, lower end of the healthy band.
        high: float > `low`, upper end of the healthy band.
        log_every: int >= 1, measure every `log_every`-th epoch of a `fit`
            call, counting from its first epoch (which is always measured,
            so `CSVLogger` sees the keys in its first row).
        layers: None for every top-level layer of the model that has
            trainable weights (a nested model counts as one layer), or a
            list of layer names.
        window: `"step"` or `"epoch"`, see above.
        verbose: 0 silent, 1 warn when out of band, 2 also print every
            measured ratio.

    Attributes:
        history: dict `update_ratio/<layer>` -> list of ratios, one per
            measured epoch; `epoch` lists those epochs. Reset in
            `on_train_begin`.

    Example:

    >>> monitor = UpdateRatioMonitor(low=1e-4, high=1e-2)
    >>> # model.fit(x, y, callbacks=[monitor, keras.callbacks.CSVLogger(p)])

    References:
        - [CS231n, "Ratio of weights:updates"](
          https://cs231n.github.io/neural-networks-3/#ratio)
    """

    def __init__(
        self,
        low=1e-4,
        high=1e-2,
        log_every=1,
        layers=None,
        window="step",
        verbose=1,
    ):
        super().__init__()
        if isinstance(low, bool) or not isinstance(low, (int, float)) or (
            not low > 0
        ):
            raise ValueError(f"`low` must be a positive number. Received: low={low}")
        if isinstance(high, bool) or not isinstance(high, (int, float)) or (
            not high > low
        ):
            raise ValueError(
                f"`high` must be a number greater than `low` ({low}). "
                f"Received: high={high}"
            )
        if isinstance(log_every, bool) or not isinstance(log_every, int) or (
            log_every < 1
        ):
            raise ValueError(
                "`log_every` must be a positive integer. "
                f"Received: log_every={log_every}"
            )
        if isinstance(layers, str):
            layers = [layers]
        if window not in WINDOWS:
            raise ValueError(
                f"`window` must be one of {', '.join(WINDOWS)}. "
                f"Received: window={window}"
            )
        self.low = float(low)
        self.high = float(high)
        self.log_every = log_every
        self.layers = None if layers is None else list(layers)
        self.window = window
        self.verbose = verbose
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []
        self._epochs_seen = 0
        self._measure = False
        self._before = None
        self._ratios = None
        model = self.model
        if self.layers is None:
            self._layers = [layer for layer in model.layers if layer.trainable_weights]
        else:
            names = [layer.name for layer in model.layers]
            self._layers = []
            for name in self.layers:
                if name not in names:
                    raise ValueError(
                        f"UpdateRatioMonitor: no layer named '{name}'. The "
                        f"model's layers are: {', '.join(names)}. "
                        f"Received: layers={self.layers}"
                    )
                layer = model.get_layer(name)
                if not layer.trainable_weights:
                    raise ValueError(
                        f"UpdateRatioMonitor: layer '{name}' has no trainable "
                        f"weights. Received: layers={self.layers}"
                    )
                self._layers.append(layer)

    def _take_snapshot(self):
        self.model  # noqa: B018  (under JAX, reading .model syncs weights)
        self._before = {layer.name: _snapshot(layer) for layer in self._layers}

    def _compare(self):
        self.model  # noqa: B018
        self._ratios = {
            layer.name: _ratio(self._before[layer.name], _snapshot(layer))
            for layer in self._layers
        }
        self._before = None

    def on_epoch_begin(self, epoch, logs=None):
        self._measure = self._epochs_seen % self.log_every == 0
        self._epochs_seen += 1
        self._ratios = None
        self._first_batch = True
        if self._measure and self.window == "epoch":
            self._take_snapshot()

    def on_train_batch_begin(self, batch, logs=None):
        if self._measure and self.window == "step" and self._first_batch:
            self._take_snapshot()

    def on_train_batch_end(self, batch, logs=None):
        if self._first_batch:
            self._first_batch = False
            if self._measure and self.window == "step":
                self._compare()

    def on_epoch_end(self, epoch, logs=None):
        if not self._measure:
            return
        if self.window == "epoch":
            self._compare()
        if self._ratios is None:  # an epoch without a training step
            return
        self.epoch.append(epoch)
        for name, ratio in self._ratios.items():
            key = f"update_ratio/{name}"
            self.history.setdefault(key, []).append(ratio)
            if logs is not None:
                logs[key] = ratio
        if self.verbose >= 2:
            print(
                f"Epoch {epoch + 1} update ratios: "
                + ", ".join(f"{n}={r:.2e}" for n, r in self._ratios.items())
            )
        if self.verbose >= 1:
            bad = {
                n: r
                for n, r in self._ratios.items()
                if not self.low <= r <= self.high
            }
            if bad:
                warnings.warn(
                    f"Epoch {epoch + 1}: update/weight ratio outside the "
                    f"healthy band [{self.low:.0e}, {self.high:.0e}] "
                    f"({self.window} window) for "
                    + ", ".join(f"{n}={r:.2e}" for n, r in bad.items())
                    + ". Far below: learning rate too small (or frozen "
                    "layer); far above: learning rate too large.",
                    UserWarning,
                    stacklevel=2,
                )

    def get_config(self):
        return {
            "low": self.low,
            "high": self.high,
            "log_every": self.log_every,
            "layers": self.layers,
            "window": self.window,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
