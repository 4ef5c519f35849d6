"""The benchmark suite: one command, one BENCHMARKS.md.

    python -m bench --quick                 # CPU: tiny shapes, all benchmarks
    python -m bench --gpu                   # GPU: full shapes, JAX
    python -m bench --quick --only layers   # CI: one benchmark, < 1 minute
    python -m bench --only throughput,pipeline --output /tmp/B.md

Benchmarks (`--only NAME[,NAME]`):

- `layers`: train-step time of dlrecipes layers against the same math in
  plain Keras (`bench/layers.py`; target ratio <= 1.05);
- `throughput`: training throughput of the image recipe's ResNet,
  `keras.applications.ResNet50`, a TransformerEncoder stack and the TCN
  forecaster against PyTorch twins, with model FLOPs utilisation
  (`bench/throughput.py`); every installed Keras backend side by side,
  each in its own process, unless `--backend` names one;
- `pipeline`: step time fed from host data against data already on the
  device, and tf.data's delivery rate (`bench/pipeline.py`; target <= 1.1x);
- `accuracy`: time to accuracy of the default digits run against a plain
  keras-io-style script (`bench/accuracy.py`; CPU; not in `--gpu`'s
  default list);
- `harness`: seconds per epoch of `dlrecipes run` against a bare `fit` of
  the same model and data, per installed backend (`bench/harness.py`;
  target ratio <= 1.10; CPU; not in `--gpu`'s default list);
- `endtoend`: wall time and test figure of the default image, sequence
  and forecasting runs (`dlrecipes run RECIPE --backend B`), per installed
  backend (`bench/endtoend.py`; CPU; not in `--gpu`'s default list);
- `startup`: wall time of `dlrecipes list`, a `--help` and a bad flag in
  fresh processes, and whether they import Keras (`bench/startup.py`;
  target < 1 s, no Keras; not in `--gpu`'s default list).

Each benchmark replaces its own section of the output file (machine,
versions, command, table) and leaves the others as they are. The default
profile is `gpu` where Keras sees a GPU/TPU and `quick` otherwise.
"""

import argparse
import os
import sys
import time

BENCHMARKS = ("layers", "throughput", "pipeline", "accuracy", "harness",
              "endtoend", "startup")
DEFAULTS = {"quick": BENCHMARKS,
            "gpu": ("layers", "throughput", "pipeline")}
TITLES = {
    "throughput": "Training throughput: Keras against PyTorch",
    "pipeline": "Input pipeline: host-fed against device-resident data",
    "accuracy": "Time to accuracy: default digits run against a keras-io "
                "script",
    "harness": "Harness: dlrecipes run against a bare fit, per epoch",
    "endtoend": "End to end: default recipe runs per backend",
    "startup": "Start-up: answers that need no model",
}


class UsageError(Exception):
    """Bad input: `main` prints `error: ...` and returns 2 (defined here so
    that bad input is answered before Keras is imported)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_only(text):
    """'a,b' -> ('a', 'b'); UsageError naming the valid ones otherwise."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise UsageError(f"unknown benchmark {(unknown or [text])[0]!r}; "
                         f"valid choices: {', '.join(BENCHMARKS)}")
    return names


def check_output(parser, path):
    """The Markdown file must be writable before any benchmark runs."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error(f"--output is a directory: {path}")
    if not os.path.isdir(directory):
        parser.error(f"--output: no such directory: {directory}")
    if not os.access(directory, os.W_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)):
        parser.error(f"--output is not writable: {path}")


def _log(message):
    print(message, file=sys.stderr, flush=True)


def run_layers(profile, output):
    from bench import layers

    args = ["--write", output] + (["--quick"] if profile == "quick" else [])
    rows = layers.main(args)
    missing = sorted(set(layers.BENCHES) - {r["name"] for r in rows})
    if missing:
        raise RuntimeError(f"layers: no row for {', '.join(missing)}")
    return rows


def run_one(name, profile, args):
    """Run benchmark `name`; returns (section body lines, raw result)."""
    if name == "throughput":
        from bench import harness, throughput

        if args.backend is None:  # every installed backend, side by side
            result = throughput.run_backends(
                profile, harness.installed(), use_torch=not args.no_torch,
                log=_log)
            return throughput.markdown_backends(result), result
        result = throughput.run(profile, use_torch=not args.no_torch,
                                log=_log)
        return throughput.markdown(result), result
    if name == "pipeline":
        from bench import pipeline

        result = pipeline.run(profile, log=_log)
        return pipeline.markdown(result), result
    if name == "accuracy":
        from bench import accuracy

        seeds = tuple(range(args.seeds or (1 if profile == "quick" else 3)))
        result = accuracy.run(seeds=seeds, log=_log)
        return accuracy.markdown(result), result
    if name == "harness":
        from bench import harness

        result = harness.run(epochs=5 if profile == "quick" else 10,
                             repeats=5, log=_log)
        return harness.markdown(result), result
    if name == "endtoend":
        from bench import endtoend

        result = endtoend.run(log=_log)
        return endtoend.markdown(result), result
    if name == "startup":
        from bench import startup

        result = startup.run(log=_log)
        return startup.markdown(result), result
    raise ValueError(name)


def main(argv=None):
    """`python -m bench` / `dlrecipes bench`: 0 when every benchmark ran,
    1 when one failed, 2 (one `error:` line) on bad input."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(argv)
    except UsageError as e:
        if "--debug" in argv:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(argv):
    parser = _Parser(prog="python -m bench",
                     description="dlrecipes benchmark suite")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="tiny shapes, few steps (CPU, CI)")
    mode.add_argument("--gpu", action="store_true",
                      help="full shapes, bf16 (GPU)")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", default="BENCHMARKS.md",
                        help="Markdown file to update (default: "
                        "BENCHMARKS.md)")
    parser.add_argument("--no-torch", action="store_true",
                        help="skip the PyTorch column")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks")
    parser.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                        help="Keras backend of the benchmarks (sets "
                        "KERAS_BACKEND before Keras loads)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds of the accuracy benchmark (default 1 "
                        "quick, 3 otherwise)")
    args = parser.parse_args(argv)
    only = parse_only(args.only) if args.only is not None else None
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1. Received: seeds={args.seeds}")
    check_output(parser, args.output)
    if args.backend is not None:
        from dlrecipes.backend import select_backend

        problem = select_backend(args.backend)
        if problem is not None:
            raise UsageError(problem)
    # Bad input is answered above, before the (slow, chatty) backend import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from dlrecipes.lazy import import_keras

    keras = import_keras()  # quietly (TensorFlow's native start-up logs)

    from bench import common

    if args.quick:
        profile = "quick"
    elif args.gpu:
        profile = "gpu"
    else:
        profile = "gpu" if common.accelerator() else "quick"
    names = only or DEFAULTS[profile]
    command = (f"KERAS_BACKEND={keras.backend.backend()} python -m bench "
               + " ".join(argv)).strip()
    failed = []
    for name in names:
        started = time.time()
        _log(f"== {name} ({profile})")
        try:
            if name == "layers":
                run_layers(profile, args.output)
            else:
                body, _ = run_one(name, profile, args)
                text = common.section(name, TITLES[name], command,
                                      [f"- profile: {profile}", *body])
                common.write_section(args.output, name, text)
                print(text)
        except Exception as error:  # one benchmark's failure is reported
            first = (str(error).strip().splitlines() or [""])[0]
            _log(f"{name} failed: {type(error).__name__}: {first}")
            failed.append(name)
            continue
        _log(f"== {name}: {time.time() - started:.0f} s")
    if failed:
        print(f"error: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0
