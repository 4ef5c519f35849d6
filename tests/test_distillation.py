"""Knowledge distillation (issue 16): `dlrecipes.distillation` (the loss on
temperature-softened log-probabilities, its metrics) and `--teacher` runs
from a finished run or an ensemble, with the checks a teacher must pass."""

import hashlib
import json
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest

import dlrecipes
import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.distillation import (DistillationLoss, LabelAccuracy,
                                    TeacherAgreement, targets)
from dlrecipes.errors import UsageError

IMAGE = "image-classification"
TINY = ["--augment", "none", "--verbose", "0", "--epochs", "2"]
STUDENT = ["--model", "mlp", "--width", "4", *TINY]


def _run(out, *args):
    assert main(["run", IMAGE, *args, "--output-dir", str(out)]) == 0
    (run_dir,) = (out / IMAGE).iterdir()
    return run_dir


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def teacher(main_job_run):
    """The README's main job (the default ResNet, trained once per
    session) teaches."""
    return pathlib.Path(main_job_run)


@pytest.mark.backends
@pytest.mark.parametrize("alpha, temperature", [(0.1, 4.0), (0.5, 1.0),
                                                (0.0, 2.5)])
def test_loss_is_the_softened_kl_plus_the_hard_loss(alpha, temperature):
    rng = np.random.default_rng(0)
    student = _softmax(rng.normal(size=(6, 5)) * 2).astype("float32")
    teacher = _softmax(rng.normal(size=(6, 5)) * 3).astype("float32")
    labels = rng.integers(0, 5, 6)
    got = float(DistillationLoss(alpha, temperature)(
        targets(labels, teacher), student))
    # The probabilities' logs are the logits: divided by T, softmax again.
    q_s = _softmax(np.log(student) / temperature)
    q_t = _softmax(np.log(teacher) / temperature)
    kl = (q_t * (np.log(q_t) - np.log(q_s))).sum(-1)
    hard = -np.log(student[np.arange(6), labels])
    want = np.mean(alpha * hard + (1 - alpha) * temperature ** 2 * kl)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # A student that is its teacher pays the hard loss alone.
    same = float(DistillationLoss(alpha, temperature)(
        targets(labels, student), student))
    np.testing.assert_allclose(same, alpha * hard.mean(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.backends
def test_alpha_one_is_the_plain_loss_and_the_metrics_read_the_labels():
    rng = np.random.default_rng(1)
    student = _softmax(rng.normal(size=(8, 4))).astype("float32")
    teacher = _softmax(rng.normal(size=(8, 4))).astype("float32")
    labels = rng.integers(0, 4, 8)
    y = targets(labels, teacher)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, student)
    assert float(DistillationLoss(1.0, 4.0)(y, student)) == float(plain)
    accuracy = LabelAccuracy()
    accuracy.update_state(y, student)
    assert float(accuracy.result()) == pytest.approx(
        np.mean(student.argmax(-1) == labels))
    agreement = TeacherAgreement()
    agreement.update_state(y, student)
    assert float(agreement.result()) == pytest.approx(
        np.mean(student.argmax(-1) == teacher.argmax(-1)))


def test_loss_and_metrics_serialize_and_load_safely(tmp_path):
    loss = DistillationLoss(alpha=0.3, temperature=2.0)
    again = DistillationLoss.from_config(loss.get_config())
    assert (again.alpha, again.temperature) == (0.3, 2.0)
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=0.0)
    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", loss=loss, metrics=[LabelAccuracy(),
                                              TeacherAgreement()])
    x = np.ones((8, 3), "float32")
    model.fit(x, targets(np.zeros(8), np.full((8, 4), 0.25)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = dlrecipes.load_model(tmp_path / "m.keras", compile=True)
    assert isinstance(loaded.loss, DistillationLoss)
    assert loaded.loss.temperature == 2.0


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_alpha_one_equals_a_plain_run_and_the_teacher_is_untouched(
        teacher, tmp_path):
    """`--distill-alpha 1` trains a plain run's weights bit for bit (the
    student's initial weights, data order and hard loss are a plain
    run's); the teacher's file and weights are the same before and after;
    teacher and student are the right way round in `metrics.json`."""
    before = _digest(teacher / "model.keras")
    weights = dlrecipes.load_model(str(teacher / "model.keras"),
                                   compile=False).get_weights()
    plain = _run(tmp_path / "plain", *STUDENT)
    student = _run(tmp_path / "alpha1", *STUDENT, "--teacher", str(teacher),
                   "--distill-alpha", "1")
    for a, b in zip(
            dlrecipes.load_model(str(plain / "model.keras"),
                                 compile=False).get_weights(),
            dlrecipes.load_model(str(student / "model.keras"),
                                 compile=False).get_weights()):
        np.testing.assert_array_equal(a, b)  # bit for bit on a CPU
    assert _metrics(plain)["test_accuracy"] == \
        _metrics(student)["test_accuracy"]
    assert _digest(teacher / "model.keras") == before
    after = dlrecipes.load_model(str(teacher / "model.keras"),
                                 compile=False).get_weights()
    for a, b in zip(weights, after):
        np.testing.assert_array_equal(a, b)
    # The teacher's figures are its own run's, the student's parameters
    # the small model's: a swapped pair fails here.
    metrics, taught = _metrics(student), _metrics(teacher)
    assert metrics["teacher"] == os.path.realpath(teacher)
    assert metrics["teacher_kind"] == "run"
    assert metrics["teacher_params"] == taught["params"]
    assert metrics["params"] == _metrics(plain)["params"]
    assert metrics["params"] < metrics["teacher_params"]
    assert metrics["teacher_test_accuracy"] == pytest.approx(
        taught["test_accuracy"], abs=1e-6)
    assert 0.0 <= metrics["test_teacher_agreement"] <= 1.0
    # Compiled with the distillation loss and metrics all the same.
    header = (student / "history.csv").read_text().splitlines()[0]
    assert {"agreement", "val_agreement"} <= set(header.split(","))


def test_an_ensemble_teaches(tmp_path):
    """An `ensembles/<id>/` folder is a teacher: its one model (members
    combined by `EnsembleCombine`) is checked like a run's and its
    probabilities are packed beside the labels. (What a student then
    trains is what any teacher's targets train: the runs above.)"""
    from dlrecipes.data.description import Data
    from dlrecipes.ensemble import ensemble_model
    from dlrecipes.training.distill import load_teacher, with_teacher
    from recipes.image_classification import ImageClassificationConfig

    def member(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax")])

    folder = tmp_path / "ensembles" / "20261203-000000-abcdef"
    folder.mkdir(parents=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"recipe": IMAGE, "dataset": "digits", "classes": ""}))
    (folder / "members.json").write_text(json.dumps(
        {"recipe": IMAGE, "members": [{"run_dir": str(run)}]}))
    (folder / "metrics.json").write_text("{}")
    ensemble_model([member(0), member(1)], "mean").save(
        folder / "model.keras")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(12, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 12)
    data = Data(train=(x, y), val=(x[:4], y[:4]), test=(x, y),
                input_shape=(8, 8, 1), num_classes=10)
    teacher = load_teacher(ImageClassificationConfig(teacher=str(folder)),
                           data)
    assert teacher.kind == "ensemble"
    packed = with_teacher(data, teacher)
    want = teacher.model.predict(x, verbose=0)
    np.testing.assert_array_equal(packed.train[1][:, 0], y)
    np.testing.assert_allclose(packed.train[1][:, 1:], want, rtol=1e-6)
    assert packed.val[1].shape == (4, 11)
    # A teacher of other classes than the student's is refused.
    with pytest.raises(UsageError, match="must know the student's classes"):
        load_teacher(ImageClassificationConfig(teacher=str(folder)),
                     Data(train=(x, y), val=None, test=(x, y),
                          input_shape=(8, 8, 1), num_classes=5))


def test_a_teacher_of_other_classes_or_refused_by_the_loader(
        teacher, tmp_path, capsys):
    out = tmp_path / "out"
    few = _run(tmp_path / "few", "--model", "mlp", "--width", "8", *TINY,
               "--classes", "0-4")
    assert main(["run", IMAGE, *STUDENT, "--teacher", str(few),
                 "--output-dir", str(out)]) == 2
    assert "a teacher must know the student's classes" in _error(capsys)
    hostile = tmp_path / "hostile"
    shutil.copytree(teacher, hostile)
    (hostile / "model.keras").write_bytes(b"PK\x03\x04 not a model")
    assert main(["run", IMAGE, *STUDENT, "--teacher", str(hostile),
                 "--output-dir", str(out)]) == 2
    assert _error(capsys).startswith(f"error: --teacher: {hostile}")
    # A run of a recipe that does not classify.
    config = json.loads((teacher / "config.json").read_text())
    (hostile / "model.keras").write_bytes(
        (teacher / "model.keras").read_bytes())
    (hostile / "config.json").write_text(json.dumps(
        {**config, "recipe": "autoencoder"}))
    assert main(["run", IMAGE, *STUDENT, "--teacher", str(hostile),
                 "--output-dir", str(out)]) == 2
    assert "was trained by autoencoder, which does not predict classes" in \
        _error(capsys)
    # Nothing a later run would trust.
    assert not (out / IMAGE).exists() or not os.listdir(out / IMAGE)
