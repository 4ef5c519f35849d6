"""Knowledge distillation (Hinton, Vinyals & Dean 2015) for models that end
in a softmax, as Keras building blocks.

The student is trained on targets that carry both the true label and the
teacher's class probabilities: `targets(labels, teacher_probabilities)`
packs them as `[label, p_1 ... p_C]` rows, so a plain `fit(x, targets)`
works (any backend, any data feed). `DistillationLoss` reads them:

    alpha * CE(label, p_student)
    + (1 - alpha) * T^2 * KL(softmax(log p_teacher / T) || softmax(log p_student / T))

The models already end in a (float32) softmax, so the log-probabilities
play the logits' part: dividing them by `T` and taking a softmax again is
the temperature-softened distribution (the softmax is not applied twice to
logits). `T^2` keeps the soft term's gradients on the scale of the hard
term's as `T` grows. `LabelAccuracy` and `TeacherAgreement` are the
metrics for such targets.

Example:

>>> y = targets(labels, teacher.predict(x))
>>> student.compile("adam", loss=DistillationLoss(alpha=0.1, temperature=4),
...                 metrics=[LabelAccuracy(), TeacherAgreement()])
>>> student.fit(x, y)
"""

import keras
import numpy as np
from keras import ops


def targets(labels, teacher_probabilities):
    """`[label, p_1 ... p_C]` rows (float32) from integer `labels` `(n,)`
    and the teacher's probabilities `(n, C)`."""
    labels = np.asarray(labels).reshape(-1, 1).astype("float32")
    probs = np.asarray(teacher_probabilities, dtype="float32")
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"`teacher_probabilities` must be (n, classes) for "
                         f"{len(labels)} labels. Received: shape="
                         f"{probs.shape}")
    return np.concatenate([labels, probs], axis=1)


# The floor of the probabilities whose logarithms stand for logits: far
# below Keras' epsilon (1e-7), which would flatten every wrong class a
# confident teacher gives less than 1e-7 into one value and stop the
# student's gradient there (the "dark knowledge" is in those classes).
_TINY = 1e-30


def _split(y_true):
    return ops.cast(y_true[..., 0], "int32"), y_true[..., 1:]


@keras.saving.register_keras_serializable(package="dlrecipes")
class DistillationLoss(keras.losses.Loss):
    """Hard-label cross-entropy plus the temperature-softened KL divergence
    to a teacher, on targets made by `targets` (see the module).

    Args:
        alpha: float in [0, 1], the weight of the true labels' loss (1:
            plain sparse categorical cross-entropy).
        temperature: float > 0, the softening temperature `T`.
    """

    def __init__(self, alpha=0.1, temperature=4.0,
                 name="distillation", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        alpha, temperature = float(alpha), float(temperature)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]. Received: "
                             f"alpha={alpha}")
        if not temperature > 0.0:
            raise ValueError(f"`temperature` must be > 0. Received: "
                             f"temperature={temperature}")
        self.alpha, self.temperature = alpha, temperature

    def call(self, y_true, y_pred):
        labels, teacher = _split(y_true)
        hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        eps = _TINY
        t = self.temperature
        student = ops.log_softmax(ops.log(ops.clip(y_pred, eps, 1.0)) / t,
                                  axis=-1)
        soft_teacher = ops.log_softmax(
            ops.log(ops.clip(ops.cast(teacher, y_pred.dtype), eps, 1.0)) / t,
            axis=-1)
        kl = ops.sum(ops.exp(soft_teacher) * (soft_teacher - student),
                     axis=-1)
        return self.alpha * hard + (1.0 - self.alpha) * (t * t) * kl

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha,
                "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="dlrecipes")
class LabelAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy against the labels of `targets` rows (their first
    column)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true[..., :1], y_pred, sample_weight)


def _agreement(y_true, y_pred):
    teacher = ops.argmax(y_true[..., 1:], axis=-1)
    return ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), teacher),
                    "float32")


@keras.saving.register_keras_serializable(package="dlrecipes")
class TeacherAgreement(keras.metrics.MeanMetricWrapper):
    """How often the student's top class is the teacher's, on `targets`
    rows."""

    def __init__(self, name="agreement", dtype=None):
        super().__init__(_agreement, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
