"""What `dlrecipes run` costs on top of the training: the harness ratio.

    python -m bench.harness                    # every installed backend
    python -m bench.harness --backends jax --epochs 10
    python -m bench --quick --only harness     # into BENCHMARKS.md

For each backend, in a fresh process (a process has one backend): the
default image-classification model and data (embedded digits) trained by a
bare `model.fit` (the engine's model, compiled the same way, arrays and
validation data given to `fit` directly, no callback), and by
`run_recipe` (the run directory: history, checkpoint, TensorBoard, the
per-epoch backup, the epoch-keyed data order). Seconds per epoch are the
difference between an `E`- and a `2E`-epoch run divided by `E`, so start-up,
compilation, evaluation and the report cancel out (after a discarded
one-epoch warm-up of each, which pays the first-use imports). The ratio run / bare is
the harness' cost per epoch (target <= 1.10); the table also gives the
milliseconds per epoch of each run-directory callback.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("tensorflow", "jax", "torch")
TARGET = 1.10

# The child: one backend (KERAS_BACKEND set by the parent). Prints one
# RESULT line of JSON.
_CHILD = r"""
import collections, json, sys, tempfile, time
from dlrecipes.lazy import import_keras
keras = import_keras()
import recipes
from dlrecipes.config import config_from_dict
from dlrecipes.recipe import get_recipe
from dlrecipes.training import engine, loop

recipe_name, epochs, overrides = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
recipe = get_recipe(recipe_name)
# Milliseconds spent in each run-directory callback's epoch-end hooks.
spent = collections.defaultdict(float)

def config(n):
    return config_from_dict(recipe.config_class, {
        **overrides, "verbose": 0, "epochs": n,
        "output_dir": tempfile.mkdtemp(prefix="bench-harness-")})

def bare(n):
    c = config(n)
    engine.start(c)
    data = recipe.load_data(c)
    model, _ = engine.build(recipe, c, data)
    start = time.perf_counter()
    model.fit(data.train[0], data.train[1], batch_size=c.batch_size,
              validation_data=data.val, epochs=n, shuffle=True, verbose=0)
    return time.perf_counter() - start

def timed(callbacks):
    for cb in callbacks:
        for hook in ("on_epoch_end", "on_train_batch_end", "on_test_end"):
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
    return cbs, best, backup
loop._callbacks = with_timing

def run(n):
    start = time.perf_counter()
    loop.run_recipe(recipe, config(n), print_summary=False)
    return time.perf_counter() - start

out = {"backend": keras.backend.backend()}
for name, fn in (("bare", bare), ("run", run)):
    fn(1)  # warm-up: first-use imports and set-up land here, not below
    spent.clear()
    short, long_ = fn(epochs), fn(2 * epochs)
    out[name] = (long_ - short) / epochs
    out[name + "_times"] = [short, long_]
# The callbacks' time of the 2E-epoch run (the last one), per epoch.
out["callbacks_ms"] = {k: 1000 * v / (2 * epochs) for k, v in spent.items()}
print("RESULT " + json.dumps(out))
"""


def installed():
    """The Keras backends installed here."""
    return tuple(b for b in BACKENDS if importlib.util.find_spec(b))


def measure(backend, recipe="image-classification", epochs=5,
            overrides=None, timeout=1800):
    """One backend's figures (see the module docstring), in a fresh
    process."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, recipe, str(epochs),
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


def run(backends=None, recipe="image-classification", epochs=5,
        overrides=None, log=lambda message: None):
    """Measure each backend; returns `{"rows": [...], "recipe", "epochs"}`."""
    rows = []
    for backend in backends or installed():
        log(f"harness: {backend}")
        rows.append(measure(backend, recipe, epochs, overrides))
    return {"rows": rows, "recipe": recipe, "epochs": epochs,
            "overrides": overrides or {}}


def markdown(result):
    flags = " ".join(f"--{k.replace('_', '-')} {v}"
                     for k, v in result["overrides"].items())
    lines = [f"- `{result['recipe']}` defaults{' + ' + flags if flags else ''}"
             f" (embedded digits); seconds per epoch = (time of "
             f"{2 * result['epochs']} epochs - time of {result['epochs']}) / "
             f"{result['epochs']}; target ratio <= {TARGET:.2f}", "",
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
    parser = argparse.ArgumentParser(
        prog="python -m bench.harness",
        description="per-epoch cost of dlrecipes run against a bare fit")
    parser.add_argument("--backends", default=",".join(installed()),
                        help="comma list (default: every installed one: "
                        f"{', '.join(installed())})")
    parser.add_argument("--epochs", type=int, default=5,
                        help="E: runs of E and 2E epochs (default 5)")
    args = parser.parse_args(argv)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    unknown = [b for b in backends if b not in installed()]
    if unknown or not backends:
        parser.error(f"backend {(unknown or [args.backends])[0]!r} is not "
                     f"installed; valid choices: {', '.join(installed())}")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1. Received: {args.epochs}")
    result = run(backends, epochs=args.epochs,
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
