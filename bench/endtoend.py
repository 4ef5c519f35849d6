"""End to end per backend: the default runs a user starts first, timed as
a user sees them.

    python -m bench.endtoend                       # every installed backend
    python -m bench.endtoend --backends tensorflow,jax --recipes image-classification
    python -m bench --quick --only endtoend        # into BENCHMARKS.md

For each installed Keras backend and each recipe below, `dlrecipes run
RECIPE --backend B --seed 0 --verbose 0` in a fresh process, with its
defaults (embedded data): the wall time of the whole command (start-up,
data, training, evaluation, report) and the test figure it printed, so
the fastest backend to a checked result can be read off one table. The
backends run one after another in one command.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.harness import ROOT, OneLineParser, installed

# recipe -> the test metric to show (and whether higher is better).
RECIPES = {
    "image-classification": ("test_accuracy", True),
    "sequence-classification": ("test_accuracy", True),
    "timeseries-forecasting": ("test_mae", False),
}

_MAIN = ("import sys; from dlrecipes.cli import main; "
         "sys.exit(main(sys.argv[1:]))")


def measure(backend, recipe, timeout=3600):
    """One default run: `{"backend", "recipe", "wall_s", "train_s",
    "metric", "value", "epochs"}` (`error` instead where it failed)."""
    out = tempfile.mkdtemp(prefix="bench-endtoend-")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    env.pop("KERAS_BACKEND", None)  # --backend decides
    row = {"backend": backend, "recipe": recipe}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _MAIN, "run", recipe, "--backend",
             backend, "--seed", "0", "--verbose", "0", "--output-dir", out],
            cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=timeout)
        row["wall_s"] = time.perf_counter() - start
        found = [os.path.join(d, "metrics.json")
                 for d, _, files in os.walk(out) if "metrics.json" in files]
        if proc.returncode != 0 or not found:
            lines = proc.stderr.strip().splitlines() or [""]
            row["error"] = f"exit {proc.returncode}: {lines[-1][:200]}"
            return row
        with open(found[0]) as f:
            metrics = json.load(f)
        metric, _ = RECIPES[recipe]
        row.update(metric=metric, value=metrics.get(metric),
                   epochs=metrics.get("epochs_run"),
                   run_s=metrics.get("wall_time_s"))
        return row
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(backends=None, recipes=tuple(RECIPES), log=lambda message: None):
    rows = []
    for recipe in recipes:
        for backend in backends or installed():
            log(f"endtoend: {recipe} under {backend}")
            rows.append(measure(backend, recipe))
    return {"rows": rows}


def markdown(result):
    lines = ["- `dlrecipes run RECIPE --backend B --seed 0 --verbose 0` with "
             "the recipe's defaults (embedded data), one fresh process "
             "each, one after another; command = the whole process (start-"
             "up, data, training, evaluation, report); run = "
             "`wall_time_s` in its metrics.json", "",
             "| recipe | backend | command s | run s | epochs | test figure |"
             " fastest |",
             "|---|---|---:|---:|---:|---|---|"]
    by_recipe = {}
    for row in result["rows"]:
        by_recipe.setdefault(row["recipe"], []).append(row)
    for recipe, rows in by_recipe.items():
        ok = [r for r in rows if "error" not in r]
        fastest = min(ok, key=lambda r: r["wall_s"])["backend"] if ok \
            else None
        for r in rows:
            if "error" in r:
                lines.append(f"| {recipe} | {r['backend']} | "
                             f"{r['wall_s']:.0f} | - | - | failed: "
                             f"{r['error']} | |")
                continue
            value = r["value"]
            figure = (f"{r['metric']} {value:.4f}"
                      if isinstance(value, (int, float)) else "-")
            lines.append(f"| {recipe} | {r['backend']} | {r['wall_s']:.0f} |"
                         f" {r['run_s']:.0f} | {r['epochs']} | {figure} | "
                         f"{'yes' if r['backend'] == fastest else ''} |")
    return lines


def main(argv=None):
    parser = OneLineParser(
        prog="python -m bench.endtoend",
        description="default recipe runs, end to end, per backend")
    parser.add_backends()
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help=f"comma list of: {', '.join(RECIPES)}")
    args = parser.parse_args(argv)
    backends = parser.backends(args)
    recipes = tuple(r.strip() for r in args.recipes.split(",") if r.strip())
    bad = [r for r in recipes if r not in RECIPES]
    if bad or not recipes:
        parser.error(f"recipe {(bad or [args.recipes])[0]!r} is not "
                     f"measured here; valid choices: {', '.join(RECIPES)}")
    result = run(backends, recipes,
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
