"""Crash-safe, exact resume: an atomic per-epoch backup and an epoch-keyed
data order.

Keras' `BackupAndRestore` writes its weights file and its metadata in
place, one after the other: a kill during the save leaves a truncated file
or weights one epoch ahead of the metadata, and a resumed epoch sees the data
in a different order than it would have. Here:

- `EpochBackup` writes each epoch's state (model and optimizer variables,
  the epoch, the state of `EarlyStopping`/`ReduceLROnPlateau`) into a fresh
  folder and renames it into place, so a backup is either whole or absent;
  the newest whole one is restored. The variables go to a `.keras` archive,
  whose HDF5 part Keras builds in memory: a full disk fails a plain Python
  write with a clean `OSError`. (`save_weights` to a `.weights.h5` path has
  HDF5 write the file itself: on a full disk its failed flush crashes the
  interpreter, in `h5py.File.close` or at exit.)
- `EpochArrays` feeds `(x, y)` arrays in an order drawn from `(seed,
  epoch)` alone, so epoch 5 sees the same batches whether or not the run
  was interrupted at epoch 3.

Together, a model without random layers resumed after a kill ends with the
same weights as an uninterrupted run (tests/test_resume.py). That holds for
data given as arrays (every embedded dataset); a `tf.data` pipeline
(tensorflow-datasets, folders) shuffles with its own seeded buffer, and a
resumed run continues with a different order there.
"""

import io
import json
import math
import os
import shutil
import time
import warnings

import keras
import numpy as np

from dlrecipes.training.callbacks import (finite_loss, holding, snapshot,
                                          writing)
from dlrecipes.training.rundir import atomic_write_json

WEIGHTS = "state.keras"
OLD_WEIGHTS = "state.weights.h5"  # backups of earlier versions: still read
STATE = "state.json"
ARRAYS = "arrays.npz"  # callbacks' arrays (an SWA average), when any

# The callbacks whose counters decide when training stops or the learning
# rate drops; restored so a resumed run decides as the uninterrupted one.
_CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch",
                                    "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
}


def _to_json(value):
    """A callback counter as JSON: ints stay ints, inf becomes "inf"."""
    if value is None or isinstance(value, (bool, int)):
        return value
    value = float(np.asarray(value))
    return value if math.isfinite(value) else repr(value)


def _from_json(value):
    return float(value) if isinstance(value, str) else value


class EpochBackup(keras.callbacks.Callback):
    """Saves the training state after every epoch; restores the newest.

    Use `start_epoch(epochs)` for `fit`'s `initial_epoch`, and list this
    callback after the callbacks in `callbacks_to_restore` (it restores
    their counters in `on_train_begin`, after they reset themselves). The
    state is restored once per process: a second `fit` in the same process
    (transfer learning's second phase) continues from memory.

    The training engine sets `phase` (the index of the recipe's phase)
    before each phase's `fit`: the optimizer state and the callbacks'
    counters are restored only into the phase that saved them, since a new
    phase starts with a fresh optimizer and fresh callbacks.

    With `every` > 0 an epoch is saved only once `every` seconds have
    passed since the last save (or since training began), and always at
    the last epoch of a `fit` and at an epoch that stops training: on small
    data the save costs as much as the epoch itself, and a resumed run that
    repeats the epochs after an older backup ends with the same weights
    (the data order depends on the epoch alone).

    Args:
        directory: where `epoch-NNNN/` folders go (created as needed).
        callbacks_to_restore: callbacks whose counters are saved too.
        every: seconds between saves (0: after every epoch).
    """

    def __init__(self, directory, callbacks_to_restore=(), every=0.0):
        super().__init__()
        self.directory = directory
        self.callbacks_to_restore = list(callbacks_to_restore)
        self.every = float(every)
        # Called before each save (a deferred best checkpoint writes first).
        self.before_save = []
        self.phase = 0
        self._restored = False
        self._saved_at = time.monotonic()
        self._unsaved = None

    weights_name = WEIGHTS  # the whole model and optimizer, `.keras`

    # ------------------------------------------------------------- reading

    def latest(self):
        """The newest complete `epoch-NNNN` folder, or None."""
        if not os.path.isdir(self.directory):
            return None
        done = sorted(name for name in os.listdir(self.directory)
                      if name.startswith("epoch-") and os.path.isfile(
                          os.path.join(self.directory, name, STATE)))
        return os.path.join(self.directory, done[-1]) if done else None

    def state(self):
        path = self.latest()
        if path is None:
            return None
        with open(os.path.join(path, STATE)) as f:
            return json.load(f)

    def start_epoch(self, epochs):
        """The epoch `fit` starts from: 0 without a backup, `epochs` when
        the backed-up run had stopped early (nothing left to train)."""
        state = self.state()
        if state is None:
            return 0
        if state.get("stopped"):
            return epochs
        return min(int(state["epoch"]), epochs)

    # ------------------------------------------------------------ restoring

    def on_train_begin(self, logs=None):
        self._saved_at = time.monotonic()
        if self._restored:
            return
        self._restored = True
        path = self.latest()
        if path is None:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        weights = os.path.join(path, WEIGHTS)
        if not os.path.isfile(weights):
            weights = os.path.join(path, OLD_WEIGHTS)
        state = self.state()
        if state.get("phase", 0) != self.phase:
            # A backup from the end of an earlier phase: its weights, but
            # this phase starts with a fresh optimizer and fresh callback
            # counters, as it does in an uninterrupted run.
            fresh = [keras.ops.convert_to_numpy(v)
                     for v in optimizer.variables] if optimizer else []
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", "Skipping variable loading for optimizer")
                self.model.load_weights(weights)
            for variable, value in zip(optimizer.variables if optimizer
                                       else (), fresh):
                variable.assign(value)
            self._restore_arrays(path)
            return
        self.model.load_weights(weights)
        self._restore_arrays(path)
        saved = state.get("callbacks", {})
        for i, callback in enumerate(self.callbacks_to_restore):
            for name, value in saved.get(str(i), {}).items():
                setattr(callback, name, _from_json(value))

    def _keeping_arrays(self):
        return [(i, cb) for i, cb in enumerate(self.callbacks_to_restore)
                if hasattr(cb, "backup_arrays")]

    def _arrays(self):
        """`{"<callback index>/<k>": array}` of the callbacks that keep
        arrays of their own (`backup_arrays()` / `restore_arrays(list)`:
        an SWA average lives in host memory, not in a Keras variable)."""
        return {f"{i}/{k}": np.array(a) for i, cb in self._keeping_arrays()
                for k, a in enumerate(cb.backup_arrays())}

    def _restore_arrays(self, path):
        file = os.path.join(path, ARRAYS)
        saved = {}
        if os.path.isfile(file):
            with np.load(file) as f:
                saved = {name: f[name] for name in f.files}
        for i, cb in self._keeping_arrays():
            keys = sorted((int(k.split("/")[1]), k) for k in saved
                          if k.split("/")[0] == str(i))
            cb.restore_arrays([saved[k] for _, k in keys])

    # --------------------------------------------------------------- saving

    def due(self, epoch, logs=None):
        """Whether `epoch` (0-based, just ended) is saved."""
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 1)
        return (self.every <= 0 or last or self.model.stop_training
                or not finite_loss(logs)
                or time.monotonic() - self._saved_at >= self.every)

    def on_epoch_end(self, epoch, logs=None):
        self._restored = True  # from here on, memory is newer than disk
        self._unsaved = None
        if not self.due(epoch, logs):
            # Kept in memory, for `save_unsaved` after an interruption.
            self._unsaved = (epoch, self._state(epoch, logs),
                             snapshot(self.model), self._arrays())
            return
        self.save(epoch, logs)
        self._saved_at = time.monotonic()

    def save_unsaved(self):
        """After an interruption (an exception out of `fit`, Ctrl-C):
        write the newest epoch-end state not yet on disk, so the same
        command resumes from there. Returns whether it wrote one."""
        unsaved, self._unsaved = getattr(self, "_unsaved", None), None
        if unsaved is None:
            return False
        epoch, state, values, arrays = unsaved
        with holding(self.model, values):
            self.save(epoch, state=state, arrays=arrays)
        return True

    def save(self, epoch, logs=None, state=None, arrays=None):
        """Write the state after `epoch` (0-based) and drop older ones."""
        for hook in self.before_save:
            hook()
        state = state if state is not None else self._state(epoch, logs)
        arrays = arrays if arrays is not None else self._arrays()
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, f"epoch-{epoch + 1:04d}")
        tmp = os.path.join(self.directory, f".tmp-epoch-{epoch + 1:04d}")
        shutil.rmtree(tmp, ignore_errors=True)
        with writing(final, temporary=tmp):
            os.makedirs(tmp)
            self.model.save(os.path.join(tmp, WEIGHTS))
            if arrays:
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                with open(os.path.join(tmp, ARRAYS), "wb") as f:
                    f.write(buffer.getvalue())
            atomic_write_json(os.path.join(tmp, STATE), state)
        if os.path.isdir(final):  # left by an earlier attempt at this epoch
            shutil.rmtree(final)
        os.rename(tmp, final)
        for name in os.listdir(self.directory):
            old = os.path.join(self.directory, name)
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def _state(self, epoch, logs):
        return {
            "epoch": epoch + 1,
            "phase": self.phase,
            "stopped": bool(self.model.stop_training),
            "diverged": not finite_loss(logs),
            "callbacks": {str(i): {name: _to_json(getattr(cb, name))
                                   for name in self._names(cb)}
                          for i, cb in enumerate(self.callbacks_to_restore)},
        }

    @staticmethod
    def _names(callback):
        for cls, names in _CALLBACK_STATE.items():
            if isinstance(callback, cls):
                return names
        return ()

    def remove(self):
        """Delete the backup (once the run's results are written)."""
        shutil.rmtree(self.directory, ignore_errors=True)


class EpochArrays(keras.utils.PyDataset):
    """`(x, y)` arrays in batches, shuffled by `(seed, epoch)` alone.

    Epoch `e`'s order is `default_rng([seed, e]).permutation(n)`, whatever
    came before; `EpochArrays.callback()` tells the dataset which epoch
    `fit` is in. One process's slice of each global batch can be taken for
    multi-process data parallelism (`num_processes`, `process_id`); the
    examples are first cut to a multiple of `unit` so every batch splits
    evenly between devices (`unit=1`: every example is used).

    Args:
        x: array `(n, ...)` (or a tuple/dict of arrays).
        y: array `(n, ...)`.
        batch_size: the global batch size, a multiple of `unit`.
        shuffle: a new order every epoch (else the arrays' order).
        seed: seed of the orders.
        num_processes: processes that feed one global batch together.
        process_id: which slice of every global batch this process feeds.
        unit: every batch is a multiple of this (processes x local devices).
    """

    def __init__(self, x, y, batch_size, shuffle=True, seed=0,
                 num_processes=1, process_id=0, unit=1):
        super().__init__()
        from dlrecipes.errors import UsageError

        self.x, self.y = x, y
        n = num_rows(y)
        self.num_used = n - n % unit
        if self.num_used == 0:
            raise UsageError(f"{n} examples cannot be split between {unit} "
                             "devices")
        self.batch_size = batch_size
        self.num_processes = num_processes
        self.process_id = process_id
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._order = None

    def __len__(self):
        return math.ceil(self.num_used / self.batch_size)

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self.epoch, self._order = epoch, None

    def callback(self):
        """A callback that keeps `epoch` in step with `fit`'s epochs."""
        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs=None: self.set_epoch(epoch))

    def order(self):
        """This epoch's example indices, in the order they are fed."""
        if self._order is None:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch])
                order = rng.permutation(num_rows(self.y))
                self._order = order[:self.num_used]
            else:
                self._order = np.arange(self.num_used)
        return self._order

    def global_batch(self, index):
        """The example indices of global batch `index` of this epoch."""
        start = index * self.batch_size
        return self.order()[start:start + self.batch_size]

    def tf_dataset(self):
        """The same batches as a `tf.data.Dataset` (one process only).

        Keras feeds a `PyDataset` to TensorFlow through
        `Dataset.from_generator`: a Python call per batch that holds the
        interpreter while the step runs, which doubled the time of a small
        epoch. Here Python runs once per epoch, when `fit` starts the
        epoch's iterator (after `on_epoch_begin` has set `epoch`): it draws
        the order; the batches are gathered by tf.data in its own threads,
        from the arrays held once (as Keras' own array feed does).
        Returns None where the arrays cannot become tensors.
        """
        import tensorflow as tf

        if self.num_processes != 1:
            return None
        try:
            arrays = tf.nest.map_structure(tf.convert_to_tensor,
                                           (self.x, self.y))
        except (TypeError, ValueError):
            return None
        n = self.num_used

        def draw():
            return self.order().astype(np.int64)

        def epoch_order(_):
            order = tf.numpy_function(draw, [], tf.int64, stateful=True)
            return tf.ensure_shape(order, [n])

        def gather(indices, tensors):
            return tf.nest.map_structure(
                lambda t: tf.gather(t, indices), tensors)

        indices = (tf.data.Dataset.from_tensors(0).map(epoch_order)
                   .unbatch().batch(self.batch_size))
        data = tf.data.Dataset.from_tensors(arrays).repeat()
        options = tf.data.Options()
        options.deterministic = True
        return (tf.data.Dataset.zip((indices, data))
                .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE).with_options(options))

    def local_indices(self, index):
        batch = self.global_batch(index)
        part = len(batch) // self.num_processes
        return batch[self.process_id * part:(self.process_id + 1) * part]

    def __getitem__(self, index):
        rows = self.local_indices(index)
        return take(self.x, rows), take(self.y, rows)


def num_rows(arrays):
    first = arrays
    while isinstance(first, (tuple, list, dict)):
        first = (list(first.values()) if isinstance(first, dict)
                 else first)[0]
    return len(first)


def take(arrays, rows):
    if isinstance(arrays, dict):
        return {k: take(v, rows) for k, v in arrays.items()}
    if isinstance(arrays, (tuple, list)):
        return type(arrays)(take(v, rows) for v in arrays)
    return np.asarray(arrays)[rows]
