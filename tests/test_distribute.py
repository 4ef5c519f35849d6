"""`--distribute` on one CPU machine, every path against the single-device
run: two devices in one process under JAX
(`--xla_force_host_platform_device_count=2`) and under TensorFlow (two
logical CPUs, `MirroredStrategy`), and two JAX processes on loopback
(`keras.distribution.initialize`, gloo collectives). The JAX runs hide
TensorFlow (a GPU machine has none), and every registered recipe's smoke
config runs under JAX without TensorFlow, with `--mixed-precision` (forced
to mixed_bfloat16 on this CPU, as a GPU machine would train): the recipes
of `FAST_SMOKE` in the README's test command, the others
(image-classification, any recipe registered since) under `-m slow`.

Each configuration runs in a subprocess (device counts and a JAX job are
fixed per process); the smoke runs share a few, one recipe after another.
The subprocesses that the selected tests need start together when the
first of them is needed, two at a time (`jobs`).
"""

import concurrent.futures
import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import RECIPES, ROOT, smoke_argv
from dlrecipes.errors import UsageError
from dlrecipes.registry import get_recipe
from dlrecipes.training import distribute
from dlrecipes.training.resume import EpochArrays

# Makes this machine look like an offline GPU machine (docs/gpu.md):
# no TensorFlow, tfds, scikit-learn, statsmodels, pandas or matplotlib.
# `import tensorflow` raises ModuleNotFoundError and
# `importlib.util.find_spec("tensorflow")` is None.
HIDE_TENSORFLOW = '''
import importlib.machinery, sys
_HIDDEN = ("tensorflow", "tensorflow_datasets", "tf_keras", "sklearn",
           "statsmodels", "pandas", "patsy", "matplotlib")
class _HideTensorFlow:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN or name.startswith("tensorflow_"):
            return None
        return importlib.machinery.PathFinder.find_spec(name, path, target)
    @staticmethod
    def invalidate_caches():
        importlib.machinery.PathFinder.invalidate_caches()
sys.meta_path[:] = [_HideTensorFlow if f is importlib.machinery.PathFinder
                    else f for f in sys.meta_path]
'''

TWO_TF_CPUS = '''
import tensorflow as tf
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
'''

# Runs image-classification once per config in argv[1] (a JSON list) and
# prints the results (or the UsageError) as one JSON line. A config with
# "report": false skips the recipe's report (plots, a classical baseline):
# the single-device references, whose numbers are all that is compared.
DRIVER = '''
import json, sys
import recipes
from dlrecipes.errors import UsageError
from dlrecipes.registry import get_recipe
from dlrecipes.training import run_recipe
recipe = get_recipe("image-classification")
report = recipe.report
out = []
for values in json.loads(sys.argv[1]):
    recipe.report = (report if values.pop("report", True)
                     else lambda *args, **kwargs: {})
    try:
        result = run_recipe(recipe, recipe.config_class(**values),
                            resume=False, print_summary=False)
    except UsageError as error:
        out.append({"error": str(error)})
        continue
    out.append({"run_dir": result.run_dir, "history": result.history,
                "metrics": result.metrics})
print("RESULT " + json.dumps(out, default=str))
'''

# The CLI with each argv of argv[1] (a JSON list of argvs), one after
# another from a fresh Keras session; prints one line per run: [recipe, exit
# code, stderr lines that start with "error" (and the traceback of an
# exception), the run's metrics.json or null].
SMOKE = '''
import contextlib, glob, io, json, os, sys, traceback
import recipes
import keras
from dlrecipes.cli import main
for args in json.loads(sys.argv[1]):
    keras.backend.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except (Exception, SystemExit):
            code = None
            traceback.print_exc()
    lines = err.getvalue().splitlines()
    errors = [l for l in lines if l.startswith("error")]
    if code is None:
        errors.append("exception:\\n" + "\\n".join(lines[-30:]))
    found = glob.glob(os.path.join(args[args.index("--output-dir") + 1],
                                   args[1], "*", "metrics.json"))
    metrics = json.load(open(found[0])) if len(found) == 1 else None
    print("RESULT " + json.dumps([args[1], code, errors, metrics]),
          flush=True)
'''

# Small enough to be quick, deterministic apart from the data order (no
# dropout, no augmentation, no batch statistics), two epochs so that the
# second epoch's reshuffle is exercised.
CONFIG = {"model": "mlp", "width": 8, "epochs": 2, "batch_size": 64,
          "augment": "none", "dropout": 0.0, "verbose": 0}
TIMEOUT = 1200  # per subprocess; a busy machine runs them slower


def _env(tmp, **extra):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(tmp),
               JAX_PLATFORMS="cpu", **extra)
    return env


def _results(proc):
    """The RESULT lines of `proc` (parsed) and its stderr."""
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return [json.loads(l[len("RESULT "):]) for l in stdout.splitlines()
            if l.startswith("RESULT ")], stderr


def _result(proc):
    results, stderr = _results(proc)
    assert results, f"no result; stderr tail:\n{stderr[-3000:]}"
    return results[-1]


def _start(prelude, script, args, env, cwd):
    return subprocess.Popen(
        [sys.executable, "-c", prelude + script, *args], env=env, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _losses(run, key="loss"):
    return [row[key] for row in run["history"]]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jax_two_devices(tmp):
    """Single device, then 2 devices, then a batch size that does not
    split, all in one JAX process with two CPU devices."""
    runs = [dict(CONFIG, output_dir=str(tmp / "single"), report=False),
            dict(CONFIG, output_dir=str(tmp / "dist"), distribute=True),
            dict(CONFIG, output_dir=str(tmp / "odd"), distribute=True,
                 batch_size=63)]
    env = _env(tmp, KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = _start(HIDE_TENSORFLOW, DRIVER, [json.dumps(runs)], env, tmp)
    return tmp, _result(proc)


def _jax_two_processes(tmp):
    """Two JAX processes (one CPU device each) writing to one output
    directory."""
    runs = [dict(CONFIG, output_dir=str(tmp / "runs"), distribute=True)]
    port = _free_port()
    procs = [
        _start(HIDE_TENSORFLOW, DRIVER, [json.dumps(runs)], _env(
            tmp, KERAS_BACKEND="jax",
            DLRECIPES_COORDINATOR=f"127.0.0.1:{port}",
            DLRECIPES_NUM_PROCESSES="2", DLRECIPES_PROCESS_ID=str(i)), tmp)
        for i in range(2)]
    try:
        results = [_result(p)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return tmp, results


def _tensorflow_two_devices(tmp):
    runs = [dict(CONFIG, output_dir=str(tmp / "single"), report=False),
            dict(CONFIG, output_dir=str(tmp / "dist"), distribute=True)]
    proc = _start(TWO_TF_CPUS, DRIVER, [json.dumps(runs)],
                  _env(tmp, KERAS_BACKEND="tensorflow"), tmp)
    return _result(proc)


# Every registered recipe's smoke run under JAX without TensorFlow, with
# --mixed-precision forced to mixed_bfloat16 (what a GPU machine trains),
# several recipes per process (JAX and the recipes import once).
FORCED_POLICY = "mixed_bfloat16"

# The smoke runs of the README's test command, a process per group (the
# two run beside each other, about as long). They differ in what a GPU
# machine without TensorFlow could trip on: keras.applications and two
# training phases (transfer), tf.data-only text preprocessing that must
# refuse in one line (text), a conv autoencoder and its PCA baseline
# (autoencoder), generated scenes, a U-Net and its report (segmentation),
# a TCN on pixel rows (sequence), embedded series, a GRU and the
# persistence/seasonal/AR baselines without statsmodels (timeseries).
# image-classification is under `-m slow`: its data, training and report
# without TensorFlow are the JAX runs above (jax2, jaxmp), its ResNet
# under JAX is test_mixed_precision's, and mixed_bfloat16 under JAX is
# every recipe here. A new recipe runs under `-m slow` until it is added
# here, by hand.
FAST_SMOKE = (
    ("text-classification", "transfer-learning"),
    ("autoencoder", "segmentation", "sequence-classification",
     "timeseries-forecasting"),
)
FAST = {name for group in FAST_SMOKE for name in group}
# transfer-learning's run is mostly XLA compiling MobileNetV2's steps
# (twice per phase at batch size 64: full and last partial batch); in
# batches that divide its 1,293 training examples (3 x 431) every step
# compiles once, half the time. Partial batches under JAX are the other
# recipes' smoke runs.
SMOKE_OVERRIDES = {"transfer-learning": {"batch_size": 431}}


def _smoke_without_tensorflow(names):
    def job(tmp):
        argvs = [smoke_argv(name, tmp / name, "--mixed-precision",
                            **SMOKE_OVERRIDES.get(name, {}))
                 for name in names]
        proc = _start(HIDE_TENSORFLOW, SMOKE, [json.dumps(argvs)],
                      _env(tmp, KERAS_BACKEND="jax",
                           DLRECIPES_FORCE_MIXED=FORCED_POLICY), tmp)
        results, stderr = _results(proc)
        return {name: rest for name, *rest in results}, stderr
    return job


def _smoke_groups(names):
    """The processes that run the smoke runs of `names`: the groups of
    `FAST_SMOKE`, then one for every other recipe."""
    groups = [tuple(n for n in group if n in names) for group in FAST_SMOKE]
    groups.append(tuple(n for n in sorted(names) if n not in FAST))
    return [group for group in groups if group]


# The other subprocess jobs, after the smoke runs (the longest).
JOBS = {"jaxmp": _jax_two_processes, "jax2": _jax_two_devices,
        "tf2": _tensorflow_two_devices}


def _needs(item):
    """The jobs test `item` reads."""
    if item.originalname == "test_recipe_runs_under_jax_without_tensorflow":
        return (f"smoke:{item.callspec.params['name']}",)
    return {"test_jax_two_devices_match_one": ("jax2",),
            "test_jax_two_processes_train_in_lockstep": ("jaxmp", "jax2"),
            "test_tensorflow_two_logical_devices_match_one": ("tf2",),
            }.get(item.originalname, ())


@pytest.fixture(scope="module")
def jobs(request, tmp_path_factory):
    """{job: future} of the subprocesses the selected tests of this module
    need, started together, two at a time (the two-process JAX job counts
    as one); `smoke:NAME` is the future of the process that runs NAME."""
    names = {job for item in request.session.items
             if item.path == request.path for job in _needs(item)}
    pool = concurrent.futures.ThreadPoolExecutor(2)
    futures = {}
    smoke = {name.split(":", 1)[1] for name in names
             if name.startswith("smoke:")}
    for i, group in enumerate(_smoke_groups(smoke)):
        future = pool.submit(_smoke_without_tensorflow(group),
                             tmp_path_factory.mktemp(f"smoke{i}"))
        futures.update({f"smoke:{name}": future for name in group})
    futures.update({name: pool.submit(fn, tmp_path_factory.mktemp(name))
                    for name, fn in JOBS.items() if name in names})
    yield futures
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def jax_two_devices(jobs):
    return jobs["jax2"].result()


@pytest.fixture(scope="module")
def jax_two_processes(jobs):
    return jobs["jaxmp"].result()


def test_jax_two_devices_match_one(jax_two_devices):
    tmp, (single, dist, odd) = jax_two_devices
    assert single["metrics"]["replicas"] == 1
    assert dist["metrics"]["replicas"] == 2
    assert dist["metrics"]["devices"] == ["cpu:0", "cpu:1"]
    # Same model, same seed; the feeder's data order differs from Keras'
    # shuffle, so the curves agree within tolerance, not exactly.
    np.testing.assert_allclose(_losses(dist), _losses(single), rtol=0.05)
    np.testing.assert_allclose(dist["metrics"]["test_loss"],
                               single["metrics"]["test_loss"], rtol=0.05)
    assert _losses(dist)[-1] < _losses(dist)[0]  # it learned
    # The batch size is global and must split between the devices.
    assert "multiple of the number of devices (2)" in odd["error"]
    assert "Received: batch_size=63" in odd["error"]
    assert not (tmp / "odd").exists()  # nothing written


def test_jax_two_processes_train_in_lockstep(jax_two_processes,
                                             jax_two_devices):
    tmp, (chief, worker) = jax_two_processes
    # Both processes saw the same global batches: identical logs.
    assert chief["history"] == worker["history"]
    assert worker["metrics"]["process_id"] == 1
    assert worker["metrics"]["loss"] == _losses(chief)[-1]
    assert chief["metrics"]["processes"] == 2
    assert chief["metrics"]["replicas"] == 2
    # Two processes with one device each feed exactly the global batches
    # of one process with two devices.
    _, (single, dist, _) = jax_two_devices
    np.testing.assert_allclose(_losses(chief), _losses(dist), rtol=1e-5)
    np.testing.assert_allclose(_losses(chief, "val_loss"),
                               _losses(dist, "val_loss"), rtol=1e-5)
    np.testing.assert_allclose(chief["metrics"]["test_loss"],
                               single["metrics"]["test_loss"], rtol=0.05)
    # Only process 0 wrote: one run directory, complete; no scratch left.
    assert worker["run_dir"] is None
    runs = os.listdir(tmp / "runs" / "image-classification")
    assert len(runs) == 1
    assert os.path.join(str(tmp / "runs"), "image-classification",
                        runs[0]) == chief["run_dir"]
    run_dir = tmp / "runs" / "image-classification" / runs[0]
    for name in ("config.json", "history.csv", "metrics.json",
                 "model.keras"):
        assert (run_dir / name).is_file()
    assert not [n for n in os.listdir(tmp) if n.startswith("dlrecipes-")]


def test_tensorflow_two_logical_devices_match_one(jobs):
    pytest.importorskip("tensorflow")
    single, dist = jobs["tf2"].result()
    assert single["metrics"]["replicas"] == 1
    assert dist["metrics"]["replicas"] == 2
    # MirroredStrategy splits each batch of the same data order: the
    # same training up to float summation order.
    np.testing.assert_allclose(_losses(dist), _losses(single), rtol=1e-3)
    np.testing.assert_allclose(dist["metrics"]["test_loss"],
                               single["metrics"]["test_loss"], rtol=1e-3)


# Recipes whose data loading needs tensorflow-datasets or tf.data even on
# their default dataset; they must say so in one line.
NEEDS_TENSORFLOW = {"text-classification"}


def test_fast_smoke_recipes_are_registered():
    """The README's test command runs these recipes' smoke runs: none may
    silently drop out (a rename)."""
    assert FAST <= set(RECIPES), FAST - set(RECIPES)
    assert sum(map(len, FAST_SMOKE)) == len(FAST)  # none twice


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
    for name in RECIPES])
def test_recipe_runs_under_jax_without_tensorflow(name, jobs):
    results, stderr = jobs[f"smoke:{name}"].result()
    assert name in results, f"no result; stderr tail:\n{stderr[-3000:]}"
    code, errors, metrics = results[name]
    if name in NEEDS_TENSORFLOW and code != 0:
        assert code == 2 and len(errors) == 1, errors
        assert "tensorflow" in errors[0].lower(), errors
        return
    assert code == 0, errors
    # Trained, evaluated and saved in the forced policy.
    assert metrics["backend"] == "jax"
    assert metrics["dtype_policy"] == FORCED_POLICY
    test_metrics = {k: v for k, v in metrics.items()
                    if k.startswith("test_")}
    assert test_metrics and all(math.isfinite(v)
                                for v in test_metrics.values()), metrics


# ------------------------------------------------------- in-process tests


@pytest.mark.parametrize("num_processes,unit", [(1, 1), (1, 2), (2, 2),
                                                (2, 4), (3, 3)])
def test_epoch_arrays_slice_global_batches(num_processes, unit):
    n, batch = 203, 12
    x = np.arange(n, dtype="float32")[:, None]
    y = np.arange(n)
    reference = EpochArrays(x, y, batch, seed=7, unit=unit)
    feeders = [EpochArrays(x, y, batch, seed=7, num_processes=num_processes,
                           process_id=p, unit=unit)
               for p in range(num_processes)]
    orders = []
    for epoch in range(2):
        seen = []
        assert all(len(f) == len(reference) for f in feeders)
        for i in range(len(reference)):
            parts = [f[i] for f in feeders]
            sizes = {len(part[1]) for part in parts}
            assert len(sizes) == 1  # every process feeds as many examples
            glued = np.concatenate([part[1] for part in parts])
            np.testing.assert_array_equal(glued, reference[i][1])
            assert len(glued) % unit == 0
            np.testing.assert_array_equal(parts[0][0][:, 0], parts[0][1])
            seen.extend(glued)
        assert len(seen) == len(set(seen)) == n - n % unit
        orders.append(seen)
        for f in feeders + [reference]:
            f.set_epoch(epoch + 1)
    assert orders[0] != orders[1]  # reshuffled every epoch


def test_epoch_arrays_without_shuffle_keep_order():
    x = np.arange(10, dtype="float32")
    feeder = EpochArrays(x, x, 4, shuffle=False, num_processes=2,
                         process_id=1, unit=2)
    batches = [list(feeder[i][1]) for i in range(len(feeder))]
    assert batches == [[2.0, 3.0], [6.0, 7.0], [9.0]]


class _Config:
    def __init__(self, **values):
        self.__dict__.update(values)


def test_cluster_from_config_and_environment(monkeypatch):
    for var in (distribute.ENV_COORDINATOR, distribute.ENV_NUM_PROCESSES,
                distribute.ENV_PROCESS_ID):
        monkeypatch.delenv(var, raising=False)
    assert distribute.cluster_from(_Config()) == distribute.Cluster()
    monkeypatch.setenv(distribute.ENV_COORDINATOR, "10.0.0.1:1234")
    monkeypatch.setenv(distribute.ENV_NUM_PROCESSES, "4")
    monkeypatch.setenv(distribute.ENV_PROCESS_ID, "3")
    cluster = distribute.cluster_from(_Config())
    assert cluster == distribute.Cluster("10.0.0.1:1234", 4, 3)
    assert cluster.multi_process and not cluster.is_chief
    # Config fields, where a config has them and they are not left at
    # their defaults, override the environment.
    cluster = distribute.cluster_from(_Config(num_processes=8, process_id=0,
                                              coordinator="h:9"))
    assert cluster == distribute.Cluster("h:9", 8, 3)


@pytest.mark.parametrize("env,message", [
    ({"DLRECIPES_NUM_PROCESSES": "two"}, "Received: DLRECIPES_NUM_PROCESSES"),
    ({"DLRECIPES_NUM_PROCESSES": "0"}, "Received: num_processes=0"),
    ({"DLRECIPES_NUM_PROCESSES": "2", "DLRECIPES_PROCESS_ID": "2",
      "DLRECIPES_COORDINATOR": "h:1"}, "Received: process_id=2"),
    ({"DLRECIPES_NUM_PROCESSES": "2"}, "Received: coordinator=''"),
    ({"DLRECIPES_NUM_PROCESSES": "2", "DLRECIPES_COORDINATOR": "h"},
     "Received: coordinator='h'"),
])
def test_cluster_bad_settings(monkeypatch, env, message):
    for var in (distribute.ENV_COORDINATOR, distribute.ENV_NUM_PROCESSES,
                distribute.ENV_PROCESS_ID):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UsageError, match=message):
        distribute.cluster_from(_Config())


def test_multi_process_under_tensorflow_points_to_jax(monkeypatch):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("checks the TensorFlow backend's message")
    monkeypatch.setenv(distribute.ENV_COORDINATOR, "127.0.0.1:1")
    monkeypatch.setenv(distribute.ENV_NUM_PROCESSES, "2")
    monkeypatch.setenv(distribute.ENV_PROCESS_ID, "0")
    with pytest.raises(UsageError, match="KERAS_BACKEND=jax.*20585"):
        distribute.initialize_cluster(_Config(distribute=True))
    with pytest.raises(UsageError, match="need --distribute"):
        distribute.initialize_cluster(_Config(distribute=False))


def test_distribute_with_one_device_warns_and_trains(tmp_path, monkeypatch):
    from dlrecipes.training import run_recipe

    recipe = get_recipe("image-classification")
    # Not what this checks: the report (plots, a classical baseline).
    monkeypatch.setattr(recipe, "report", lambda *args, **kwargs: {})
    config = recipe.config_class(**dict(
        CONFIG, epochs=1, distribute=True, output_dir=str(tmp_path)))
    with pytest.warns(UserWarning, match="only one device"):
        result = run_recipe(recipe, config, print_summary=False)
    assert result.metrics["replicas"] == 1
    assert np.isfinite(result.metrics["test_loss"])
