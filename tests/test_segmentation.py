"""The segmentation recipe: digit_scenes, the folder and tfds loaders, the
metrics and classical baselines, bad input, a run's artifacts, and (slow)
the figures of the recipe's Results table."""

import os

import numpy as np
import pytest
from results_table import figure, printed, results_table

import dlrecipes
import recipes  # noqa: F401  (registers every recipe)
from conftest import history, metrics, run_dir_of, smoke_argv, smoke_config
from dlrecipes.cli import main
from dlrecipes.data import load_digits, scenes, stratified_split
from dlrecipes.errors import UsageError
from dlrecipes.vision import segmentation as seg
from recipes import segmentation as recipe_module

NAME = "segmentation"
SEEDS = (0, 1, 2)
# The U-Net's mean test mIoU over the seeds is at least the classical
# baseline's plus this (measured: 0.774 vs 0.555, see Results).
MARGIN = 0.15


# ------------------------------------------------------------ digit_scenes


class _Draws:
    """A stand-in random generator: hands out the given arrays in order."""

    def __init__(self, *arrays):
        self.arrays = [np.asarray(a) for a in arrays]

    def integers(self, low, high, size):
        a = self.arrays.pop(0)
        assert a.shape == tuple(size) and low <= a.min() and a.max() < high
        return a


def test_make_scenes_labels_the_brightest_digit():
    digits = np.zeros((3, 8, 8), "float32")
    digits[0] = 16  # a bright square: a 7
    digits[1, :, :4], digits[1, :, 4:] = 8, 2  # ink left, faint right: a 1
    digits[2] = 16  # another bright square: a 3
    labels = np.array([7, 1, 3])
    # Digit 1 at (0, 0), digit 0 at (4, 4), digit 2 at (8, 8).
    draws = _Draws([[1, 0, 2]], [[[0, 0], [4, 4], [8, 8]]])
    x, y = scenes.make_scenes(digits, labels, 1, 24, draws)
    assert x.shape == (1, 24, 24, 1) and y.shape == (1, 24, 24)
    expected = np.zeros((24, 24), "int32")
    expected[8:16, 8:16] = 4  # digit 2 (a 3) where it is alone
    expected[4:12, 4:12] = 8  # digit 0 (a 7): brighter than the faint
    # part of digit 1 and tied with digit 2 (a tie: the first drawn)
    expected[0:8, 0:4] = 2  # digit 1's ink (a 1)
    np.testing.assert_array_equal(y[0], expected)
    assert x[0, 0, 5, 0] == 2 and y[0, 0, 5] == 0  # faint: not ink
    assert x[0, 0, 0, 0] == 8 and x[0, 5, 5, 0] == 16


def test_digit_scenes_are_deterministic_and_made_of_their_split():
    a = scenes.digit_scenes(seed=0, scenes=40)
    b = scenes.digit_scenes(seed=0, scenes=40)
    c = scenes.digit_scenes(seed=1, scenes=40)
    for part in ("train", "val", "test"):
        for i in (0, 1):
            np.testing.assert_array_equal(getattr(a, part)[i],
                                          getattr(b, part)[i])
    assert not np.array_equal(a.train[0], c.train[0])
    assert [len(p[1]) for p in (a.train, a.val, a.test)] == [40, 4, 10]
    assert a.input_shape == (24, 24, 1) and a.num_classes == 11
    assert a.class_names[0] == "background" and a.scale == 1 / 16
    x, y = a.train[0][..., 0], a.train[1]
    assert y.dtype == np.int32 and set(np.unique(y)) <= set(range(11))
    # A pixel is a digit's exactly where the canvas has ink.
    np.testing.assert_array_equal(y > 0, x >= scenes.INK)
    # The classical baseline learns from the digits the training scenes
    # are made of: the training part of the digits split.
    x_digits, y_digits = load_digits()
    train, _, _ = stratified_split(x_digits[..., 0], y_digits)
    np.testing.assert_array_equal(a.digits[1], train[1])
    assert scenes.digit_scenes(0, 40, size=16, val_fraction=0).val is None


# ----------------------------------------------------------------- metrics


def test_label_components_uses_8_connectivity():
    mask = np.zeros((2, 5, 6), bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # diagonal neighbours: one
    mask[0, 3:5, 4:6] = True
    mask[1, 2, 2] = True
    labels = seg.label_components(mask)
    np.testing.assert_array_equal(labels > 0, mask)
    assert labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 4, 5]
    assert len(np.unique(labels[mask])) == 3  # ids unique over images


@pytest.mark.backends
def test_scores_match_keras_mean_iou():
    """Per-class IoU, mean IoU over the classes present (class 3 is in
    neither the truth nor the prediction) and pixel accuracy, as Keras'
    MeanIoU computes them from the softmax."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, (3, 6, 6))
    probs = rng.random((3, 6, 6, 4)).astype("float32")
    probs[..., 3] = 0
    pred = probs.argmax(-1)
    found = seg.scores(seg.confusion(y, pred, 4))
    assert np.isnan(found["iou"][3])
    assert found["pixel_accuracy"] == pytest.approx(np.mean(y == pred))
    metric = seg.mean_iou_metric(4)
    metric.update_state(y, probs)
    assert float(metric.result()) == pytest.approx(found["mean_iou"],
                                                   abs=1e-6)
    assert metric.name == "miou"


def test_component_baseline_on_separate_digits():
    """Scenes of three test digits that do not touch: the threshold finds
    every ink pixel and the nearest training digit names most of them."""
    x_digits, y_digits = load_digits()
    train, _, test = stratified_split(x_digits[..., 0], y_digits)
    n = 30
    canvas = np.zeros((n, 24, 24), "float32")
    truth = np.zeros((n, 24, 24), "int32")
    for i in range(n):
        for k, (r, c) in enumerate([(0, 0), (0, 16), (16, 8)]):
            digit, label = test[0][3 * i + k], test[1][3 * i + k]
            canvas[i, r:r + 8, c:c + 8] = digit
            truth[i, r:r + 8, c:c + 8] = np.where(digit >= scenes.INK,
                                                  label + 1, 0)
    pred = seg.component_baseline(train, canvas[..., None], scenes.INK)
    np.testing.assert_array_equal(pred > 0, truth > 0)
    ink = truth > 0
    assert np.mean(pred[ink] == truth[ink]) >= 0.85


def test_check_depth():
    seg.check_depth(24, 24, 3)
    assert seg.max_depth(24, 24) == 4 and seg.max_depth(7, 100) == 2
    with pytest.raises(UsageError, match="at most 4"):
        seg.check_depth(24, 24, 5)
    with pytest.raises(UsageError, match=r"divisible by 2\*\*4 = 16"):
        seg.check_depth(24, 24, 4)


# ------------------------------------------------------------- bad input


def _png(path, array):
    from PIL import Image

    Image.fromarray(np.asarray(array, dtype="uint8")).save(path)


def write_folder(root, n=10, size=16, num_classes=3, palette=False,
                 seed=0):
    """`n` images with a bright square (class 1) and a dark stripe (class
    2, when `num_classes` > 2) on noise (class 0), and their masks."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = rng.integers(60, 120, (size, size, 3))
        mask = np.zeros((size, size), "uint8")
        r, c = rng.integers(0, size // 2, 2)
        image[r:r + size // 2, c:c + size // 2] = 240
        mask[r:r + size // 2, c:c + size // 2] = 1
        if num_classes > 2:
            row = int(rng.integers(0, size))
            image[row] = 10
            mask[row] = 2
        _png(root / "images" / f"img{i}.png", image)
        if palette and i % 2:
            out = Image.fromarray(mask, mode="L").convert("P")
            out.save(root / "masks" / f"img{i}.png")
        else:
            _png(root / "masks" / f"img{i}.png", mask)
    return root


def _bad_folder(tmp_path, kind):
    """A folder that is wrong in one way."""
    root = tmp_path / kind
    if kind == "no-masks":
        write_folder(root)
        for f in (root / "masks").iterdir():
            f.unlink()
        (root / "masks").rmdir()
    elif kind == "text":  # text-classification's layout
        for label in ("neg", "pos"):
            (root / label).mkdir(parents=True)
            (root / label / "a.txt").write_text("just text\n")
    elif kind == "unmatched":
        write_folder(root)
        (root / "masks" / "img3.png").rename(root / "masks" / "other.png")
    elif kind == "size-mismatch":
        write_folder(root)
        _png(root / "masks" / "img4.png", np.zeros((16, 12)))
    elif kind == "mask-values":
        write_folder(root, num_classes=3)
    elif kind == "colour-mask":
        write_folder(root)
        _png(root / "masks" / "img2.png", np.random.default_rng(0).integers(
            0, 3, (16, 16, 3)))
    elif kind == "mixed-sizes":
        write_folder(root)
        _png(root / "images" / "img5.png", np.zeros((20, 20, 3)))
        _png(root / "masks" / "img5.png", np.zeros((20, 20)))
    elif kind == "odd-size":
        write_folder(root, size=12)
    return root


BAD = [
    # (flags, folder kind or None, text of the error line)
    (["--depth", "5"], None, "--depth 5 is more down-sampling stages than "
     "the images (24 x 24) allow: at most 4"),
    (["--depth", "4"], None, "--depth 4 needs an image size divisible by "
     "2**4 = 16, but the images are 24 x 24: use --image-size 32"),
    (["--image-size", "20", "--depth", "3"], None,
     "divisible by 2**3 = 8, but the images are 20 x 20"),
    (["--image-size", "6"], None, "--image-size must be at least 8"),
    (["--dataset", "imdb_reviews"], None,
     "--dataset imdb_reviews is a text dataset"),
    (["--dataset", "sunspots"], None, "--dataset sunspots is a series"),
    (["--dataset", "csv:/no/such.csv"], None, "is a series dataset"),
    (["--num-classes", "3"], None,
     "--num-classes works with --dataset folder:PATH only"),
    ([], "no-masks", "needs the sub-folders images/ and masks/"),
    ([], "text", "needs the sub-folders images/ and masks/ (a mask per "
     "image, same file stem); missing: images/, masks/"),
    ([], "unmatched", "unmatched file stems: 1 image without a mask "
     "(first: images/img3.png); 1 mask without an image (first: "
     "masks/other.png)"),
    ([], "size-mismatch", "image img4.png is 16 x 16 but its mask img4.png "
     "is 12 x 16"),
    (["--num-classes", "2"], "mask-values", "holds the value 2, but there "
     "are 2 classes (values 0..1)"),
    ([], "colour-mask", "img2.png is a colour image (mode RGB)"),
    ([], "mixed-sizes", "images differ in size"),
    (["--depth", "3"], "odd-size", "divisible by 2**3 = 8, but the images "
     "of folder:"),
]


@pytest.mark.parametrize("flags, folder, needle", BAD,
                         ids=[f"{f or ''}{' '.join(a)}" for a, f, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(flags, folder, needle, tmp_path,
                                          capsys):
    if folder:
        root = _bad_folder(tmp_path, folder)
        flags = flags + ["--dataset", f"folder:{root}"]
    out = tmp_path / "runs"
    code = main(["run", NAME, *flags, "--output-dir", str(out),
                 "--verbose", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert needle in err[0], err[0]
    assert not out.exists()  # nothing written


# ------------------------------------------------------------------ runs


def _check_run(run_dir, num_classes, shape):
    for name in ("masks.png", "model.keras", "history.csv", "metrics.json"):
        assert (run_dir / name).is_file(), name
    rows = history(run_dir)
    assert {"miou", "val_miou", "accuracy", "val_accuracy"} <= set(rows[0])
    found = metrics(run_dir)
    assert len(found["iou_per_class"]) == num_classes
    for key in ("test_miou", "test_accuracy", "test_baseline_miou",
                "test_baseline_pixel_accuracy", "test_majority_miou"):
        assert 0 <= found[key] <= 1, key
    # The report's NumPy figures are Keras' metrics on the same split.
    assert found["test_mean_iou"] == pytest.approx(found["test_miou"],
                                                   abs=1e-5)
    assert found["test_pixel_accuracy"] == pytest.approx(
        found["test_accuracy"], abs=1e-5)
    model = dlrecipes.load_model(run_dir / "model.keras")
    # A class distribution per pixel, at full input resolution.
    assert model.output_shape == (None, *shape[:2], num_classes)
    assert tuple(model.input_shape[1:]) == shape
    return found


def test_digit_scenes_report(tmp_path):
    """The report of a (not trained) digit_scenes model: masks.png, the
    per-class IoU, and the classical baselines on the same test scenes
    (the CLI run is the registry's smoke test; a folder run below checks
    a run's files)."""
    from dlrecipes.registry import get_recipe

    recipe = get_recipe(NAME)
    data = scenes.digit_scenes(seed=0, scenes=24)
    model = recipe.build_model(smoke_config(NAME), data)
    assert model.output_shape == (None, 24, 24, 11)  # full resolution
    found = seg.segmentation_report(model, data, str(tmp_path))
    assert (tmp_path / "masks.png").is_file()
    assert list(found["iou_per_class"]) == list(scenes.DIGIT_CLASSES)
    assert "components" in found["baseline"]
    assert found["majority_class"] == "background"
    # Digits are 13% of the pixels: all-background's mIoU is its IoU
    # (about 0.87) over the 11 classes.
    assert 0.07 < found["test_majority_miou"] < 0.09
    assert found["test_baseline_miou"] > 0.4
    cm = seg.confusion(data.test[1], np.argmax(model.predict(
        data.test[0], verbose=0), -1), 11)
    assert found["test_mean_iou"] == pytest.approx(
        seg.scores(cm)["mean_iou"])


def test_folder_run(tmp_path):
    folder = write_folder(tmp_path / "data", palette=True)
    out = tmp_path / "runs"
    assert main(smoke_argv(NAME, out, dataset=f"folder:{folder}")) == 0
    found = _check_run(run_dir_of(out, NAME), 3, (16, 16, 3))
    assert "colour" in found["baseline"]
    assert found["train_repeats"] > 1  # 7 training pairs, repeated


def test_folder_split_and_classes(tmp_path):
    folder = write_folder(tmp_path / "data", n=10, num_classes=2)
    data = scenes.folder_scenes(str(folder), val_fraction=0.1)
    assert [len(p[1]) for p in (data.train, data.val, data.test)] == [7, 1, 2]
    assert data.num_classes == 2 and data.input_shape == (16, 16, 3)
    resized = scenes.folder_scenes(str(folder), image_size=8,
                                   num_classes=5)
    assert resized.train[0].shape[1:] == (8, 8, 3)
    assert resized.num_classes == 5
    assert set(np.unique(resized.train[1])) <= {0, 1}


def test_oxford_iiit_pet_through_mock_data():
    """The tfds path on `tfds.testing.mock_data` (random images and masks
    of random sizes): resized batches, trimaps mapped into the 3 classes,
    and the report's baselines iterate the `tf.data` splits. (A folder run
    above covers the CLI; the registry's smoke runs cover the rest.)"""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        data = scenes.pets_data(batch_size=4, seed=0, image_size=16)
        x, y = next(iter(data.train))
        cm = seg.colour_baseline(data)
    assert tuple(x.shape) == (4, 16, 16, 3) and x.dtype == "float32"
    assert tuple(y.shape) == (4, 16, 16) and y.dtype == "int32"
    assert set(np.unique(y)) <= {0, 1, 2}
    assert data.class_names == ("background", "pet", "border")
    assert data.input_shape == (16, 16, 3) and data.num_train == 6
    assert cm.shape == (3, 3) and cm.sum() == 6 * 16 * 16  # the test split


# ---------------------------------------------------------------- results


def _rows():
    return results_table(recipe_module)


def _cell(column, model, seed):
    return figure(_rows(), column, model=model, seed=seed)


def test_results_table_holds_the_checked_figures():
    """The Results table has every row the slow test checks, 3 decimals,
    and its own figures meet the bars."""
    means = {}
    for model in ("unet", "fcn", "classical"):
        cells = [_cell("test mIoU", model, seed) for seed in SEEDS]
        assert all(len(c.partition(".")[2]) == 3 and 0 <= float(c) <= 1
                   for c in cells), cells
        means[model] = np.mean([float(c) for c in cells])
    assert means["unet"] >= means["classical"] + MARGIN, means
    assert means["fcn"] < means["unet"], means
    assert float(_cell("test mIoU", "all-background", 0)) < 0.1


def _default_run(tmp_path, model, seed):
    out = tmp_path / f"{model}-{seed}"
    assert main(["run", NAME, "--model", model, "--seed", str(seed),
                 "--output-dir", str(out), "--verbose", "0"]) == 0
    return metrics(run_dir_of(out, NAME))


@pytest.mark.slow
def test_results_figures(tmp_path):
    """Default config, seeds 0, 1, 2, U-Net and FCN: each run's test mIoU
    and pixel accuracy, and the baselines on the same test scenes, are the
    Results table's to the printed digit (same seed, same CPU TensorFlow:
    the same run); the U-Net beats the classical baseline by `MARGIN` on
    average and the FCN seed by seed."""
    runs = {(model, seed): _default_run(tmp_path, model, seed)
            for model in ("unet", "fcn") for seed in SEEDS}
    print({k: (m["test_miou"], m["test_baseline_miou"])
           for k, m in runs.items()})
    for (model, seed), found in runs.items():
        for column, key in (("test mIoU", "test_miou"),
                            ("pixel accuracy", "test_accuracy")):
            cell = _cell(column, model, seed)
            assert printed(found[key], cell) == cell, (model, seed, column)
        for column, key in (("test mIoU", "test_baseline_miou"),
                            ("pixel accuracy",
                             "test_baseline_pixel_accuracy")):
            cell = _cell(column, "classical", seed)
            assert printed(found[key], cell) == cell, (model, seed, column)
    for column, key in (("test mIoU", "test_majority_miou"),
                        ("pixel accuracy", "test_majority_pixel_accuracy")):
        cell = _cell(column, "all-background", 0)
        assert printed(runs["unet", 0][key], cell) == cell
    unet = [runs["unet", s]["test_miou"] for s in SEEDS]
    fcn = [runs["fcn", s]["test_miou"] for s in SEEDS]
    classical = [runs["unet", s]["test_baseline_miou"] for s in SEEDS]
    assert np.mean(unet) >= np.mean(classical) + MARGIN
    assert all(f < u for f, u in zip(fcn, unet)), (fcn, unet)
