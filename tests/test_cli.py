"""The CLI's good paths (bad input: tests/test_bad_input.py; crash and
resume: tests/test_resume.py)."""

import contextlib
import fcntl
import importlib.util
import json
import os
import shlex
import subprocess
import sys

import pytest

import dlrecipes
import recipes  # noqa: F401
from dlrecipes.cli import _run_parser, main
from dlrecipes.config import resolve_config
from dlrecipes.recipe import get_recipe, list_recipes
from dlrecipes.training import rundir
from test_locks import _fresh_keras_state  # noqa: F401  (no clear_session)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list(capsys):
    code, out, _ = run_cli(capsys, ["list"])
    assert code == 0
    for name in list_recipes():
        assert name in out


def test_module_is_a_script():
    proc = subprocess.run([sys.executable, "-m", "recipes.image_classification",
                           "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert "--model" in proc.stdout and "--learning-rate" in proc.stdout


# `import recipes.x`, `python -m recipes.x`, `import tuning`, `python -m
# bench.layers`: each must set TensorFlow's environment before TensorFlow
# loads. The probe stops the child at TensorFlow's import (no 5 s import)
# and prints the variables as they were at that moment.
_PROBE = """
import os, runpy, sys

class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            print("at tensorflow import:",
                  os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                  os.environ.get("TF_CPP_MIN_LOG_LEVEL"), flush=True)
            os._exit(0)

sys.meta_path.insert(0, Probe())
module, how = sys.argv[1], sys.argv[2]
if how == "import":
    __import__(module)
else:  # as `python -m module --help`
    sys.argv = [module, "--help"]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module,how", [
    ("recipes.image_classification", "import"),
    ("recipes.image_classification", "-m"),
    ("tuning", "import"),
    ("bench.layers", "-m"),
])
def test_entry_points_set_tensorflow_environment_first(module, how):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    env.update(KERAS_BACKEND="tensorflow", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", _PROBE, module, how],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "at tensorflow import: 0 3", (
        proc.stdout + proc.stderr[-2000:])


def _write_run(path, config, history_rows=0, metrics=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    if history_rows:
        (path / "history.csv").write_text(
            "epoch,loss\n" + "".join(f"{i},1.0\n" for i in range(history_rows)))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))


def test_report_lists_unfinished_runs_with_how_to_resume_or_remove(
        tmp_path, capsys):
    name = "image-classification"
    recipe = get_recipe(name)
    root = tmp_path / "runs"
    config = {"recipe": name, **recipe.config_class(
        output_dir="elsewhere", epochs=3).to_dict()}
    finished, abandoned, training = (root / name / stamp for stamp in (
        "20250101-090000", "20250101-100000", "20250101-110000"))
    _write_run(finished, config, 3, {"test_accuracy": 0.9})
    _write_run(abandoned, config, history_rows=2)
    _write_run(training, config)
    with _flocked(training / "run.lock"):
        code, out, err = run_cli(capsys, ["report", str(root)])
        resumed = _resumed_by(recipe, out)
    assert code == 0, err
    assert "1 finished and 2 unfinished runs" in out
    assert f"newest finished: {finished}" in out
    assert f"{abandoned}: 2 epochs done, abandoned" in out
    assert f"{training}: 0 epochs done, being trained by process " \
           f"{os.getpid()}" in out
    assert f"remove: rm -r {abandoned}\n" in out
    assert resumed == str(abandoned)


@contextlib.contextmanager
def _flocked(path):
    """Hold `path` as a live run would: an flock on another open file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, str(os.getpid()).encode())
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _resumed_by(recipe, report):
    """The run directory that the report's only `resume:` command picks
    up (from any working directory: it names the output directory)."""
    commands = [line.split("resume: ")[1] for line in report.splitlines()
                if "resume: " in line]
    assert len(commands) == 1, report  # none for the run being trained
    argv = shlex.split(commands[0])
    assert argv[:3] == ["dlrecipes", "run", recipe.name]
    args = _run_parser(recipe).parse_args(argv[3:])
    config = resolve_config(recipe.config_class, args)
    return rundir.find_resumable(
        os.path.join(config.output_dir, recipe.name), config.to_dict())


def test_report_escapes_control_characters(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run, {"epochs": 1}, 1, {
        "test_accuracy\x1b[2J": 0.5, "backend": "\x1b]0;owned\x07jax"})
    code, out, _ = run_cli(capsys, ["report", str(run)])
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "test_accuracy\\x1b[2J" in out and "\\x1b]0;owned\\x07jax" in out


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="torch is installed")
@pytest.mark.parametrize("argv", [["list"], ["run", "image-classification",
                                             "--help"]])
def test_missing_backend_is_one_line_in_a_fresh_process(argv):
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
    code = f"from dlrecipes.cli import main; raise SystemExit(main({argv!r}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: KERAS_BACKEND=torch, but torch is not installed: pip install "
        "torch (or unset KERAS_BACKEND to use tensorflow)"]


# `list`, a `--help` and argument errors must answer without Keras (its
# import takes seconds). The child runs the commands in one fresh process,
# in turn, and prints which heavy modules were imported after each.
_WITHOUT_KERAS = """
import contextlib, io, json, sys
from dlrecipes.cli import main
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), \\
            contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's --help
            code = e.code or 0
    print(json.dumps([argv, code, [m for m in ("keras", "tensorflow")
                                   if m in sys.modules]]))
"""
_QUICK_COMMANDS = [
    (["list"], 0),
    (["run", "image-classification", "--help"], 0),
    (["run", "image-classification", "--epochs", "-1"], 2),
    (["run", "image-classification", "--colour", "red"], 2),
    (["run", "imagenet"], 2),
    (["run"], 2),
    (["tune", "--help"], 0),
    (["report"], 2),
    (["explain", "/no/such/run"], 2),
    (["explain", ".", "--method", "nope"], 2),
    (["bench", "--only", "nope"], 2),
    (["run", "image-classification", "--backend", "nope"], 2),
    (["list", "--backend", "jax"], 0),  # last: it sets KERAS_BACKEND
]

# A recipe package whose recipe imports Keras as recipes should: lazily.
_LAZY_RECIPE = """
import dataclasses

from dlrecipes.config import TrainConfig, option
from dlrecipes.lazy import dl_layers, keras
from dlrecipes.recipe import Recipe, register_recipe


@dataclasses.dataclass(frozen=True)
class LazyConfig(TrainConfig):
    width: int = option(8, "width", min=1)


@register_recipe
class Lazy(Recipe):
    name = "image-classification"
    config_class = LazyConfig
    description = "imports Keras in its methods only"

    def build_model(self, config, data):
        return keras.Sequential([dl_layers.ConvNormAct(config.width)])
"""


def _imports_per_command(pythonpath, cwd):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    argvs = [argv for argv, _ in _QUICK_COMMANDS]
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_KERAS,
                           json.dumps(argvs)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(argv, code) for argv, code, _ in rows] == _QUICK_COMMANDS
    return {" ".join(argv): imported for argv, _, imported in rows}


def test_cli_answers_without_keras_when_recipes_import_it_lazily(tmp_path):
    """The CLI's own start-up: a `recipes` package (this checkout's
    __init__.py) with one recipe that imports Keras lazily."""
    package = tmp_path / "recipes"
    package.mkdir()
    with open(os.path.join(ROOT, "recipes", "__init__.py")) as f:
        (package / "__init__.py").write_text(f.read())
    (package / "lazy_recipe.py").write_text(_LAZY_RECIPE)
    imported = _imports_per_command(str(tmp_path) + os.pathsep + ROOT,
                                    cwd=tmp_path)
    assert imported == {command: [] for command in imported}


def test_list_help_and_bad_flags_import_no_keras():
    imported = _imports_per_command(ROOT, cwd=ROOT)
    assert imported == {command: [] for command in imported}


def test_lazy_module_imports_on_first_attribute_access():
    from dlrecipes.lazy import LazyModule, load

    name = "graphlib"  # a module nothing here imports
    if name in sys.modules:
        pytest.skip(f"{name} is imported already")
    proxy = LazyModule(name)
    assert "not imported" in repr(proxy) and name not in sys.modules
    assert not hasattr(proxy, "__wrapped__")  # introspection: no import
    assert name not in sys.modules
    order = proxy.TopologicalSorter({"b": {"a"}})  # the first use imports
    assert name in sys.modules and list(order.static_order()) == ["a", "b"]
    assert load(proxy) is sys.modules[name]
    with pytest.raises(AttributeError):
        proxy.TopologicalSorter = None


# ------------------------------------------------------------- --backend


def _other_backend():
    import keras

    return "jax" if keras.backend.backend() != "jax" else "tensorflow"


@pytest.mark.backends
@pytest.mark.parametrize("argv, needle", [
    (["run", "image-classification", "--backend", "nope"],
     "--backend 'nope' is not a backend; valid choices: tensorflow, jax, "
     "torch"),
    (["list", "--backend"],
     "--backend needs a value; valid choices: tensorflow, jax, torch"),
    (["--backend=", "list"], "--backend '' is not a backend"),
    (["run", "image-classification", "--backend", "OTHER"],
     "Keras is already running on"),
])
def test_backend_flag_bad_input_is_one_line(argv, needle, capsys):
    argv = [_other_backend() if a == "OTHER" else a for a in argv]
    code, out, err = run_cli(capsys, argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and needle in lines[0], lines
    assert os.environ.get("KERAS_BACKEND") != "nope"


def test_backend_flag_names_a_missing_package(monkeypatch, capsys):
    import keras

    from dlrecipes import backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        None if name == "jax" else real(name, *a)))
    monkeypatch.delitem(sys.modules, "keras")  # as before Keras loads
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    assert backend.select_backend("jax") == (
        "--backend jax, but jax is not installed: pip install \"jax[cpu]\" "
        "(or jax[cuda12])")
    assert os.environ["KERAS_BACKEND"] == keras.backend.backend()


@pytest.mark.parametrize("chosen", ["jax", "torch"])
def test_backend_flag_selects_the_backend_in_a_fresh_process(chosen):
    """`--backend jax` (or torch, where installed) anywhere in the command
    line wins over KERAS_BACKEND, and is set before Keras loads."""
    if importlib.util.find_spec(chosen) is None:
        pytest.skip(f"{chosen} is not installed")
    code = ("from dlrecipes.cli import main; "
            f"code = main(['report', '/nonexistent', '--backend', "
            f"'{chosen}']); "
            "import keras; print(keras.backend.backend(), code)")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == [chosen, "2"], proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: no such directory: /nonexistent"]
