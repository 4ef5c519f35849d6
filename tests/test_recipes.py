"""Every registered recipe, end to end, with its smoke config (tiny data, a
few epochs). Parametrized over `RECIPES` (conftest.py): a new recipe is
tested the moment it registers."""

import os

import numpy as np
import pytest

import dlrecipes
from conftest import (RECIPES, config_from_flags, config_of, history,
                      metrics, run_dir_of, smoke_argv, smoke_config)
from dlrecipes.cli import main
from dlrecipes.registry import get_recipe

RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras",
             "curves.png")


def check_run_dir(run_dir, config, epochs):
    """A finished run of `epochs` epochs with `config.epochs`."""
    for fname in RUN_FILES:
        assert (run_dir / fname).is_file(), f"{fname} missing in {run_dir}"
    found = metrics(run_dir)
    assert found["epochs_run"] == epochs
    assert found["params"] > 0
    assert any(k.startswith("test_") for k in found)
    assert [int(r["epoch"]) for r in history(run_dir)] == list(range(epochs))
    assert config_of(run_dir)["epochs"] == config.epochs
    assert not (run_dir / "run.lock").exists()
    return found


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_smoke(name, tmp_path):
    assert main(smoke_argv(name, tmp_path)) == 0
    run_dir = run_dir_of(tmp_path, name)
    config = smoke_config(name)
    check_run_dir(run_dir, config, get_recipe(name).total_epochs(config))
    if name == "image-classification":  # the image reports
        assert (run_dir / "confusion.png").is_file()
        assert (run_dir / "misclassified.png").is_file()
    # The saved best model reloads with safe_mode on and no custom_objects.
    model = dlrecipes.load_model(run_dir / "model.keras")
    assert model.count_params() == metrics(run_dir)["params"]


@pytest.mark.parametrize("model", ["mlp", "lenet", "vgg", "resnet"])
def test_image_models_train_and_save(model, tmp_path):
    """Every image model builds, compiles and trains one step exactly as a
    run does (`build_compiled_model`), and round-trips through the safe
    loader. The CLI path itself is covered once by `test_recipe_smoke`."""
    from dlrecipes.training import build_compiled_model

    recipe = get_recipe("image-classification")
    config = recipe.config_class(model=model, width=8, batch_size=32,
                                 verbose=0)
    data = recipe.load_data(config)
    x, y = data.train[0][:64], data.train[1][:64]
    net, _ = build_compiled_model(recipe, config, data)
    before = [np.array(w) for w in net.trainable_weights]
    history = net.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, np.array(b))
               for a, b in zip(before, net.trainable_weights))
    assert net.output_shape == (None, data.num_classes)
    path = tmp_path / "m.keras"
    net.save(path)
    again = dlrecipes.load_model(path, compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0),
                               net.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("dataset,shape", [("mnist", (28, 28, 1)),
                                           ("cifar10", (32, 32, 3))])
def test_image_tfds_mock(dataset, shape, tmp_path):
    """tfds datasets (mocked: 40 random examples) through the recipe's
    tf.data pipeline, in process (with oneDNN off, see dlrecipes/__init__,
    TensorFlow's generator datasets no longer corrupt the heap)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    name = "image-classification"
    with tfds.testing.mock_data(num_examples=40):
        assert main(smoke_argv(name, tmp_path, dataset=dataset,
                               batch_size=16)) == 0
    run_dir = run_dir_of(tmp_path, name)
    config = smoke_config(name, dataset=dataset, batch_size=16)
    check_run_dir(run_dir, config, get_recipe(name).total_epochs(config))
    model = dlrecipes.load_model(run_dir / "model.keras")
    assert tuple(model.input_shape[1:]) == shape


def write_image_folder(root, classes=("circle", "square"), per_class=12,
                       size=24):
    """Two visibly different classes of small PNGs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 40, (size, size, 3)).astype("uint8")
            if c == 0:
                img[6:18, 6:18] = 255
            else:
                img[:, ::4] = 255
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def test_image_folder_dataset(tmp_path):
    folder = write_image_folder(tmp_path / "images")
    out = tmp_path / "runs"
    name = "image-classification"
    values = dict(dataset=f"folder:{folder}", image_size=24, batch_size=8)
    assert main(smoke_argv(name, out, **values)) == 0
    run_dir = run_dir_of(out, name)
    config = smoke_config(name, **values)
    check_run_dir(run_dir, config, get_recipe(name).total_epochs(config))
    model = dlrecipes.load_model(run_dir / "model.keras")
    assert tuple(model.input_shape[1:]) == (24, 24, 3)


def test_config_file_and_flag_override(tmp_path):
    """defaults <- --config file <- flags; the config.json a run writes
    resolves back to the same config."""
    from dlrecipes.training.rundir import create_run_dir, unlock

    cfg = tmp_path / "cfg.toml"
    cfg.write_text('epochs = 2\nwidth = 8\nmodel = "mlp"\nverbose = 0\n')
    config = config_from_flags("image-classification",
                               ["--config", str(cfg), "--model", "lenet"])
    assert config.epochs == 2 and config.width == 8 and config.verbose == 0
    assert config.model == "lenet"  # the flag overrides the file
    assert config.batch_size == get_recipe(
        "image-classification").config_class().batch_size  # a default
    run_dir, _ = create_run_dir(str(tmp_path / "runs"),
                                "image-classification", config.to_dict(),
                                resume=False)
    unlock(run_dir)
    again = config_from_flags(
        "image-classification",
        ["--config", os.path.join(run_dir, "config.json")])
    assert again == config
