"""The bad-input sweep: every command (list, run, tune, report, bench) and
recipe, one table. Each bad invocation exits 2 (1 for a failure after a
valid start), prints exactly one line on stderr that starts with `error:`
and names the problem, no traceback, and leaves no output a later run would
trust. `--debug` shows the traceback instead."""

import errno
import json
import os

import pytest

import recipes  # noqa: F401  (registers every recipe)
from dlrecipes.cli import main

IC = ["run", "image-classification"]
TL = ["run", "transfer-learning"]
TS = ["run", "timeseries-forecasting"]
SC = ["run", "sequence-classification"]
TC = ["run", "text-classification"]
TUNE = ["tune", "image-classification"]

# Files the cases name as {key}; written by the `files` fixture.
FILES = {
    "bad.toml": "epochs = [\n",
    "bad.json": "{\"epochs\": 3,",
    "colour.toml": "colour = 'red'\n",
    "type.toml": "epochs = 'ten'\n",
    "list.json": "[1, 2]\n",
    "model.h5": "\x89HDF\r\n\x1a\n not really",
    "text.txt": "just text\n",
    "space_bad.toml": "colour = [1, 2]\n",
    "space_empty.toml": "width = []\n",
    "bad.csv": "a,b\n1,x\n",
}

# (id, argv, exit code, text the error line must contain, patch)
CASES = [
    # dlrecipes itself and list
    ("no-command", [], 2, "valid choices: list, run, tune, report, bench"),
    ("unknown-command", ["frobnicate"], 2, "unknown command 'frobnicate'"),
    ("list-extra", ["list", "image"], 2, "list takes no arguments"),
    # run: names
    ("run-no-recipe", ["run"], 2, "image-classification"),
    ("run-unknown-recipe", ["run", "imagenet"], 2, "timeseries-forecasting"),
    ("run-flag-as-recipe", ["run", "--epochs", "3"], 2, "needs a recipe"),
    ("unknown-flag", IC + ["--colour", "red"], 2, "unrecognized"),
    ("unknown-model", IC + ["--model", "alexnet"], 2, "resnet"),
    ("unknown-optimizer", IC + ["--optimizer", "adamax"], 2, "adamw"),
    ("unknown-schedule", IC + ["--schedule", "linear"], 2, "cosine"),
    ("unknown-dataset", IC + ["--dataset", "imagenet"], 2, "cifar10"),
    ("unknown-norm", IC + ["--norm", "weird"], 2, "--norm"),
    ("unknown-jit", IC + ["--jit-compile", "sometimes"], 2, "auto"),
    ("unknown-checkpoint", IC + ["--checkpoint", "first"], 2, "best"),
    # run: numbers
    ("negative-epochs", IC + ["--epochs", "-3"], 2, "--epochs must be >= 1"),
    ("word-epochs", IC + ["--epochs", "three"], 2, "integer"),
    ("zero-batch", IC + ["--batch-size", "0"], 2, "--batch-size"),
    ("float-batch", IC + ["--batch-size", "1.5"], 2, "integer"),
    ("zero-lr", IC + ["--learning-rate", "0"], 2, "> 0"),
    ("nan-lr", IC + ["--learning-rate", "nan"], 2, "finite"),
    ("negative-seed", IC + ["--seed", "-1"], 2, "--seed"),
    ("val-fraction", IC + ["--val-fraction", "1.5"], 2, "--val-fraction"),
    ("dropout-range", IC + ["--dropout", "2"], 2, "--dropout"),
    # run: conflicting flags
    ("reduce-lr-with-schedule", IC + ["--reduce-lr-patience", "2"], 2,
     "needs --schedule constant"),
    ("classes-off-digits", IC + ["--dataset", "mnist", "--classes", "0-4"],
     2, "digits only"),
    ("classes-out-of-range", IC + ["--classes", "0-12"], 2, "--classes"),
    ("head-epochs", TL + ["--epochs", "3", "--head-epochs", "3"], 2,
     "--head-epochs"),
    ("heads-vs-units", SC + ["--model", "transformer", "--units", "30",
                             "--num-heads", "4"], 2, "--num-heads"),
    # run: files
    ("missing-config", IC + ["--config", "/no/such.toml"], 2, "not found"),
    ("malformed-toml", IC + ["--config", "{bad.toml}"], 2, "cannot read"),
    ("malformed-json", IC + ["--config", "{bad.json}"], 2, "cannot read"),
    ("config-unknown-field", IC + ["--config", "{colour.toml}"], 2,
     "unknown field 'colour'"),
    ("config-wrong-type", IC + ["--config", "{type.toml}"], 2, "integer"),
    ("config-not-a-table", IC + ["--config", "{list.json}"], 2,
     "must hold a table"),
    ("image-folder-missing", IC + ["--dataset", "folder:/no/such/dir"], 2,
     "not found"),
    ("backbone-missing", TL + ["--backbone", "/no/such.keras"], 2,
     "not found"),
    ("backbone-h5", TL + ["--backbone", "{model.h5}"], 2, "not a .keras"),
    ("backbone-text", TL + ["--backbone", "{text.txt}"], 2, "not a .keras"),
    ("unknown-strategy", TL + ["--strategy", "distill"], 2,
     "feature-extraction"),
    ("series-missing-csv", TS + ["--dataset", "csv:/no/such.csv"], 2,
     "not found"),
    ("series-bad-csv", TS + ["--dataset", "csv:{bad.csv}"], 2, "bad.csv"),
    ("series-lookback", TS + ["--lookback", "soon"], 2, "--lookback"),
    ("series-unknown-model", TS + ["--model", "prophet"], 2, "gru"),
    ("sequence-unknown-model", SC + ["--model", "mamba"], 2, "tcn"),
    ("text-folder-missing", TC + ["--dataset", "folder:/no/such/dir"], 2,
     "folder not found"),
    ("unwritable-output", IC + ["--output-dir", "{text.txt}/runs"], 2,
     "cannot create output directory"),
    # run: failures after a valid start
    ("interrupted-download", IC + ["--dataset", "mnist"], 1,
     "cannot load dataset 'mnist'", "download_fails"),
    ("full-disk", IC + ["--epochs", "1"], 1, "No space left on device",
     "disk_full"),
    # tune
    ("tune-no-recipe", ["tune"], 2, "image-classification"),
    ("tune-unknown-recipe", ["tune", "imagenet"], 2, "image-classification"),
    ("tune-unknown-tuner", TUNE + ["--tuner", "annealing"], 2,
     "invalid choice"),
    ("tune-zero-trials", TUNE + ["--max-trials", "0"], 2, "--max-trials"),
    ("tune-word-trials", TUNE + ["--max-trials", "many"], 2, "invalid int"),
    ("tune-negative-workers", TUNE + ["--workers", "-1"], 2, "--workers"),
    ("tune-missing-space", TUNE + ["--space", "/no/such.toml"], 2,
     "not found"),
    ("tune-unknown-hp", TUNE + ["--space", "{space_bad.toml}"], 2,
     "unknown hp name 'colour'"),
    ("tune-empty-grid", TUNE + ["--tuner", "grid", "--space",
                                "{space_empty.toml}"], 2, "must not be empty"),
    ("tune-bad-set", TUNE + ["--set", "width"], 2, "FIELD=VALUE"),
    ("tune-conflict", TUNE + ["--tuner", "hyperband", "--max-trials", "3"],
     2, "does not apply"),
    ("tune-directory-is-file", TUNE + ["--directory", "{text.txt}"], 2,
     "text.txt"),
    # report
    ("report-no-dir", ["report"], 2, "directory"),
    ("report-missing", ["report", "/no/such/run"], 2, "no such directory"),
    ("report-unfinished", ["report", "{unfinished}"], 2, "unfinished run"),
    ("report-corrupt-metrics", ["report", "{corrupt}"], 2, "unreadable"),
    ("report-empty-dir", ["report", "{empty}"], 2,
     "neither a run nor a search directory"),
    ("report-runs-root", ["report", "{runs}"], 2,
     "the newest finished run under it"),
    # bench
    ("bench-unknown", ["bench", "--only", "speed"], 2,
     "valid choices: layers, throughput, pipeline, accuracy"),
    ("bench-conflict", ["bench", "--quick", "--gpu"], 2, "not allowed"),
    ("bench-seeds", ["bench", "--seeds", "-2"], 2, "--seeds must be >= 1"),
    ("bench-word-seeds", ["bench", "--seeds", "two"], 2, "invalid int"),
    ("bench-output-dir", ["bench", "--output", "/no/such/dir/B.md"], 2,
     "no such directory"),
    ("bench-unknown-flag", ["bench", "--fast"], 2, "unrecognized"),
]


def _download_fails(monkeypatch):
    import tensorflow_datasets as tfds

    def load(*args, **kwargs):
        raise ConnectionResetError(errno.ECONNRESET,
                                   "Connection reset by peer (download "
                                   "interrupted at 38%)")

    monkeypatch.setattr(tfds, "load", load)


def _disk_full(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


PATCHES = {"download_fails": _download_fails, "disk_full": _disk_full}


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in FILES.items():
        path = tmp_path / name
        path.write_text(text)
        paths[name] = str(path)
    unfinished = tmp_path / "runs-old" / "unfinished"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text(json.dumps({"epochs": 1}))
    corrupt = tmp_path / "runs-old" / "corrupt"
    corrupt.mkdir()
    (corrupt / "metrics.json").write_text("{\"test_accuracy\": 0.9")
    empty = tmp_path / "runs-old" / "empty"
    empty.mkdir()
    paths.update(unfinished=str(unfinished), corrupt=str(corrupt),
                 empty=str(empty), runs=str(tmp_path / "runs-old"))
    return paths


def _fill(arg, files):
    for key, path in files.items():
        arg = arg.replace("{" + key + "}", path)
    return arg


def _snapshot(root):
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                found[path] = f.read()
    return found


def test_the_sweep_is_wide_enough():
    commands = {argv[0] for _, argv, *_ in CASES if argv}
    assert commands == {"frobnicate", "list", "run", "tune", "report",
                        "bench"}
    recipes_hit = {argv[1] for _, argv, *_ in CASES
                   if argv[:1] == ["run"] and len(argv) > 1}
    from dlrecipes.registry import list_recipes

    assert set(list_recipes()) <= recipes_hit
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_invocation(case, files, tmp_path, monkeypatch, capsys):
    _, argv, code, needle, *patch = case
    argv = [_fill(a, files) for a in argv]
    out = tmp_path / "out"
    if argv[:1] == ["run"] and len(argv) > 1 and "--output-dir" not in argv:
        argv += ["--output-dir", str(out), "--verbose", "0"]
    if argv[:1] == ["tune"] and len(argv) > 1 and "--directory" not in argv:
        argv += ["--directory", str(out / "search"), "--verbose", "0"]
    if argv[:1] == ["bench"] and "--output" not in argv:
        argv += ["--output", str(out / "BENCHMARKS.md")]
    before = _snapshot(tmp_path)
    for name in patch:
        PATCHES[name](monkeypatch)
    got = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    # Nothing written: the tree holds exactly the files it held before.
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("argv", [["frobnicate"],
                                  IC + ["--epochs", "-3"]])
def test_debug_shows_the_traceback(argv):
    from dlrecipes.errors import UsageError

    with pytest.raises(UsageError):
        main(argv + ["--debug"])
