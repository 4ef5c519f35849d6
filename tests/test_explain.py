"""`dlrecipes explain` and `dlrecipes.explain` (issue 17).

- The numerics under every backend on small models built here: input
  gradients against their closed form, the shapes of every map, Grad-CAM's
  chain split, occlusion and deletion on a model whose answer is known.
- A LeNet trained on the digits (one short run, TensorFlow): every method
  through the command, and the checks that the maps mean something
  (deletion, sanity, t-SNE against raw pixels, class maximisation).
- Bad input: one line, exit 2.
- Slow: the same checks on the default digits ResNet.
"""

import hashlib
import json
import os

import keras
import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from conftest import run_dir_of
from dlrecipes.cli import main
from dlrecipes.explain import methods as m
from dlrecipes.explain.run import METHODS, Subject

# ------------------------------------------------------------- numerics


def _linear_model(weights):
    inputs = keras.Input((weights.shape[0],))
    layer = keras.layers.Dense(weights.shape[1], use_bias=False)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([weights])
    return model


@pytest.mark.backends
def test_input_gradient_is_the_closed_form():
    """d sum_i (x_i W)[c] / dx_i = W[:, c] for every example."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3)).astype("float32")
    model = _linear_model(w)
    x = rng.standard_normal((4, 5)).astype("float32")
    grad = m.input_gradient(
        lambda t: keras.ops.sum(model(t)[:, 1]), x)
    np.testing.assert_allclose(grad, np.tile(w[:, 1], (4, 1)), rtol=1e-5)


@pytest.mark.backends
def test_saliency_of_logits_is_the_softmax_gradient():
    """For logits x W: d log softmax_c / dx = W[:, c] - sum_k p_k W[:, k]."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 3)).astype("float32")
    model = _linear_model(w)
    x = rng.standard_normal((2, 6)).astype("float32")
    classes = np.array([0, 2])
    logits = x @ w
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = np.abs(w[:, classes].T - p @ w.T)
    got = m.saliency(model, x, classes, from_logits=True)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert m.outputs_logits(model, x)


def _small_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 16)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            name="conv")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.backends
def test_maps_have_the_input_shape():
    model = _small_cnn()
    x = np.random.default_rng(0).uniform(0, 16, (5, 8, 8, 1)).astype(
        "float32")
    classes = np.array([0, 1, 2, 0, 1])
    assert not m.outputs_logits(model, x)
    assert m.saliency(model, x, classes).shape == (5, 8, 8)
    assert m.occlusion(model, x, classes, 2).shape == (5, 8, 8)
    cam = m.gradcam(model, model.get_layer("conv"), x, classes)
    assert cam.shape == (5, 8, 8) and 0 <= cam.min() and cam.max() <= 1
    assert [layer.name for layer in m.spatial_layers(model)] == ["conv",
                                                                  "pool"]
    path, kernels = m.first_conv_kernels(model)
    assert kernels.shape == (3, 3, 1, 4) and path.endswith("kernel")
    images, probs = m.maximize(model, [0, 2], 0.0, 16.0, steps=5)
    assert images.shape == (2, 8, 8, 1) and probs.shape == (2,)
    assert images.min() >= 0 and images.max() <= 16


@pytest.mark.backends
def test_gradcam_is_the_weighted_map():
    """Grad-CAM of the last conv layer before global average pooling and
    a linear softmax head: the weights are d log p_c / d A, averaged over
    the positions; checked against NumPy."""
    model = _small_cnn(seed=3)
    x = np.random.default_rng(2).uniform(0, 16, (3, 8, 8, 1)).astype(
        "float32")
    classes = np.array([2, 0, 1])
    layer = model.get_layer("pool")
    a = m.feature_maps(model, layer, x)  # (3, 4, 4, 4)
    w, b = model.layers[-1].get_weights()
    pooled = a.mean(axis=(1, 2))
    logits = pooled @ w + b
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # d log p_c / d pooled = w[:, c] - p @ w.T; / positions for each cell.
    dpooled = w[:, classes].T - p @ w.T
    weights = dpooled / (a.shape[1] * a.shape[2])
    cam = np.maximum((a * weights[:, None, None, :]).sum(-1), 0)
    got = m.gradcam(model, layer, x, classes)
    # Up-sampled to the input and scaled to a peak of 1: back to 4 x 4 by
    # block means, it follows the NumPy map.
    small = got.reshape(3, 4, 2, 4, 2).mean(axis=(2, 4))
    for mine, want in zip(small, cam):
        if want.max() > 0:
            assert np.corrcoef(mine.ravel(), want.ravel())[0, 1] > 0.95


@pytest.mark.backends
def test_occlusion_and_deletion_find_the_pixel_that_decides():
    """A model that reads one pixel: occlusion peaks there, and deleting
    the top-ranked 10% hurts more than random deletion."""
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(2)
    outputs = keras.layers.Softmax()(dense(x))
    model = keras.Model(inputs, outputs)
    w = np.zeros((16, 2), "float32")
    w[5, 0], w[5, 1] = 4.0, -4.0  # pixel (1, 1) decides
    dense.set_weights([w, np.zeros(2, "float32")])
    x = np.ones((6, 4, 4, 1), "float32")
    classes = np.zeros(6, "int64")
    maps = m.occlusion(model, x, classes, patch=1)
    assert all(np.unravel_index(mp.argmax(), mp.shape) == (1, 1)
               for mp in maps)
    check = m.deletion_check(model, x, classes, maps, fraction=1 / 16)
    assert check["top_drop"] > 0.4 and check["ratio"] > 2


def test_knn_accuracy_and_rank_correlation():
    points = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11],
                       [11, 10]], "float64")
    assert m.knn_accuracy(points, np.array([0, 0, 0, 1, 1, 1]), k=2) == 1.0
    a = np.arange(12, dtype="float64").reshape(2, 6)
    assert m.rank_correlation(a, a) == pytest.approx(1.0)
    assert m.rank_correlation(a, -a) == pytest.approx(-1.0)


def test_pixel_methods_refused_for_text_models():
    subject = Subject("runs/x", "text-classification", model=None,
                      x=np.array(["a b", "c"]), y=np.array([0, 1]),
                      kind="text", num_classes=2, class_names=("n", "p"),
                      scale=1.0)
    for method in ("saliency", "occlusion", "gradcam", "maximize",
                   "features"):
        why = subject.applies(method)
        assert why is not None and "text model" in why, method


# ------------------------------------------------- the default digits run

# The README's main job (default ResNet, seed 0) is trained once per session
# (conftest.main_job_run); LeNet, a short run, in the slow test.
LENET = ["--model", "lenet", "--epochs", "12", "--augment", "none"]


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _explained(run_dir, *flags):
    before = {f: _digest(run_dir / f) for f in ("model.keras",
                                                 "metrics.json")}
    assert main(["explain", str(run_dir), *flags]) == 0
    after = {f: _digest(run_dir / f) for f in before}
    assert before == after  # explain never touches them
    with open(run_dir / "explain" / "explain.json") as f:
        return json.load(f)


def _check_meaning(record):
    """The issue's checks that the pictures are not noise."""
    found = record["methods"]
    assert set(found) == set(METHODS)
    for method in METHODS:
        assert os.path.isfile(os.path.join(record["run"], "explain",
                                           found[method]["image"]))
    for method in ("saliency", "occlusion", "gradcam"):
        deletion = found[method]["deletion"]
        assert deletion["ratio"] >= 2.0, (method, deletion)
    assert found["saliency"]["sanity"]["rank_correlation"] < 0.5
    knn = found["tsne"]["knn5"]
    assert knn["features"] >= knn["raw_inputs"], knn
    assert found["maximize"]["classes_above_0.9"] == 10, found["maximize"]


def test_explain_the_main_job(main_job_run, capsys):
    """Every method on the default digits ResNet, and the checks that its
    maps mean something."""
    record = _explained(main_job_run)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "image"}
                      for k, v in record["methods"].items()}))
    _check_meaning(record)
    assert record["recipe"] == "image-classification"
    assert record["methods"]["filters"]["shape"][:3] == [3, 3, 1]
    printed = capsys.readouterr().out
    assert "deletion ratio" in printed and "5-NN" in printed
    # One method again, for one class: the others' entries stay.
    record = _explained(main_job_run, "--method", "maximize", "--class",
                        "3")
    assert list(record["methods"]["maximize"]["probabilities"]) == ["3"]
    assert set(record["methods"]) == set(METHODS)


BAD = [
    # (arguments after the run directory, text of the error line)
    (["--method", "deepdream"], "unknown method 'deepdream'; valid choices: "
     + ", ".join(METHODS)),
    (["--n", "0"], "--n must be >= 1. Received: n=0"),
    (["--class", "-2"], "--class must be >= 0"),
    (["--class", "10"], "--class must be in 0..9 (the model has 10 "
     "classes). Received: class=10"),
    (["--method", "gradcam", "--layer", "classifier"], "--layer "
     "'classifier' is not a layer gradcam can use; layers that fit: stem, "),
]


@pytest.mark.parametrize("flags, needle", BAD, ids=[n for _, n in BAD])
def test_bad_input(main_job_run, flags, needle, capsys):
    assert main(["explain", str(main_job_run), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_bad_directories(tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text('{"recipe": "image-'
                                            'classification"}')
    (tmp_path / "file").write_text("x")
    for path, needle in (
            (tmp_path / "missing", "no such directory"),
            (tmp_path / "file", "not a run directory"),
            (unfinished, "is not a finished run directory (no metrics.json "
             "or model.keras)")):
        assert main(["explain", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err


def test_model_without_conv_layer(tmp_path, capsys):
    out = tmp_path / "mlp"
    assert main(["run", "image-classification", "--model", "mlp",
                 "--epochs", "1", "--output-dir", str(out),
                 "--verbose", "0"]) == 0
    run_dir = run_dir_of(out, "image-classification")
    capsys.readouterr()
    for method in ("gradcam", "filters"):
        assert main(["explain", str(run_dir), "--method", method]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"{method} needs" in err and "the methods that apply: " \
            "saliency, occlusion, maximize, tsne" in err, err


def test_sequence_classifier(tmp_path, capsys):
    """A sequence model (digit rows as 8 steps): saliency, occlusion and
    t-SNE apply, one map per time step and channel; image methods are
    refused."""
    out = tmp_path / "seq"
    assert main(["run", "sequence-classification", "--model", "gru",
                 "--epochs", "1", "--output-dir", str(out),
                 "--verbose", "0"]) == 0
    run_dir = run_dir_of(out, "sequence-classification")
    record = _explained(run_dir)
    assert record["kind"] == "sequence"
    assert set(record["methods"]) == {"saliency", "occlusion", "tsne"}
    for method in record["methods"].values():
        assert (run_dir / "explain" / method["image"]).is_file()
    capsys.readouterr()
    assert main(["explain", str(run_dir), "--method", "maximize"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a sequence model" in err, err


# ------------------------------------------------------------------ slow


@pytest.mark.slow
def test_explain_lenet(tmp_path):
    """A LeNet (two 5x5 convolutions, max pooling, dense layers), short
    run: every check holds too."""
    assert main(["run", "image-classification", *LENET, "--output-dir",
                 str(tmp_path), "--verbose", "0"]) == 0
    record = _explained(run_dir_of(tmp_path, "image-classification"))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "image"}
                      for k, v in record["methods"].items()}))
    _check_meaning(record)
    assert record["methods"]["filters"]["shape"][:3] == [5, 5, 1]
