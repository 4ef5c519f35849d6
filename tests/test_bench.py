"""The benchmark suite runs and writes its tables (not its speed): the CI
smoke run `python -m bench --quick --only layers`, bad names, sections that
leave the rest of BENCHMARKS.md alone, and the PyTorch twins' parameter
counts (where PyTorch is installed; the suite runs without it)."""

import os
import subprocess
import sys

import pytest

from bench import common, suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep
               + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd,
                          env=env, capture_output=True, text=True,
                          timeout=600)


def test_quick_layers_writes_a_row_per_layer(tmp_path):
    from bench import layers

    out = tmp_path / "BENCHMARKS.md"
    other = "<!-- BEGIN bench:other -->\nkeep me\n<!-- END bench:other -->\n"
    out.write_text("# Benchmarks\n\n" + other)
    proc = _bench("--quick", "--only", "layers", "--output", str(out),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert other in text  # the other section is untouched
    table = [line for line in text.splitlines() if line.startswith("| ")]
    for name in layers.BENCHES:
        rows = [line for line in table if line.startswith(f"| {name} |")]
        assert len(rows) == 1, (name, table)
        ratio = float(rows[0].strip("| ").split("|")[-1])
        assert ratio > 0


@pytest.mark.parametrize("only", ["nope", "layers,nope", ","])
def test_unknown_benchmark_lists_the_valid_ones(tmp_path, only):
    proc = _bench("--only", only, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: unknown benchmark")
    assert ", ".join(suite.BENCHMARKS) in lines[0]
    assert not os.listdir(tmp_path)  # nothing written


def test_write_section_replaces_only_its_own(tmp_path):
    path = str(tmp_path / "B.md")
    common.write_section(path, "a", "<!-- BEGIN bench:a -->\nA1\n"
                         "<!-- END bench:a -->\n")
    common.write_section(path, "b", "<!-- BEGIN bench:b -->\nB1\n"
                         "<!-- END bench:b -->\n")
    common.write_section(path, "a", "<!-- BEGIN bench:a -->\nA2\n"
                         "<!-- END bench:a -->\n")
    text = open(path).read()
    assert text.startswith("# Benchmarks")
    assert "A2" in text and "A1" not in text and "B1" in text
    assert text.index("A2") < text.index("B1")  # kept in place


def test_stats_and_format():
    assert common.stats([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)
    assert common.fmt_stats((2.5, 1.0, 10.0), digits=1) == \
        "2.5 (1.0-10.0)"
    assert common.fmt_stats((1234.0, 1000.0, 2000.0)) == \
        "1,234 (1,000-2,000)"


def test_throughput_without_torch_keeps_the_keras_column(monkeypatch):
    from bench import throughput

    monkeypatch.setattr(common, "torch_missing",
                        lambda: "PyTorch is not installed")
    monkeypatch.setitem(throughput.PROFILES["quick"], "matmul", 64)
    result = throughput.run("quick", models=("tcn",), log=lambda m: None)
    (row,) = result["rows"]
    assert row["model"] == "tcn" and "torch" not in row
    median, low, high = row["keras"]
    assert 0 < low <= median <= high
    text = "\n".join(throughput.markdown(result))
    assert "PyTorch column skipped" in text
    assert "| tcn |" in text and "n/a" in text


@pytest.mark.parametrize("name", ["resnet-cifar", "resnet50", "transformer",
                                  "tcn"])
def test_torch_twin_has_the_keras_parameter_count(name):
    pytest.importorskip("torch")
    from bench import throughput
    from bench.torch_models import count_params

    shapes = throughput.PROFILES["quick"][name]
    model, _ = throughput.keras_model(name, shapes)
    twin = throughput.torch_twin(name, shapes)
    assert count_params(twin) == model.count_params()


def test_bench_is_not_an_installed_package():
    """pip installs dlrecipes, recipes and tuning, never bench (a tool of
    the source tree, run with `python -m bench` from a checkout)."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = pytest.importorskip("setuptools")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        find = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(ROOT, include=find["include"],
                                        exclude=find.get("exclude", ()))
    top = {p.split(".")[0] for p in packages}
    assert top == {"dlrecipes", "recipes", "tuning"}, packages


def test_dlrecipes_bench_outside_a_checkout_is_one_line(monkeypatch, capsys):
    from dlrecipes import cli

    monkeypatch.setitem(sys.modules, "bench.suite", None)  # not importable
    monkeypatch.setattr(cli, "_checkout_root", lambda: None)
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: the benchmarks run from a source "
                             "checkout") and "python -m bench" in err[0]


def test_startup_benchmark_reports_time_and_heavy_imports():
    """The machinery, not the speed: `dlrecipes --help` needs no recipe
    and no Keras, in a fresh process."""
    from bench import startup

    result = startup.run(repeats=1, commands=(
        ("dlrecipes --help", ["--help"], 0),))
    (row,) = result["rows"]
    assert row["code"] == 0 and row["imported"] == []
    assert len(row["times"]) == 1 and row["times"][0] > 0
    table = "\n".join(startup.markdown(result))
    assert "| `dlrecipes --help` |" in table and "| none |" in table


def test_harness_markdown_reports_ratio_against_the_target():
    from bench import harness

    result = {"recipe": "image-classification", "epochs": 5,
              "overrides": {}, "rows": [
                  {"backend": "jax", "bare": 0.5, "run": 0.6, "ratio": 1.2,
                   "callbacks_ms": {"EpochBackup": 70.2, "HistoryWriter":
                                    0.1}},
                  {"backend": "tensorflow", "bare": 0.5, "run": 0.52,
                   "ratio": 1.04, "callbacks_ms": {}}]}
    table = harness.markdown(result)
    assert "| jax | 0.500 | 0.600 | 1.20 | missed | EpochBackup 70 |" in table
    assert "| tensorflow | 0.500 | 0.520 | 1.04 | met | - |" in table
    assert "mean of epochs 1-5 of a 7-epoch run" in table[0]


@pytest.mark.slow
def test_harness_benchmark_times_a_bare_fit_and_a_run():
    """The machinery, not the speed: one backend, one tiny model; a run's
    epochs pass through the run-directory callbacks, a bare fit's do not."""
    import keras

    from bench import harness

    result = harness.run([keras.backend.backend()], epochs=1, repeats=1,
                         overrides={
        "model": "mlp", "width": 8})
    (row,) = result["rows"]
    assert row["backend"] == keras.backend.backend()
    assert row["bare"] > 0 and row["run"] > 0
    assert row["ratio"] == row["run"] / row["bare"]
    assert {"EpochBackup", "HistoryWriter", "BestCheckpoint"} <= set(
        row["callbacks_ms"]), row["callbacks_ms"]
    table = "\n".join(harness.markdown(result))
    assert f"| {row['backend']} | {row['bare']:.3f} |" in table
    assert "--model mlp --width 8" in table


def test_endtoend_markdown_marks_the_fastest_backend_and_failures():
    from bench import endtoend

    rows = [
        {"backend": "tensorflow", "recipe": "image-classification",
         "wall_s": 80.2, "run_s": 70.1, "epochs": 40,
         "metric": "test_accuracy", "value": 0.9944},
        {"backend": "jax", "recipe": "image-classification", "wall_s": 50.0,
         "run_s": 41.0, "epochs": 40, "metric": "test_accuracy",
         "value": 0.9917},
        {"backend": "torch", "recipe": "image-classification",
         "wall_s": 9.0, "error": "exit 1: error: boom"}]
    table = endtoend.markdown({"rows": rows})
    assert ("| image-classification | jax | 50 | 41 | 40 | test_accuracy "
            "0.9917 | yes |") in table
    assert ("| image-classification | tensorflow | 80 | 70 | 40 | "
            "test_accuracy 0.9944 |  |") in table
    assert "| image-classification | torch | 9 | - | - | failed: exit 1: " \
        "error: boom | |" in table


def test_endtoend_refuses_an_unknown_recipe(capsys):
    from bench import endtoend

    with pytest.raises(SystemExit) as e:
        endtoend.main(["--recipes", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "'nope'" in err[0] and "image-classification" in err[0]


def test_throughput_side_by_side_table_has_a_ratio_per_backend():
    from bench import throughput

    result = {"backends": ["tensorflow", "jax"], "repeats": 3, "steps": 3,
              "matmul": 64, "torch_note": None, "peak": 1e11,
              "rates": {"Keras-tensorflow": (1e11, 1e11, 1e11),
                        "PyTorch": (5e10, 5e10, 5e10)},
              "rows": [{"model": "tcn", "unit": "windows", "batch": 32,
                        "params": 2929, "units_per_step": 32,
                        "flops_per_step": 3.2e7,
                        "keras": {"tensorflow": (500.0, 400.0, 600.0),
                                  "jax": (2000.0, 1900.0, 2100.0)},
                        "torch": (1000.0, 990.0, 1010.0)}]}
    table = throughput.markdown_backends(result)
    header = next(line for line in table if line.startswith("| model"))
    assert "Keras-TF /s | Keras-JAX /s | PyTorch /s | TF/PyTorch | " \
        "JAX/PyTorch" in header
    row = next(line for line in table if line.startswith("| tcn"))
    # 1e6 FLOP per window: 2,000 windows/s on 1e11 FLOP/s is 2.0%.
    assert "| 0.50 | 2.00 | 2.0% | 1.0% |" in row, row
