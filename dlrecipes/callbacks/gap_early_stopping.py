"""Stops training when the validation loss pulls away from the training loss."""

import math
import warnings

import keras


@keras.saving.register_keras_serializable(package="dlrecipes")
class GapEarlyStopping(keras.callbacks.Callback):
    """Stops training once the generalization gap stays above a margin.

    At the end of every epoch, with `train, val = logs[monitor_pair[0]],
    logs[monitor_pair[1]]`, the gap is

    ```
    gap = val - train                          (relative=False)
    gap = (val - train) / max(|train|, 1e-12)  (relative=True)
    ```

    An epoch whose gap is strictly greater than `margin` is a violation; any
    other epoch resets the count. Training stops at the end of the epoch
    that makes `max(patience, 1)` consecutive violations (the counting of
    `keras.callbacks.EarlyStopping`: `patience=0` and `patience=1` both stop
    at the first violation). When this callback stopped training and
    `restore_best_weights` is True, the weights of the epoch with the lowest
    `val` seen in this `fit` call are restored in `on_train_end`; when it
    did not stop training the final weights are left alone.

    The training loss in `logs` is the running mean over the epoch (with
    dropout active), the validation loss is measured at the epoch's end, so
    early in training the gap is usually negative.

    State (`wait`, `best`, `best_epoch`, `best_weights`, `stopped_epoch`,
    `gaps`) is reset in `on_train_begin`, so one instance can serve several
    `fit` calls.

    Args:
        margin: float, the gap tolerated (absolute, or a fraction of the
            training loss when `relative=True`). May be negative.
        relative: bool, measure the gap relative to the training loss.
        patience: int >= 0, consecutive violations tolerated (see above).
        restore_best_weights: bool, restore the lowest-`val` weights when
            this callback stops training.
        monitor_pair: pair of log keys `(train_key, val_key)`.
        verbose: int, 1 prints a line when training stops.

    Attributes:
        stopped_epoch: the epoch at which training stopped, or None.
        best: lowest `val` seen; `best_epoch` its epoch.
        gaps: list of the gap of each epoch of the last `fit`.

    Example:

    >>> stopper = GapEarlyStopping(margin=0.1, patience=3)
    >>> # model.fit(x, y, validation_data=(xv, yv), callbacks=[stopper])
    """

    def __init__(
        self,
        margin=0.0,
        relative=False,
        patience=0,
        restore_best_weights=True,
        monitor_pair=("loss", "val_loss"),
        verbose=0,
    ):
        super().__init__()
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not math.isfinite(margin)
        ):
            raise ValueError(
                f"`margin` must be a finite number. Received: margin={margin}"
            )
        if isinstance(patience, bool) or not isinstance(patience, int) or (
            patience < 0
        ):
            raise ValueError(
                "`patience` must be a non-negative integer. "
                f"Received: patience={patience}"
            )
        if (
            isinstance(monitor_pair, str)
            or len(monitor_pair) != 2
            or not all(isinstance(k, str) for k in monitor_pair)
        ):
            raise ValueError(
                "`monitor_pair` must be a pair of log keys (train, val). "
                f"Received: monitor_pair={monitor_pair}"
            )
        self.margin = float(margin)
        self.relative = bool(relative)
        self.patience = patience
        self.restore_best_weights = bool(restore_best_weights)
        self.monitor_pair = tuple(monitor_pair)
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.wait = 0
        self.best = math.inf
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None
        self.gaps = []

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train_key, val_key = self.monitor_pair
        if train_key not in logs or val_key not in logs:
            warnings.warn(
                f"GapEarlyStopping needs `{train_key}` and `{val_key}` in the "
                f"logs (pass validation data to fit). Available: "
                f"{', '.join(logs)}",
                stacklevel=2,
            )
            return
        train, val = float(logs[train_key]), float(logs[val_key])
        gap = val - train
        if self.relative:
            gap = gap / max(abs(train), 1e-12)
        self.gaps.append(gap)
        logs["gap"] = gap  # for History, CSVLogger and TensorBoard

        if val < self.best:
            self.best = val
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()

        if gap > self.margin:
            self.wait += 1
        else:
            self.wait = 0
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch is None:
            return
        if self.verbose > 0:
            kind = "relative gap" if self.relative else "gap"
            print(
                f"Epoch {self.stopped_epoch + 1}: gap early stopping "
                f"({kind} {self.gaps[-1]:.4g} > margin {self.margin:.4g})."
            )
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)

    def get_config(self):
        return {
            "margin": self.margin,
            "relative": self.relative,
            "patience": self.patience,
            "restore_best_weights": self.restore_best_weights,
            "monitor_pair": list(self.monitor_pair),
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
