"""Tuning overheads: per-trial overhead, memory growth, workers.

    python bench/tuning.py --quick          # ~5 min on 2 cores
    python bench/tuning.py                  # 30 trials per figure

Every figure comes from a `dlrecipes tune` subprocess (a fresh Python) on
image-classification: an mlp on the embedded digits, a grid over `width`
so that every trial costs about the same, default settings otherwise
(`jit_compile auto`, TensorBoard logs on under TensorFlow).

- overhead: trial wall time minus its `fit` time (KerasTuner bookkeeping,
  model build and compile, data, our records), per trial, in process and
  with `--trial-isolation process`;
- memory: resident memory of the tuner process after each trial (the
  `rss_mb` every trial records), its growth per trial by least squares;
- workers: `--workers 1` vs `--workers 2` on the same cores (each worker
  pinned to its share), trials per hour of the whole command.

Writes a Markdown table to `--output` (default bench/tuning.md) and the raw
numbers next to it (.json).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def tune(directory, trials, epochs, extra=()):
    """Run one grid search of `trials` trials; returns (rows, wall_s)."""
    from tuning.results import read_trials

    space = os.path.join(directory, "space.toml")
    with open(space, "w") as f:
        f.write(f"width = {{min = 8, max = {8 + 2 * (trials - 1)}, "
                "step = 2, type = \"int\"}\n")
    cmd = [sys.executable, "-m", "dlrecipes.cli", "tune",
           "image-classification", "--tuner", "grid", "--space", space,
           "--set", "model=mlp", "--set", "depth=1", "--set", "dropout=0.1",
           "--set", "augment=none", "--set", "optimizer=adam",
           "--set", "learning_rate=0.003", "--set", "weight_decay=0",
           "--set", "schedule=constant", "--set", "batch_size=64",
           "--epochs", str(epochs), "--verbose", "0", "--no-retrain",
           "--directory", os.path.join(directory, "search"),
           "--output-dir", os.path.join(directory, "runs"), *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get(
                   "PYTHONPATH", "")]))
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                          text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"tune failed ({proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    rows = read_trials(os.path.join(directory, "search", "kt"))
    done = [r for r in rows if r["status"] == "COMPLETED"]
    if len(done) != trials:
        raise SystemExit(f"expected {trials} completed trials, got "
                         f"{len(done)}")
    return done, wall


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2


def overhead_and_memory(rows):
    import numpy as np

    overhead = [r["metrics"]["seconds"] - r["metrics"]["fit_seconds"]
                for r in rows]
    fit = [r["metrics"]["fit_seconds"] for r in rows]
    rss = [r["metrics"]["rss_mb"] for r in rows]
    slope = float(np.polyfit(np.arange(len(rss)), rss, 1)[0]) \
        if len(rss) > 1 else 0.0
    # Growth after the first few trials (imports, first compilations).
    tail = rss[len(rss) // 3:]
    tail_slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) \
        if len(tail) > 1 else 0.0
    return {"trials": len(rows),
            "overhead_median_s": round(_median(overhead), 3),
            "overhead_mean_s": round(sum(overhead) / len(overhead), 3),
            "fit_median_s": round(_median(fit), 3),
            "rss_first_mb": round(rss[0], 1), "rss_last_mb": round(rss[-1], 1),
            "rss_growth_mb_per_trial": round(slope, 2),
            "rss_growth_mb_per_trial_last_two_thirds": round(tail_slope, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer trials (12 in process, 4 isolated, 6 "
                        "for the workers)")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench",
                                                         "tuning.md"))
    args = parser.parse_args(argv)
    n_mem = 12 if args.quick else 30
    n_iso = 4 if args.quick else 30
    n_workers = 6 if args.quick else 30
    epochs = 1 if args.quick else 2
    results = {"quick": args.quick, "epochs": epochs,
               "python": platform.python_version(),
               "cores": len(os.sched_getaffinity(0))
               if hasattr(os, "sched_getaffinity") else os.cpu_count(),
               "load_before": os.getloadavg()[0]}
    import keras

    results["backend"] = keras.backend.backend()
    results["keras"] = keras.__version__
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, extra in (("in_process", n_mem, ()),
                               ("process_isolation", n_iso,
                                ("--trial-isolation", "process"))):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            rows, wall = tune(d, n, epochs, extra)
            results[name] = {**overhead_and_memory(rows),
                             "wall_s": round(wall, 1)}
            print(name, results[name], flush=True)
        for workers in (1, 2):
            d = os.path.join(tmp, f"workers{workers}")
            os.makedirs(d)
            rows, wall = tune(d, n_workers, epochs,
                              ("--workers", str(workers)))
            results[f"workers_{workers}"] = {
                "trials": len(rows), "wall_s": round(wall, 1),
                "trials_per_hour": round(len(rows) / wall * 3600),
                "fit_median_s": round(_median(
                    [r["metrics"]["fit_seconds"] for r in rows]), 3)}
            print(f"workers {workers}", results[f"workers_{workers}"],
                  flush=True)
    results["load_after"] = os.getloadavg()[0]
    command = "python bench/tuning.py" + (" --quick" if args.quick else "")
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump(results, f, indent=2)
    with open(args.output, "w") as f:
        f.write(markdown(results, command))
    print(markdown(results, command))
    return 0


def markdown(r, command):
    ip, iso = r["in_process"], r["process_isolation"]
    w1, w2 = r["workers_1"], r["workers_2"]
    lines = [
        "## Tuning overheads",
        "",
        f"`{command}` — {r['backend']} backend, Keras {r['keras']}, Python "
        f"{r['python']}, {r['cores']} cores (load average "
        f"{r['load_before']:.1f} before, {r['load_after']:.1f} after); "
        f"image-classification mlp on digits, {r['epochs']} epoch(s) per "
        "trial, grid over width.",
        "",
        "| measure | in process | --trial-isolation process |",
        "|---|---|---|",
        f"| trials | {ip['trials']} | {iso['trials']} |",
        f"| per-trial overhead, median (s) | {ip['overhead_median_s']} | "
        f"{iso['overhead_median_s']} |",
        f"| per-trial overhead, mean (s) | {ip['overhead_mean_s']} | "
        f"{iso['overhead_mean_s']} |",
        f"| fit time per trial, median (s) | {ip['fit_median_s']} | "
        f"{iso['fit_median_s']} |",
        f"| tuner RSS after first / last trial (MiB) | {ip['rss_first_mb']}"
        f" / {ip['rss_last_mb']} | {iso['rss_first_mb']} / "
        f"{iso['rss_last_mb']} |",
        f"| RSS growth per trial (MiB, all trials) | "
        f"{ip['rss_growth_mb_per_trial']} | "
        f"{iso['rss_growth_mb_per_trial']} |",
        f"| RSS growth per trial (MiB, last two thirds) | "
        f"{ip['rss_growth_mb_per_trial_last_two_thirds']} | "
        f"{iso['rss_growth_mb_per_trial_last_two_thirds']} |",
        "",
        "| workers (same cores) | trials | wall (s) | trials/hour | "
        "fit per trial, median (s) |",
        "|---|---|---|---|---|",
        f"| 1 | {w1['trials']} | {w1['wall_s']} | {w1['trials_per_hour']} | "
        f"{w1['fit_median_s']} |",
        f"| 2 | {w2['trials']} | {w2['wall_s']} | {w2['trials_per_hour']} | "
        f"{w2['fit_median_s']} |",
        "",
        "Overhead = a trial's wall time minus its `fit` time (build, "
        "compile, KerasTuner bookkeeping, records; in isolation also the "
        "child's Python/TensorFlow start and data loading). Wall times of "
        "the worker runs include starting the chief and the workers.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
