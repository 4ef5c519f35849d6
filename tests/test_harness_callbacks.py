"""The harness' own callbacks, in process: the per-epoch NaN stop, the
atomic epoch backup and its restore of other callbacks' counters."""

import json
import os

import keras
import numpy as np
import pytest

from dlrecipes.training.callbacks import BestCheckpoint, StopOnNaN
from dlrecipes.training.resume import EpochArrays, EpochBackup

pytestmark = pytest.mark.backends


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def test_stop_on_nan_stops_after_the_epoch_and_nothing_is_saved(tmp_path):
    x, y = _data()
    y[5] = np.inf  # the loss of every epoch is infinite
    model = _model()
    stop = StopOnNaN()
    best = BestCheckpoint(str(tmp_path / "model.keras"), "epoch", "max")
    backup = EpochBackup(str(tmp_path / "backup"))
    history = model.fit(x, y, epochs=5, verbose=0,
                        callbacks=[stop, best, backup])
    assert stop.stopped_epoch == 0 and len(history.history["loss"]) == 1
    assert not (tmp_path / "model.keras").exists()
    # A resumed run has nothing left to train.
    assert backup.state()["diverged"] and backup.start_epoch(5) == 5


def test_stop_on_nan_lets_finite_training_run(tmp_path):
    x, y = _data()
    stop = StopOnNaN()
    history = _model().fit(x, y, epochs=3, verbose=0, callbacks=[stop])
    assert stop.stopped_epoch is None and len(history.history["loss"]) == 3


def test_backup_restores_weights_optimizer_and_counters(tmp_path):
    x, y = _data()
    model = _model()
    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=50)
    backup = EpochBackup(str(tmp_path / "backup"), [stopper])
    model.fit(x, y, epochs=3, verbose=0, callbacks=[stopper, backup])
    assert sorted(os.listdir(tmp_path / "backup")) == ["epoch-0003"]
    state = backup.state()
    assert state["epoch"] == 3 and state["stopped"] is False
    assert state["callbacks"]["0"]["best"] == pytest.approx(stopper.best)

    # A new process' model: restored at train begin, counters included.
    fresh = _model()
    stopper2 = keras.callbacks.EarlyStopping(monitor="loss", patience=50)
    backup2 = EpochBackup(str(tmp_path / "backup"), [stopper2])
    assert backup2.start_epoch(10) == 3
    fresh.fit(x, y, epochs=3, initial_epoch=3, verbose=0,
              callbacks=[stopper2, backup2])
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert stopper2.best == pytest.approx(stopper.best)


def test_unfinished_backup_folder_is_ignored(tmp_path):
    backup = EpochBackup(str(tmp_path))
    (tmp_path / ".tmp-epoch-0005").mkdir()  # killed while saving
    (tmp_path / ".tmp-epoch-0005" / "state.json").write_text("{\"epo")
    (tmp_path / "epoch-0004").mkdir()
    (tmp_path / "epoch-0004" / "state.json").write_text(json.dumps(
        {"epoch": 4, "stopped": False}))
    assert backup.start_epoch(10) == 4
    assert backup.start_epoch(3) == 3
    (tmp_path / "epoch-0004" / "state.json").write_text(json.dumps(
        {"epoch": 4, "stopped": True}))
    assert backup.start_epoch(10) == 10  # it had stopped early: done


def test_counters_of_another_phase_are_not_restored(tmp_path):
    x, y = _data()
    model = _model()
    stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=50)
    backup = EpochBackup(str(tmp_path / "b"), [stopper])
    backup.phase = 1
    model.fit(x, y, epochs=2, verbose=0, callbacks=[stopper, backup])
    stopper2 = keras.callbacks.EarlyStopping(monitor="loss", patience=50)
    backup2 = EpochBackup(str(tmp_path / "b"), [stopper2])
    backup2.phase = 2
    _model().fit(x, y, epochs=2, initial_epoch=2, verbose=0,
                 callbacks=[stopper2, backup2])
    assert stopper2.best is None  # phase 2 starts its counters afresh


def test_epoch_arrays_order_depends_on_seed_and_epoch_only():
    x = np.arange(50, dtype="float32")[:, None]
    a = EpochArrays(x, x[:, 0], 8, seed=1)
    b = EpochArrays(x, x[:, 0], 8, seed=1)
    for epoch in (0, 1, 2):
        a.set_epoch(epoch)
    b.set_epoch(2)  # jumped straight there, as a resumed run does
    np.testing.assert_array_equal(a[0][1], b[0][1])
    c = EpochArrays(x, x[:, 0], 8, seed=2)
    c.set_epoch(2)
    assert not np.array_equal(a[0][1], c[0][1])
    seen = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(seen.tolist()) == list(range(50))


class _Config:
    seed, batch_size, distribute = 0, 50, False


def test_fit_kwargs_feed_arrays_by_epoch_and_validate_at_batch_size():
    from dlrecipes.training.distribute import Distribution

    x, y = _data()
    kwargs = Distribution(_Config()).fit_kwargs(
        {"x": x, "y": y, "batch_size": 50, "shuffle": True,
         "validation_data": (x, y), "callbacks": []})
    assert "y" not in kwargs
    assert kwargs["shuffle"] is False  # the order is EpochArrays' alone
    assert kwargs["validation_batch_size"] == 50
    assert len(kwargs["callbacks"]) == 1  # keeps the epoch in step
    reference = EpochArrays(x, y, 50, shuffle=True, seed=_Config.seed)
    if keras.backend.backend() != "tensorflow":
        assert isinstance(kwargs["x"], EpochArrays)
        return
    # Under TensorFlow the same batches come from tf.data (no Python call
    # per batch): the epoch the callback sets decides the order, drawn when
    # the epoch's iterator starts.
    feed, keep_in_step = kwargs["x"], kwargs["callbacks"][0]
    for epoch in (0, 3, 1):
        keep_in_step.on_epoch_begin(epoch)
        reference.set_epoch(epoch)
        batches = [tuple(np.asarray(t) for t in b) for b in feed]
        assert len(batches) == len(reference) == 2
        for (bx, by), i in zip(batches, range(len(reference))):
            rx, ry = reference[i]
            np.testing.assert_array_equal(bx, rx)
            np.testing.assert_array_equal(by, ry)
    assert not np.array_equal(reference.global_batch(0),
                              np.arange(50))  # shuffled


def test_last_checkpoint_links_the_backup_instead_of_saving_again(
        tmp_path, monkeypatch):
    """With `backup`, `model.keras` is the backup's file of the same epoch
    (one save per epoch, not two), it stays whole when the backup moves on,
    and it holds the last epoch's weights; a diverged epoch is not linked."""
    x, y = _data()
    model = _model()
    saves = []
    real_save = keras.Model.save
    monkeypatch.setattr(keras.Model, "save", lambda self, path, *a, **k: (
        saves.append(os.path.basename(str(path))),
        real_save(self, path, *a, **k))[1])
    backup = EpochBackup(str(tmp_path / "backup"))
    best = BestCheckpoint(str(tmp_path / "model.keras"), "epoch", "max",
                          backup=backup)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[backup, best])
    assert saves == ["state.keras"] * 3, saves
    assert best.best_epoch == 2
    saved = keras.saving.load_model(str(tmp_path / "model.keras"))
    for a, b in zip(saved.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The backup's earlier epochs are gone; model.keras is the last one's.
    assert os.listdir(tmp_path / "backup") == ["epoch-0003"]
    assert os.path.samefile(tmp_path / "model.keras",
                            tmp_path / "backup" / "epoch-0003" / "state.keras")
    # An epoch that diverges is backed up (flagged) but not put in place:
    # model.keras keeps epoch 3's weights, though that backup is gone.
    y[0] = np.inf
    model.fit(x, y, initial_epoch=3, epochs=4, verbose=0,
              callbacks=[backup, best])
    assert best.best_epoch == 2
    assert os.listdir(tmp_path / "backup") == ["epoch-0004"]
    kept = keras.saving.load_model(str(tmp_path / "model.keras"))
    for a, b in zip(kept.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_backup_every_seconds_saves_the_last_and_stopping_epochs(tmp_path):
    """`every` > 0: an epoch is saved once that many seconds have passed,
    and always at the last epoch of the fit and at one that stops
    training; a resumed run restores the newest whole one."""
    x, y = _data()
    model = _model()
    saved = []

    class Spy(EpochBackup):
        def save(self, epoch, logs=None):
            saved.append(epoch)
            super().save(epoch, logs)

    backup = Spy(str(tmp_path / "backup"), every=3600)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[backup])
    assert saved == [3]  # only the last epoch of the fit
    assert os.listdir(tmp_path / "backup") == ["epoch-0004"]

    saved.clear()
    stopper = keras.callbacks.EarlyStopping("loss", patience=0,
                                            min_delta=1e9)
    backup = Spy(str(tmp_path / "b2"), [stopper], every=3600)
    model.fit(x, y, epochs=10, verbose=0, callbacks=[stopper, backup])
    assert saved == [1] and backup.state()["stopped"] is True

    saved.clear()
    backup = Spy(str(tmp_path / "b3"), every=0)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[backup])
    assert saved == [0, 1, 2]

    # Time decides in between: every epoch once `every` seconds have gone.
    saved.clear()
    backup = Spy(str(tmp_path / "b4"), every=1e-9)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[backup])
    assert saved == [0, 1, 2]


def test_deferred_best_checkpoint_writes_the_best_epoch_before_backups(
        tmp_path):
    """Deferred: the best epoch's variables wait in memory; `model.keras`
    and `best.json` appear when a backup is about to be written (never
    newer than it) or training ends, and hold the best epoch, not the
    last, while the model keeps training from its own weights."""
    x, y = _data()
    model = _model()
    after = {}

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after[epoch] = [np.array(w) for w in self.model.get_weights()]
            present[epoch] = (tmp_path / "model.keras").exists()

    present = {}
    # "min" on the epoch: epoch 0 is the best and never improved upon.
    best = BestCheckpoint(str(tmp_path / "model.keras"), "epoch", "min",
                          deferred=True)
    backup = EpochBackup(str(tmp_path / "backup"), every=3600)
    backup.before_save.append(best.flush)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[best, Keep(), backup])
    assert present == {0: False, 1: False, 2: False}
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 0
    saved = keras.saving.load_model(str(tmp_path / "model.keras"))
    for a, b in zip(saved.get_weights(), after[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), after[2]):  # training went on
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(after[0][0], after[2][0])


def test_an_interruption_saves_the_last_finished_epoch(tmp_path):
    """Between backups the last finished epoch is kept in memory; after an
    interruption `save_unsaved` writes that epoch (its weights, not the
    half-trained ones of the epoch that was cut), and a resumed fit
    restores it."""
    x, y = _data()
    model = _model()
    after = {}

    class Cut(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after[epoch] = [np.array(w) for w in self.model.get_weights()]

        def on_train_batch_end(self, batch, logs=None):
            if len(after) == 2 and batch == 1:
                raise KeyboardInterrupt

    backup = EpochBackup(str(tmp_path / "backup"), every=3600)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[Cut(), backup])
    assert not (tmp_path / "backup").exists()  # not due yet
    assert backup.save_unsaved() is True
    assert backup.save_unsaved() is False  # once
    assert os.listdir(tmp_path / "backup") == ["epoch-0002"]
    assert backup.state()["epoch"] == 2
    for a, b in zip(model.get_weights(), after[1]):  # cut mid-epoch 2
        assert not np.array_equal(a, b)
    again = _model()
    fresh = EpochBackup(str(tmp_path / "backup"))
    again.fit(x, y, epochs=2, initial_epoch=2, verbose=0, callbacks=[fresh])
    for a, b in zip(again.get_weights(), after[1]):
        np.testing.assert_array_equal(a, b)
