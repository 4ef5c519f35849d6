"""The `dlrecipes` command: list / run / tune / report / bench.

Bad input prints one line, `error: ...`, on stderr and exits 2; a failure
after a valid start exits 1. `--debug` shows the Python traceback.
"""

import argparse
import glob
import os
import sys

from dlrecipes.errors import RunError, UsageError

USAGE = """dlrecipes COMMAND ...

commands:
  list                          the registered recipes
  run RECIPE [--FLAG VALUE ...] train one recipe (RECIPE --help: its flags)
  tune RECIPE [...]             search a recipe's hyperparameters
  report DIR                    print a run's or a search's summary again
  bench [--quick|--gpu] [...]   the benchmark suite (as `python -m bench`)
"""
COMMANDS = ("list", "run", "tune", "report", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage + exiting."""

    def error(self, message):
        raise UsageError(message)


def _import_recipes():
    import recipes  # noqa: F401  (registers every recipe)


def _cmd_list(args):
    from dlrecipes.registry import get_recipe, list_recipes

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
    parser.add_argument("--no-resume", action="store_true",
                        help="always start a new run directory instead of "
                        "resuming an interrupted run of the same config")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks")
    return parser


def _cmd_run(name, argv):
    from dlrecipes.config import resolve_config
    from dlrecipes.registry import get_recipe
    from dlrecipes.training import run_recipe

    _import_recipes()
    recipe = get_recipe(name)
    args = _run_parser(recipe).parse_args(argv)
    config = resolve_config(recipe.config_class, args)
    result = run_recipe(recipe, config, resume=not args.no_resume)
    return 0 if result.metrics else 1


def _cmd_report(argv):
    import json

    from dlrecipes.training.loop import print_run_summary

    parser = _Parser(prog="dlrecipes report")
    parser.add_argument("directory")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    path = args.directory
    if not os.path.isdir(path):
        raise UsageError(f"no such directory: {path}")
    metrics_path = os.path.join(path, "metrics.json")
    if os.path.isfile(metrics_path):
        try:
            with open(metrics_path) as f:
                metrics = json.load(f)
            if not isinstance(metrics, dict) or not metrics:
                raise ValueError("not a metrics object")
        except (OSError, ValueError) as e:
            raise UsageError(f"{metrics_path} is unreadable ({e}); "
                             "not a run directory of dlrecipes") from None
        print_run_summary(path, metrics)
        return 0
    if os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(f"{path} is an unfinished run (no metrics.json); "
                         "run the same command again to resume it")
    try:
        from tuning.runner import report_search
    except ImportError:
        report_search = None
    if report_search is not None and os.path.isfile(
            os.path.join(path, "search.json")):
        return report_search(path)
    newest = _newest_run_under(path)
    hint = f"; the newest finished run under it: {newest}" if newest else ""
    raise UsageError(f"{path} is neither a run nor a search directory"
                     + hint)


def _newest_run_under(path):
    """The newest finished run directory one or two levels below `path`
    (`runs/` or `runs/<recipe>/`), or None."""
    found = []
    for pattern in ("*", os.path.join("*", "*")):
        found += glob.glob(os.path.join(path, pattern, "metrics.json"))
    if not found:
        return None
    return os.path.dirname(max(found, key=os.path.getmtime))


def _cmd_tune(argv):
    try:
        from tuning.cli import main as tune_main
    except ImportError:
        raise UsageError("tuning is not available in this installation") \
            from None
    return tune_main(argv)


def _cmd_bench(argv):
    try:
        from bench.suite import main as bench_main
    except ImportError:
        raise UsageError("the benchmark suite is not available in this "
                         "installation") from None
    return bench_main(argv)


def run_recipe_main(name, argv=None):
    """Entry point of `python -m recipes.<module>`: `dlrecipes run NAME`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return main(["run", name, *argv])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if not argv:
            raise UsageError("a command is needed; valid choices: "
                             + ", ".join(COMMANDS))
        if argv[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0
        command, rest = argv[0], argv[1:]
        if command == "list":
            return _cmd_list(rest)
        if command == "run":
            if not rest or rest[0].startswith("-"):
                _import_recipes()
                from dlrecipes.registry import list_recipes

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
        if command == "bench":
            return _cmd_bench(rest)
        raise UsageError(f"unknown command {command!r}; valid choices: "
                         + ", ".join(COMMANDS))
    except UsageError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (RunError, OSError, MemoryError) as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # a failure after a valid start
        if debug:
            raise
        print(f"error: {type(e).__name__}: {_one_line(e)} (--debug shows "
              "the traceback)", file=sys.stderr)
        return 1


def _one_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


if __name__ == "__main__":
    raise SystemExit(main())
