"""The sequence-classification recipe: images read as sequences, every
model through a smoke run, sequential MNIST through tfds mock data, and the
shared sequence encoders. Tests marked `backends` also run under JAX (of
the per-model smoke runs, transformer and the pixels TCN only, to keep the
JAX pass short; tfds under TensorFlow only)."""

import json
import os

import keras
import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.config import config_from_dict
from dlrecipes.layers import TCN
from dlrecipes.registry import get_recipe
from dlrecipes.data.sequences import as_sequences
from dlrecipes.models.sequence import auto_dilations, tcn_receptive_field
from recipes import sequence_classification as sc

RECIPE = "sequence-classification"


def make_config(**values):
    return config_from_dict(get_recipe(RECIPE).config_class,
                            {"verbose": 0, **values})


def cli(tmp_path, *flags):
    out = tmp_path / "runs"
    args = ["run", RECIPE, "--output-dir", str(out), "--verbose", "0",
            "--epochs", "1", "--units", "8", *map(str, flags)]
    return main(args), out


def run_dir_of(out):
    (name,) = os.listdir(out / RECIPE)
    return out / RECIPE / name


@pytest.mark.backends
def test_images_read_as_rows_or_pixels():
    images = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4, 1)
    rows = as_sequences(images, "rows")
    pixels = as_sequences(images, "pixels")
    assert rows.shape == (2, 3, 4) and pixels.shape == (2, 12, 1)
    # Step t of `rows` is image row t; `pixels` goes row by row.
    np.testing.assert_array_equal(rows[1, 2], images[1, 2, :, 0])
    np.testing.assert_array_equal(pixels[1, 4:8, 0], images[1, 1, :, 0])


@pytest.mark.backends
def test_digits_shapes():
    recipe = get_recipe(RECIPE)
    rows = recipe.load_data(make_config(sequence="rows"))
    pixels = recipe.load_data(make_config(sequence="pixels"))
    assert rows.input_shape == (8, 8) and pixels.input_shape == (64, 1)
    assert len(rows.test[1]) == 360 and rows.num_classes == 10
    assert rows.scale == pixels.scale == 1 / 16  # raw 0..16 pixels
    # Same split either way: the same examples in the same order.
    np.testing.assert_array_equal(rows.test[1], pixels.test[1])
    np.testing.assert_array_equal(rows.test[0].reshape(-1, 64, 1),
                                  pixels.test[0])


@pytest.mark.backends
@pytest.mark.parametrize("length,kernel_size,expected", [
    (8, 2, (1, 2)), (64, 2, (1, 2, 4, 8, 16)), (28, 2, (1, 2, 4, 6)),
    (784, 2, (1, 2, 4, 8, 16, 32, 64, 128, 136)), (8, 3, (1,)),
    (64, 3, (1, 2, 4, 8)), (100, 4, (1, 2, 4, 8, 1)), (2, 2, (1,))])
def test_auto_dilations_fill_the_sequence(length, kernel_size, expected):
    dilations = auto_dilations(length, kernel_size)
    assert dilations == expected
    field = TCN(8, kernel_size, dilations).receptive_field
    assert tcn_receptive_field(kernel_size, dilations) == field
    step = 2 * (kernel_size - 1)  # what one more unit of dilation adds
    if length >= 1 + step:
        assert length - step < field <= length


@pytest.mark.parametrize("model", [
    pytest.param(m, marks=pytest.mark.backends) if m == "transformer" else m
    for m in sc.MODELS])
def test_models_smoke(model, tmp_path):
    code, out = cli(tmp_path, "--model", model)
    assert code == 0
    run_dir = run_dir_of(out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["test_errors"] == round(360 * (1 - metrics[
        "test_accuracy"]))
    assert (run_dir / "confusion.png").is_file()
    reloaded = keras.saving.load_model(run_dir / "model.keras")
    assert tuple(reloaded.input_shape[1:]) == (8, 8)


def test_pixels_tcn_sees_63_of_64_steps(tmp_path, recwarn):
    code, out = cli(tmp_path, "--model", "tcn", "--sequence", "pixels")
    assert code == 0
    model = keras.saving.load_model(run_dir_of(out) / "model.keras")
    assert tuple(model.input_shape[1:]) == (64, 1)
    tcn = next(layer for layer in model.layers if isinstance(layer, TCN))
    assert tcn.kernel_size == 2 and tcn.receptive_field == 63
    assert not [w for w in recwarn if "receptive field" in str(w.message)]


@pytest.mark.parametrize("sequence,shape", [("rows", (28, 28)),
                                            ("pixels", (784, 1))])
def test_sequential_mnist_mock(sequence, shape, tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tensorflow-datasets pipelines run under TensorFlow")
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        code, out = cli(tmp_path, "--dataset", "mnist", "--sequence",
                        sequence, "--model", "gru", "--batch-size", "16")
    assert code == 0
    model = keras.saving.load_model(run_dir_of(out) / "model.keras")
    assert tuple(model.input_shape[1:]) == shape


@pytest.mark.backends
@pytest.mark.parametrize("flags,needle", [
    (["--sequence", "columns"], "rows, pixels"),
    (["--dataset", "cifar10"], "digits, mnist"),
    (["--model", "elman"], "transformer"),
    (["--model", "transformer", "--num-heads", "3"],
     "--num-heads must divide"),
    (["--dilations", "1,0"], "--dilations must be >= 1"),
])
def test_bad_flags(flags, needle, tmp_path, capsys):
    code, out = cli(tmp_path, *flags)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err
    assert not out.exists()
