"""Start-up time of the `dlrecipes` command: the answers that need no model.

    python -m bench.startup              # the table on stdout
    python -m bench --only startup       # the same, into BENCHMARKS.md

Each command runs in a fresh Python process (`python -c`, calling
`dlrecipes.cli.main` as the `dlrecipes` script does), `--repeats` times
(default 3); the table gives the median wall time (min-max) of the whole
process, interpreter start included, and which heavy modules the process
had imported when the command returned (Keras, TensorFlow, JAX, PyTorch).
Listing recipes, a `--help` and a bad flag should import none of them and
answer in under a second (`TARGET_S`).

This module imports no Keras (nor does the child, unless the command does):
`python -m bench.startup` takes a few seconds when start-up is fast.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, dlrecipes arguments, expected exit code)
COMMANDS = (
    ("dlrecipes list", ["list"], 0),
    ("dlrecipes run image-classification --help",
     ["run", "image-classification", "--help"], 0),
    ("dlrecipes run image-classification --epochs -1",
     ["run", "image-classification", "--epochs", "-1"], 2),
)
HEAVY = ("keras", "tensorflow", "jax", "torch")
TARGET_S = 1.0

# The child: the CLI's main, then a report of what was imported, written
# to a file so that the command's own stdout and stderr stay as they are.
_CHILD = """
import json, os, sys
code = 0
try:
    from dlrecipes.cli import main
    code = main(sys.argv[1:])
except SystemExit as e:  # argparse's --help
    code = e.code or 0
finally:
    with open(os.environ["DLRECIPES_STARTUP_REPORT"], "w") as f:
        json.dump({"code": code, "modules": [
            m for m in %r if m in sys.modules]}, f)
""" % (HEAVY,)


def measure(argv, repeats=3):
    """Run `dlrecipes ARGV` in `repeats` fresh processes.

    Returns:
        `{"times": [seconds ...], "code": exit code, "imported": [heavy
        modules imported], "stderr": last stderr line}` (the exit code and
        modules of the last run; every run does the same).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    times, report, stderr = [], {}, ""
    with tempfile.TemporaryDirectory() as tmp:
        env["DLRECIPES_STARTUP_REPORT"] = path = os.path.join(tmp, "r.json")
        for _ in range(repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _CHILD, *argv],
                                  cwd=tmp, env=env, capture_output=True,
                                  text=True, timeout=600)
            times.append(time.perf_counter() - start)
            try:
                with open(path) as f:
                    report = json.load(f)
            except (OSError, ValueError):
                raise RuntimeError(
                    f"dlrecipes {' '.join(argv)} crashed (exit "
                    f"{proc.returncode}): {proc.stderr.strip()[-500:]}")
            lines = proc.stderr.strip().splitlines()
            stderr = lines[-1] if lines else ""
    return {"times": times, "code": report["code"],
            "imported": report["modules"], "stderr": stderr}


def run(repeats=3, commands=COMMANDS, log=lambda message: None):
    """Measure every command; returns `{"rows": [...], "repeats": n}`."""
    rows = []
    for label, argv, expected in commands:
        log(f"startup: {label}")
        result = measure(argv, repeats)
        if result["code"] != expected:
            raise RuntimeError(f"{label} exited {result['code']}, not "
                               f"{expected}: {result['stderr']}")
        rows.append({"command": label, **result})
    return {"rows": rows, "repeats": repeats}


def _seconds(times):
    return (f"{statistics.median(times):.2f} ({min(times):.2f}-"
            f"{max(times):.2f})")


def markdown(result):
    """The section body: a table, one row per command."""
    lines = [f"- fresh `python` processes, {result['repeats']} per command; "
             f"wall time median (min-max), interpreter start included; "
             f"target < {TARGET_S:.0f} s without Keras", "",
             "| command | seconds | heavy modules imported | target |",
             "|---|---|---|---|"]
    for row in result["rows"]:
        fast = statistics.median(row["times"]) < TARGET_S
        ok = "met" if fast and not row["imported"] else "missed"
        lines.append(f"| `{row['command']}` | {_seconds(row['times'])} | "
                     f"{', '.join(row['imported']) or 'none'} | {ok} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.startup",
        description="start-up time of dlrecipes list, --help and a bad flag")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh processes per command (default 3)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1. Received: {args.repeats}")
    result = run(args.repeats, log=lambda m: print(m, file=sys.stderr,
                                                   flush=True))
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
