"""transfer-learning: backbones from a weights file and from a saved model,
the two fine-tuning phases and their resume, offline and bad-input errors
(hostile, non-image and non-file backbones refused through the CLI before a
run directory exists), and the quality check (a pretrained backbone beats
the same network trained from scratch on 10% of the labels)."""

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
from test_safe_loading import HOSTILE, unblocked_fifo

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes import load_model
from dlrecipes.cli import main
from dlrecipes.config import config_from_dict
from dlrecipes.registry import get_recipe
from dlrecipes.training import loop
from dlrecipes.vision import backbones
from results_table import figure, printed, results_table

# The recipe's two phases run under JAX too (test_fine_tune_phases, marked
# `backends`); the rest is the recipe's plumbing, checked once (the JAX
# smoke run is in test_distribute).

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A small random-init keras.applications backbone at a small image size.
TINY = ["--backbone", "mobilenet_v2", "--alpha", "0.35", "--image-size", "32",
        "--batch-size", "64", "--verbose", "0"]


def recipe():
    return get_recipe("transfer-learning")


def build(config):
    """The transfer-learning model of `config` and its data."""
    data = recipe().load_data(config)
    return recipe().build_model(config, data), data


def run_dir_of(out, name="transfer-learning"):
    (run,) = os.listdir(out / name)
    return out / name / run


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def same_weights(a, b):
    return all(np.array_equal(keras.ops.convert_to_numpy(x),
                              keras.ops.convert_to_numpy(y))
               for x, y in zip(a, b))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A small ResNet trained by image-classification on digits 0-4."""
    out = tmp_path_factory.mktemp("pretrain")
    assert main(["run", "image-classification", "--classes", "0-4",
                 "--epochs", "2", "--width", "8", "--verbose", "0",
                 "--output-dir", str(out)]) == 0
    return run_dir_of(out, "image-classification") / "model.keras"


# ------------------------------------------------------------ preprocessing


@pytest.mark.parametrize("family", ["mobilenet_v2", "resnet50", "densenet",
                                    "efficientnet", "convnext"])
def test_preprocess_layer_matches_preprocess_input(family):
    fn = getattr(keras.applications, family).preprocess_input
    x = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3))
    expected = np.asarray(fn(x.copy()), dtype="float64")
    layer = backbones.preprocess_layer(family)
    if layer is None:  # the model preprocesses inside (EfficientNet ...)
        np.testing.assert_allclose(expected, x, rtol=1e-6)
        return
    got = keras.ops.convert_to_numpy(layer(x.astype("float32")))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert not layer.trainable_weights


# ---------------------------------------------------------------- backbones


def _saved_mobilenet(tmp_path):
    """A random-init MobileNetV2 (alpha 0.35, 32x32) and its weights file."""
    source = keras.applications.MobileNetV2(
        include_top=False, weights=None, alpha=0.35, input_shape=(32, 32, 3))
    path = tmp_path / "mnv2.weights.h5"
    source.save_weights(path)
    return source, path


def test_weights_file(tmp_path):
    """--weights PATH loads the file into the keras.applications backbone;
    --weights none initialises it at random."""
    source, path = _saved_mobilenet(tmp_path)
    cls = get_recipe("transfer-learning").config_class
    built = {}
    for weights in (str(path), "none"):
        config = config_from_dict(cls, {
            "backbone": "mobilenet_v2", "alpha": 0.35, "image_size": 32,
            "weights": weights})
        model, _ = build(config)
        assert model.output_shape == (None, 10)
        built[weights] = model.get_layer("backbone")
    assert len(built["none"].weights) == len(source.weights)
    assert same_weights(built[str(path)].weights, source.weights)
    assert not same_weights(built["none"].weights, source.weights)
    assert built[str(path)].trainable is False


def test_build_model_strategies(pretrained):
    """A --backbone model is cut at its pooling layer with its weights;
    scratch re-initialises the same architecture."""
    source = load_model(pretrained)
    cls = get_recipe("transfer-learning").config_class
    built = {}
    for strategy in ("feature-extraction", "scratch"):
        config = config_from_dict(cls, {"backbone": str(pretrained),
                                        "classes": "5-9",
                                        "strategy": strategy})
        model, _ = build(config)
        assert model.output_shape == (None, 5)
        built[strategy] = model.get_layer("backbone")
    kinds = [type(layer).__name__ for layer in built["scratch"].layers]
    assert kinds[-1] == "GlobalAveragePooling2D"
    assert "RandomTranslation" not in kinds  # augmentation is dropped
    stem = [w for w in source.get_layer("stem").weights]
    assert same_weights(built["feature-extraction"].get_layer("stem").weights,
                        stem)
    assert not same_weights(built["scratch"].get_layer("stem").weights, stem)
    assert built["feature-extraction"].trainable is False
    assert built["scratch"].trainable is True


def test_fine_tune_phases(pretrained, tmp_path):
    """Head first, then the top block at a 10x lower learning rate; lower
    layers and every batch-norm statistic stay as pretrained. (TensorFlow:
    freezing and unfreezing between phases under JAX is
    tests/test_example_phases.py.)"""
    out = tmp_path / "runs"
    assert main(["run", "transfer-learning", "--backbone", str(pretrained),
                 "--classes", "5-9", "--strategy", "fine-tune",
                 "--epochs", "3", "--head-epochs", "1",
                 "--fine-tune-layers", "1", "--learning-rate", "0.01",
                 "--checkpoint", "last", "--verbose", "0",
                 "--output-dir", str(out)]) == 0
    run = run_dir_of(out)
    rates = [float(r["learning_rate"]) for r in history(run)]
    np.testing.assert_allclose(rates, [0.01, 0.001, 0.001], rtol=1e-6)
    source = load_model(pretrained)
    backbone = load_model(run / "model.keras").get_layer(
        "backbone")
    top = "residual_block_1"
    for layer in backbone.layers:
        if not layer.weights:
            continue
        before = {w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w)
                  for w in source.get_layer(layer.name).weights}
        for w in layer.weights:
            key = w.path.split("/", 1)[1]
            changed = not np.array_equal(keras.ops.convert_to_numpy(w),
                                         before[key])
            frozen = layer.name != top or any(
                k in key for k in ("norm", "moving", "gamma", "beta"))
            assert changed != frozen, (layer.name, key)


class _Interrupt(Exception):
    pass


# TensorFlow only: exact resume across phases (with the body frozen, then
# unfrozen) is the engine's, checked under both backends by
# tests/test_example_phases.py; this checks the transfer recipe's phases.
@pytest.mark.parametrize("stop_after", [1, 2])
def test_fine_tune_resume(pretrained, tmp_path, monkeypatch, stop_after):
    """Interrupted after epoch `stop_after` (1: the last head epoch, 2: the
    first fine-tuning one), the same command resumes: it runs only the
    missing epochs, each in its phase."""
    args = ["run", "transfer-learning", "--backbone", str(pretrained),
            "--classes", "5-9", "--strategy", "fine-tune", "--epochs", "4",
            "--head-epochs", "2", "--learning-rate", "0.01", "--verbose",
            "0", "--output-dir", str(tmp_path), "--backup-every", "0"]
    real_callbacks = loop._callbacks
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

        def on_epoch_end(self, epoch, logs=None):
            if epoch == stop_after and interrupt:
                raise _Interrupt()

    def spy_callbacks(*args):  # after the backup: it saved that epoch
        cbs, best, backup = real_callbacks(*args)
        return [*cbs, Spy()], best, backup

    monkeypatch.setattr(loop, "_callbacks", spy_callbacks)
    interrupt = True
    assert main(args) == 1
    assert seen == list(range(stop_after + 1))
    run = run_dir_of(tmp_path)
    assert not (run / "metrics.json").exists()
    seen.clear()
    interrupt = False
    assert main(args) == 0
    assert run_dir_of(tmp_path) == run
    assert seen == list(range(stop_after + 1, 4))
    m = metrics(run)
    assert m["resumed"] is True and m["epochs_run"] == 4
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows],
                               [0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    assert not (run / "backup").exists()


def test_weights_file_run_on_tfds_mock(tmp_path):
    """End to end: tf_flowers (mocked, resized to 32x32) on a backbone from
    a weights file; feature extraction leaves every backbone weight, batch
    norm statistics included, as the file has it."""
    tfds = pytest.importorskip("tensorflow_datasets")
    source, path = _saved_mobilenet(tmp_path)
    out = tmp_path / "runs"
    with tfds.testing.mock_data(num_examples=16):
        assert main(["run", "transfer-learning", *TINY, "--weights",
                     str(path), "--dataset", "tf_flowers", "--strategy",
                     "feature-extraction", "--epochs", "1", "--batch-size",
                     "8", "--output-dir", str(out)]) == 0
    model = load_model(run_dir_of(out) / "model.keras")
    assert tuple(model.input_shape[1:]) == (32, 32, 3)
    assert model.output_shape == (None, 5)
    assert same_weights(model.get_layer("backbone").weights, source.weights)


# ------------------------------------------------------------------- errors


OFFLINE = """
import socket, sys
def offline(*args, **kwargs):
    raise socket.gaierror(-2, "Name or service not known")
socket.getaddrinfo = offline
socket.create_connection = offline
from dlrecipes.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_imagenet_offline_is_one_line(tmp_path):
    """No network: one `error:` line naming --weights and --backbone."""
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home")}
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE, "run", "transfer-learning",
         "--backbone", "mobilenet_v2", "--alpha", "0.35", "--image-size",
         "96", "--strategy", "feature-extraction", "--epochs", "1",
         "--output-dir", str(tmp_path / "runs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    # Native start-up chatter of TensorFlow / XLA (absl), if any, aside.
    lines = [line for line in proc.stderr.strip().splitlines()
             if not re.match(r"([IWEF]\d{4} |WARNING: All log messages)",
                             line)]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "ImageNet" in lines[0]
    assert "--weights PATH" in lines[0] and "--backbone PATH.keras" in \
        lines[0]


def _not_a_model(tmp_path):
    path = tmp_path / "zip.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "not a model")
    return path


def _text_file(tmp_path):
    path = tmp_path / "text.keras"
    path.write_text("hello")
    return path


BAD = [
    (lambda p: ["--backbone", "alexnet"], "mobilenet_v2"),
    (lambda p: ["--backbone", str(p / "missing.keras")], "not found"),
    (lambda p: ["--backbone", str(_text_file(p))], "not a .keras"),
    (lambda p: ["--backbone", str(_not_a_model(p))],
     "a .keras archive holds"),
    (lambda p: ["--strategy", "distill"], "feature-extraction"),
    (lambda p: ["--weights", str(p / "none.h5")], "--weights"),
    (lambda p: ["--backbone", "resnet50", "--alpha", "0.5"], "--alpha"),
    (lambda p: ["--dataset", "tf_flowers", "--label-fraction", "0.1"],
     "digits only"),
    (lambda p: ["--strategy", "fine-tune", "--epochs", "3",
                "--head-epochs", "3"], "--head-epochs"),
    (lambda p: ["--image-size", "16"], "--image-size"),
    (lambda p: ["--dataset", "imagenet"], "tf_flowers"),
    (lambda p: ["--classes", "5"], "--classes"),
]


def refused(args, tmp_path, capsys):
    """`dlrecipes run transfer-learning ARGS` (feature extraction for 1
    epoch unless ARGS say otherwise) must exit 2 with one `error:` line;
    returns (that line, the output dir)."""
    out = tmp_path / "runs"
    code = main(["run", "transfer-learning", "--strategy",
                 "feature-extraction", "--epochs", "1", "--verbose", "0",
                 *args, "--output-dir", str(out)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0], out


@pytest.mark.parametrize("make_args,needle", BAD,
                         ids=[n for _, n in BAD])
def test_bad_input(make_args, needle, tmp_path, capsys):
    line, out = refused(make_args(tmp_path), tmp_path, capsys)
    assert needle in line
    assert not out.exists() or os.listdir(out) == []


def _image_model(*layers, shape=(8, 8, 1)):
    """A tiny Sequential model on `shape` inputs (digits are 8x8x1)."""
    return keras.Sequential([keras.Input(shape), *layers])


def _save(model, path):
    model.save(path)
    return path


@pytest.fixture(scope="module")
def image_entries(tmp_path_factory):
    """The entries of a genuine tiny image backbone's `.keras` archive: a
    model that trains to a finished run when given as --backbone."""
    model = _image_model(keras.layers.Conv2D(4, 3),
                         keras.layers.GlobalAveragePooling2D(),
                         keras.layers.Dense(2))
    path = _save(model, tmp_path_factory.mktemp("image") / "image.keras")
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_hostile_backbones_refused_through_the_cli(image_entries, tmp_path,
                                                    capsys):
    """The hostile archives of tests/test_safe_loading.py (its `archive`
    and `weights` groups: `../` and symlink entries, HDF5 links, shape
    bombs ...), built around a genuine image backbone, each given as
    `--backbone`: exit 2, one line naming the problem, no run directory."""
    cases = {**HOSTILE["archive"], **HOSTILE["weights"]}
    assert {"dotdot_entry", "symlink_entry", "h5_external_link",
            "h5_shape_bomb"} <= set(cases)
    failures = []
    for name, (build, _, match) in sorted(cases.items()):
        case_dir = tmp_path / name
        case_dir.mkdir()
        path = case_dir / "backbone.keras"
        path.write_bytes(build(image_entries))
        try:
            line, out = refused(["--backbone", str(path)], case_dir, capsys)
            assert line.startswith(f"error: --backbone: {path}"), line
            assert match.lower() in line.lower(), line
            assert not out.exists(), os.listdir(out)
        except (Exception, pytest.fail.Exception) as e:
            failures.append(f"{name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def non_image_backbones(tmp_path_factory):
    """name -> (saved model that is no image backbone, text of the error)."""
    folder = tmp_path_factory.mktemp("non_image")
    image, aux = keras.Input((8, 8, 1)), keras.Input((4,))
    two_inputs = keras.Model([image, aux], keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(image), aux]))
    models = {
        "vector": (_image_model(keras.layers.Dense(3), shape=(4,)),
                   "input of shape (None, 4), not an image"),
        "sequence": (_image_model(keras.layers.Conv1D(4, 3),
                                  keras.layers.GlobalAveragePooling1D(),
                                  shape=(10, 3)),
                     "input of shape (None, 10, 3), not an image"),
        "no_channel_axis": (_image_model(keras.layers.Flatten(),
                                         shape=(8, 8)),
                            "input of shape (None, 8, 8), not an image"),
        "volume": (_image_model(keras.layers.Conv3D(2, 3),
                                keras.layers.GlobalAveragePooling3D(),
                                shape=(4, 4, 4, 1)),
                   "input of shape (None, 4, 4, 4, 1), not an image"),
        "two_inputs": (two_inputs, "has 2 inputs ((None, 8, 8, 1), "
                       "(None, 4))"),
        "sequence_features": (_image_model(
            keras.layers.Conv2D(4, 3), keras.layers.Reshape((36, 4)),
            keras.layers.Dense(2)),
            "features of shape (None, 36, 4)"),
    }
    return {name: (_save(model, folder / f"{name}.keras"), needle)
            for name, (model, needle) in models.items()}


def test_non_image_backbones_are_usage_errors(non_image_backbones, tmp_path,
                                              capsys):
    """Each: exit 2, one line with the shape found and the one needed;
    refused before the run directory exists where the saved config
    declares the inputs (all but the features, known once loaded)."""
    for name, (path, needle) in non_image_backbones.items():
        case_dir = tmp_path / name
        case_dir.mkdir()
        line, out = refused(["--backbone", str(path)], case_dir, capsys)
        assert line.startswith(f"error: --backbone {str(path)!r}"), line
        assert needle in line, line
        assert "(batch, height, width, channels)" in line, line
        if name == "sequence_features":  # run directory made, then removed
            assert os.listdir(out / "transfer-learning") == []
        else:
            assert not out.exists(), name


def test_paths_that_are_not_files(tmp_path, capsys):
    """A directory, a FIFO (never opened: it would block) and a device
    given as --backbone or --weights are each named for what they are, not
    "file not found"."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = {str(tmp_path): "is a directory",
             str(fifo): "is a FIFO (named pipe)",
             "/dev/zero": "is a device"}
    for flag in ("--backbone", "--weights"):
        for path, needle in cases.items():
            with unblocked_fifo(fifo) as opened:
                line, out = refused([flag, path], tmp_path, capsys)
            assert line.startswith(f"error: {flag}: "), line
            assert needle in line and "not found" not in line, line
            assert opened == [] and not out.exists()


def test_hostile_weights_file_refused_through_the_cli(tmp_path, capsys):
    """`--weights` is checked like a model's weights before Keras reads it:
    no HDF5 link, external storage or shape bomb reaches h5py's readers."""
    for name in ("h5_external_link", "h5_external_storage",
                 "h5_shape_bomb"):
        build, _, match = HOSTILE["weights"][name]
        with zipfile.ZipFile(io.BytesIO(build(
                {"config.json": b"{}", "metadata.json": b"{}"}))) as zf:
            weights = zf.read("model.weights.h5")
        path = tmp_path / f"{name}.weights.h5"
        path.write_bytes(weights)
        line, out = refused([*TINY, "--weights", str(path)], tmp_path,
                            capsys)
        assert line.startswith(f"error: --weights: {path}: refused"), line
        assert match in line and not out.exists(), line


def test_backbone_recognised_by_content_not_name(tmp_path, capsys):
    """A genuine model under another name is a backbone; HDF5 bytes under
    a .keras name are not."""
    model = _image_model(keras.layers.Conv2D(4, 3),
                         keras.layers.GlobalAveragePooling2D(),
                         keras.layers.Dense(2))
    renamed = tmp_path / "backbone.bin"
    renamed.write_bytes(_save(model, tmp_path / "m.keras").read_bytes())
    cls = get_recipe("transfer-learning").config_class
    config_from_dict(cls, {"backbone": str(renamed)})  # check() passes
    backbone = backbones.load_backbone_file(str(renamed))
    assert backbone.output_shape == (None, 4)
    disguised = tmp_path / "model.keras"
    with h5py.File(disguised, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    line, _ = refused(["--backbone", str(disguised)], tmp_path, capsys)
    assert "legacy HDF5" in line and "not a .keras" in line, line


def test_unloadable_backbone(image_entries, tmp_path, capsys):
    """A safe archive whose model Keras cannot rebuild: one line, exit 2,
    no run directory left."""
    config = json.loads(image_entries["config.json"])
    conv = config["config"]["layers"][1]
    assert conv["class_name"] == "Conv2D"
    conv["config"]["filters"] = -1
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in image_entries.items():
            zf.writestr(name, json.dumps(config) if name == "config.json"
                        else data)
    line, out = refused(["--backbone", str(path)], tmp_path, capsys)
    assert line.startswith(f"error: --backbone: {path}: Keras cannot load"), \
        line
    assert os.listdir(out / "transfer-learning") == []


def test_weights_of_another_architecture(tmp_path, capsys):
    """A weights file for alpha 0.5 given to an alpha 0.35 backbone."""
    other = keras.applications.MobileNetV2(
        include_top=False, weights=None, alpha=0.5, input_shape=(32, 32, 3))
    path = tmp_path / "alpha05.weights.h5"
    other.save_weights(path)
    code = main(["run", "transfer-learning", *TINY, "--weights", str(path),
                 "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --weights: cannot load")
    assert "alpha" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50",
                                  "efficientnet_b0", "convnext_tiny"])
def test_backbone_saves_and_reloads(name, tmp_path):
    """Each keras.applications family builds (random init, 32x32 digits),
    saves and reloads with safe_mode on, with identical outputs; fine-tuning
    unfreezes its top layers but no batch norm."""
    cls = get_recipe("transfer-learning").config_class
    config = config_from_dict(cls, {"backbone": name, "weights": "none",
                                    "image_size": 32})
    model, data = build(config)
    x = data.test[0][:4]
    path = tmp_path / "model.keras"
    model.save(path)
    again = load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)
    backbone = model.get_layer("backbone")
    assert not backbone.trainable_weights
    unfrozen = backbones.unfreeze_top(backbone, 3)
    assert len(unfrozen) == 3
    assert backbone.trainable_weights
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   and layer.trainable for layer in backbone.layers)


# ------------------------------------------------------------------ quality


@pytest.mark.slow
def test_transfer_beats_scratch(tmp_path):
    """Pretrain on digits 0-4, transfer to 5-9 with 10% of the labels (64
    images): with the same short budget (10 epochs of 8-image batches),
    each strategy reaches the test accuracy of the recipe's Results table,
    and both transfer strategies beat the same network trained from
    scratch by 0.03."""
    from recipes import transfer_learning

    pre = tmp_path / "pre"
    assert main(["run", "image-classification", "--classes", "0-4",
                 "--epochs", "15", "--width", "64", "--stages", "3",
                 "--verbose", "0", "--output-dir", str(pre)]) == 0
    backbone = run_dir_of(pre, "image-classification") / "model.keras"
    accuracy = {}
    for strategy in ("scratch", "feature-extraction", "fine-tune"):
        out = tmp_path / strategy
        assert main(["run", "transfer-learning", "--backbone", str(backbone),
                     "--classes", "5-9", "--label-fraction", "0.1",
                     "--strategy", strategy, "--epochs", "10",
                     "--head-epochs", "5", "--batch-size", "8",
                     "--learning-rate", "0.01", "--augment", "none",
                     "--verbose", "0", "--output-dir", str(out)]) == 0
        accuracy[strategy] = metrics(run_dir_of(out))["test_accuracy"]
    print("test accuracy:", accuracy)
    # Same seed, same CPU TensorFlow: the same figures, to the printed
    # digit (180 test images: one image is 0.0056).
    table = results_table(transfer_learning)
    for strategy, measured in accuracy.items():
        expected = figure(table, "test accuracy", strategy=strategy)
        assert printed(measured, expected) == expected, (strategy, accuracy)
    assert accuracy["feature-extraction"] >= accuracy["scratch"] + 0.03, \
        accuracy
    assert accuracy["fine-tune"] >= accuracy["scratch"] + 0.03, accuracy
