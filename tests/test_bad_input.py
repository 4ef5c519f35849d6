"""The bad-input sweep: every command (list, run, tune, report, explain,
bench) and recipe, one table. Each bad invocation exits 2 (1 for a failure after a
valid start), prints exactly one line on stderr that starts with `error:`
and names the problem, no traceback, and leaves no output a later run would
trust. `--debug` shows the traceback instead."""

import errno
import json
import os

import keras
import pytest

from conftest import RECIPES
from dlrecipes.cli import main
from dlrecipes.registry import get_recipe

IC = ["run", "image-classification"]
TL = ["run", "transfer-learning"]
TS = ["run", "timeseries-forecasting"]
SC = ["run", "sequence-classification"]
TC = ["run", "text-classification"]
S2S = ["run", "sequence-to-sequence"]
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
    "reg.ts": "@problemName R\n@targetLabel true\n@data\n1,2,3:0.5\n",
    "a.ts": "@problemName A\n@classLabel true x y\n@data\n1,2,3:x\n"
            "1,2:y\n",
    "b.ts": "@problemName A\n@classLabel true x y z\n@data\n1,2,3:z\n",
    "huge.csv": "t,v\n" + "".join(f"{i},{(-1) ** i * 1.5e300}\n"
                                   for i in range(60)),
    "inf.csv": "t,v\n" + "".join(f"{i},{'inf' if i == 7 else i}\n"
                                  for i in range(60)),
    "other_recipe.json": "{\"recipe\": \"another-recipe\", \"epochs\": 1}\n",
    "space_no_max.toml": "width = {min = 16}\n",
    "space_min_above_max.toml": "width = {min = 64, max = 16}\n",
    "space_grid_not_list.toml": "learning_rate = {min = 1e-3, max = 1e-2, "
                                "grid = \"high\"}\n",
    "space_bad_default.toml": "learning_rate = {min = 1e-3, max = 1e-2, "
                              "default = \"x\"}\n",
    "space_choice_extra.toml": "width = {values = [16], min = 8}\n",
    "space_text_range.toml": "augment = {min = 1, max = 2}\n",
    "space_bool_default.toml": "mixed_precision = {default = \"yes\"}\n",
}

# (id, argv, exit code, text the error line must contain, patch)
CASES = [
    # dlrecipes itself and list
    ("no-command", [], 2,
     "valid choices: list, run, tune, report, explain, ensemble, bench"),
    ("unknown-command", ["frobnicate"], 2, "unknown command 'frobnicate'"),
    ("list-extra", ["list", "image"], 2, "list takes no arguments"),
    # run: names
    ("run-no-recipe", ["run"], 2, "image-classification"),
    ("run-unknown-recipe", ["run", "imagenet"], 2, "timeseries-forecasting"),
    ("run-flag-as-recipe", ["run", "--epochs", "3"], 2, "needs a recipe"),
    ("unknown-flag", IC + ["--colour", "red"], 2, "unrecognized"),
    ("unknown-model", IC + ["--model", "lenet5"], 2, "resnet"),
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
    ("huge-seed", IC + ["--seed", "99999999999999999999"], 2,
     "--seed must be in [0, 4294967295]"),
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
    # run: averaging, snapshots, distillation (issue 16)
    ("ema-one", IC + ["--ema", "1"], 2, "--ema must be in (0, 1) (0: off)"),
    ("ema-negative", IC + ["--ema", "-0.5"], 2, "--ema must be in [0, 1]"),
    ("swa-start-one", IC + ["--swa-start", "1"], 2,
     "--swa-start must be in (0, 1)"),
    ("ema-and-swa", IC + ["--ema", "0.9", "--swa-start", "0.5"], 2,
     "choose one"),
    ("snapshots-one", IC + ["--snapshots", "1", "--schedule",
                            "cosine_restarts"], 2, "--snapshots must be >= 2"),
    ("snapshots-not-cyclic", IC + ["--snapshots", "4"], 2,
     "--snapshots needs a cyclic learning rate: --schedule cosine_restarts"),
    ("snapshots-too-many", IC + ["--snapshots", "30", "--schedule",
                                 "cosine_restarts", "--epochs", "20"], 2,
     "--epochs 20 has at most 20 cycles"),
    ("snapshots-uneven", IC + ["--snapshots", "3", "--schedule",
                               "cosine_restarts", "--epochs", "20"], 2,
     "divisible"),
    ("snapshots-two-phases", TL + ["--strategy", "fine-tune", "--snapshots",
                                   "2", "--schedule", "cosine_restarts",
                                   "--epochs", "4", "--head-epochs", "2"], 2,
     "--snapshots needs one training phase"),
    ("swa-gan", ["run", "gan", "--swa-start", "0.5"], 2,
     "--swa-start is not available for gan"),
    ("teacher-regression", TS + ["--teacher", "{unfinished}"], 2,
     "--teacher needs a classification recipe (image-classification, "
     "sequence-classification, text-classification, transfer-learning)"),
    ("teacher-missing", IC + ["--teacher", "/no/such/run"], 2,
     "--teacher: no such directory: /no/such/run"),
    ("teacher-unfinished", IC + ["--teacher", "{unfinished}"], 2,
     "is not a finished run (no model.keras)"),
    ("teacher-file", IC + ["--teacher", "{text.txt}"], 2,
     "is a file, not a run or ensemble directory"),
    ("teacher-empty-dir", IC + ["--teacher", "{empty}"], 2,
     "neither a run directory (config.json) nor an ensemble"),
    ("temperature-zero", IC + ["--temperature", "0"], 2,
     "--temperature must be > 0"),
    ("distill-alpha-range", IC + ["--distill-alpha", "1.5"], 2,
     "--distill-alpha must be in [0, 1]"),
    ("activation-unknown", IC + ["--activation", "swish"], 2,
     "--activation: unknown activation 'swish'; valid choices: auto, relu, "
     "leaky_relu, elu, gelu, selu, tanh, sigmoid"),
    ("initializer-unknown", SC + ["--kernel-initializer", "ones"], 2,
     "--kernel-initializer: unknown kernel initializer 'ones'"),
    ("init-std-zero", IC + ["--kernel-initializer", "random_normal",
                            "--init-std", "0"], 2, "--init-std must be > 0"),
    ("init-std-alone", IC + ["--init-std", "0.1"], 2,
     "--init-std needs --kernel-initializer random_normal"),
    ("l1-negative", IC + ["--l1", "-0.001"], 2, "--l1 must be >= 0"),
    ("l2-negative", TS + ["--l2", "-1"], 2, "--l2 must be >= 0"),
    ("clipvalue-negative", IC + ["--clipvalue", "-1"], 2,
     "--clipvalue must be >= 0"),
    ("clipvalue-and-clipnorm", IC + ["--clipvalue", "1", "--clipnorm", "1"],
     2, "--clipnorm and --clipvalue: choose one"),
    ("gradient-noise-negative", IC + ["--gradient-noise", "-0.01"], 2,
     "--gradient-noise must be >= 0"),
    ("activation-gan", ["run", "gan", "--activation", "tanh"], 2,
     "--activation is not available for gan"),
    ("l1-gan", ["run", "gan", "--l1", "1e-4"], 2,
     "--l1 is not available for gan"),
    ("initializer-transfer", TL + ["--kernel-initializer", "zeros"], 2,
     "--kernel-initializer is not available for transfer-learning"),
    ("mc-dropout-one", IC + ["--mc-dropout", "1"], 2,
     "--mc-dropout must be >= 2"),
    ("mc-dropout-regression", TS + ["--mc-dropout", "10"], 2,
     "--mc-dropout needs a classification recipe"),
    ("mc-dropout-no-dropout", IC + ["--mc-dropout", "10", "--dropout", "0"],
     2, "--mc-dropout needs dropout to sample: set --dropout > 0"),
    ("mc-dropout-inside-blocks", SC + ["--mc-dropout", "10", "--model",
                                       "tcn", "--epochs", "1"], 2,
     "--mc-dropout needs a model with Dropout layers; --model tcn has none"),
    ("monitor-unknown", IC + ["--monitor", "gap,weights"], 2,
     "--monitor: unknown monitor 'weights'; valid choices: activations, "
     "update-ratio, gap"),
    ("augment-unknown", TL + ["--augment", "light,sharpen"], 2,
     "--augment: unknown name 'sharpen'; valid: a preset (auto, none, "
     "light, strong) and/or operations (crop, zoom, rot90, blur, color)"),
    ("augment-color-grey", IC + ["--augment", "light,color"], 2,
     "--augment color needs three-channel (RGB) images; these have 1"),
    ("augment-two-presets", TL + ["--augment", "light,strong"], 2,
     "--augment takes one preset"),
    ("seeds-twice", IC + ["--seeds", "0,1,0"], 2,
     "--seeds: seed 0 is given twice"),
    ("seeds-words", IC + ["--seeds", "zero,one"], 2,
     "--seeds expects comma-separated integers"),
    ("seeds-negative", IC + ["--seeds", "0,-1"], 2,
     "every seed must be in [0, 4294967295]"),
    ("ensemble-one-seed", IC + ["--seeds", "3", "--ensemble"], 2,
     "--ensemble needs at least 2 seeds"),
    ("ensemble-gan", ["run", "gan", "--seeds", "0,1", "--ensemble"], 2,
     "--ensemble is not available for gan"),
    ("ensemble-no-seeds", IC + ["--ensemble"], 2,
     "--ensemble needs at least 2 seeds"),
    ("ensemble-vote-regression", TS + ["--seeds", "0,1", "--ensemble",
                                       "--combine", "vote"], 2,
     "--combine vote needs classifiers"),
    ("ensemble-dir-is-a-file", IC + ["--seeds", "0,1", "--ensemble",
                                     "--ensemble-dir", "{text.txt}"], 2,
     "--ensemble-dir {text.txt} is a file, not a directory"),
    # run: files
    ("missing-config", IC + ["--config", "/no/such.toml"], 2, "not found"),
    ("malformed-toml", IC + ["--config", "{bad.toml}"], 2, "cannot read"),
    ("malformed-json", IC + ["--config", "{bad.json}"], 2, "cannot read"),
    ("config-unknown-field", IC + ["--config", "{colour.toml}"], 2,
     "unknown field 'colour'"),
    ("config-wrong-type", IC + ["--config", "{type.toml}"], 2, "integer"),
    ("config-not-a-table", IC + ["--config", "{list.json}"], 2,
     "must hold a table"),
    ("config-is-a-directory", IC + ["--config", "{folder}"], 2,
     "--config: '{folder}' is a directory, not a file; expected a TOML or "
     "JSON file"),
    ("config-is-a-fifo", IC + ["--config", "{fifo}"], 2,
     "is a FIFO (named pipe), not a file"),
    ("config-is-a-device", IC + ["--config", "/dev/zero"], 2,
     "'/dev/zero' is a device (character special file), not a file"),
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
    ("series-huge-values", TS + ["--dataset", "csv:{huge.csv}", "--column",
                                 "v"], 2,
     "column 'v' at line 2 is outside the finite range a series may take, "
     "[-1e+150, 1e+150]"),
    ("series-infinity", TS + ["--dataset", "csv:{inf.csv}", "--column", "v"],
     2, "value 'inf' in column 'v' at line 9 is outside the finite range"),
    ("series-lookback", TS + ["--lookback", "soon"], 2, "--lookback"),
    ("series-unknown-model", TS + ["--model", "prophet"], 2, "gru"),
    ("sequence-unknown-model", SC + ["--model", "mamba"], 2, "tcn"),
    ("sequence-unknown-dataset", SC + ["--dataset", "ecg200"], 2,
     "--dataset: unknown dataset 'ecg200'; valid choices: digits, mnist, "
     "gunpoint, italy_power, osuleaf, ts:TRAIN.ts,TEST.ts"),
    ("ts-one-file", SC + ["--dataset", "ts:{a.ts}"], 2,
     "--dataset ts: takes two files"),
    ("ts-missing-file", SC + ["--dataset", "ts:/no/a.ts,/no/b.ts"], 2,
     "/no/a.ts"),
    ("ts-regression", SC + ["--dataset", "ts:{reg.ts},{reg.ts}"], 2,
     "holds regression targets"),
    ("ts-unequal-lengths", SC + ["--dataset", "ts:{a.ts},{a.ts}"], 2,
     "unequal lengths (2 to 3 steps): pass --pad"),
    ("ts-unseen-test-label", SC + ["--dataset", "ts:{a.ts},{b.ts}", "--pad"],
     2, "test label 'z' never occurs in the training file"),
    ("ts-pad-on-digits", SC + ["--pad"], 2,
     "--pad and --impute are for ts: files"),
    ("ts-sequence-pixels", SC + ["--dataset", "gunpoint", "--sequence",
                                 "pixels"], 2,
     "--sequence reads images; the time series of gunpoint"),
    ("aux-loss-resnet", IC + ["--aux-loss", "0.3"], 2,
     "--aux-loss works with --model inception and --stages >= 2"),
    ("aux-loss-one-stage", IC + ["--model", "inception", "--stages", "1",
                                 "--aux-loss", "0.3"], 2,
     "Received: model=inception, stages=1"),
    ("aux-loss-negative", IC + ["--model", "inception", "--aux-loss",
                                "-0.3"], 2, "--aux-loss must be >= 0"),
    ("aux-loss-teacher", IC + ["--model", "inception", "--aux-loss", "0.3",
                               "--teacher", "runs/x"], 2,
     "--aux-loss and --teacher"),
    ("seq2seq-negative-digits", S2S + ["--digits", "-1"], 2,
     "--digits must be in [0, 6]. Received: digits=-1"),
    ("seq2seq-seven-digits", S2S + ["--digits", "7"], 2,
     "--digits must be in [0, 6]. Received: digits=7"),
    ("seq2seq-unknown-task", S2S + ["--task", "multiplication"], 2,
     "addition, reversal, sorting"),
    ("seq2seq-unknown-model", S2S + ["--model", "gru"], 2,
     "lstm, lstm-attention, transformer"),
    ("seq2seq-too-many-problems", S2S + ["--digits", "1"], 2,
     "--train-size 5000 and --test-size 1000: addition with 1 digit has "
     "only 100 distinct problems; ask for fewer (--test-size below 100), "
     "or more --digits"),
    ("seq2seq-too-many-reversals", S2S + ["--task", "reversal",
                                          "--digits", "2",
                                          "--train-size", "100",
                                          "--test-size", "20"], 2,
     "reversal with 2 digits has only 110 distinct problems; ask for at "
     "most 90 training problems (or more --digits)"),
    ("seq2seq-heads-vs-units", S2S + ["--model", "transformer", "--units",
                                      "30", "--num-heads", "4"], 2,
     "--num-heads must divide --units (30)"),
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
    ("tune-space-is-a-directory", TUNE + ["--space", "{folder}"], 2,
     "--space: '{folder}' is a directory, not a file"),
    ("tune-space-is-a-device", TUNE + ["--space", "/dev/zero"], 2,
     "'/dev/zero' is a device (character special file), not a file"),
    ("tune-space-no-max", TUNE + ["--space", "{space_no_max.toml}"], 2,
     "width: a range needs both `min` and `max`"),
    ("tune-space-min-above-max", TUNE + ["--space",
                                         "{space_min_above_max.toml}"], 2,
     "width: `min` must be below `max`. Received: min=64, max=16"),
    ("tune-space-grid-not-list", TUNE + ["--space",
                                         "{space_grid_not_list.toml}"], 2,
     "learning_rate: `grid` must be a list of floats"),
    ("tune-space-bad-default", TUNE + ["--space", "{space_bad_default.toml}"],
     2, "learning_rate: `default` must be a float. Received: default='x'"),
    ("tune-space-key-of-a-range", TUNE + ["--space",
                                          "{space_choice_extra.toml}"], 2,
     "width: a choice takes only type, values, default, grid; 'min'"),
    ("tune-space-range-of-text", TUNE + ["--space",
                                         "{space_text_range.toml}"], 2,
     "augment: a text field takes a list of values"),
    ("tune-space-bool-default", TUNE + ["--space",
                                        "{space_bool_default.toml}"], 2,
     "mixed_precision: `default` must be true or false"),
    ("tune-config-of-another-recipe", TUNE + ["--config",
                                              "{other_recipe.json}"], 2,
     "is for recipe 'another-recipe', not 'image-classification'"),
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
    ("report-a-file", ["report", "{text.txt}"], 2,
     "text.txt is a file, not a run or search directory"),
    ("report-a-device", ["report", "/dev/zero"], 2,
     "/dev/zero is a device (character special file), not a run or search "
     "directory"),
    ("report-unfinished", ["report", "{unfinished}"], 2,
     "is an unfinished run (0 epochs done, abandoned"),
    ("report-corrupt-metrics", ["report", "{corrupt}"], 2, "unreadable"),
    ("report-empty-dir", ["report", "{empty}"], 2,
     "neither a run nor a search directory"),
    # explain
    ("explain-no-dir", ["explain"], 2, "directory"),
    ("explain-missing", ["explain", "/no/such/run"], 2, "no such directory"),
    ("explain-a-file", ["explain", "{text.txt}"], 2,
     "text.txt is a file, not a run directory"),
    ("explain-unfinished", ["explain", "{unfinished}"], 2,
     "is not a finished run directory (no metrics.json or model.keras)"),
    ("explain-method", ["explain", "{unfinished}", "--method", "dream"], 2,
     "unknown method 'dream'; valid choices: filters, features, saliency, "
     "occlusion, gradcam, maximize, tsne"),
    ("explain-n", ["explain", "{unfinished}", "--n", "0"], 2,
     "--n must be >= 1"),
    ("explain-class", ["explain", "{unfinished}", "--class", "-3"], 2,
     "--class must be >= 0"),
    # bench
    ("bench-unknown", ["bench", "--only", "speed"], 2,
     "valid choices: layers, throughput, pipeline, accuracy"),
    ("bench-conflict", ["bench", "--quick", "--gpu"], 2, "not allowed"),
    ("bench-seeds", ["bench", "--seeds", "-2"], 2, "--seeds must be >= 1"),
    ("bench-word-seeds", ["bench", "--seeds", "two"], 2, "invalid int"),
    ("bench-output-dir", ["bench", "--output", "/no/such/dir/B.md"], 2,
     "no such directory"),
    ("bench-unknown-flag", ["bench", "--fast"], 2, "unrecognized"),
    # the environment: a Keras backend that cannot be imported
    ("backend-not-installed", ["list"], 2,
     "KERAS_BACKEND=torch, but torch is not installed: pip install torch "
     "(or unset KERAS_BACKEND to use tensorflow)", "torch_missing"),
    ("backend-unknown", IC + ["--help"], 2,
     "KERAS_BACKEND=bogus is not a Keras backend; valid choices: "
     "tensorflow, jax, torch, numpy", "bogus_backend"),
]

# Cases every registered recipe must answer alike (a new recipe joins them).
CASES += [case for name in RECIPES for case in (
    (f"huge-seed-{name}", ["run", name, "--seed", str(2**32)], 2,
     "--seed must be in [0, 4294967295]. Received: seed=4294967296"),
    (f"zero-epochs-{name}", ["run", name, "--epochs", "0"], 2,
     "--epochs must be >= 1. Received: epochs=0"),
    (f"unknown-flag-{name}", ["run", name, "--colour", "red"], 2,
     "unrecognized"),
    (f"config-of-another-recipe-{name}",
     ["run", name, "--config", "{other_recipe.json}"], 2,
     f"is for recipe 'another-recipe', not '{name}'"),
)]
# A recipe that declares its datasets names them all when given another.
CASES += [
    (f"unknown-dataset-{name}", ["run", name, "--dataset", "no-such-data"],
     2, "unknown dataset 'no-such-data'; valid choices: "
     + ", ".join(get_recipe(name).datasets))
    for name in RECIPES if get_recipe(name).datasets]


def _download_fails(monkeypatch):
    import tensorflow_datasets as tfds

    def load(*args, **kwargs):
        raise ConnectionResetError(errno.ECONNRESET,
                                   "Connection reset by peer (download "
                                   "interrupted at 38%)")

    monkeypatch.setattr(tfds, "load", load)
    # Past the network check (on a machine with network it would connect).
    monkeypatch.setattr("dlrecipes.data.tfds_loader._reachable",
                        lambda *args, **kwargs: True)


def _disk_full(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _backend(name, missing=()):
    def patch(monkeypatch):
        import importlib.util

        find_spec = importlib.util.find_spec
        monkeypatch.setenv("KERAS_BACKEND", name)
        monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a:
                            None if module in missing
                            else find_spec(module, *a))

    return patch


PATCHES = {"download_fails": _download_fails, "disk_full": _disk_full,
           "torch_missing": _backend("torch", missing=("torch",)),
           "bogus_backend": _backend("bogus")}


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides conftest's fixture of that name without its
    `keras.backend.clear_session()` (1-2 s a case, most of this sweep's
    time): these cases stop before a model is built, and those that build
    one go through `run_recipe`, which clears the session itself."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


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
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    os.mkfifo(tmp_path / "fifo.json")
    paths.update(unfinished=str(unfinished), corrupt=str(corrupt),
                 empty=str(empty), folder=str(folder),
                 fifo=str(tmp_path / "fifo.json"))
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
            if not os.path.isfile(path):  # the FIFO: opening it blocks
                found[path] = None
                continue
            with open(path, "rb") as f:
                found[path] = f.read()
    return found


def test_the_sweep_is_wide_enough():
    commands = {argv[0] for _, argv, *_ in CASES if argv}
    assert commands == {"frobnicate", "list", "run", "tune", "report",
                        "explain", "bench"}
    recipes_hit = {argv[1] for _, argv, *_ in CASES
                   if argv[:1] == ["run"] and len(argv) > 1}
    assert set(RECIPES) <= recipes_hit
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_invocation(case, files, tmp_path, monkeypatch, capsys):
    _, argv, code, needle, *patch = case
    argv = [_fill(a, files) for a in argv]
    needle = _fill(needle, files)
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
