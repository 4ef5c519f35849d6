"""The text-classification recipe (TensorFlow only): a folder dataset that
every model learns perfectly, the saved model on raw strings after reload,
imdb_reviews through tfds mock data, and bad folders."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.data.text import check_text_folder
from dlrecipes.registry import get_recipe
from recipes import text_classification as tc
from results_table import figure, results_table

if keras.backend.backend() != "tensorflow":
    pytest.skip("text-classification needs the TensorFlow backend",
                allow_module_level=True)

RECIPE = "text-classification"
# The Results table of the recipe: test accuracy per model on the folder
# that `write_text_folder` writes, with the flags LEARN and SMALL.
RESULTS = results_table(tc)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = {
    "space": "rocket orbit planet comet galaxy astronaut moon launch star "
             "nebula".split(),
    "cooking": "oven flour butter recipe simmer garlic onion bake sauce "
               "pepper".split(),
}
SMALL = ["--max-tokens", "64", "--sequence-length", "12", "--embedding-dim",
         "16", "--units", "16"]
LEARN = ["--epochs", "5", "--batch-size", "8", "--learning-rate", "0.005"]


def write_text_folder(root, per_class=30, seed=0):
    """Two classes with disjoint vocabularies, 6-10 words per file."""
    rng = np.random.default_rng(seed)
    for name, words in WORDS.items():
        os.makedirs(root / name, exist_ok=True)
        for i in range(per_class):
            text = " ".join(rng.choice(words, rng.integers(6, 11)))
            (root / name / f"{i:03d}.txt").write_text(text.capitalize()
                                                      + ".")
    return root


def cli(out, *flags):
    args = ["run", RECIPE, "--output-dir", str(out), "--verbose", "0",
            *map(str, flags)]
    return main(args)


def run_dir_of(out):
    (name,) = os.listdir(out / RECIPE)
    return out / RECIPE / name


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    return write_text_folder(tmp_path_factory.mktemp("texts"))


@pytest.mark.parametrize("model", tc.MODELS)
def test_every_model_learns_a_separable_folder(model, text_folder, tmp_path):
    out = tmp_path / "runs"
    assert cli(out, "--dataset", f"folder:{text_folder}", "--model", model,
               *LEARN, *SMALL) == 0
    run_dir = run_dir_of(out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    expected = figure(RESULTS, "test accuracy", model=model)
    # 60 files, 9 test texts: the figure says how many are right.
    assert round(metrics["test_accuracy"] * 9) == round(
        float(expected) * 9), metrics
    if model == "transformer":
        check_saved_model_takes_raw_strings(run_dir)


def test_results_table_lists_every_model():
    assert sorted(row["model"] for row in RESULTS) == sorted(tc.MODELS)


def check_saved_model_takes_raw_strings(run_dir):
    # Reloads with safe_mode on (the default) and no custom_objects; the
    # vocabulary comes from inside the .keras file.
    model = keras.saving.load_model(run_dir / "model.keras")
    # Raw strings: case and punctuation are the vectorizer's business.
    texts = np.array(["Rocket orbit, MOON launch!", "Bake flour; butter...",
                      "ROCKET, comet; galaxy!!", "simmer sauce"], dtype=object)
    probs = model.predict(texts, verbose=0)
    # Class names are the sorted folder names: cooking = 0, space = 1.
    np.testing.assert_array_equal(np.argmax(probs, axis=-1), [1, 0, 1, 0])
    vectorize = model.get_layer("vectorize")
    assert "rocket" in vectorize.get_vocabulary()
    assert "nebulae" not in vectorize.get_vocabulary()


def test_saved_model_matches_the_trained_one(text_folder, tmp_path):
    config = tc.TextClassificationConfig(
        dataset=f"folder:{text_folder}", model="bilstm", verbose=0,
        max_tokens=64, sequence_length=12, embedding_dim=8, units=8)
    recipe = get_recipe(RECIPE)
    data = recipe.load_data(config)
    model = recipe.build_model(config, data)
    recipe.compile(model, config, data, "adam")
    model.fit(data.train, epochs=1, verbose=0)
    path = str(tmp_path / "text.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # safe_mode on
    texts = np.array(["orbit moon star", "Garlic, ONION!", "unknown words",
                      ""], dtype=object)
    np.testing.assert_allclose(reloaded.predict(texts, verbose=0),
                               model.predict(texts, verbose=0), atol=1e-6)


def test_vocabulary_is_adapted_on_training_texts_only(tmp_path):
    # Every file carries a unique marker word: the vocabulary must hold the
    # markers of the training files and none of validation or test.
    folder = write_text_folder(tmp_path / "texts", per_class=10)
    for path in folder.glob("*/*.txt"):
        path.write_text(path.read_text() + f" marker{path.parent.name}"
                        f"{path.stem}")
    config = tc.TextClassificationConfig(dataset=f"folder:{folder}",
                                         verbose=0)
    recipe = get_recipe(RECIPE)
    data = recipe.load_data(config)
    vocabulary = data.vocabulary
    assert vocabulary[:2] == ["", "[UNK]"]

    def markers(part):
        return {w for texts, _ in part for t in texts.numpy()
                for w in t.decode().split() if w.startswith("marker")}

    train, held_out = markers(data.train), markers(data.val) | markers(
        data.test)
    assert len(train) == data.num_train == 14
    assert len(held_out) == 6 and not train & held_out
    assert {w for w in vocabulary if w.startswith("marker")} == train
    model = recipe.build_model(config, data)
    assert model.get_layer("vectorize").get_vocabulary() == vocabulary


def test_imdb_reviews_mock(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=24):
        assert cli(tmp_path, "--dataset", "imdb_reviews", "--epochs", "1",
                   "--model", "gru", *SMALL) == 0
    metrics = json.loads((run_dir_of(tmp_path) / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1


@pytest.mark.parametrize("layout,needle", [
    ({"only": ["a b c"]}, "at least two class sub-folders"),
    ({"a": ["x y"], "b": [""]}, "empty file"),
    ({"a": ["x y"], "b": ["  \n"]}, "empty file"),
    ({"a": ["x y"], "b": []}, "has no .txt files"),
    (None, "folder not found"),
])
def test_bad_folders(layout, needle, tmp_path, capsys):
    folder = tmp_path / "texts"
    for name, texts in (layout or {}).items():
        os.makedirs(folder / name)
        for i, text in enumerate(texts):
            (folder / name / f"{i}.txt").write_text(text)
    out = tmp_path / "runs"
    code = cli(out, "--dataset", f"folder:{folder}", "--epochs", "1")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and needle in err
    assert "Traceback" not in err
    assert not out.exists()


def test_check_text_folder_returns_sorted_classes(text_folder):
    assert check_text_folder(str(text_folder)) == ("cooking", "space")


def test_needs_tensorflow_backend(tmp_path):
    """Under another backend: one line on stderr, exit code 2."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run(
        [sys.executable, "-m", "dlrecipes.cli", "run", RECIPE, "--dataset",
         "toy", "--output-dir", str(tmp_path / "runs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs TensorFlow" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()
