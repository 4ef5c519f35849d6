"""KerasTuner searches over the recipes: spaces, grid/random/hyperband/
Bayesian runs, resume after an interruption (KeyboardInterrupt in process,
SIGKILL in a subprocess), failed trials, the trials table against
KerasTuner's own records, the best config's reproduction, and bad input.

Tiny spaces on tiny data: image-classification's mlp, width 8, 1-3 epochs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main
from dlrecipes.config import config_from_dict
from dlrecipes.registry import get_recipe, list_recipes
from dlrecipes.training import build_compiled_model
from recipes import image_classification as ic
from tuning import Choice, Float, run_search, search_space
from tuning import space as space_lib
from tuning.results import read_trials

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


def with_space():
    return [n for n in list_recipes()
            if space_lib.space_module(get_recipe(n)) is not None]


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


def architecture(model):
    return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers], model.count_params()


# ------------------------------------------------------------------ spaces


@pytest.mark.backends
@pytest.mark.parametrize("name", with_space())
def test_space_is_valid_for_its_recipe(name):
    recipe = get_recipe(name)
    module = space_lib.space_module(recipe)
    fields = set(recipe.config_class.__dataclass_fields__)
    assert set(module.SPACE) <= fields
    assert set(module.DATA_FIELDS) <= fields
    for hp in module.SPACE:  # hp names are exported as constants
        assert getattr(module, hp.upper()) == hp
    try:
        base = config_from_dict(recipe.config_class, {})
    except Exception as e:  # e.g. text-classification needs TensorFlow
        pytest.skip(f"{name} does not run here: {e}")
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
@pytest.mark.parametrize("name", with_space())
def test_every_choice_builds(name):
    """Each Choice value of the space (its parent condition met) builds and
    compiles the recipe's model from a small config. (Shared training
    fields, such as optimizer or batch size, are the harness' business.)"""
    from dlrecipes.config import TrainConfig

    recipe = get_recipe(name)
    space = {k: v for k, v in search_space(recipe).items()
             if k not in TrainConfig.__dataclass_fields__}
    smoke = {k: v for k, v in recipe.module.SMOKE.items() if k not in space}
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
            model, _ = build_compiled_model(recipe, config, trial_data)
            assert model.count_params() > 0
            built += 1
            keras.backend.clear_session()
    assert built >= 4


@pytest.mark.backends
def test_space_overrides_and_grid_size():
    cls = ic.ImageClassificationConfig
    base = cls()
    space = search_space(IMAGE)
    narrowed, fixed = space_lib.apply_overrides(space, {
        "learning_rate": {"min": 2e-3, "max": 5e-3},
        "width": [8, 16],
        "norm": "batch",
        "momentum": {"min": 0.8, "max": 0.99},
    }, cls)
    lr = narrowed["learning_rate"]
    assert (lr.min, lr.max, lr.sampling, lr.grid) == (2e-3, 5e-3, "log",
                                                      (3e-3,))
    assert narrowed["width"].values == (8, 16)
    assert fixed == {"norm": "batch"} and "norm" not in narrowed
    assert isinstance(narrowed["momentum"], Float)
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


# -------------------------------------------------------------- grid search


@pytest.fixture(scope="module")
def grid_result(tmp_path_factory):
    """A 2 x 2 grid, with the best config retrained into best/."""
    tmp = tmp_path_factory.mktemp("grid")
    keras.backend.clear_session()
    return search(tmp, retrain=True), tmp


def test_grid_runs_every_combination_once(grid_result):
    result, _ = grid_result
    assert combos(result.trials) == [(8, 0.0), (8, 0.1), (12, 0.0),
                                     (12, 0.1)]
    for row in result.trials:
        assert row["status"] == "COMPLETED"
        assert len(attempts(result.directory, row["trial"])) == 1
    assert os.path.getsize(os.path.join(result.directory, "search.png")) > 0


def test_trials_table_matches_kerastuner_records(grid_result):
    import csv

    result, _ = grid_result
    with open(os.path.join(result.directory, "trials.csv")) as f:
        table = list(csv.DictReader(f))
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


def test_best_config_reproduces_the_best_trial(grid_result, tmp_path):
    result, _ = grid_result
    best_dir = os.path.join(result.directory, "best")
    with open(os.path.join(best_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved.pop("recipe") == IMAGE
    recipe = get_recipe(IMAGE)
    data = recipe.load_data(result.best_config)
    # The best trial's config, rebuilt from KerasTuner's record of it.
    trial_state = os.path.join(result.directory, "kt",
                               f"trial_{result.best_trial['trial']}",
                               "trial.json")
    with open(trial_state) as f:
        values = json.load(f)["hyperparameters"]["values"]
    base = config_from_dict(recipe.config_class,
                            {**BASE, "output_dir": saved["output_dir"]})
    trial_model, _ = build_compiled_model(
        recipe, space_lib.trial_config(base, values), data)
    saved_model, _ = build_compiled_model(
        recipe, config_from_dict(recipe.config_class, saved), data)
    retrained = keras.saving.load_model(os.path.join(best_dir, "model.keras"))
    assert architecture(saved_model) == architecture(trial_model)
    assert architecture(retrained) == architecture(trial_model)
    with open(os.path.join(best_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["trial"] == result.best_trial["trial"]
    # `dlrecipes run --config best/config.json` runs the same config.
    out = tmp_path / "again"
    assert main(["run", IMAGE, "--config",
                 os.path.join(best_dir, "config.json"),
                 "--output-dir", str(out)]) == 0
    (run_name,) = os.listdir(out / IMAGE)
    again = keras.saving.load_model(out / IMAGE / run_name / "model.keras")
    assert architecture(again) == architecture(trial_model)
    # Same seed, same config, same data: the plain run trains like the
    # trial did (CPU), so its best validation score is the trial's.
    with open(out / IMAGE / run_name / "history.csv") as f:
        import csv

        val = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
    assert max(val) == pytest.approx(result.best_trial["score"], abs=1e-6)


def test_report_prints_the_table_again(grid_result, capsys):
    result, _ = grid_result
    os.unlink(os.path.join(result.directory, "trials.md"))
    assert main(["report", result.directory]) == 0
    out = capsys.readouterr().out
    assert f"best trial {result.best_trial['trial']}" in out
    assert out.count("COMPLETED") == 4
    assert os.path.isfile(os.path.join(result.directory, "trials.md"))


# ------------------------------------------------- random, max trials, resume


def test_random_search_respects_max_trials_and_extends(tmp_path):
    space = {"width": Choice((8, 12, 16)),
             "learning_rate": Float(1e-3, 1e-2, sampling="log")}
    result = search(tmp_path, space, tuner="random", max_trials=2)
    assert len(result.trials) == 2
    values = [tuple(r["values"].values()) for r in result.trials]
    assert len(set(values)) == 2
    for row in result.trials:
        assert 1e-3 <= row["values"]["learning_rate"] <= 1e-2
    # The same search with a larger budget continues in the same directory.
    more = search(tmp_path, space, tuner="random", max_trials=3)
    assert more.directory == result.directory
    assert len(more.trials) == 3
    assert [len(attempts(more.directory, r["trial"]))
            for r in more.trials] == [1, 1, 1]


def test_interrupted_grid_search_resumes(tmp_path, monkeypatch):
    """Interrupted in the third trial (KeyboardInterrupt), the same search
    resumes: done trials are not run again, the third runs again. This is
    keras-tuner #1055 (GridSearch KeyError on resume), worked around."""
    original = ic.build_model
    builds = []

    def interrupt_third(config, data):
        builds.append(config.width)
        if len(builds) == 4:  # preflight + two trials, then the third
            raise KeyboardInterrupt
        return original(config, data)

    monkeypatch.setattr(ic, "build_model", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path)
    directory = str(tmp_path / "search")
    before = read_trials(os.path.join(directory, "kt"))
    assert [r["status"] for r in before] == ["COMPLETED", "COMPLETED",
                                             "RUNNING"]
    assert not os.path.exists(os.path.join(directory, "search.lock"))
    monkeypatch.setattr(ic, "build_model", original)
    result = search(tmp_path)
    assert [r["status"] for r in result.trials] == ["COMPLETED"] * 4
    assert combos(result.trials) == [(8, 0.0), (8, 0.1), (12, 0.0),
                                     (12, 0.1)]
    runs = {r["trial"]: len(attempts(directory, r["trial"]))
            for r in result.trials}
    interrupted = before[2]["trial"]
    assert runs.pop(interrupted) == 2
    assert set(runs.values()) == {1}


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
    original = ic.build_model

    def build(config, data):
        if config.width == raise_width:
            raise RuntimeError("boom in build_model")
        model = original(config, data)
        if config.width in nan_widths:
            out = keras.layers.Rescaling(float("nan"))(model.output)
            model = keras.Model(model.input, out)
        return model

    monkeypatch.setattr(ic, "build_model", build)


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path,
                                                           monkeypatch):
    _failing_build(monkeypatch, raise_width=12, nan_widths=(16,))
    result = search(tmp_path, {"width": Choice((8, 12, 16))})
    status = {r["values"]["width"]: r for r in result.trials}
    assert status[8]["status"] == "COMPLETED"
    assert status[12]["status"] == "FAILED"
    assert status[16]["status"] == "FAILED"
    assert "boom in build_model" in status[12]["message"]
    assert "nan" in status[16]["message"].lower()
    assert result.best_trial["values"]["width"] == 8
    with open(os.path.join(result.directory, "trials.md")) as f:
        md = f.read()
    assert md.count("FAILED") == 2 and "RuntimeError: boom" in md


def test_all_failed_exits_nonzero_with_one_line(tmp_path, monkeypatch,
                                                capsys):
    _failing_build(monkeypatch, nan_widths=(8, 12))
    space_file = tmp_path / "space.toml"
    space_file.write_text(TINY_TOML.replace("dropout = [0.0, 0.1]",
                                            "dropout = 0.0"))
    code = main(["tune", IMAGE, "--tuner", "grid", "--space",
                 str(space_file), "--model", "mlp", "--epochs", "1",
                 "--verbose", "0", "--tensorboard", "off",
                 "--directory", str(tmp_path / "search"),
                 "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: all 2 trials failed")
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

    from tuning import runner

    real = importlib.util.find_spec
    monkeypatch.setattr(runner.importlib.util, "find_spec",
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


@pytest.mark.backends
def test_search_runs_on_this_backend(tmp_path):
    result = search(tmp_path, {"width": Choice((8, 12))},
                    tensorboard="auto")
    assert [r["status"] for r in result.trials] == ["COMPLETED"] * 2
    logs = os.path.join(result.directory, "logs", "tensorboard")
    # TensorBoard logs per trial under TensorFlow; none under JAX.
    assert os.path.isdir(logs) == (keras.backend.backend() == "tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("name", with_space())
def test_one_trial_per_recipe(name, tmp_path):
    """A one-trial search of every recipe with a space, from its smoke
    config: the objective, data fields and any `fit` hook work."""
    recipe = get_recipe(name)
    try:
        config = config_from_dict(recipe.config_class, {
            **recipe.module.SMOKE, "verbose": 0, "jit_compile": "off",
            "output_dir": str(tmp_path / "runs")})
    except Exception as e:
        pytest.skip(f"{name} does not run here: {e}")
    space = search_space(recipe)
    fixed = {k: getattr(config, k) for k in recipe.module.SMOKE
             if k in space}
    result = run_search(recipe, tuner="random", max_trials=1, config=config,
                        fixed=fixed, tensorboard="off", retrain=False,
                        directory=str(tmp_path / "search"))
    (row,) = result.trials
    assert row["status"] == "COMPLETED", row["message"]
    assert row["metrics"]["epochs"] == config.epochs
    assert result.objective == recipe.objective
