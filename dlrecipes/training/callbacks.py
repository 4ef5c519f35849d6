"""The harness' own bookkeeping callbacks (run-directory files).

These write the run directory and are not meant for reuse in user models,
so they live here rather than in `dlrecipes.callbacks`.
"""

import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
import time

import keras
import numpy as np

from dlrecipes.errors import RunError
from dlrecipes.training.rundir import atomic_write_json, atomic_write_text

# "No space left on device" and "disk quota exceeded".
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def disk_full_message(path):
    """The one line a full disk while writing `path` ends a run with."""
    return (f"disk full while writing {path}; free space and run the same "
            "command again to resume")


@contextlib.contextmanager
def writing(path, temporary=None):
    """Guards the writing of `path` (through `temporary`, if given).

    If the write fails, `temporary` (a file or a folder) is removed, so a
    failed write leaves nothing half-written and frees its space; a full
    disk becomes one `RunError` line that names `path`.
    """
    try:
        yield
    except BaseException as e:
        if temporary is not None:
            _remove(temporary)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise RunError(disk_full_message(path)) from e
        raise


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def training_variables(model):
    """The variables `model.save` writes: the model's and its optimizer's
    (once built)."""
    optimizer = model.optimizer
    return list(model.variables) + (
        list(optimizer.variables) if optimizer is not None
        and optimizer.built else [])


def snapshot(model):
    """Copies of `training_variables(model)`, on their device: dispatched
    without waiting for them (no host synchronisation), and new buffers,
    which a JAX step that donates the variables' buffers cannot take."""
    return [keras.ops.copy(v) for v in training_variables(model)]


@contextlib.contextmanager
def holding_variables(variables, values):
    """`variables` hold `values` inside the block, their own values
    (copied on their device) again after it."""
    variables = list(variables)
    current = [keras.ops.copy(v) for v in variables]
    try:
        for variable, value in zip(variables, values):
            variable.assign(value)
        yield
    finally:
        for variable, value in zip(variables, current):
            variable.assign(value)


def holding(model, values):
    """`model` holds the snapshot `values` inside the block, its own
    values again after it."""
    return holding_variables(training_variables(model), values)


def current_learning_rate(optimizer):
    """The optimizer's learning rate now, as a float.

    Under JAX a schedule evaluated outside the compiled step traces and
    compiles its `ops.cond` branches at every call (new closures each
    time: about 90 ms for the default image schedule); with JAX's
    compilation off it runs op by op, in well under a millisecond."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.disable_jit():
            lr = optimizer.learning_rate
    else:
        lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


class StopOnNaN(keras.callbacks.Callback):
    """Stops training after an epoch whose loss is NaN or infinite.

    Keras' `TerminateOnNaN` reads the loss after every batch: a host
    synchronisation per step that keeps the device waiting (and, marked
    `async_safe` under JAX, reads arrays the next step has already donated).
    This checks the epoch's mean loss once, at the epoch's end; a diverged
    epoch is never saved (`BestCheckpoint` skips it too).
    """

    def __init__(self):
        super().__init__()
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.asarray(loss))):
            self.model.stop_training = True
            self.stopped_epoch = epoch


def finite_loss(logs):
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(np.asarray(loss)))


class HistoryWriter(keras.callbacks.Callback):
    """Writes `history.csv` atomically after every epoch, resume-safe.

    On resume, rows of epochs at or after the epoch training restarts from
    are dropped, so a crash between the CSV write and the backup never
    leaves a duplicate or a missing row. Also logs the learning rate.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.rows = []

    def on_train_begin(self, logs=None):
        self.rows = []
        if os.path.isfile(self.path):
            with open(self.path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def on_epoch_begin(self, epoch, logs=None):
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        row = {"epoch": epoch}
        row.update({k: float(np.asarray(v)) for k, v in logs.items()})
        self.rows.append(row)
        self._write()

    def _write(self):
        keys = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        with writing(self.path):
            atomic_write_text(self.path, buf.getvalue())


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the best model to `model.keras` atomically (write, then rename).

    The best score so far lives in `best.json`, so a resumed run keeps
    comparing against the score from before the interruption.

    With `backup` (an `EpochBackup` listed before this callback), the model
    is not saved a second time: `model.keras` becomes a hard link to the
    state file the backup has just written for the same epoch (the same
    bytes `model.save` would write). `--checkpoint last` keeps every epoch,
    so this halves what a run writes per epoch.

    With `deferred=True` an improved epoch's variables (model and
    optimizer) are copied in memory, and written by `flush()`: at the end
    of training and just before each backup (the run directory's
    `EpochBackup` calls it), so `model.keras` and `best.json` on disk are
    never newer than the backup a resumed run restarts from, and the
    epochs it repeats find the same best again. On small data a save costs
    a third of an epoch, and early epochs improve at almost every epoch.

    `weights`: a context-manager factory under which the model holds the
    weights to keep (`EMAWeights.applied`: the moving average; give no
    `backup` then, since the backup holds the raw weights).
    """

    def __init__(self, path, monitor, mode, backup=None, deferred=False,
                 weights=None):
        super().__init__()
        self.path = path
        self.weights = weights
        self.monitor = monitor
        self.mode = mode
        self.backup = backup
        self.deferred = deferred
        self.state_path = os.path.join(os.path.dirname(path), "best.json")
        self.best = None
        self.best_epoch = None
        self._pending = None  # (epoch, value, variables' values)

    def flush(self):
        """Write the best epoch copied in memory, if any is pending."""
        if self._pending is None:
            return
        epoch, value, saved = self._pending
        with holding(self.model, saved):
            self._save(epoch)
        self._pending = None
        self._write_state(value, epoch)

    def _write_state(self, value, epoch):
        with writing(self.state_path):
            atomic_write_json(self.state_path, {
                "best": value, "epoch": epoch, "monitor": self.monitor})

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self._pending = None, None, None
        if os.path.isfile(self.state_path) and os.path.isfile(self.path):
            with open(self.state_path) as f:
                state = json.load(f)
            self.best, self.best_epoch = state["best"], state["epoch"]

    def _improved(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = epoch if self.monitor == "epoch" else logs.get(self.monitor)
        if value is None:  # no validation data: keep the last epoch
            value = float(-epoch) if self.mode == "min" else float(epoch)
        value = float(np.asarray(value))
        if math.isnan(value) or not finite_loss(logs) or \
                not self._improved(value):
            return
        self.best, self.best_epoch = value, epoch
        with (self.weights() if self.weights is not None
              else contextlib.nullcontext()):
            if self.deferred and not self._linkable(epoch):
                self._pending = (epoch, value, snapshot(self.model))
                return
            # `.keras` saving writes its HDF5 part in memory and the file
            # with Python's own writes: a full disk raises a clean
            # `OSError`.
            self._pending = None
            self._save(epoch)
        self._write_state(value, epoch)

    def save_current(self, epoch):
        """Make the model as it is now the saved one, as epoch `epoch`
        (the stochastic weight average after training)."""
        self._pending = None
        self._save(epoch, link=False)
        self.best_epoch = epoch
        self._write_state(self.best, epoch)

    def _linkable(self, epoch):
        folder = self.backup.latest() if self.backup is not None else None
        return folder is not None and os.path.basename(folder) == \
            f"epoch-{epoch + 1:04d}"

    def on_train_end(self, logs=None):
        self.flush()
        # Killed between the backup's write and this callback's link, in
        # the last epoch: the resumed run trains no epoch, so link here.
        state = self.backup.state() if self.backup is not None else None
        if state and not state.get("diverged") and \
                self.best_epoch != state["epoch"] - 1 and \
                self.monitor == "epoch":
            self._save(state["epoch"] - 1)
            self.best = self.best_epoch = state["epoch"] - 1
            self._write_state(self.best, self.best_epoch)

    def _save(self, epoch, link=True):
        tmp = os.path.join(os.path.dirname(self.path), ".tmp-model.keras")
        with writing(self.path, temporary=tmp):
            _remove(tmp)
            if not (link and self._link_backup(epoch, tmp)):
                self.model.save(tmp)
            os.replace(tmp, self.path)
            # Two links to one file: rename(2) leaves both names in place.
            _remove(tmp)

    def _link_backup(self, epoch, tmp):
        """Hard-link the backup's state of `epoch` to `tmp`; False where
        there is none or the file system has no hard links."""
        if not self._linkable(epoch):
            return False
        folder = self.backup.latest()
        try:
            os.link(os.path.join(folder, self.backup.weights_name), tmp)
        except OSError as e:
            if e.errno in DISK_FULL:
                raise
            return False
        return True


class EpochTensorBoard(keras.callbacks.Callback):
    """Epoch scalars for TensorBoard under every backend, with epoch hooks
    only.

    Writes `train/` and `validation/` event files under `log_dir` with the
    tags Keras' `TensorBoard` callback uses (`epoch_loss`,
    `epoch_<metric>`, `epoch_learning_rate`; steps are epochs), through
    TensorBoard's own event writer: no TensorFlow needed (JAX and PyTorch
    runs get curves too). Keras' callback has batch hooks, and one
    callback with batch hooks makes Keras read every step's logs as it
    ends: a host synchronisation per step that keeps JAX (and TensorFlow)
    from queueing the next steps, which cost more than the epoch's own
    work on small data. Graphs, weight histograms and profiles are not
    written: add `keras.callbacks.TensorBoard` to your own `fit` for those.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}

    def _writer(self, part):
        if part not in self._writers:
            from tensorboard.summary.writer.event_file_writer import \
                EventFileWriter

            self._writers[part] = EventFileWriter(
                os.path.join(self.log_dir, part))
        return self._writers[part]

    def on_epoch_end(self, epoch, logs=None):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        logs = dict(logs or {})
        if "learning_rate" not in logs:  # HistoryWriter adds it first
            logs["learning_rate"] = current_learning_rate(
                self.model.optimizer)
        parts = {"train": {}, "validation": {}}
        for name, value in logs.items():
            part = "validation" if name.startswith("val_") else "train"
            name = name[4:] if part == "validation" else name
            try:
                parts[part][f"epoch_{name}"] = float(np.asarray(value))
            except (TypeError, ValueError):
                continue  # not a scalar
        now = time.time()
        for part, values in parts.items():
            if not values:
                continue
            summary = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=tag, simple_value=value)
                for tag, value in values.items()])
            writer = self._writer(part)
            with writing(self.log_dir):
                writer.add_event(event_pb2.Event(
                    step=int(epoch), wall_time=now, summary=summary))
                writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
