"""A user's own image folder (`--dataset folder:PATH`): unreadable files,
the class-balanced split, the tiny-training-set hint, misclassified.png
titles, the classical baseline and the synthetic shapes generator."""

import json
import os

import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.data import images, load_digits, stratified_split
from dlrecipes.data import synthetic
from dlrecipes.errors import UsageError
from dlrecipes.registry import get_recipe
from dlrecipes.training import Data, plots, reports, sublayers
from recipes import image_classification as ic
from results_table import figure, printed, results_table

RECIPE = get_recipe("image-classification")


def _png(path, seed, size=12):
    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3))
    path.write_bytes(synthetic.png_bytes(image.astype("uint8")))


def _jpeg_bytes(seed, size=12):
    import tensorflow as tf

    image = np.random.default_rng(seed).integers(0, 256, (size, size, 3))
    return tf.io.encode_jpeg(image.astype("uint8")).numpy()


def _folder(root, per_class=4, classes=("a", "b")):
    """`per_class` distinct small PNGs in each class sub-folder."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _png(root / name / f"{i}.png", seed=100 * c + i)
    return root


def _config(root, **kw):
    return ic.ImageClassificationConfig(dataset=f"folder:{root}", **kw)


# ------------------------------------------------------- unreadable files


def _with_broken_files(root):
    """Class `a`: 4 PNGs, a good JPEG, garbage bytes named .jpg and a
    truncated JPEG; class `b`: 4 PNGs."""
    _folder(root)
    (root / "a" / "good.jpg").write_bytes(_jpeg_bytes(7))
    (root / "a" / "garbage.jpg").write_bytes(b"this is not an image" * 5)
    jpeg = _jpeg_bytes(8)
    (root / "a" / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    return root


def test_unreadable_images_are_skipped_with_one_warning(tmp_path):
    root = _with_broken_files(tmp_path / "images")
    with pytest.warns(UserWarning) as caught:
        data = images.load_folder(str(root), image_size=12)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 2 unreadable image files" in message, message
    assert str(root / "a" / "garbage.jpg") in message
    sizes = [len(part[1]) for part in (data.train, data.val, data.test)]
    assert sum(sizes) == 9  # 8 PNGs and the good JPEG


def test_a_class_with_no_readable_image_is_a_usage_error(tmp_path, capsys):
    root = _folder(tmp_path / "images")
    (root / "c").mkdir()
    (root / "c" / "x.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "runs"
    assert main(["run", "image-classification", "--dataset",
                 f"folder:{root}", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "'c' has no readable image" in err[0]
    assert str(root / "c" / "x.jpg") in err[0]
    assert not out.exists()


@pytest.mark.parametrize("make, message", [
    (lambda root: (root / "only").mkdir(parents=True),
     "at least two class sub-folders"),
    (lambda root: [(root / n).mkdir(parents=True) for n in "ab"],
     "class 'a' has no image files"),
    (lambda root: _folder(root, per_class=2), "at least 3 readable images"),
])
def test_unusable_folders_are_usage_errors(tmp_path, make, message):
    root = tmp_path / "images"
    make(root)
    with pytest.raises(UsageError, match=message):
        images.load_folder(str(root), image_size=12)


# ------------------------------------------------------------------ split


def test_split_is_disjoint_stratified_and_has_every_class(tmp_path):
    root = _folder(tmp_path / "images", per_class=6, classes="abc")
    data = images.load_folder(str(root), image_size=12)
    parts = (data.train, data.val, data.test)
    for x, y in parts:
        assert x.dtype == np.uint8 and x.shape[1:] == (12, 12, 3)
        assert sorted(set(y.tolist())) == [0, 1, 2]
    rows = [bytes(img) for x, _ in parts for img in x]
    assert len(set(rows)) == len(rows) == 18  # no image in two parts
    # The split does not move with the run's seed: every run (and the
    # baseline) sees the same test set.
    again = RECIPE.load_data(_config(root, image_size=12, seed=4,
                                     verbose=0))
    np.testing.assert_array_equal(again.test[0], data.test[0])


# ------------------------------------------------------------ small data


def test_tiny_training_set_prints_a_transfer_learning_hint(tmp_path, capsys):
    root = _folder(tmp_path / "images")
    RECIPE.load_data(_config(root, image_size=12))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("note: "), err
    assert f"dlrecipes run transfer-learning --dataset folder:{root}" \
        in err[0]
    RECIPE.load_data(_config(root, image_size=12, verbose=0))
    assert capsys.readouterr().err == ""


def test_short_runs_get_batch_norm_that_settles():
    """120 steps with Keras' momentum 0.99 leave 30% of the initial moving
    statistics: the model was right in training and wrong in inference.
    A short run's momentum leaves 5%; a long run keeps 0.99."""
    import keras

    def momenta(num_train, epochs):
        x = np.zeros((num_train, 8, 8, 1), "uint8")
        data = Data((x, np.zeros(num_train, "int32")), None, None,
                    (8, 8, 1), 2, ("a", "b"), scale=1 / 16)
        config = ic.ImageClassificationConfig(epochs=epochs)
        model = RECIPE.build_model(config, data)
        return {layer.momentum for layer in sublayers.walk(model)
                if isinstance(layer, keras.layers.BatchNormalization)}

    (short,) = momenta(96, 40)  # 3 steps an epoch: 120 steps
    assert short ** 120 == pytest.approx(0.05)
    assert momenta(1437, 40) == {0.99}  # digits: 1800 steps


# ----------------------------------------------------------------- report


class _FixedPredictions:
    """A stand-in model whose `predict` returns fixed classes."""

    def __init__(self, pred, num_classes):
        self.probs = np.eye(num_classes)[pred]

    def predict(self, x, batch_size=None, verbose=0):
        return self.probs


def test_misclassified_titles_say_true_then_predicted(tmp_path,
                                                      monkeypatch):
    figures = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.
                        setdefault(os.path.basename(path), fig))
    names = ("cat", "dog", "owl")
    y = np.array([0, 1, 2, 1, 0])
    pred = np.array([0, 2, 1, 1, 2])
    x = np.random.default_rng(0).uniform(size=(5, 4, 4, 3))
    data = Data((x, y), None, (x, y), (4, 4, 3), 3, names)
    metrics = RECIPE.report(_FixedPredictions(pred, 3), data, str(tmp_path),
                            None)
    titles = [ax.get_title() for ax in figures["misclassified.png"].axes
              if ax.get_title()]
    assert titles == ["true: dog\npred: owl", "true: owl\npred: dog",
                      "true: cat\npred: owl"]
    assert metrics["test_errors"] == 3
    assert 0 <= metrics["test_baseline_accuracy"] <= 1


def test_baseline_on_digits():
    """The NumPy nearest-neighbours baseline on the digits split: 0.978
    with 3 neighbours; with one, exactly scikit-learn's
    KNeighborsClassifier on the standardized pixels (0.961)."""
    x, y = load_digits()
    train, _, test = stratified_split(x, y)
    assert reports.baseline_accuracy(train, test, 10) == pytest.approx(
        0.978, abs=0.001)
    assert reports.baseline_accuracy(train, test, 10, k=1) == pytest.approx(
        0.961, abs=0.001)


# ------------------------------------------------------------- generator


@pytest.mark.parametrize("kind", ["stripes", "shapes"])
def test_synthetic_folders_are_seeded_pngs(tmp_path, kind):
    import tensorflow as tf

    def write(name, seed):
        return synthetic.write_folder(str(tmp_path / name), kind,
                                      per_class=3, size=16, seed=seed)

    one, two, other = write("one", 1), write("two", 1), write("other", 2)
    classes = synthetic.KINDS[kind]
    assert sorted(os.listdir(one)) == sorted(classes)
    path = os.path.join(classes[0], "0000.png")
    raw = open(os.path.join(one, path), "rb").read()
    assert raw == open(os.path.join(two, path), "rb").read()
    assert raw != open(os.path.join(other, path), "rb").read()
    image = tf.io.decode_png(raw).numpy()
    np.testing.assert_array_equal(image, synthetic.class_image(
        classes[0], 16, np.random.default_rng(1)))


@pytest.mark.parametrize("args, message", [
    (["--per-class", "2"], "--per-class must be >= 3"),
    (["--size", "8"], "--size must be >= 16"),
    (["--seed", "-1"], "--seed must be in"),
    (["--kind", "dots"], "valid choices: stripes, shapes"),
    (["--bogus"], "unrecognized arguments"),
])
def test_synthetic_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert synthetic.main([str(out), *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") \
        and message in err[0], err
    assert not out.exists()


def test_synthetic_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert synthetic.main([str(tmp_path)]) == 2
    assert "must not exist or be empty" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["keep.txt"]


# ---------------------------------------------------------------- quality


def _folder_run(tmp_path, per_class, size, *flags):
    """`dlrecipes run image-classification` on a synthetic stripes folder
    (seed 0): its metrics."""
    folder = synthetic.write_folder(str(tmp_path / "stripes"),
                                    per_class=per_class, size=size)
    out = tmp_path / "runs"
    assert main(["run", "image-classification", "--dataset",
                 f"folder:{folder}", "--output-dir", str(out),
                 "--verbose", "0", *flags]) == 0
    (run,) = os.listdir(out / "image-classification")
    return json.loads(
        (out / "image-classification" / run / "metrics.json").read_text())


@pytest.mark.slow
def test_small_folder_beats_the_pixel_baseline(tmp_path):
    """90 images, a narrower ResNet for 4 epochs (each repeats the 64
    training images to 512): 0.889 for seeds 0 and 1, far above the
    nearest-neighbours baseline (0.278; chance: 0.333)."""
    metrics = _folder_run(tmp_path, 30, 32, "--epochs", "4",
                          "--warmup-epochs", "1", "--width", "16")
    print("stripes, 90 images:", metrics["test_accuracy"],
          metrics["test_baseline_accuracy"])
    assert metrics["train_repeats"] == 8
    assert metrics["test_accuracy"] >= 0.8
    assert metrics["test_accuracy"] >= metrics[
        "test_baseline_accuracy"] + 0.3


@pytest.mark.slow
def test_small_folder_default_run(tmp_path):
    """The Results table's stripes figures: 120 images, every default (86
    training images repeated 6 times an epoch, 40 epochs), seed 0: the
    ResNet's and the nearest-neighbours baseline's test accuracy on the
    24 test images, to the printed digit (same seed, same CPU TensorFlow:
    the same run; the baseline is NumPy and exact)."""
    metrics = _folder_run(tmp_path, 40, 32)
    print("stripes, 120 images, defaults:", metrics["test_accuracy"],
          metrics["test_baseline_accuracy"])
    table = results_table(ic)
    for key, model in (("test_accuracy", "resnet"),
                       ("test_baseline_accuracy",
                        "3-nearest neighbours (pixels)")):
        expected = figure(table, "test accuracy", data="stripes",
                          model=model)
        assert printed(metrics[key], expected) == expected, (key, metrics)
    assert metrics["test_accuracy"] >= metrics[
        "test_baseline_accuracy"] + 0.3
