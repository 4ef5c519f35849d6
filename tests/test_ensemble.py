"""`dlrecipes ensemble`: finished runs combined on their common test split,
one saved model, and one line for every kind of bad input."""

import json
import os

import keras
import numpy as np
import pytest

import dlrecipes
import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.ensemble import COMBINES, combine_predictions
from dlrecipes.layers import EnsembleCombine
from dlrecipes.registry import get_recipe

IMAGE = "image-classification"
TINY = ["--model", "mlp", "--width", "8", "--epochs", "2", "--augment",
        "none", "--verbose", "0"]


def _run(tmp, seed, *extra):
    out = tmp / f"runs-{seed}"
    assert main(["run", IMAGE, *TINY, "--seed", str(seed), "--output-dir",
                 str(out), *extra]) == 0
    (run_dir,) = (out / IMAGE).iterdir()
    return str(run_dir)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("members")
    return [_run(tmp, seed) for seed in (0, 1, 2)]


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.backends
@pytest.mark.parametrize("combine", COMBINES)
def test_layer_matches_the_numpy_combination(combine):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3, 4))  # (batch, members, classes)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    # Members 0 and 1 tie on example 0 (one vote each for classes 0 and
    # 1, member 2 votes for 2): the mean probability decides.
    probs[0, 0] = [0.6, 0.3, 0.05, 0.05]
    probs[0, 1] = [0.05, 0.9, 0.0, 0.05]
    probs[0, 2] = [0.0, 0.0, 0.7, 0.3]
    members = [probs[:, i] for i in range(3)]
    want = combine_predictions(members, combine)
    got = keras.ops.convert_to_numpy(EnsembleCombine(combine)(
        [keras.ops.convert_to_tensor(m, "float32") for m in members]))
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(want.sum(-1), 1.0, atol=1e-6)
    if combine == "vote":
        assert want[0].argmax() == 1  # tie: the higher mean probability
        shares = np.eye(4)[probs.argmax(-1)].mean(1)
        clear = shares.max(-1) > 0.5  # a majority: the vote's winner
        np.testing.assert_array_equal(want.argmax(-1)[clear],
                                      shares.argmax(-1)[clear])
    if combine == "mean":
        np.testing.assert_allclose(want, probs.mean(1))


def test_ensemble_of_three_runs(members, tmp_path, capsys):
    out = tmp_path / "ensembles"
    assert main(["ensemble", *members, "--combine", "mean", "--output-dir",
                 str(out), "--parameter-average"]) == 0
    printed = capsys.readouterr().out
    (directory,) = out.iterdir()
    assert f"ensemble directory: {directory}" in printed
    assert {"members.json", "metrics.json", "model.keras",
            "confusion.png"} <= set(os.listdir(directory))
    record = json.loads((directory / "members.json").read_text())
    assert [m["run_dir"] for m in record["members"]] == [
        os.path.realpath(m) for m in members]
    assert [m["seed"] for m in record["members"]] == [0, 1, 2]
    metrics = json.loads((directory / "metrics.json").read_text())
    accs = [m["accuracy"] for m in metrics["member_test"]]
    assert metrics["member_mean_test_accuracy"] == pytest.approx(
        np.mean(accs))
    assert metrics["member_best_test_accuracy"] == max(accs)
    assert metrics["gain_over_mean"] == pytest.approx(
        metrics["test_accuracy"] - np.mean(accs))
    assert metrics["gain_over_best"] == pytest.approx(
        metrics["test_accuracy"] - max(accs))
    assert metrics["combines"]["mean"] == metrics["test_accuracy"]
    assert set(metrics["combines"]) == set(COMBINES)
    assert 0.0 <= metrics["parameter_average_test_accuracy"] <= 1.0
    # A member's figure here is its own run's test accuracy.
    with open(os.path.join(members[0], "metrics.json")) as f:
        assert json.load(f)["test_accuracy"] == pytest.approx(accs[0],
                                                              abs=1e-6)

    # The saved model is the ensemble: loadable by the safe loader, and
    # its predictions are the members' combined.
    model = dlrecipes.load_model(str(directory / "model.keras"))
    recipe = get_recipe(IMAGE)
    x = recipe.load_data(recipe.config_class()).test[0][:20]
    each = [np.asarray(dlrecipes.load_model(
        os.path.join(m, "model.keras")).predict(x, verbose=0))
        for m in members]
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               combine_predictions(each, "mean"), atol=1e-5)


def test_vote_writes_another_ensemble(members, tmp_path):
    out = tmp_path / "e"
    assert main(["ensemble", *members[:2], "--combine", "vote",
                 "--output-dir", str(out)]) == 0
    (directory,) = out.iterdir()
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["combine"] == "vote" and metrics["members"] == 2
    assert metrics["test_accuracy"] == metrics["combines"]["vote"]


def _fake_run(path, recipe=IMAGE, model=b"not a zip", **config):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(
        {"recipe": recipe, "dataset": "digits", "seed": 0, **config}))
    (path / "metrics.json").write_text("{}")
    (path / "model.keras").write_bytes(model)
    return str(path)


@pytest.mark.parametrize("case, needle", [
    ("one", "at least 2 finished runs. Received: 1"),
    ("twice", "is given twice"),
    ("unfinished", "is not a finished run (no metrics.json)"),
    ("missing", "no such directory"),
    ("recipes", "members of different recipes"),
    ("datasets", "members on different data: "),
    ("combine", "unknown combine 'median'; valid choices: mean, vote, "
                "geometric"),
    ("unsafe", "Lambda"),
])
def test_bad_input_is_one_line_and_writes_nothing(case, needle, tmp_path,
                                                  capsys):
    a = _fake_run(tmp_path / "a")
    b = _fake_run(tmp_path / "b", seed=1)
    argv = {
        "one": [a],
        "twice": [a, os.path.join(str(tmp_path), ".", "a")],
        "unfinished": [a, b],
        "missing": [a, str(tmp_path / "nope")],
        "recipes": [a, _fake_run(tmp_path / "c", recipe="gan")],
        "datasets": [a, _fake_run(tmp_path / "d", dataset="mnist")],
        "combine": [a, b, "--combine", "median"],
        "unsafe": [a, b],
    }[case]
    if case == "unfinished":
        os.unlink(os.path.join(b, "metrics.json"))
    if case == "unsafe":  # a Lambda layer: code the safe loader refuses
        inputs = keras.Input((8, 8, 1))
        unsafe = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(
            inputs))
        os.unlink(os.path.join(a, "model.keras"))
        unsafe.save(os.path.join(a, "model.keras"))
    out = tmp_path / "ensembles"
    assert main(["ensemble", *argv, "--output-dir", str(out)]) == 2
    line = _error(capsys)
    assert needle in line, line
    assert not out.exists() or not os.listdir(out)


def test_members_of_other_classes_are_refused(members, tmp_path, capsys):
    other = _run(tmp_path, 5, "--classes", "0-4")
    assert main(["ensemble", members[0], other, "--output-dir",
                 str(tmp_path / "e")]) == 2
    line = _error(capsys)
    assert "members on different data" in line and "classes" in line


def test_seeds_train_members_and_combine_them(tmp_path, capsys):
    runs, ensembles = tmp_path / "runs", tmp_path / "ensembles"
    assert main(["run", IMAGE, *TINY, "--seeds", "0,1", "--ensemble",
                 "--bootstrap", "--output-dir", str(runs),
                 "--ensemble-dir", str(ensembles)]) == 0
    printed = capsys.readouterr().out
    assert "test_accuracy over seeds 0,1:" in printed
    (directory,) = ensembles.iterdir()
    record = json.loads((directory / "members.json").read_text())
    assert [m["seed"] for m in record["members"]] == [0, 1]
    for member in record["members"]:
        config = json.loads(open(os.path.join(member["run_dir"],
                                              "config.json")).read())
        assert config["bootstrap"] is True
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["members"] == 2


def test_bootstrap_resamples_the_training_split_by_seed():
    from dlrecipes.data.description import Data
    from dlrecipes.training.engine import bootstrap

    x = np.arange(200).reshape(100, 2)
    y = np.arange(100)
    data = Data(train=(x, y), val=None, test=None, input_shape=(2,))
    a, b = bootstrap(data, 0), bootstrap(data, 1)
    assert len(a.train[1]) == 100
    np.testing.assert_array_equal(a.train[0][:, 0] // 2, a.train[1])
    np.testing.assert_array_equal(a.train[1], bootstrap(data, 0).train[1])
    assert not np.array_equal(a.train[1], b.train[1])
    # With replacement: about 1 - 1/e of the examples, some twice.
    assert 50 < len(np.unique(a.train[1])) < 80
    # What the engine fits with --bootstrap (and only with it).
    from dlrecipes.config import TrainConfig
    from dlrecipes.training.engine import prepare_data

    fitted, _ = prepare_data(TrainConfig(bootstrap=True), data)
    np.testing.assert_array_equal(fitted.train[1], a.train[1])
    plain, _ = prepare_data(TrainConfig(), data)
    assert plain.train is data.train
