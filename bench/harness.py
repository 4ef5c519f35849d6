"""What `dlrecipes run` costs on top of the training: the harness ratio.

    python -m bench.harness                    # every installed backend
    python -m bench.harness --backends jax --epochs 10 --repeats 3
    python -m bench --quick --only harness     # into BENCHMARKS.md

For each backend, in a fresh process (a process has one backend): the
default image-classification model and data (embedded digits) trained by a
bare `model.fit` (the engine's model, compiled the same way, arrays and
validation data given to `fit` directly, no callback), and by
`run_recipe` (the run directory: history, best checkpoint, TensorBoard, the
backup, the epoch-keyed data order). An epoch's time runs from its
`on_epoch_begin` to the next one's, so validation and every callback's
epoch-end work are inside it; a run of `E + 2` epochs gives the mean of
epochs 1 to E (epoch 0 compiles; the last has no next begin; start-up, the
final backup, evaluation and the report are outside). Bare and harnessed
runs alternate `repeats` times after a discarded warm-up of each (a slow
spell of a shared machine hits both); the figures are the medians. The
ratio run / bare is the harness' cost per epoch (target <= 1.10); the table
also gives the milliseconds per epoch spent inside each run-directory
callback (the first callback that reads a result also waits there for the
device to finish the epoch's steps).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (`error: ...`), exit
    2, without the usage block (no Keras here: the parent process of the
    per-backend benchmarks never loads a backend)."""

    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def add_backends(self):
        """`--backends a,b` (default: every installed backend)."""
        self.add_argument("--backends", default=",".join(installed()),
                          help="comma list (default: every installed one: "
                          f"{', '.join(installed())})")

    def backends(self, args):
        """The `--backends` of `args`, each installed (else an error)."""
        names = tuple(b.strip() for b in args.backends.split(",")
                      if b.strip())
        unknown = [b for b in names if b not in installed()]
        if unknown or not names:
            self.error(f"backend {(unknown or [args.backends])[0]!r} is not "
                       f"installed; valid choices: {', '.join(installed())}")
        return names
BACKENDS = ("tensorflow", "jax", "torch")
TARGET = 1.10

# The child: one backend (KERAS_BACKEND set by the parent). Prints one
# RESULT line of JSON.
_CHILD = r"""
import collections, json, statistics, sys, tempfile, time
from dlrecipes.lazy import import_keras
keras = import_keras()
import recipes
from dlrecipes.config import config_from_dict
from dlrecipes.recipe import get_recipe
from dlrecipes.training import engine, loop

recipe_name, epochs, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
overrides = json.loads(sys.argv[4])
recipe = get_recipe(recipe_name)
# Milliseconds spent in each run-directory callback's epoch-end hooks.
spent = collections.defaultdict(float)
begins = []

class Clock(keras.callbacks.Callback):
    # Epoch e's time: from its on_epoch_begin to the next one, so the
    # epoch-end work of every callback (and validation) is inside it.
    def on_epoch_begin(self, epoch, logs=None):
        begins.append(time.perf_counter())

def config(n):
    return config_from_dict(recipe.config_class, {
        **overrides, "verbose": 0, "epochs": n,
        "output_dir": tempfile.mkdtemp(prefix="bench-harness-")})

def bare(n):
    c = config(n)
    engine.start(c)
    data = recipe.load_data(c)
    model, _ = engine.build(recipe, c, data)
    model.fit(data.train[0], data.train[1], batch_size=c.batch_size,
              validation_data=data.val, epochs=n, shuffle=True, verbose=0,
              callbacks=[Clock()])

def timed(callbacks):
    for cb in callbacks:
        # Epoch hooks only: a wrapped batch hook would make Keras read
        # every step's logs (a host synchronisation per step).
        for hook in ("on_epoch_end", "on_test_end"):
            real = getattr(cb, hook)
            def wrapper(*a, _real=real, _name=type(cb).__name__, **k):
                t = time.perf_counter()
                out = _real(*a, **k)
                spent[_name] += time.perf_counter() - t
                return out
            setattr(cb, hook, wrapper)

make = loop._callbacks
def with_timing(*args):
    cbs, best, backup = make(*args)
    timed(cbs)
    return [Clock(), *cbs], best, backup
loop._callbacks = with_timing

def run(n):
    loop.run_recipe(recipe, config(n), print_summary=False)

def per_epoch(fn):
    # Mean time of epochs 1 .. n-2 (epoch 0 compiles; the last one has no
    # next begin): steady-state cost, start-up and report excluded.
    begins.clear()
    fn(epochs + 2)
    gaps = [b - a for a, b in zip(begins[1:], begins[2:])]
    return sum(gaps) / len(gaps)

out = {"backend": keras.backend.backend(), "bare_all": [], "run_all": []}
bare(2); run(2)  # warm-up: first-use imports and set-up
spent.clear()
for _ in range(repeats):  # interleaved: a slow spell hits both
    out["bare_all"].append(per_epoch(bare))
    out["run_all"].append(per_epoch(run))
out["bare"] = statistics.median(out["bare_all"])
out["run"] = statistics.median(out["run_all"])
out["callbacks_ms"] = {k: 1000 * v / (repeats * (epochs + 2))
                       for k, v in spent.items()}
print("RESULT " + json.dumps(out))
"""


def installed():
    """The Keras backends installed here."""
    return tuple(b for b in BACKENDS if importlib.util.find_spec(b))


def measure(backend, recipe="image-classification", epochs=5, repeats=3,
            overrides=None, timeout=1800):
    """One backend's figures (see the module docstring), in a fresh
    process."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, recipe, str(epochs), str(repeats),
         json.dumps(overrides or {})],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"harness under {backend} failed (exit "
                           f"{proc.returncode}): {proc.stderr.strip()[-800:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["ratio"] = result["run"] / result["bare"]
    return result


def run(backends=None, recipe="image-classification", epochs=5, repeats=3,
        overrides=None, log=lambda message: None):
    """Measure each backend; returns `{"rows": [...], "recipe", "epochs",
    "repeats"}`."""
    rows = []
    for backend in backends or installed():
        log(f"harness: {backend}")
        rows.append(measure(backend, recipe, epochs, repeats, overrides))
    return {"rows": rows, "recipe": recipe, "epochs": epochs,
            "repeats": repeats, "overrides": overrides or {}}


def markdown(result):
    flags = " ".join(f"--{k.replace('_', '-')} {v}"
                     for k, v in result["overrides"].items())
    lines = [f"- `{result['recipe']}` defaults{' + ' + flags if flags else ''}"
             f" (embedded digits); seconds per epoch: mean of epochs 1-"
             f"{result['epochs']} of a {result['epochs'] + 2}-epoch run, "
             f"median of {result.get('repeats', 1)} alternating bare/run "
             f"pairs; target ratio <= {TARGET:.2f}", "",
             "| backend | bare `fit` s/epoch | `dlrecipes run` s/epoch | "
             "ratio | target | run-directory callbacks, ms/epoch |",
             "|---|---:|---:|---:|---|---|"]
    for row in result["rows"]:
        parts = sorted(row["callbacks_ms"].items(), key=lambda kv: -kv[1])
        extras = ", ".join(f"{k} {v:.0f}" for k, v in parts if v >= 0.5)
        met = "met" if row["ratio"] <= TARGET else "missed"
        lines.append(f"| {row['backend']} | {row['bare']:.3f} | "
                     f"{row['run']:.3f} | {row['ratio']:.2f} | {met} | "
                     f"{extras or '-'} |")
    return lines


def main(argv=None):
    parser = OneLineParser(
        prog="python -m bench.harness",
        description="per-epoch cost of dlrecipes run against a bare fit")
    parser.add_backends()
    parser.add_argument("--epochs", type=int, default=5,
                        help="E: epochs timed per run (default 5)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="bare/run pairs (default 3)")
    args = parser.parse_args(argv)
    backends = parser.backends(args)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1. Received: {args.epochs}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1. Received: {args.repeats}")
    result = run(backends, epochs=args.epochs, repeats=args.repeats,
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
