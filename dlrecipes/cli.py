"""The `dlrecipes` command: list / run / tune / report / explain / ensemble /
bench.

Bad input prints one line, `error: ...`, on stderr and exits 2; a failure
after a valid start exits 1. `--debug` shows the Python traceback.

`list`, every `--help` and every argument error answer without importing
Keras (a fraction of a second, not the backend's seconds): the recipes are
found by `dlrecipes.recipe.discover` and import Keras lazily
(`dlrecipes.lazy`), flags are checked by `dlrecipes.config`, and Keras
loads only when a run starts (`python -m bench.startup` measures it).
"""

import argparse
import os
import shlex
import sys
import warnings

from dlrecipes.backend import CHOICES as BACKEND_CHOICES
from dlrecipes.backend import (BACKEND_HELP, backend_problem,
                               pop_backend_flag, select_backend)
from dlrecipes.errors import RunError, UsageError

USAGE = """dlrecipes COMMAND ...

commands:
  list                          the registered recipes
  run RECIPE [--FLAG VALUE ...] train one recipe (RECIPE --help: its flags);
                                --seeds 0,1,2 [--ensemble]: one run per
                                seed, then their ensemble
  tune RECIPE [...]             search a recipe's hyperparameters
  report DIR                    print a run's or a search's summary again;
                                under runs/: the unfinished runs, with how
                                to resume or remove them
  explain RUN_DIR [--method M,...] [--layer NAME] [--n N] [--class K]
                                what a finished run's model learned:
                                filters, features, saliency, occlusion,
                                gradcam, maximize, tsne (RUN_DIR/explain/)
  ensemble RUN_DIR RUN_DIR ... [--combine mean|vote|geometric]
                                the prediction average of finished runs of
                                one recipe: test figures beside each
                                member's, one saved model (ensembles/<id>/)
  bench [--quick|--gpu] [...]   the benchmark suite (as `python -m bench`)

Every command takes --backend tensorflow|jax|torch (the Keras backend for
that command; default: KERAS_BACKEND, else tensorflow).
"""
COMMANDS = ("list", "run", "tune", "report", "explain", "ensemble",
            "bench")


# Keras' backends: the modules each one imports, and how to install them.
class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage + exiting."""

    def error(self, message):
        raise UsageError(message)


def _import_recipes():
    """Register every recipe: import each module of the `recipes` package
    (which imports no Keras until a recipe's method runs)."""
    from dlrecipes.recipe import discover

    discover("recipes")


def _import_keras():
    """Import Keras and its backend (quietly) before a module that needs
    them (`dlrecipes.training`): only once the arguments are checked."""
    from dlrecipes.lazy import import_keras

    import_keras()


def _cmd_list(args):
    from dlrecipes.recipe import get_recipe, list_recipes

    args = [a for a in args if a != "--debug"]
    if args:
        raise UsageError(f"list takes no arguments. Received: {args[0]}")
    _import_recipes()
    names = list_recipes()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name.ljust(width)}  {get_recipe(name).description}")
    return 0


def _run_parser(recipe):
    from dlrecipes.config import add_config_arguments

    parser = _Parser(prog=f"dlrecipes run {recipe.name}",
                     description=recipe.description)
    add_config_arguments(parser, recipe.config_class)
    parser.add_argument("--backend", choices=BACKEND_CHOICES,
                        help=BACKEND_HELP)
    parser.add_argument("--no-resume", action="store_true",
                        help="always start a new run directory instead of "
                        "resuming an interrupted run of the same config")
    parser.add_argument("--seeds", default="",
                        help="train one run per seed (comma-separated, e.g. "
                        "0,1,2; replaces --seed), one after the other")
    parser.add_argument("--ensemble", action="store_true",
                        help="with --seeds: combine the runs into an "
                        "ensemble (as `dlrecipes ensemble` does)")
    parser.add_argument("--combine", default="mean",
                        help="with --ensemble: mean, vote or geometric "
                        "(default mean)")
    parser.add_argument("--ensemble-dir", default="ensembles",
                        help="with --ensemble: where ensembles/<id>/ goes "
                        "(default ensembles)")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks")
    return parser


def _seeds(args):
    """The `--seeds` list; UsageError (one line) for a bad one, or for
    `--ensemble` options without two seeds."""
    from dlrecipes.config import MAX_SEED
    from dlrecipes.ensemble import COMBINES

    seeds = []
    for part in filter(None, (p.strip() for p in args.seeds.split(","))):
        try:
            seed = int(part)
        except ValueError:
            raise UsageError(f"--seeds expects comma-separated integers, "
                             f"e.g. 0,1,2. Received: seeds={args.seeds!r}") \
                from None
        if not 0 <= seed <= MAX_SEED:
            raise UsageError(f"--seeds: every seed must be in [0, "
                             f"{MAX_SEED}]. Received: {seed}")
        if seed in seeds:
            raise UsageError(f"--seeds: seed {seed} is given twice (the "
                             "same seed trains the same run)")
        seeds.append(seed)
    if args.seeds and not seeds:
        raise UsageError("--seeds expects comma-separated integers, e.g. "
                         f"0,1,2. Received: seeds={args.seeds!r}")
    if args.ensemble and len(seeds) < 2:
        raise UsageError("--ensemble needs at least 2 seeds to combine "
                         f"(e.g. --seeds 0,1,2). Received: "
                         f"seeds={args.seeds!r}")
    if args.combine not in COMBINES:
        raise UsageError(f"unknown combine {args.combine!r}; valid choices: "
                         f"{', '.join(COMBINES)}")
    if args.ensemble:
        _check_output_dir(args.ensemble_dir, "--ensemble-dir")
    return seeds


def _cmd_run(name, argv):
    from dlrecipes import techniques
    from dlrecipes.config import resolve_config
    from dlrecipes.recipe import get_recipe

    _import_recipes()
    recipe = get_recipe(name)
    args = _run_parser(recipe).parse_args(argv)
    config = resolve_config(recipe.config_class, args)
    recipe.check(config)
    techniques.check(recipe, config)
    seeds = _seeds(args)
    if args.ensemble and not recipe.engine_averaging:
        raise UsageError(f"--ensemble is not available for {recipe.name} "
                         "(it trains with its own train_step)")
    if args.ensemble and not recipe.classifier and args.combine != "mean":
        raise UsageError(f"--combine {args.combine} needs classifiers; "
                         f"{recipe.name} predicts values: use --combine "
                         "mean")
    _import_keras()  # every argument is valid: only now Keras loads
    from dlrecipes.training import run_recipe

    if seeds:
        return _run_seeds(recipe, config, seeds, args)
    result = run_recipe(recipe, config, resume=not args.no_resume)
    return 0 if result.metrics else 1


def _run_seeds(recipe, config, seeds, args):
    """One run per seed, one after the other, then (with --ensemble) their
    ensemble. Interrupted, the same command resumes the seed it was
    training (the seeds before it are trained again: a finished run is
    never reused)."""
    import numpy as np

    from dlrecipes.training import run_recipe

    results = []
    for seed in seeds:
        if config.verbose:
            print(f"\n== seed {seed} ({len(results) + 1} of {len(seeds)}) ==")
        results.append(run_recipe(recipe, config.replace(seed=seed),
                                  resume=not args.no_resume))
    if any(r.run_dir is None for r in results):
        return 0  # a worker of a multi-process job: the chief reports
    key = next((k for k in ("test_accuracy", "test_mae", "test_loss")
                if all(k in r.metrics for r in results)), None)
    if key is not None:
        values = [r.metrics[key] for r in results]
        print(f"\n{key} over seeds {','.join(map(str, seeds))}: "
              f"{np.mean(values):.4f} +/- {np.std(values):.4f} "
              f"({', '.join(f'{v:.4f}' for v in values)})")
    for r in results:
        print(f"run directory: {r.run_dir}")
    if not args.ensemble:
        return 0
    from dlrecipes.ensemble import build_ensemble

    directory, metrics = build_ensemble(
        [r.run_dir for r in results], recipe, args.combine,
        args.ensemble_dir)
    _print_ensemble(directory, metrics)
    return 0


def _cmd_report(argv):
    parser = _Parser(prog="dlrecipes report")
    parser.add_argument("directory")
    parser.add_argument("--debug", action="store_true")
    path = parser.parse_args(argv).directory
    _check_directory(path)
    _import_keras()  # dlrecipes.training and tuning.runner import Keras
    if os.path.isfile(os.path.join(path, "metrics.json")):
        return _report_run(path)
    if os.path.isfile(os.path.join(path, "config.json")):
        from dlrecipes.training.rundir import run_status

        raise UsageError(_unfinished_message(run_status(path)))
    try:
        from tuning.runner import report_search
    except ImportError:
        report_search = None
    if report_search is not None and os.path.isfile(
            os.path.join(path, "search.json")):
        return report_search(path)
    return _report_runs_under(path)


def _cmd_explain(argv):
    import json

    from dlrecipes.explain.run import METHODS, Options, check_run_dir

    parser = _Parser(prog="dlrecipes explain")
    parser.add_argument("directory", help="a finished run directory")
    parser.add_argument("--method", default="",
                        help="comma-separated, from: " + ", ".join(METHODS)
                        + " (default: every method that applies)")
    parser.add_argument("--layer", default="",
                        help="features, gradcam: the layer (default: the "
                        "first / last with feature maps)")
    parser.add_argument("--n", type=int, default=0,
                        help="examples, filters or maps shown")
    parser.add_argument("--class", dest="target", type=int, default=-1,
                        help="explain this class (default: each example's "
                        "true class; maximize: every class)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if unknown or (args.method and not methods):
        raise UsageError(f"unknown method {(unknown or [args.method])[0]!r}; "
                         f"valid choices: {', '.join(METHODS)}")
    if args.method == "":
        methods = ()
    if args.n < 0 or (args.n == 0 and "--n" in argv):
        raise UsageError(f"--n must be >= 1. Received: n={args.n}")
    if args.target < -1 or (args.target == -1 and "--class" in argv):
        raise UsageError(f"--class must be >= 0. Received: "
                         f"class={args.target}")
    path = args.directory
    check_run_dir(path)
    try:
        with open(os.path.join(path, "config.json")) as f:
            name = json.load(f).get("recipe")
    except (OSError, ValueError, AttributeError) as e:
        raise UsageError(f"{path}/config.json is unreadable ({e})") from None
    _import_recipes()
    from dlrecipes.recipe import get_recipe, list_recipes

    if name not in list_recipes():
        raise UsageError(f"{path} was made by recipe {name!r}, which is not "
                         f"registered; valid recipes: "
                         f"{', '.join(list_recipes())}")
    _import_keras()
    from dlrecipes.explain.run import explain_run

    explain_run(path, get_recipe(name), Options(
        methods, layer=args.layer, n=args.n, target=args.target,
        seed=args.seed))
    return 0


def _cmd_ensemble(argv):
    from dlrecipes.ensemble import COMBINES, check_members

    parser = _Parser(prog="dlrecipes ensemble")
    parser.add_argument("members", nargs="*", metavar="RUN_DIR",
                        help="finished run directories of one recipe and "
                        "one dataset (two or more)")
    parser.add_argument("--combine", default="mean",
                        help="mean (prediction average), vote (majority) "
                        "or geometric (normalised geometric mean of the "
                        "class probabilities); default mean")
    parser.add_argument("--output-dir", default="ensembles",
                        help="where ensembles/<id>/ goes (default "
                        "ensembles)")
    parser.add_argument("--parameter-average", action="store_true",
                        help="also measure one network holding the mean "
                        "of the members' weights (same architecture only; "
                        "for independent runs it almost never works)")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if args.combine not in COMBINES:
        raise UsageError(f"unknown combine {args.combine!r}; valid choices: "
                         f"{', '.join(COMBINES)}")
    configs = check_members(args.members)
    _check_output_dir(args.output_dir)
    _import_recipes()
    from dlrecipes.recipe import get_recipe, list_recipes

    name = configs[0]["recipe"]
    if name not in list_recipes():
        raise UsageError(f"{args.members[0]} was made by recipe {name!r}, "
                         f"which is not registered; valid recipes: "
                         f"{', '.join(list_recipes())}")
    _import_keras()
    from dlrecipes.ensemble import build_ensemble

    directory, metrics = build_ensemble(
        args.members, get_recipe(name), args.combine, args.output_dir,
        args.parameter_average)
    _print_ensemble(directory, metrics)
    return 0


def _check_output_dir(path, flag="--output-dir"):
    from dlrecipes.paths import path_kind

    kind = path_kind(path)
    if kind is not None and kind != "a directory":
        raise UsageError(f"{flag} {path} is {kind}, not a directory")


def _print_ensemble(directory, metrics):
    key = "accuracy" if "test_accuracy" in metrics else "mae"
    rows = [(f"member {i}", m[key])
            for i, m in enumerate(metrics["member_test"])]
    rows += [("member mean", metrics[f"member_mean_test_{key}"]),
             ("member best", metrics[f"member_best_test_{key}"]),
             (f"ensemble ({metrics['combine']})", metrics[f"test_{key}"]),
             ("gain over mean", metrics["gain_over_mean"]),
             ("gain over best", metrics["gain_over_best"])]
    if f"parameter_average_test_{key}" in metrics:
        rows.append(("parameter average",
                     metrics[f"parameter_average_test_{key}"]))
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  test {key}")
    for label, value in rows:
        print(f"{label:{width}}  {value:.4f}")
    print(f"\nensemble directory: {directory}")


def _check_directory(path):
    from dlrecipes.paths import path_kind

    kind = path_kind(path)
    if kind is None:
        raise UsageError(f"no such directory: {path}")
    if kind != "a directory":
        raise UsageError(f"{path} is {kind}, not a run or search directory")


def _report_run(path):
    """Print a finished run's summary; control characters from the files
    are escaped, not sent to the terminal."""
    import json

    from dlrecipes.training.loop import print_run_summary

    metrics_path = os.path.join(path, "metrics.json")
    try:
        with open(metrics_path) as f:
            metrics = json.load(f)
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError("not a metrics object")
    except (OSError, ValueError) as e:
        raise UsageError(f"{metrics_path} is unreadable ({e}); "
                         "not a run directory of dlrecipes") from None
    metrics = {printable(k): printable(v) if isinstance(v, str) else v
               for k, v in metrics.items()}
    print_run_summary(printable(path), metrics)
    return 0


def _report_runs_under(path):
    """List the runs below a runs root or recipe directory: the newest
    finished one, and every unfinished one with how to resume or remove
    it. UsageError if there is none."""
    from dlrecipes.training.rundir import runs_under

    runs = runs_under(path)
    if not runs:
        raise UsageError(f"{path} is neither a run nor a search directory, "
                         "and holds no run directories")
    finished = [r for r in runs if r.finished]
    unfinished = [r for r in runs if not r.finished]
    lines = [f"{path}: {len(finished)} finished and {len(unfinished)} "
             "unfinished runs"]
    if finished:
        newest = max(finished, key=lambda r: os.path.getmtime(
            os.path.join(r.path, "metrics.json")))
        lines.append(f"newest finished: {newest.path} (dlrecipes report "
                     f"{shlex.quote(newest.path)})")
    if unfinished:
        lines.append("unfinished (no metrics.json):")
    for run in unfinished:
        lines.append(f"  {run.path}: {_progress(run)}")
        if run.owner is None:
            lines.append(f"    resume: {_resume_command(run)}")
            lines.append(f"    remove: rm -r {shlex.quote(run.path)}")
    for line in lines:
        print(printable(line))
    return 0


def _progress(run):
    """`2 epochs done, abandoned` or `..., being trained by process 123`."""
    done = f"{run.epochs_done} epoch{'s' if run.epochs_done != 1 else ''} done"
    if run.owner is None:
        return f"{done}, abandoned"
    owner = f"process {run.owner}" if run.owner else "another process"
    return f"{done}, being trained by {owner}"


def _resume_command(run):
    """`dlrecipes run RECIPE --config DIR/config.json --output-dir ROOT`,
    which picks `run` up again (the newest unfinished run of its config)."""
    root = os.path.normpath(os.path.join(run.path, os.pardir, os.pardir))
    return (f"dlrecipes run {shlex.quote(run.recipe)} --config "
            f"{shlex.quote(os.path.join(run.path, 'config.json'))} "
            f"--output-dir {shlex.quote(root)}")


def _unfinished_message(run):
    if run.owner is not None:
        return (f"{run.path} is an unfinished run ({_progress(run)}); "
                "report it when it has finished")
    return (f"{run.path} is an unfinished run ({_progress(run)}, no "
            f"metrics.json); resume it: {_resume_command(run)}; or remove "
            f"it: rm -r {shlex.quote(run.path)}")


def printable(text):
    """`text` with control and other non-printable characters escaped
    (`\\x1b`, `\\n`): text read from files (metrics, paths) cannot drive
    the terminal or break a one-line message."""
    return "".join(c if c.isprintable() else
                   c.encode("unicode_escape").decode("ascii") for c in text)


def _cmd_tune(argv):
    try:
        from tuning.cli import main as tune_main
    except ImportError:
        raise UsageError("tuning is not available in this installation") \
            from None
    return tune_main(argv)


def _cmd_bench(argv):
    """`bench` is a tool of the source tree, not an installed package: it
    is found on sys.path (`python -m dlrecipes.cli` in a checkout) or next
    to this `dlrecipes` package (an editable install of a checkout)."""
    try:
        from bench.suite import main as bench_main
    except ImportError:
        root = _checkout_root()
        if root is None:
            raise UsageError("the benchmarks run from a source checkout of "
                             "dlrecipes: cd into it and run `python -m bench "
                             "[--quick|--gpu] ...`") from None
        sys.path.insert(0, root)
        from bench.suite import main as bench_main
    return bench_main(argv)


def _checkout_root():
    """The source checkout this `dlrecipes` package lies in (the folder
    holding bench/suite.py next to dlrecipes/), or None when installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(root, "bench", "suite.py")):
        return root
    return None


def run_recipe_main(name, argv=None):
    """Entry point of `python -m recipes.<module>`: `dlrecipes run NAME`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return main(["run", name, *argv])


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"warning: {printable(str(message))}\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not debug:  # a warning is one line, `warning: ...`, no source line
        warnings.formatwarning = _one_line_warning
    try:
        if not argv:
            raise UsageError("a command is needed; valid choices: "
                             + ", ".join(COMMANDS))
        if argv[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0
        try:
            argv, backend = pop_backend_flag(argv)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if backend is not None:
            problem = select_backend(backend)
            if problem is not None:
                raise UsageError(problem)
        problem = backend_problem()
        if problem is not None:
            raise UsageError(problem)
        if not argv:
            raise UsageError("a command is needed; valid choices: "
                             + ", ".join(COMMANDS))
        command, rest = argv[0], argv[1:]
        if command == "list":
            return _cmd_list(rest)
        if command == "run":
            if not rest or rest[0].startswith("-"):
                _import_recipes()
                from dlrecipes.recipe import list_recipes

                if rest and rest[0] in ("-h", "--help"):
                    print(USAGE)
                    return 0
                raise UsageError("run needs a recipe name; valid choices: "
                                 + ", ".join(list_recipes()))
            return _cmd_run(rest[0], rest[1:])
        if command == "tune":
            return _cmd_tune(rest)
        if command == "report":
            return _cmd_report(rest)
        if command == "explain":
            return _cmd_explain(rest)
        if command == "ensemble":
            return _cmd_ensemble(rest)
        if command == "bench":
            return _cmd_bench(rest)
        raise UsageError(f"unknown command {command!r}; valid choices: "
                         + ", ".join(COMMANDS))
    except UsageError as e:
        if debug:
            raise
        print(f"error: {printable(str(e))}", file=sys.stderr)
        return 2
    except (RunError, OSError, MemoryError) as e:
        if debug:
            raise
        print(f"error: {printable(_one_line(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # a failure after a valid start
        if debug:
            raise
        print(f"error: {type(e).__name__}: {printable(_one_line(e))} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


if __name__ == "__main__":
    raise SystemExit(main())
