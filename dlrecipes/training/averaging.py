"""Averaged weights in training: `--ema`, `--swa-start`, `--snapshots`.

- `EMAWeights`: the moving average is Keras' own (`use_ema=True` on the
  optimizer, kept in the optimizer's variables, so every backup holds it
  and a resumed run continues it exactly); this callback is Keras'
  `SwapEMAWeights` (the average is what validation measures), plus
  `applied()` (the best checkpoint saves the average) and the end of each
  `fit`: the average becomes the weights there, as Keras'
  `finalize_variable_values` leaves them after `fit`, but before the
  backup is written, so a run resumed after that epoch starts the next
  phase from the same weights.
- `SWAWeights`: stochastic weight averaging (Izmailov et al. 2018): the
  mean of the weights at the end of every epoch from `start_epoch` on,
  kept in host memory and written with every backup; at the end the model
  takes the mean and its batch-norm statistics are recomputed on the
  training data (`recompute_batch_norm`): the statistics of the epochs'
  weights do not fit their mean.
- `SnapshotSaver`: a model file at the end of each learning-rate cycle
  (Huang et al. 2017, "Snapshot ensembles"); `snapshot_figures` scores
  their prediction average, their parameter average and the last one.

Each averaging callback keeps `raw`: the last epoch's own weights, so a
run reports the average beside what it replaced.
"""

import contextlib
import logging
import os

import keras
import numpy as np

from dlrecipes.training.callbacks import finite_loss, writing


def float_variables(model):
    """The model's floating-point variables (weights and batch-norm
    statistics; not the integer seed states of random layers)."""
    return [v for v in model.variables
            if "float" in keras.backend.standardize_dtype(v.dtype)]


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]




def _last_epoch(callback, epoch):
    return (epoch + 1 >= (callback.params or {}).get("epochs", epoch + 1)
            or callback.model.stop_training)


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' `SwapEMAWeights` (validation measures the moving average of
    an optimizer with `use_ema=True`) for a run directory: `applied()` to
    save the average, the average made the weights at the end of a `fit`
    (before the backup of that epoch), and `raw`, the last epoch's own
    trainable weights."""

    def __init__(self):
        super().__init__(swap_on_epoch=False)
        self.raw = None

    @contextlib.contextmanager
    def applied(self):
        """The model holds the moving average inside the block."""
        self.on_test_begin()
        try:
            yield
        finally:
            self.on_test_end()

    def variables(self, model):
        return list(model.trainable_variables)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if _last_epoch(self, epoch):
            trainable = self.variables(self.model)
            self.raw = values(trainable)
            self.model.optimizer.finalize_variable_values(trainable)

    def backup_arrays(self):
        return list(self.raw) if self.raw is not None else []

    def restore_arrays(self, arrays):
        self.raw = list(arrays) if arrays else None


class SWAWeights(keras.callbacks.Callback):
    """The mean of the model's floating-point variables at the end of every
    epoch after `start_epoch` epochs (epochs count from 0 across phases);
    `finish(model, x, batch_size)` gives the model that mean with its
    batch-norm statistics recomputed. A diverged epoch is not averaged."""

    def __init__(self, start_epoch):
        super().__init__()
        self.start_epoch = int(start_epoch)
        self.count = 0
        self.average = None
        self.raw = None

    def variables(self, model):
        return float_variables(model)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_epoch or not finite_loss(logs):
            return
        current = values(self.variables(self.model))
        self.count += 1
        if self.average is None:
            self.average = current
        else:
            for mean, value in zip(self.average, current):
                mean += (value - mean) / self.count

    def backup_arrays(self):
        if self.average is None:
            return []
        return [np.asarray(self.count, "int64"), *self.average]

    def restore_arrays(self, arrays):
        if len(arrays):
            self.count = int(arrays[0])
            self.average = [np.array(a) for a in arrays[1:]]

    def finish(self, model, x, batch_size):
        """Give `model` the average (if any epoch was averaged) and
        recompute its batch-norm statistics on `x`; keeps `raw`."""
        if self.average is None:
            return False
        variables = self.variables(model)
        self.raw = values(variables)
        for v, mean in zip(variables, self.average):
            v.assign(mean.astype(keras.backend.standardize_dtype(v.dtype)))
        recompute_batch_norm(model, x, batch_size)
        return True


def batch_norm_layers(model):
    """Every `BatchNormalization` layer inside `model`, nested models
    included."""
    found, seen, stack = [], set(), [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        stack.extend(_sublayers(layer))
    return found


def _sublayers(layer):
    """A model's layers and the layers a layer holds as attributes (a
    block's convolution and normalization), directly or in lists."""
    children = list(getattr(layer, "layers", None) or [])
    for value in vars(layer).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        children += [v for v in items if isinstance(v, keras.layers.Layer)]
    return children


def recompute_batch_norm(model, x, batch_size):
    """Batch-norm moving statistics of `model` recomputed as the plain
    mean over the batches of `x` (arrays, or an iterable of `(x, y)`
    batches) in training mode: batch `k` is given weight `1/k`
    (momentum `(k-1)/k`), the update torch's `swa_utils.update_bn` makes.
    Layers that are not trainable (a frozen backbone) keep theirs."""
    layers = [b for b in batch_norm_layers(model) if b.trainable]
    if not layers:
        return 0
    momenta = [b.momentum for b in layers]
    batches = 0
    try:
        for xb in _batches(x, batch_size):
            batches += 1
            for b in layers:
                b.momentum = (batches - 1) / batches
            model(xb, training=True)
    finally:
        for b, momentum in zip(layers, momenta):
            b.momentum = momentum
    return batches


def _batches(x, batch_size):
    if isinstance(x, np.ndarray) or hasattr(x, "shape"):
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size]
        return
    for batch in x:  # a dataset of (x, y) batches
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


class SnapshotSaver(keras.callbacks.Callback):
    """Saves `snapshots/epoch-NNNN.keras` (1-based epoch) at the end of
    every `cycle` epochs: the minima a cyclic learning rate visits. A
    resumed run that repeats a cycle's end writes the same weights again
    (written under a temporary name, then renamed)."""

    def __init__(self, directory, cycle):
        super().__init__()
        self.directory = directory
        self.cycle = int(cycle)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.cycle or not finite_loss(logs):
            return
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"epoch-{epoch + 1:04d}.keras")
        tmp = os.path.join(self.directory, f".tmp-epoch-{epoch + 1:04d}.keras")
        with writing(path, temporary=tmp):
            self.model.save(tmp)
            os.replace(tmp, path)


def snapshot_paths(directory):
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, name)
            for name in sorted(os.listdir(directory))
            if name.startswith("epoch-") and name.endswith(".keras")]


def snapshot_figures(paths, data, batch_size):
    """Test figures of the snapshots at `paths`: their prediction average,
    their parameter average (batch norm recomputed on the training data)
    and the last snapshot, as `metrics.json` entries."""
    import dlrecipes
    from dlrecipes.ensemble import (classification_figures,
                                    combine_predictions, is_classifier,
                                    regression_figures)
    from dlrecipes.training.reports import test_arrays

    # TensorFlow warns (several lines) when it traces a predict function
    # for the fifth model in one process: expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    x, y = test_arrays(data)
    y = np.asarray(y)
    models = [dlrecipes.load_model(p, compile=False) for p in paths]
    predictions = [np.asarray(m.predict(x, batch_size=256, verbose=0))
                   for m in models]
    classifier = is_classifier(y, predictions[0].shape[1:],
                               data.num_classes)
    figures = classification_figures if classifier else regression_figures
    key = "accuracy" if classifier else "mae"
    averaged = models[-1]
    means = [np.mean(ws, axis=0) for ws in zip(
        *(values(float_variables(m)) for m in models))]
    for v, mean in zip(float_variables(averaged), means):
        v.assign(mean)
    train_x = data.train[0] if isinstance(data.train, tuple) else data.train
    last = figures(predictions[-1], y)[key]
    recompute_batch_norm(averaged, train_x, batch_size)
    average = figures(np.asarray(averaged.predict(
        x, batch_size=256, verbose=0)), y)[key]
    ensemble = figures(combine_predictions(predictions, "mean"), y)[key]
    return {
        "snapshots": [os.path.basename(p) for p in paths],
        f"snapshot_ensemble_test_{key}": ensemble,
        f"snapshot_average_test_{key}": average,
        f"last_snapshot_test_{key}": last,
        f"snapshot_members_test_{key}": [figures(p, y)[key]
                                         for p in predictions],
    }
