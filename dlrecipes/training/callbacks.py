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


def current_learning_rate(optimizer):
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
    """

    def __init__(self, path, monitor, mode, backup=None):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.mode = mode
        self.backup = backup
        self.state_path = os.path.join(os.path.dirname(path), "best.json")
        self.best = None
        self.best_epoch = None

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch = None, None
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
        # `.keras` saving writes its HDF5 part in memory and the file with
        # Python's own writes: a full disk raises a clean `OSError`.
        self._save(epoch)
        self.best, self.best_epoch = value, epoch
        with writing(self.state_path):
            atomic_write_json(self.state_path, {
                "best": value, "epoch": epoch, "monitor": self.monitor})

    def on_train_end(self, logs=None):
        # Killed between the backup's write and this callback's link, in
        # the last epoch: the resumed run trains no epoch, so link here.
        state = self.backup.state() if self.backup is not None else None
        if state and not state.get("diverged") and \
                self.best_epoch != state["epoch"] - 1 and \
                self.monitor == "epoch":
            self._save(state["epoch"] - 1)
            self.best = self.best_epoch = state["epoch"] - 1
            with writing(self.state_path):
                atomic_write_json(self.state_path, {
                    "best": self.best, "epoch": self.best_epoch,
                    "monitor": self.monitor})

    def _save(self, epoch):
        tmp = os.path.join(os.path.dirname(self.path), ".tmp-model.keras")
        with writing(self.path, temporary=tmp):
            _remove(tmp)
            if not self._link_backup(epoch, tmp):
                self.model.save(tmp)
            os.replace(tmp, self.path)

    def _link_backup(self, epoch, tmp):
        """Hard-link the backup's state of `epoch` to `tmp`; False where
        there is none or the file system has no hard links."""
        folder = self.backup.latest() if self.backup is not None else None
        if folder is None or os.path.basename(folder) != \
                f"epoch-{epoch + 1:04d}":
            return False
        try:
            os.link(os.path.join(folder, self.backup.weights_name), tmp)
        except OSError as e:
            if e.errno in DISK_FULL:
                raise
            return False
        return True
