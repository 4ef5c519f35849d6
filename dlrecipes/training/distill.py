"""`--teacher`: a run's student learns from a finished run or ensemble.

The teacher is loaded with the safe loader and checked against the
student's data (its inputs, its classes); its probabilities on the
training and validation examples are computed once (the teacher is frozen,
so they are a fixed function of each example) and packed beside the labels
(`dlrecipes.distillation.targets`). Augmentation layers inside the student
act on the student's input only: the targets are the teacher's view of the
clean example. The engine compiles the student with `DistillationLoss`;
the test split, the reports and the saved model stay the recipe's own.
"""

import dataclasses
import os

import numpy as np

from dlrecipes.errors import UsageError


@dataclasses.dataclass
class Teacher:
    path: str
    kind: str  # "run" or "ensemble"
    model: object
    params: int


def load_teacher(config, data):
    """The teacher `config.teacher` names, checked against `data`."""
    import dlrecipes
    from dlrecipes.techniques import teacher_config, teacher_kind

    path = config.teacher
    kind = teacher_kind(path)
    saved = teacher_config(path) or {}
    for key in ("dataset", "classes"):
        if key in saved and hasattr(config, key) and \
                saved[key] != getattr(config, key):
            raise UsageError(
                f"--teacher was trained with {key}={saved[key]!r}, the "
                f"student has {key}={getattr(config, key)!r}: a teacher "
                "must know the student's classes")
    try:
        model = dlrecipes.load_model(os.path.join(path, "model.keras"),
                                     compile=False)
    except UsageError as e:  # refused by the safe loader, or unreadable
        raise UsageError(f"--teacher: {e}") from None
    if len(getattr(model, "outputs", None) or ()) != 1:
        raise UsageError(f"--teacher {path}: its model has no single output "
                         "of class probabilities")
    outputs = tuple(model.outputs[0].shape[1:])
    if outputs != (data.num_classes,):
        raise UsageError(
            f"--teacher predicts {outputs[-1] if outputs else 'no'} classes,"
            f" the student's data has {data.num_classes}: a teacher must know"
            " the student's classes")
    want = tuple(model.inputs[0].shape[1:])
    have = tuple(data.input_shape)
    if len(model.inputs) != 1 or len(want) != len(have) or any(
            w is not None and w != h for w, h in zip(want, have)):
        raise UsageError(f"--teacher takes inputs of shape {want}, the "
                         f"student's data is {have}")
    return Teacher(path, kind, model, int(model.count_params()))


def _streamed(split, teacher, what):
    """A `tf.data` split of `(x, y)` batches whose targets are packed as
    the batches stream (the teacher runs inside the pipeline: TensorFlow
    only)."""
    import keras

    if keras.backend.backend() != "tensorflow" or not hasattr(split, "map"):
        raise UsageError(f"--teacher needs the {what} split as arrays, or "
                         "a tf.data pipeline under TensorFlow; this one "
                         "cannot be given the teacher's predictions")
    import tensorflow as tf

    model = teacher.model

    def pack(x, y):
        probs = tf.cast(model(x, training=False), "float32")
        labels = tf.cast(tf.reshape(y, [-1, 1]), "float32")
        return x, tf.concat([labels, probs], axis=1)

    return split.map(pack)


def with_teacher(data, teacher, batch_size=256):
    """`data` with the training and validation targets packed as
    `[label, teacher probabilities]` rows: computed once for arrays,
    batch by batch for a `tf.data` pipeline (text)."""
    from dlrecipes.distillation import targets

    def pack(split, what):
        if split is None:
            return None
        if not isinstance(split, tuple):
            return _streamed(split, teacher, what)
        x, y = split
        probs = teacher.model.predict(x, batch_size=batch_size, verbose=0)
        return x, targets(y, probs)

    return dataclasses.replace(data, train=pack(data.train, "training"),
                               val=pack(data.val, "validation"))


def teacher_figures(student, teacher, data):
    """`metrics.json` entries: the teacher's test accuracy and size, and
    how often the student's test predictions agree with it."""
    if isinstance(data.test, tuple):
        x, y = data.test
        kwargs = {"batch_size": 256}
    else:  # a tf.data pipeline (strings): fed as it is, in its order
        x = data.test
        y = np.concatenate([np.asarray(yb) for _, yb in data.test])
        kwargs = {}
    y = np.asarray(y).reshape(-1)
    t = np.asarray(teacher.model.predict(x, verbose=0, **kwargs))
    s = np.asarray(student.predict(x, verbose=0, **kwargs))
    return {
        "teacher": os.path.realpath(teacher.path),
        "teacher_kind": teacher.kind,
        "teacher_test_accuracy": float(np.mean(t.argmax(-1) == y)),
        "teacher_params": teacher.params,
        "test_teacher_agreement": float(np.mean(t.argmax(-1) ==
                                                s.argmax(-1))),
    }
