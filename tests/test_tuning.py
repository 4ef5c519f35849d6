"""KerasTuner searches over the recipes: spaces, the search definition
(`SearchSpec`: its JSON, identity and the resume check), the KerasTuner
patches, a trial trained exactly like a run, grid/random/hyperband/Bayesian
searches, resume after an interruption (KeyboardInterrupt in process,
SIGKILL in a subprocess), failed trials, the trials table against
KerasTuner's own records, the best config's reproduction, and bad input.

Tiny spaces on tiny data: image-classification's mlp, width 8, one epoch.
Most of the searching is one module-scoped grid search (interrupted, then
resumed to the end) that several tests read; every other search trains
as few trials as its fact needs.
"""

import ast
import csv
import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.config import config_from_dict
from dlrecipes.errors import UsageError
from dlrecipes.recipe import get_recipe, list_recipes
from dlrecipes.training import engine
from tuning import Choice, Float, run_search, search_space
from tuning import space as space_lib
from tuning.results import read_trials
from tuning.runner import prepare
from tuning.spec import SearchSpec, check_directory
from tuning.trial import fit_trial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "image-classification"
BASE = {"model": "mlp", "epochs": 1, "width": 8, "depth": 1,
        "batch_size": 64, "verbose": 0, "augment": "none",
        "schedule": "constant", "early_stopping": 0, "jit_compile": "off"}
TINY = {"width": Choice((8, 12)), "dropout": Choice((0.0, 0.1))}
# The same, as a --space file for the command line: two hps searched, the
# rest fixed.
TINY_TOML = """\
width = [8, 12]
dropout = [0.0, 0.1]
depth = 1
augment = "none"
optimizer = "adam"
learning_rate = 0.003
weight_decay = 0.0
schedule = "constant"
batch_size = 64
jit_compile = "off"
"""
from conftest import RECIPES  # noqa: E402  (the recipes package: test-only examples stay out)


def search(tmp_path, space=TINY, name="search", **kwargs):
    kwargs.setdefault("tuner", "grid")
    kwargs.setdefault("tensorboard", "off")
    kwargs.setdefault("retrain", False)
    config = {**BASE, "output_dir": str(tmp_path / "runs"),
              **kwargs.pop("config", {})}
    return run_search(IMAGE, space=space, config=config,
                      directory=str(tmp_path / name), **kwargs)


def attempts(directory, trial_id):
    path = os.path.join(directory, "trials", str(trial_id), "attempts.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def combos(rows, names=("width", "dropout")):
    return sorted(tuple(r["values"][n] for n in names) for r in rows)


def patch_build(monkeypatch, build):
    """Replace image-classification's `build_model` with
    `build(original, config, data)` (on the recipe's class, so that the
    engine, the preflight and every trial see it)."""
    cls = type(get_recipe(IMAGE))
    original = cls.build_model

    def build_model(self, config, data):
        return build(lambda c, d: original(self, c, d), config, data)

    monkeypatch.setattr(cls, "build_model", build_model)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ spaces


@pytest.mark.backends
@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_declares_a_valid_search_space(name):
    """Every registered recipe declares a space (`dlrecipes tune` searches
    it), its data fields and smoke settings, all naming config fields; the
    space resolves against the default config, works with grid search and
    declares on KerasTuner with valid defaults."""
    recipe = get_recipe(name)
    fields = set(recipe.config_class.__dataclass_fields__)
    assert recipe.search_space, (
        f"recipe {name!r} declares no search_space: every recipe declares "
        "the space `dlrecipes tune` searches")
    assert set(recipe.search_space) <= fields
    assert recipe.data_fields and set(recipe.data_fields) <= fields
    assert recipe.smoke and set(recipe.smoke) <= fields
    assert search_space(name) == dict(recipe.search_space)  # a copy
    assert search_space(name) is not recipe.search_space
    try:
        base = config_from_dict(recipe.config_class, {})
    except Exception as e:  # e.g. text-classification needs TensorFlow
        pytest.skip(f"{name}'s default config is not valid here: {e}")
    resolved = space_lib.resolve(search_space(recipe), base)
    assert resolved, "empty space"
    size = space_lib.grid_size(resolved)
    assert size and size >= 2  # the default space works with grid search
    import keras_tuner

    for grid in (False, True):
        hp = keras_tuner.HyperParameters()
        space_lib.declare(hp, resolved, base, grid=grid)
        hp.ensure_active_values()
        space_lib.trial_config(base, hp.values)  # the defaults validate


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_every_choice_builds(name):
    """Each Choice value of the space (its parent condition met) builds and
    compiles the recipe's model from its smoke config. (Shared training
    fields, such as optimizer or batch size, are the engine's business.)"""
    from dlrecipes.config import TrainConfig

    recipe = get_recipe(name)
    space = {k: v for k, v in search_space(recipe).items()
             if k not in TrainConfig.__dataclass_fields__}
    smoke = {k: v for k, v in recipe.smoke.items() if k not in space}
    base = config_from_dict(recipe.config_class, smoke)
    data = recipe.load_data(base)
    built = 0
    for hp, spec in space_lib.resolve(space, base).items():
        if not isinstance(spec, Choice):
            continue
        for value in spec.values:
            values = {hp: value}
            if spec.when:
                values[spec.when[0]] = spec.when[1][0]
            config = space_lib.trial_config(base, values)
            if any(getattr(config, f) != getattr(base, f)
                   for f in space_lib.data_fields(recipe)):
                trial_data = recipe.load_data(config)
            else:
                trial_data = data
            model, _ = engine.build(recipe, config, trial_data)
            assert model.count_params() > 0
            built += 1
            keras.backend.clear_session()
    assert built >= 4


@pytest.mark.backends
def test_space_overrides_and_grid_size():
    cls = get_recipe(IMAGE).config_class
    base = cls()
    space = search_space(IMAGE)
    narrowed, fixed = space_lib.apply_overrides(space, {
        "learning_rate": {"min": 2e-3, "max": 5e-3},
        "width": [8, 16],
        "norm": "batch",
        "momentum": {"min": 0.8, "max": 0.99},
        "depth": {"type": "int", "min": 1, "max": 3},
    }, cls)
    lr = narrowed["learning_rate"]
    assert (lr.min, lr.max, lr.sampling, lr.grid) == (2e-3, 5e-3, "log",
                                                      (3e-3,))
    assert narrowed["width"].values == (8, 16)
    assert fixed == {"norm": "batch"} and "norm" not in narrowed
    assert isinstance(narrowed["momentum"], Float)
    assert narrowed["depth"].grid_values() == [1, 2, 3]
    # Fixing the parent settles its children: resnet keeps stages/norm/depth.
    resnet = space_lib.resolve(narrowed, base.replace(model="resnet"),
                               fixed={"model"})
    assert "stages" in resnet and resnet["stages"].when is None
    mlp = space_lib.resolve(space, base.replace(model="mlp"),
                            fixed={"model"})
    assert "stages" not in mlp and "norm" not in mlp and "depth" in mlp
    # Grid size respects conditions: width x (mlp: depth 2, lenet: 1,
    # vgg/resnet: depth 2 x norm 2).
    small = {"model": Choice(("mlp", "lenet", "vgg")),
             "width": Choice((8, 16)),
             "depth": Choice((1, 2), when=("model", ("mlp", "vgg"))),
             "norm": Choice(("batch", "layer"), when=("model", ("vgg",)))}
    assert space_lib.grid_size(small) == 2 * (2 + 1 + 4)
    assert space_lib.from_json(space_lib.to_json(space)) == space
    with pytest.raises(Exception, match="continuous"):
        space_lib.check_grid({"learning_rate": Float(1e-3, 1e-2)})
    assert Float(0.0, 0.3, step=0.1).grid_values() == [0.0, 0.1, 0.2, 0.3]
    assert Float(1e-3, 1e-1, sampling="log", step=10).grid_values() == \
        pytest.approx([1e-3, 1e-2, 1e-1])


# --------------------------------------------------- the search definition

# The fields that say what a search is (its directory's identity); the
# others say how it runs. A new SearchSpec field must be placed here.
IDENTITY = {"recipe", "base", "space", "tuner", "executions_per_trial"}
HYPERBAND = ("max_epochs", "factor", "hyperband_iterations")
HOW_IT_RUNS = {"objective": ("val_loss", "min"), "max_trials": 4,
               "trial_isolation": "process", "tensorboard": "on",
               "max_failures": 3, "retrain": True, "workers": 2}


@pytest.fixture
def spec():
    return prepare(IMAGE, space=TINY, config=BASE, tuner="grid",
                   tensorboard="off", retrain=False, max_trials=3).spec


@pytest.mark.backends
def test_search_spec_json_and_identity_come_from_its_fields(spec):
    names = [f.name for f in dataclasses.fields(SearchSpec)]
    assert set(names) == IDENTITY | set(HYPERBAND) | set(HOW_IT_RUNS)
    data = spec.to_json()
    assert set(data) == set(names) | {"format", "recipe_module"}
    assert json.loads(json.dumps(data)) == data
    assert SearchSpec.from_json(data) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tuner = "random"
    with pytest.raises(TypeError):
        spec.space["width"] = Choice((8, 16))
    assert set(spec.identity()) == IDENTITY  # Hyperband's: under it only
    for name, value in HOW_IT_RUNS.items():
        other = dataclasses.replace(spec, **{name: value})
        assert other.identity() == spec.identity(), name
        assert other.default_id() == spec.default_id(), name
    for shown in ({"output_dir": "elsewhere"}, {"verbose": 2}):
        other = dataclasses.replace(spec, base=spec.base.replace(**shown))
        assert other.identity() == spec.identity(), shown
    for change in ({"tuner": "random"}, {"executions_per_trial": 2},
                   {"base": spec.base.replace(learning_rate=0.01)},
                   {"space": {**spec.space, "width": Choice((8, 16))}}):
        other = dataclasses.replace(spec, **change)
        assert other.default_id() != spec.default_id(), change
    hyperband = dataclasses.replace(spec, tuner="hyperband",
                                    max_trials=None)
    assert hyperband.max_epochs == spec.base.epochs
    assert hyperband.identity()["hyperband"] == [spec.base.epochs, 3, 1]
    assert dataclasses.replace(hyperband, factor=2).default_id() != \
        hyperband.default_id()
    assert dataclasses.replace(spec, factor=2).identity() == spec.identity()
    with pytest.raises(UsageError, match="--factor must be an integer >= 2"):
        dataclasses.replace(spec, factor=1)
    with pytest.raises(UsageError, match="valid choices: none, process"):
        dataclasses.replace(spec, trial_isolation="thread")


@pytest.mark.backends
def test_a_directory_resumes_only_the_same_search(spec, tmp_path):
    directory = tmp_path / "search"
    assert check_directory(spec, str(directory), False) == "new"
    directory.mkdir()
    (directory / "search.json").write_text(json.dumps(spec.to_json()))
    assert check_directory(spec, str(directory), False) == "resume"
    other = dataclasses.replace(
        spec, executions_per_trial=2, max_trials=9,
        base=spec.base.replace(learning_rate=0.01),
        space={**spec.space, "width": Choice((8, 16))})
    with pytest.raises(UsageError) as e:
        check_directory(other, str(directory), False)
    message = str(e.value)
    assert "\n" not in message and "holds a different search" in message
    assert "executions_per_trial: 1 there, 2 now" in message
    assert f"learning_rate: {spec.base.learning_rate!r} there, 0.01 now" \
        in message
    assert "space width: {'type': 'choice', 'values': [8, 12]} there, " \
        "{'type': 'choice', 'values': [8, 16]} now" in message
    assert "max_trials" not in message  # not part of what the search is
    assert check_directory(other, str(directory), True) == "overwrite"
    # A directory of the previous format (options nested) still resumes.
    data = spec.to_json()
    old = {k: data.pop(k) for k in ("recipe", "recipe_module", "tuner",
                                    "objective", "space",
                                    "executions_per_trial")}
    old.update(format=1, base_config=data.pop("base"), hyperband={
        "max_epochs": data.pop("max_epochs"), "factor": data.pop("factor"),
        "iterations": data.pop("hyperband_iterations")})
    data.pop("format")
    old["options"] = data
    (directory / "search.json").write_text(json.dumps(old))
    assert check_directory(spec, str(directory), False) == "resume"


# --------------------------------------------------------------- KerasTuner


def test_kerastuner_patches_match_the_installed_release():
    """tuning/kt_compat.py patches KerasTuner internals: a release that
    moves or changes them fails here, not in a user's resumed search."""
    import keras_tuner

    from tuning import kt_compat
    from tuning.spec import TUNERS

    version = keras_tuner.__version__
    assert version in kt_compat.CHECKED_VERSIONS, (
        f"KerasTuner {version} is installed, but tuning/kt_compat.py's "
        f"patches were checked against {kt_compat.CHECKED_VERSIONS} only: "
        "check each patch against it (see the module docstring), run this "
        "file's resume tests, then add it to CHECKED_VERSIONS")
    problems = kt_compat.problems()
    assert not problems, (
        "KerasTuner changed what tuning/kt_compat.py patches: "
        + "; ".join(problems))
    classes = kt_compat.oracle_classes()
    assert set(classes) == set(TUNERS)
    for name, cls in classes.items():
        assert issubclass(cls, keras_tuner.Oracle), name
        for method in ("save", "_save_trial"):  # both atomic
            assert getattr(cls, method) is not getattr(keras_tuner.Oracle,
                                                       method), name
    assert "set_state" in vars(classes["grid"])


def test_only_kt_compat_imports_kerastuner_internals():
    offenders = []
    for package in ("dlrecipes", "recipes", "tuning", "bench", "tests"):
        for path in glob.glob(os.path.join(ROOT, package, "**", "*.py"),
                              recursive=True):
            if path.endswith(os.path.join("tuning", "kt_compat.py")):
                continue
            with open(path) as f:
                text = f.read()
            if "keras_tuner" not in text:
                continue
            for node in ast.walk(ast.parse(text, path)):
                names = ([a.name for a in node.names]
                         if isinstance(node, ast.Import) else
                         [node.module or ""]
                         if isinstance(node, ast.ImportFrom) else [])
                if any(n.startswith("keras_tuner.src") for n in names):
                    offenders.append(os.path.relpath(path, ROOT))
    assert not offenders, offenders


# -------------------------------------------------------------- grid search


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 2 x 2 grid interrupted (KeyboardInterrupt) as its third trial
    builds its model, then the same call again, which resumes it to the
    end and retrains the best config into best/ (TensorBoard logs on
    under TensorFlow)."""
    tmp = tmp_path_factory.mktemp("grid")
    directory = str(tmp / "search")
    builds = []

    def interrupt_third(build, config, data):
        builds.append(config.width)
        if len(builds) == 4:  # preflight + two trials, then the third
            raise KeyboardInterrupt
        return build(config, data)

    keras.backend.clear_session(free_memory=False)
    with pytest.MonkeyPatch.context() as mp:
        patch_build(mp, interrupt_third)
        with pytest.raises(KeyboardInterrupt):
            search(tmp, retrain=True, tensorboard="auto")
    before = read_trials(os.path.join(directory, "kt"))
    lock_left = os.path.exists(os.path.join(directory, "search.lock"))
    with pytest.MonkeyPatch.context() as mp:
        # Not what these tests read: the retraining's image report (plots,
        # a classical baseline), test_recipes' business.
        mp.setattr(get_recipe(IMAGE), "report", lambda *args, **kwargs: {})
        result = search(tmp, retrain=True, tensorboard="auto")
    return types.SimpleNamespace(result=result, before=before,
                                 lock_left=lock_left)


def test_grid_runs_every_combination_once(grid):
    result = grid.result
    assert combos(result.trials) == [(8, 0.0), (8, 0.1), (12, 0.0),
                                     (12, 0.1)]
    assert [r["status"] for r in result.trials] == ["COMPLETED"] * 4
    assert os.path.getsize(os.path.join(result.directory, "search.png")) > 0


def test_interrupted_grid_search_resumes(grid):
    """Interrupted in the third trial, the same search resumes: done trials
    are not run again, the third runs again. This is keras-tuner #1055
    (GridSearch KeyError on resume), worked around in tuning/kt_compat.py."""
    assert [r["status"] for r in grid.before] == ["COMPLETED", "COMPLETED",
                                                  "RUNNING"]
    assert not grid.lock_left
    directory = grid.result.directory
    runs = {r["trial"]: len(attempts(directory, r["trial"]))
            for r in grid.result.trials}
    assert runs.pop(grid.before[2]["trial"]) == 2
    assert list(runs.values()) == [1, 1, 1]


def test_trials_table_matches_kerastuner_records(grid):
    result = grid.result
    table = read_csv(os.path.join(result.directory, "trials.csv"))
    kt_dir = os.path.join(result.directory, "kt")
    with open(os.path.join(kt_dir, "oracle.json")) as f:
        start_order = json.load(f)["start_order"]
    assert [r["trial"] for r in table] == start_order
    for rec in table:
        with open(os.path.join(kt_dir, f"trial_{rec['trial']}",
                               "trial.json")) as f:
            state = json.load(f)
        assert rec["status"] == state["status"]
        assert float(rec["val_accuracy"]) == state["score"]
        for hp, value in state["hyperparameters"]["values"].items():
            assert type(value)(rec[hp]) == value
        observed = state["metrics"]["metrics"]["epochs"]["observations"]
        assert int(rec["epochs"]) == observed[0]["value"][0] == 1
        assert float(rec["seconds"]) > 0
    with open(os.path.join(result.directory, "trials.md")) as f:
        md = f.read()
    best = max(table, key=lambda r: float(r["val_accuracy"]))
    assert f"best trial {best['trial']}" in md
    assert result.best_trial["trial"] == best["trial"]


def test_best_config_reproduces_the_best_trial(grid, tmp_path, monkeypatch):
    """best/ holds `run_recipe`'s retraining of the best trial's config,
    which trained exactly as the trial did; `dlrecipes run --config
    best/config.json` runs that config."""
    result = grid.result
    best_dir = os.path.join(result.directory, "best")
    with open(os.path.join(best_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["trial"] == result.best_trial["trial"]
    # The best trial's epochs and the retraining's, the same numbers.
    trial = read_csv(os.path.join(result.directory, "trials",
                                  result.best_trial["trial"], "history.csv"))
    run = read_csv(os.path.join(metrics["run_dir"], "history.csv"))
    assert len(trial) == len(run) == 1
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert float(run[0][key]) == float(trial[0][key]), key
    assert max(float(r["val_accuracy"]) for r in run) == \
        result.best_trial["score"]
    retrained = keras.saving.load_model(os.path.join(best_dir, "model.keras"))
    assert retrained.count_params() > 0
    # The best trial's config, from KerasTuner's record of it ...
    with open(os.path.join(result.directory, "kt",
                           f"trial_{result.best_trial['trial']}",
                           "trial.json")) as f:
        values = json.load(f)["hyperparameters"]["values"]
    recipe = get_recipe(IMAGE)
    base = config_from_dict(recipe.config_class, {
        **BASE, "output_dir": str(result.best_config.output_dir)})
    assert space_lib.trial_config(base, values) == result.best_config
    # ... is the one `dlrecipes run --config best/config.json` trains.
    ran = []
    monkeypatch.setattr("dlrecipes.training.run_recipe",
                        lambda recipe, config, **kw: ran.append(config)
                        or types.SimpleNamespace(metrics={"ok": 1}))
    out = str(tmp_path / "again")
    assert main(["run", IMAGE, "--config",
                 os.path.join(best_dir, "config.json"),
                 "--output-dir", out]) == 0
    assert ran == [result.best_config.replace(output_dir=out)]


def test_a_trial_trains_exactly_like_a_run(grid, tmp_path):
    """`fit_trial` (every tuning trial) and `run_recipe` (`dlrecipes run`;
    here the search's retraining of the best config into best/) with the
    same config: the same logs and the same best weights, to the bit
    (CPU)."""
    result = grid.result
    recipe = get_recipe(IMAGE)
    config = result.best_config
    data = recipe.load_data(config)
    checkpoint = str(tmp_path / "trial.weights.h5")
    trial = fit_trial(recipe, config, data, checkpoint=checkpoint)
    run_dir = result.test_metrics["run_dir"]
    run = read_csv(os.path.join(run_dir, "history.csv"))
    assert len(trial["rows"]) == len(run) == config.epochs
    for mine, theirs in zip(trial["rows"], run):
        assert {k: float(theirs[k]) for k in mine} == mine
    engine.start(config)
    model, _ = engine.build(recipe, config, data)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(checkpoint)
    ran = keras.saving.load_model(os.path.join(run_dir, "model.keras"),
                                  compile=False)
    assert len(model.weights) == len(ran.weights) > 0
    for a, b in zip(model.weights, ran.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b),
                                      err_msg=a.path)


def test_report_prints_the_table_again(grid, capsys):
    result = grid.result
    os.unlink(os.path.join(result.directory, "trials.md"))
    assert main(["report", result.directory]) == 0
    out = capsys.readouterr().out
    assert f"best trial {result.best_trial['trial']}" in out
    assert out.count("COMPLETED") == 4
    assert os.path.isfile(os.path.join(result.directory, "trials.md"))


@pytest.mark.backends
def test_search_runs_on_this_backend(request, tmp_path):
    """A search completes under this backend, with per-trial TensorBoard
    logs under TensorFlow only (there: the module's grid search)."""
    tensorflow = keras.backend.backend() == "tensorflow"
    if tensorflow:
        result = request.getfixturevalue("grid").result
    else:
        # Under JAX an unjitted step runs op by op: jit is the quick path.
        result = search(tmp_path, {"width": Choice((8, 12))},
                        tensorboard="auto", max_trials=1,
                        config={"jit_compile": "auto"})
    assert [r["status"] for r in result.trials] == \
        ["COMPLETED"] * len(result.trials)
    logs = os.path.join(result.directory, "logs", "tensorboard")
    assert os.path.isdir(logs) == tensorflow


# ----------------------------------------------------- random, max trials


def test_random_search_respects_max_trials_and_extends(tmp_path):
    space = {"width": Choice((8, 12, 16)),
             "learning_rate": Float(1e-3, 1e-2, sampling="log")}
    result = search(tmp_path, space, tuner="random", max_trials=1)
    assert len(result.trials) == 1
    # The same search with a larger budget continues in the same directory.
    more = search(tmp_path, space, tuner="random", max_trials=2)
    assert more.directory == result.directory
    assert len(more.trials) == 2
    values = [tuple(r["values"].values()) for r in more.trials]
    assert len(set(values)) == 2
    for row in more.trials:
        assert 1e-3 <= row["values"]["learning_rate"] <= 1e-2
    assert [len(attempts(more.directory, r["trial"]))
            for r in more.trials] == [1, 1]


def _poll_until(predicate, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["grid", "random"])
def test_search_resumes_after_sigkill(tuner, tmp_path):
    """SIGKILL while the second trial trains; the same command finishes
    the search with every trial run once, the killed one twice."""
    space_file = tmp_path / "space.toml"
    space_file.write_text(TINY_TOML)
    directory = tmp_path / "search"
    cmd = [sys.executable, "-m", "dlrecipes.cli", "tune", IMAGE,
           "--tuner", tuner, "--space", str(space_file), "--model", "mlp",
           "--epochs", "3", "--verbose", "0", "--tensorboard", "off",
           "--no-retrain", "--directory", str(directory),
           "--output-dir", str(tmp_path / "runs")]
    if tuner == "random":
        cmd += ["--max-trials", "3"]
    # The second trial has started (it logs its attempt before building).
    second = directory / "trials" / ("0001" if tuner == "grid" else "1") \
        / "attempts.jsonl"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        started = _poll_until(second.exists, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert started, err.decode()[-2000:]
    rows = read_trials(str(directory / "kt"))
    assert [r["status"] for r in rows] == ["COMPLETED", "RUNNING"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_trials(str(directory / "kt"))
    expected = 4 if tuner == "grid" else 3
    assert [r["status"] for r in rows] == ["COMPLETED"] * expected
    assert len(set(combos(rows))) == expected
    assert [len(attempts(str(directory), r["trial"])) for r in rows] == \
        [1, 2] + [1] * (expected - 2)
    with open(directory / "trials.csv") as f:
        assert len(f.read().strip().splitlines()) == expected + 1


# ---------------------------------------------------------------- failures


def _failing_build(monkeypatch, raise_width=None, nan_widths=()):
    def build(original, config, data):
        if config.width == raise_width:
            raise RuntimeError("boom in build_model")
        model = original(config, data)
        if config.width in nan_widths:
            out = keras.layers.Rescaling(float("nan"))(model.output)
            model = keras.Model(model.input, out)
        return model

    patch_build(monkeypatch, build)


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path,
                                                           monkeypatch):
    """A trial whose model does not build is recorded as failed, and the
    search goes on (a NaN loss fails a trial too: see the next test)."""
    _failing_build(monkeypatch, raise_width=12)
    result = search(tmp_path, {"width": Choice((8, 12))})
    status = {r["values"]["width"]: r for r in result.trials}
    assert status[8]["status"] == "COMPLETED"
    assert status[12]["status"] == "FAILED"
    assert "boom in build_model" in status[12]["message"]
    assert result.best_trial["values"]["width"] == 8
    with open(os.path.join(result.directory, "trials.md")) as f:
        md = f.read()
    assert md.count("FAILED") == 1 and "RuntimeError: boom" in md


def test_all_failed_exits_nonzero_with_one_line(tmp_path, monkeypatch,
                                                capsys):
    _failing_build(monkeypatch, nan_widths=(8, 12))
    space_file = tmp_path / "space.toml"
    space_file.write_text(TINY_TOML.replace("dropout = [0.0, 0.1]",
                                            "dropout = 0.0"))
    code = main(["tune", IMAGE, "--tuner", "grid", "--space",
                 str(space_file), "--max-trials", "1", "--model", "mlp",
                 "--epochs", "1", "--verbose", "0", "--tensorboard", "off",
                 "--directory", str(tmp_path / "search"),
                 "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: all 1 trials failed")
    assert "nan" in err[0].lower()
    assert not os.path.exists(tmp_path / "search" / "best")


# ----------------------------------------------------------------- bad input


def _snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[path] = (f.read(), os.stat(path).st_mtime_ns)
    return out


@pytest.fixture
def old_search(tmp_path):
    """A finished-looking search directory of image-classification."""
    directory = tmp_path / "old"
    (directory / "kt").mkdir(parents=True)
    (directory / "search.json").write_text(json.dumps(
        {"recipe": IMAGE, "format": 1}))
    (directory / "kt" / "oracle.json").write_text("{}")
    return directory


BAD = [
    (["--tuner", "annealing"], "invalid choice"),
    (["--space", "{space}", "--max-trials", "0"], "--max-trials"),
    (["--space", "{bad_space}"], "unknown hp name 'colour'"),
    (["--tuner", "grid", "--space", "{empty_space}"], "must not be empty"),
    (["--tuner", "grid", "--space", "{float_space}"],
     "grid search needs discrete values"),
    (["--set", "nosuch=1"], "unknown field 'nosuch'"),
    (["--set", "width"], "FIELD=VALUE"),
    (["--space", "{space}", "--workers", "-1"], "--workers"),
    (["--space", "{space}", "--max-epochs", "3"], "hyperband only"),
    (["--tuner", "hyperband", "--max-trials", "3"], "does not apply"),
    (["--space", "{space}"], "holds a different search"),
    (["--space", "{space}", "--dir-of-other-recipe"], "holds a search of "
     "recipe 'timeseries-forecasting'"),
    (["--space", "/no/such/space.toml"], "not found"),
]


@pytest.mark.parametrize("args,needle", BAD,
                         ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(args, needle, tmp_path, old_search, capsys):
    files = {
        "space": TINY_TOML,
        "bad_space": "colour = [1, 2]\n",
        "empty_space": "width = []\n",
        "float_space": "learning_rate = {min = 0.02, max = 0.05}\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text)
    args = [a.format(**{n: tmp_path / f"{n}.toml" for n in files})
            for a in args]
    directory = old_search
    if "--dir-of-other-recipe" in args:
        args.remove("--dir-of-other-recipe")
        (directory / "search.json").write_text(json.dumps(
            {"recipe": "timeseries-forecasting"}))
    before = _snapshot(directory)
    code = main(["tune", IMAGE, *args, "--model", "mlp", "--verbose", "0",
                 "--directory", str(directory)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert needle in err[0]
    assert "Traceback" not in "\n".join(err)
    assert _snapshot(directory) == before


def test_missing_dependency_fails_at_start(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard"
                        else real(name, *a))
    directory = tmp_path / "search"
    code = main(["tune", IMAGE, "--model", "mlp", "--tensorboard", "auto",
                 "--verbose", "0", "--directory", str(directory)])
    err = capsys.readouterr().err.strip().splitlines()
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorBoard logs are TensorFlow-only")
    assert code == 1 and len(err) == 1
    assert "missing dependency: tensorboard" in err[0]
    assert not directory.exists()


def test_non_search_directory_is_not_overwritten(tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    code = main(["tune", IMAGE, "--overwrite", "--directory", str(precious),
                 "--verbose", "0"])
    assert code == 2
    assert "not a search directory" in capsys.readouterr().err
    assert (precious / "thesis.txt").read_text() == "keep me"


# -------------------------------------------------- other tuners, isolation


@pytest.mark.slow
def test_hyperband_continues_from_checkpoints(tmp_path):
    result = search(tmp_path, {"width": Choice((8, 12, 16))},
                    tuner="hyperband", config={"epochs": 2}, max_epochs=2,
                    factor=2)
    assert all(r["status"] == "COMPLETED" for r in result.trials)
    continued = [r for r in result.trials if "tuner/trial_id" in r["values"]]
    assert continued, "no trial continued a previous one"
    for row in continued:
        assert row["values"]["tuner/initial_epoch"] == 1
        assert row["metrics"]["epochs"] == 1  # only the new epoch trained
    assert result.best_config.epochs == result.best_trial["values"][
        "tuner/epochs"]
    leftovers = glob.glob(os.path.join(result.directory, "kt", "*", ".tmp*"))
    assert not leftovers  # checkpoints are written whole, then renamed


@pytest.mark.slow
def test_bayesian_and_process_isolation(tmp_path):
    result = search(tmp_path, {"width": Choice((8, 12, 16)),
                               "learning_rate": Float(1e-3, 1e-2,
                                                      sampling="log")},
                    tuner="bayesian", max_trials=2,
                    trial_isolation="process")
    assert [r["status"] for r in result.trials] == ["COMPLETED"] * 2
    for row in result.trials:
        tdir = os.path.join(result.directory, "trials", row["trial"])
        with open(os.path.join(tdir, "result.json")) as f:
            assert json.load(f)["status"] == "ok"  # ran in a child process
        assert attempts(result.directory, row["trial"])[0]["pid"] == \
            os.getpid()


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_one_trial_per_recipe(name, tmp_path):
    """A one-trial search of every recipe from its smoke config: the
    objective, the data fields and the declared phases work in a trial."""
    recipe = get_recipe(name)
    try:
        config = config_from_dict(recipe.config_class, {
            **recipe.smoke, "verbose": 0, "jit_compile": "off",
            "output_dir": str(tmp_path / "runs")})
    except Exception as e:
        pytest.skip(f"{name} does not run here: {e}")
    space = search_space(recipe)
    fixed = {k: getattr(config, k) for k in recipe.smoke if k in space}
    result = run_search(recipe, tuner="random", max_trials=1, config=config,
                        fixed=fixed, tensorboard="off", retrain=False,
                        directory=str(tmp_path / "search"))
    (row,) = result.trials
    assert row["status"] == "COMPLETED", row["message"]
    assert row["metrics"]["epochs"] == recipe.total_epochs(config)
    assert result.objective == recipe.objective
