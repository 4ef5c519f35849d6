"""The autoencoder recipe (recipes/autoencoder.py) and its library
(dlrecipes/vision/autoencoders.py, dlrecipes/layers/gaussian_sampling.py):
the sampling layer, the NumPy baselines (PCA, linear denoiser, the
logistic-regression probe), bad input, runs of every model and dataset
kind, and (slow) the quality figures of the recipe's Results table.

The registry sweeps (smoke, bad input, mixed precision, distribution and
the smoke run under JAX without TensorFlow, tuning) pick the recipe up on
their own; this module tests what they do not."""

import os

import keras
import numpy as np
import pytest
from results_table import figure, printed, results_table

import dlrecipes
import recipes  # noqa: F401  (registers every recipe)
from conftest import metrics, run_dir_of, smoke_argv
from dlrecipes.cli import main
from dlrecipes.data import synthetic
from dlrecipes.layers.gaussian_sampling import GaussianSampling
from dlrecipes.vision import autoencoders as ae
from recipes import autoencoder as recipe_module

NAME = "autoencoder"
TF = keras.backend.backend() == "tensorflow"
needs_tensorflow = pytest.mark.skipif(
    not TF, reason="tf.data image decoding / tensorflow-datasets")


def _np(x):
    return keras.ops.convert_to_numpy(x)


# ------------------------------------------------------ GaussianSampling


@pytest.mark.backends
def test_gaussian_sampling_samples_and_adds_the_kl():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(4000, 3)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(4000, 3)).astype("float32")
    layer = GaussianSampling(kl_weight=0.25, seed=1)
    # Inference: the mean, and the KL of N(mean, var) from N(0, I).
    np.testing.assert_array_equal(_np(layer([mean, log_var])), mean)
    kl = -0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1)
    (loss,) = layer.losses
    np.testing.assert_allclose(_np(loss), 0.25 * kl.mean(), rtol=1e-5)
    # Training: mean + exp(log_var / 2) * N(0, 1) draws.
    z = _np(layer([mean, log_var], training=True))
    eps = (z - mean) / np.exp(0.5 * log_var)
    assert abs(eps.mean()) < 0.03 and abs(eps.std() - 1) < 0.03
    again = _np(layer([mean, log_var], training=True))
    assert not np.allclose(z, again)  # new draws each call
    # kl_weight 0: no loss; the one-tensor form splits the last axis.
    plain = GaussianSampling(kl_weight=0)
    out = plain(np.concatenate([mean, log_var], axis=1))
    np.testing.assert_array_equal(_np(out), mean)
    assert not plain.losses


@pytest.mark.backends
@pytest.mark.parametrize("kwargs,needle", [
    ({"kl_weight": -1.0}, "Received: kl_weight=-1.0"),
    ({"kl_weight": float("inf")}, "Received: kl_weight=inf"),
    ({"kl_weight": True}, "Received: kl_weight=True"),
    ({"seed": 1.5}, "Received: seed=1.5"),
])
def test_gaussian_sampling_checks_its_arguments(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        GaussianSampling(**kwargs)


@pytest.mark.backends
def test_gaussian_sampling_rejects_an_odd_single_input():
    with pytest.raises(ValueError, match="even size"):
        GaussianSampling()(np.zeros((2, 5), "float32"))


# ---------------------------------------------------------- the baselines


def _digits():
    data = ae.load_image_arrays("digits")
    return data.train, data.test


@pytest.mark.backends
def test_pca_matches_svd_and_the_best_rank_search():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    pca = ae.PCA(x, bounds=None)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    for k in (1, 3, 12):
        expected = centred @ vt[:k].T @ vt[:k] + x.mean(axis=0)
        np.testing.assert_allclose(pca.reconstruct(x, k), expected,
                                   atol=1e-8)
    noisy = x + rng.normal(size=x.shape)
    brute = [np.mean((x.mean(axis=0) - x) ** 2)] + [
        pca.mse(noisy, x, k) for k in range(1, 13)]
    k, best = pca.best_mse(noisy, x)
    assert k == int(np.argmin(brute))
    np.testing.assert_allclose(best, min(brute), rtol=1e-9)


@pytest.mark.backends
def test_linear_denoiser_is_least_squares():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(300, 2, 2, 1)).astype("float32")
    denoiser = ae.LinearDenoiser(x, 0.3, seed=5, examples=300)
    # The same noisy copy, solved directly.
    noisy = ae.add_noise(x, 0.3, np.random.default_rng(5)).reshape(300, -1)
    design = np.hstack([noisy, np.ones((300, 1))])
    weights = np.linalg.lstsq(design, x.reshape(300, -1), rcond=None)[0]
    np.testing.assert_allclose(denoiser.weights, weights, atol=1e-6)


@pytest.mark.backends
def test_logistic_regression_matches_scikit_learn():
    """The NumPy probe solves scikit-learn's problem (C=1, multinomial,
    unpenalized bias): the same predictions on PCA-8 codes of digits."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    (x, y), (xt, yt) = _digits()
    pca = ae.PCA(x)
    codes, test_codes = pca.encode(x, 8), pca.encode(xt, 8)
    mean, std = codes.mean(axis=0), codes.std(axis=0)
    ours = ae.logistic_regression((codes - mean) / std, y, 10)
    theirs = linear_model.LogisticRegression(C=1.0, max_iter=10_000,
                                             tol=1e-10)
    theirs.fit((codes - mean) / std, y)
    a = ours((test_codes - mean) / std)
    b = theirs.predict((test_codes - mean) / std)
    assert np.mean(a == b) >= 0.995
    assert ae.probe_accuracy(codes, y, test_codes, yt, 10) == \
        pytest.approx(np.mean(a == yt))


def _row(model, code, noise, seed, column="test mse"):
    """A cell of the recipe's Results table, as printed."""
    return figure(results_table(recipe_module), column, model=model,
                  code=code, noise=noise, seed=seed)


@pytest.mark.backends
def test_baselines_on_digits_are_the_results_table():
    """PCA at code sizes 2 and 8 (reconstructions clipped to [0, 1]; the
    linear probe on its codes), the mean image, and at noise 0.4 the noisy
    input, the best PCA rank and the linear denoiser, on the digits' test
    split: the figures of the recipe's Results table, to the printed
    digit."""
    (x, y), (xt, yt) = _digits()
    pca = ae.PCA(x)
    for k in (2, 8):
        cell = _row("PCA", k, 0, "-")
        assert printed(pca.mse(xt, xt, k), cell) == cell
        cell = _row("PCA", k, 0, "-", column="probe")
        accuracy = ae.probe_accuracy(pca.encode(x, k), y, pca.encode(xt, k),
                                     yt, 10)
        assert printed(accuracy, cell) == cell
    cell = _row("mean image", "-", 0, "-")
    assert printed(np.mean((xt.reshape(len(xt), -1) - pca.mean) ** 2),
                   cell) == cell
    data = ae.load_autoencoder_data("digits", noise=0.4)
    noisy, clean = data.test
    cell = _row("noisy input", "-", 0.4, "-")
    assert printed(np.mean((noisy - clean) ** 2), cell) == cell
    cell = _row("PCA, best rank", "-", 0.4, "-")
    assert printed(pca.best_mse(noisy, clean)[1], cell) == cell
    cell = _row("linear denoiser", "-", 0.4, "-")
    assert printed(ae.LinearDenoiser(x, 0.4).mse(noisy, clean),
                   cell) == cell


@pytest.mark.backends
def test_noisy_inputs_are_fixed_and_clipped():
    data = ae.load_autoencoder_data("digits", noise=0.4)
    again = ae.load_autoencoder_data("digits", noise=0.4, val_fraction=0.2)
    noisy, clean = data.test
    np.testing.assert_array_equal(noisy, again.test[0])  # one noise draw
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert not np.array_equal(noisy, clean)
    np.testing.assert_array_equal(data.train[0], data.train[1])
    assert [len(part[0]) for part in (data.train, data.val, data.test)] \
        == [1293, 144, 360]
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10


@pytest.mark.backends
@pytest.mark.parametrize("size,stages", [(8, 3), (28, 2), (32, 5), (12, 2),
                                         (7, 0)])
def test_max_stages(size, stages):
    assert ae.max_stages(size, size) == stages


# -------------------------------------------------------------- bad input


def _text_folder(root):
    for name in ("pos", "neg"):
        (root / name).mkdir(parents=True)
        (root / name / "a.txt").write_text("just words\n")
    return root


def _image_folder(root, per_class=12, size=16):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bars", "blocks")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size, 3))
            if c:
                image[4:12, 4:12] = 255
            else:
                image[:, ::4] = 255
            (root / name / f"{i}.png").write_bytes(
                synthetic.png_bytes(image.astype("uint8")))
    return root


BAD = [
    (["--code-size", "0"], "--code-size must be >= 1. Received: "
     "code_size=0"),
    (["--code-size", "64"], "--code-size must be below the input dimension, "
     "64 (8x8x1 pixels of digits). Received: code_size=64"),
    (["--dataset", "mnist", "--code-size", "784"], "below the input "
     "dimension, 784"),
    (["--noise", "-0.1"], "--noise must be >= 0. Received: noise=-0.1"),
    (["--noise", "nan"], "--noise expects a finite number"),
    (["--noise", "inf"], "--noise expects a finite number"),
    (["--beta", "-1"], "--beta must be >= 0"),
    (["--beta", "4"], "--beta works with --model vae only"),
    (["--stages", "4"], "at most 3"),
    (["--model", "vae", "--dataset", "mnist", "--stages", "3"],
     "at most 2 (each stage needs a size divisible by 2; 28x28 is not "
     "divisible by 2**3=8). Received: stages=3"),
    (["--image-size", "16"], "--image-size works with --dataset "
     "folder:PATH only"),
    (["--model", "unet"], "valid choices: dense, conv, vae"),
    (["--dataset", "imdb_reviews"], "'imdb_reviews' is a text dataset; the "
     "autoencoder takes images: digits, mnist, fashion_mnist, folder:PATH"),
    (["--dataset", "sunspots"], "'sunspots' is a series dataset"),
    (["--dataset", "csv:{tmp}/x.csv"], "is a series dataset"),
    (["--dataset", "folder:{tmp}/missing"], "folder not found"),
    (["--dataset", "folder:{text}"], "has no image files"),
    (["--dataset", "folder:{images}", "--image-size", "12", "--stages", "3"],
     "at most 2"),
    (["--dataset", "folder:{images}", "--image-size", "4", "--code-size",
      "48"], "below the input dimension, 48 (4x4x3 pixels"),
]


@pytest.mark.backends
@pytest.mark.parametrize("args,needle", BAD, ids=[n for _, n in BAD])
def test_bad_input(args, needle, tmp_path, capsys):
    folders = {"tmp": str(tmp_path), "text": str(tmp_path / "text"),
               "images": str(tmp_path / "images")}
    if any("{text}" in a for a in args):
        _text_folder(tmp_path / "text")
    if any("{images}" in a for a in args):
        _image_folder(tmp_path / "images", per_class=3)
    args = [a.format(**folders) for a in args]
    out = tmp_path / "runs"
    code = main(["run", NAME, "--epochs", "1", "--verbose", "0", *args,
                 "--output-dir", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert not out.exists() or os.listdir(out) == []


# ------------------------------------------------------------------- runs


def _run(tmp_path, **values):
    assert main(smoke_argv(NAME, tmp_path, **values)) == 0
    run_dir = run_dir_of(tmp_path, NAME)
    return run_dir, metrics(run_dir)


def _sub_models(run_dir):
    return (dlrecipes.load_model(run_dir / "model.keras"),
            dlrecipes.load_model(run_dir / "encoder.keras"),
            dlrecipes.load_model(run_dir / "decoder.keras"))


@needs_tensorflow
def test_denoising_run_on_a_folder(tmp_path):
    """`--dataset folder:PATH --image-size 16 --noise 0.4` (conv, RGB): the
    noise baselines, the probe, the figures; encoder.keras then
    decoder.keras reproduce model.keras (the noise is off at inference)."""
    folder = _image_folder(tmp_path / "images")
    run_dir, found = _run(tmp_path / "runs", dataset=f"folder:{folder}",
                          image_size=16, noise=0.4, batch_size=8)
    for name in ("encoder.keras", "decoder.keras", "reconstructions.png",
                 "latent.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "samples.png").exists()
    for key in ("test_mse", "test_pca_mse", "test_mean_image_mse",
                "test_noisy_mse", "test_best_pca_mse",
                "test_linear_denoiser_mse", "test_probe_accuracy",
                "test_pca_probe_accuracy"):
        assert np.isfinite(found[key]), key
    assert found["test_linear_denoiser_mse"] < found["test_noisy_mse"]
    assert found["test_best_pca_mse"] <= found["test_pca_mse"] + 1e-12
    model, encoder, decoder = _sub_models(run_dir)
    assert tuple(model.input_shape[1:]) == (16, 16, 3)
    x = ae.load_autoencoder_data(f"folder:{folder}", image_size=16,
                                 noise=0.4).test[0]
    codes = encoder.predict(x, verbose=0)
    assert codes.shape == (len(x), 8)
    np.testing.assert_allclose(decoder.predict(codes, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)


@needs_tensorflow
def test_vae_run(tmp_path):
    """`--model vae --code-size 2`: the ELBO and its terms, samples.png,
    an encoder of two outputs (mean, log variance) whose mean the decoder
    turns into model.keras's output."""
    run_dir, found = _run(tmp_path, model="vae", code_size=2)
    assert (run_dir / "samples.png").is_file()
    assert found["test_elbo"] == pytest.approx(
        found["test_elbo_log_likelihood"] - found["test_elbo_kl"])
    assert found["test_elbo_kl"] > 0
    model, encoder, decoder = _sub_models(run_dir)
    x = ae.load_autoencoder_data("digits").test[0][:16]
    mean, log_var = encoder.predict(x, verbose=0)
    assert mean.shape == log_var.shape == (16, 2)
    np.testing.assert_allclose(decoder.predict(mean, verbose=0),
                               model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.backends
def test_vae_loss_is_the_negative_elbo_per_pixel():
    """The VAE trains under every backend, and its loss is the per-pixel
    binary cross-entropy plus the KL divergence over the 64 pixels (at
    inference z = mean): `GaussianSampling`'s `add_loss` reaches `fit` and
    `evaluate`."""
    x = ae.load_autoencoder_data("digits").test[0][:64]
    model = ae.build_autoencoder("vae", (8, 8, 1), 2, width=4, stages=1,
                                 seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(x, x, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    loss = model.evaluate(x, x, batch_size=64, verbose=0, return_dict=True)
    mean, log_var = model.get_layer("encoder").predict(x, verbose=0)
    p = np.clip(model.predict(x, verbose=0), 1e-7, 1 - 1e-7)
    bce = -np.mean(x * np.log(p) + (1 - x) * np.log(1 - p))
    kl = -0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1)
    assert loss["loss"] == pytest.approx(bce + kl.mean() / 64, rel=1e-3)


@needs_tensorflow
def test_tfds_mock_data(tmp_path):
    """fashion_mnist through tensorflow-datasets (mocked, offline): arrays
    in [0, 1] with labels, the dense model trains a step on them."""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        data = ae.load_autoencoder_data("fashion_mnist", noise=0.2)
    (x, target), (val, _), (test, clean) = data.train, data.val, data.test
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    assert x is target and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    # (mock_data serves num_examples per split, whatever the slice)
    assert [len(y) for y in data.labels] == [len(x), len(val), len(test)]
    assert not np.array_equal(test, clean)  # noisy test inputs
    model = ae.build_autoencoder("dense", data.input_shape, 8, width=4)
    model.compile(optimizer="adam", loss="mse")
    assert np.isfinite(model.fit(x, x, epochs=1, verbose=0)
                       .history["loss"][0])
    assert model.get_layer("encoder").output_shape == (None, 8)


# ---------------------------------------------------------------- quality


def test_results_table_holds_the_checked_figures():
    for seed in (0, 1, 2):
        for model, code, noise in (("conv", 8, 0), ("dense", 2, 0),
                                   ("conv", 8, 0.4), ("vae", 2, 0)):
            cell = _row(model, code, noise, seed)
            assert 0 < float(cell) < 0.1 and len(cell.partition(".")[2]) \
                == 4, (model, code, noise, seed, cell)


# The runs the slow tests check: (model, code size, noise) -> flags.
QUALITY = {("conv", 8, 0): [],
           ("dense", 2, 0): ["--model", "dense", "--code-size", "2"],
           ("conv", 8, 0.4): ["--noise", "0.4"],
           ("vae", 2, 0): ["--model", "vae", "--code-size", "2"]}
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def quality_runs(tmp_path_factory):
    """`dlrecipes run autoencoder FLAGS --seed S` for every QUALITY run and
    seed: {(model, code, noise, seed): (run directory, metrics)}."""
    out = tmp_path_factory.mktemp("quality")
    found = {}
    for key, args in QUALITY.items():
        for seed in SEEDS:
            where = out / f"{key[0]}-{key[1]}-{key[2]}-{seed}"
            assert main(["run", NAME, *args, "--seed", str(seed),
                         "--output-dir", str(where), "--verbose", "0"]) == 0
            run_dir = run_dir_of(where, NAME)
            found[(*key, seed)] = run_dir, metrics(run_dir)
    return found


COLUMNS = {"test mse": "test_mse", "probe": "test_probe_accuracy",
           "ELBO": "test_elbo"}


def _check_printed(found, key, columns=("test mse", "probe")):
    """Each seed's metrics are the Results table's, to the printed digit
    (same seed, same CPU TensorFlow: the same run)."""
    for seed in SEEDS:
        for column in columns:
            value = found[(*key, seed)][1][COLUMNS[column]]
            cell = _row(*key, seed, column=column)
            assert printed(value, cell) == cell, (key, seed, column, value)


@pytest.mark.slow
@pytest.mark.parametrize("key", [("conv", 8, 0), ("dense", 2, 0)])
def test_autoencoders_beat_pca(quality_runs, key):
    """A nonlinear autoencoder beats PCA at the same code size (2 and 8),
    every seed, on the test pixels; and its codes carry the labels at
    least as well as PCA's to a linear probe."""
    _check_printed(quality_runs, key)
    for seed in SEEDS:
        found = quality_runs[(*key, seed)][1]
        assert found["test_mse"] < found["test_pca_mse"], (seed, found)
        assert found["test_probe_accuracy"] > \
            found["test_pca_probe_accuracy"], (seed, found)
        cell = _row("PCA", key[1], 0, "-")
        assert printed(found["test_pca_mse"], cell) == cell


@pytest.mark.slow
def test_denoiser_beats_the_linear_denoiser(quality_runs):
    """`--noise 0.4` (conv, code 8): every seed beats the least-squares
    linear denoiser, which beats the best PCA projection, which beats the
    noisy input itself; the baselines are the Results table's."""
    key = ("conv", 8, 0.4)
    _check_printed(quality_runs, key)
    for seed in SEEDS:
        found = quality_runs[(*key, seed)][1]
        assert found["test_mse"] < found["test_linear_denoiser_mse"], found
        assert found["test_linear_denoiser_mse"] < found["test_best_pca_mse"]
        assert found["test_best_pca_mse"] < found["test_noisy_mse"]
        for model, code, metric in (
                ("linear denoiser", "-", "test_linear_denoiser_mse"),
                ("PCA, best rank", "-", "test_best_pca_mse"),
                ("PCA", 8, "test_pca_mse"),
                ("noisy input", "-", "test_noisy_mse")):
            cell = _row(model, code, 0.4, "-")
            assert printed(found[metric], cell) == cell, (model, found)


@pytest.mark.slow
def test_vae_samples_are_recognisable_digits(quality_runs, tmp_path):
    """1,000 codes drawn from the VAE's prior and decoded: a classifier
    trained by the image recipe (its default ResNet on the digits) labels
    at least 8 of the 10 classes, each at least 10 times, confidently
    (probability >= 0.9)."""
    key = ("vae", 2, 0)
    _check_printed(quality_runs, key, ("test mse", "probe", "ELBO"))
    assert main(["run", "image-classification", "--output-dir",
                 str(tmp_path), "--verbose", "0"]) == 0
    classifier = dlrecipes.load_model(
        run_dir_of(tmp_path, "image-classification") / "model.keras")
    for seed in SEEDS:
        run_dir = quality_runs[(*key, seed)][0]
        decoder = dlrecipes.load_model(run_dir / "decoder.keras")
        samples = ae.decode_prior_samples(decoder, 2, 1000, seed=seed)
        # The classifier takes the digits' raw pixels, 0..16.
        p = classifier.predict(samples * 16, verbose=0)
        confident = p.argmax(axis=1)[p.max(axis=1) >= 0.9]
        counts = np.bincount(confident, minlength=10)
        print("VAE seed", seed, "confident samples per class:",
              counts.tolist())
        assert np.sum(counts >= 10) >= 8, (seed, counts)
