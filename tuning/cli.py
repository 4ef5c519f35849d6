"""`dlrecipes tune RECIPE [recipe flags] [search options]`.

Recipe flags (`--epochs 10`, `--model resnet`) and `--set FIELD=VALUE` fix
a config field (and take it out of the search space); `--config FILE` sets
the base config without fixing anything. `--space FILE` (TOML or JSON)
narrows or extends the recipe's declared space:

    learning_rate = {min = 1e-3, max = 1e-2}     # narrow a range
    width = [16, 32]                             # a choice
    dropout = {min = 0.0, max = 0.4, step = 0.1} # a stepped range
    norm = "batch"                               # fix a field

Running the same command again resumes the search in the same directory.
"""

import argparse
import os
import sys

from dlrecipes.backend import CHOICES as BACKEND_CHOICES
from dlrecipes.backend import BACKEND_HELP
from dlrecipes.errors import UsageError

TUNE_EARLY_STOPPING = 5  # patience inside trials unless set explicitly


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser(recipe):
    from dlrecipes.config import add_config_arguments
    from tuning.spec import ISOLATION, TENSORBOARD, TUNERS  # no Keras

    parser = _Parser(prog=f"dlrecipes tune {recipe.name}",
                     description=f"Search the hyperparameters of "
                     f"{recipe.name} with KerasTuner.")
    add_config_arguments(parser, recipe.config_class)
    g = parser.add_argument_group("search options")
    g.add_argument("--tuner", default="random", choices=TUNERS,
                   help="search algorithm (default: random)")
    g.add_argument("--max-trials", type=int, default=None, metavar="N",
                   help="trials at most (random/bayesian default 10; grid: "
                   "every combination)")
    g.add_argument("--executions-per-trial", type=int, default=1,
                   metavar="N", help="trainings per trial, scores averaged")
    g.add_argument("--max-epochs", type=int, default=None, metavar="N",
                   help="hyperband: epochs of the longest trial "
                   "(default: --epochs)")
    g.add_argument("--factor", type=int, default=3, metavar="N",
                   help="hyperband: reduction factor (default 3)")
    g.add_argument("--hyperband-iterations", type=int, default=1,
                   metavar="N", help="hyperband: full iterations (default 1)")
    g.add_argument("--space", metavar="FILE",
                   help="TOML/JSON file narrowing or extending the space")
    g.add_argument("--set", action="append", default=[],
                   metavar="FIELD=VALUE",
                   help="fix a config field (repeatable)")
    g.add_argument("--directory", metavar="DIR",
                   help="search directory (default: tuning/RECIPE/"
                   "TUNER-HASH under the current directory)")
    g.add_argument("--overwrite", action="store_true",
                   help="delete a previous search in the directory first")
    g.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run a KerasTuner chief and N workers on this "
                   "machine (0: trials in this process)")
    g.add_argument("--trial-isolation", default="none", choices=ISOLATION,
                   help="process: each trial in a fresh Python process")
    g.add_argument("--tensorboard", default="auto", choices=TENSORBOARD,
                   help="per-trial TensorBoard logs (auto: with the "
                   "TensorFlow backend)")
    g.add_argument("--max-failures", type=int, default=0, metavar="N",
                   help="stop after N consecutive failed trials (0: never)")
    g.add_argument("--no-retrain", action="store_true",
                   help="do not retrain the best config into best/")
    g.add_argument("--show-space", action="store_true",
                   help="print the resolved search space and exit")
    g.add_argument("--backend", choices=BACKEND_CHOICES, help=BACKEND_HELP)
    g.add_argument("--debug", action="store_true",
                   help="show Python tracebacks")
    return parser


def parse_sets(items, config_class):
    import dataclasses

    names = [f.name for f in dataclasses.fields(config_class)]
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise UsageError(f"--set expects FIELD=VALUE. Received: {item!r}")
        if name not in names:
            raise UsageError(f"--set: unknown field {name!r}; valid fields: "
                             f"{', '.join(names)}")
        values[name] = value
    return values


def resolve_search(recipe, args):
    """(search, directory, overwrite) from parsed arguments."""
    import dataclasses

    from dlrecipes.config import config_from_dict, read_config_file
    from tuning import space as space_lib

    config_class = recipe.config_class
    names = {f.name for f in dataclasses.fields(config_class)}
    file_values = {}
    if args.config_file:
        file_values = read_config_file(args.config_file, config_class)
    flag_values = {k: v for k, v in vars(args).items() if k in names}
    set_values = parse_sets(args.set, config_class)
    space = space_lib.search_space(recipe)
    if args.space:
        space, space_fixed = space_lib.apply_overrides(
            space, space_lib.load_space_file(args.space), config_class,
            source=args.space)
    else:
        space_fixed = {}
    fixed = {**space_fixed, **flag_values, **set_values}
    values = {**file_values, **fixed}
    if "early_stopping" not in values:
        values["early_stopping"] = TUNE_EARLY_STOPPING
    base = config_from_dict(config_class, values,
                            source=args.config_file or "flags")
    fixed = {k: getattr(base, k) for k in fixed}
    from tuning import runner  # the arguments are valid: Keras may load

    return runner.prepare(
        recipe, tuner=args.tuner, space=space, config=base, fixed=fixed,
        max_trials=args.max_trials,
        executions_per_trial=args.executions_per_trial,
        workers=args.workers, trial_isolation=args.trial_isolation,
        tensorboard=args.tensorboard, max_failures=args.max_failures,
        retrain=not args.no_retrain, max_epochs=args.max_epochs,
        factor=args.factor, hyperband_iterations=args.hyperband_iterations)


def main(argv=None):
    """Entry point of `dlrecipes tune` (dlrecipes.cli prints errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    from dlrecipes.recipe import discover, get_recipe, list_recipes

    discover("recipes")  # registers every recipe (no Keras yet)

    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print("dlrecipes tune RECIPE [--tuner random|grid|hyperband|"
                  "bayesian] [--FLAG VALUE ...]\n\nrecipes: "
                  + ", ".join(list_recipes())
                  + "\n\n`dlrecipes tune RECIPE --help` lists the options.")
            return 0
        raise UsageError("tune needs a recipe name; valid choices: "
                         + ", ".join(list_recipes()))
    recipe = get_recipe(argv[0])
    args = build_parser(recipe).parse_args(argv[1:])
    if args.debug:  # KerasTuner then prints failed trials' tracebacks
        os.environ["DLRECIPES_DEBUG"] = "1"
    search = resolve_search(recipe, args)
    from tuning import runner, space as space_lib

    if args.show_space:
        print(space_lib.describe(search.space))
        if search.tuner == "grid":
            print(f"grid: {space_lib.grid_size(search.space)} combinations")
        return 0
    from dlrecipes.lazy import import_keras

    import_keras()  # quietly, before the trials import it
    result = runner.execute(search, directory=args.directory,
                            overwrite=args.overwrite)
    code = 0
    if result is not None and search.base.verbose:
        print_summary(result, search.hp_names)
    if runner._kt_role() == "chief":
        # KerasTuner's chief leaves its gRPC server threads running.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def print_summary(result, hp_names):
    from tuning import results

    name, direction = result.objective
    print("")
    print(results.markdown(result.trials, hp_names, name, direction), end="")
    if result.test_metrics:
        tests = ", ".join(f"{k} {v:.4f}" for k, v in
                          result.test_metrics.items()
                          if k.startswith("test_") and isinstance(v, float))
        print(f"\nbest config retrained: {tests}")
        print(f"  dlrecipes run {result.best_config.recipe_name} --config "
              f"{os.path.join(result.directory, 'best', 'config.json')}")
    print(f"search directory: {result.directory}")
