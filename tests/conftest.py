"""Shared set-up and helpers of the test suite.

`RECIPES` is the list every sweep parametrizes over (smoke runs, bad input,
mixed precision, distribution, tfds offline): the recipes that `import
recipes` registers, read here, once, before pytest collects any test
module. A new recipe joins every sweep with no test edited; the test-only
example recipes that test modules register (`example-*`) stay out of them.
Each case reads what it needs from the `Recipe` object (`recipe.smoke`,
`recipe.datasets`, `recipe.tfds_datasets`, `recipe.objective`,
`recipe.config_class`), never from the recipe's module.

The helpers below (smoke configs and command lines, run-directory readers)
are imported by the test modules: `from conftest import RECIPES, ...`.
"""

import csv
import gc
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import dlrecipes  # noqa: E402,F401  (first: sets TF_ENABLE_ONEDNN_OPTS=0)
import keras  # noqa: E402
import pytest  # noqa: E402

import recipes  # noqa: E402,F401  (registers every recipe)
from dlrecipes.recipe import get_recipe, list_recipes  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Before any test module is imported: no test-only recipe can be in it.
RECIPES = tuple(list_recipes())

# Every training starts with `keras.backend.clear_session()` (engine.start,
# a search's preflight), whose gc.collect() walks every tracked object:
# ~0.3 s each over the import-time objects of TensorFlow/JAX and Keras
# alone, more as the suite goes on. Those live as long as the session:
# frozen (gc.freeze), collections walk only what the tests create.
gc.collect()
gc.freeze()


# ------------------------------------------------------------ smoke configs


def smoke_values(name, **overrides):
    """The recipe's smoke settings (`recipe.smoke`) with `overrides`."""
    return {**get_recipe(name).smoke, **overrides}


def smoke_config(name, **overrides):
    """The validated config of the recipe's smoke run, quiet, with
    `overrides` (field values), built as the CLI builds one."""
    from dlrecipes.config import config_from_dict

    recipe = get_recipe(name)
    return config_from_dict(recipe.config_class,
                            {"verbose": 0, **smoke_values(name, **overrides)})


def config_from_flags(name, argv):
    """The config `dlrecipes run NAME ARGV` would train, without training:
    defaults <- `--config` file <- flags, validated."""
    import argparse

    from dlrecipes.config import add_config_arguments, resolve_config

    recipe = get_recipe(name)
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, recipe.config_class)
    return resolve_config(recipe.config_class, parser.parse_args(argv))


def flags(values):
    """`{field: value}` as command-line flags (`--field-name VALUE`)."""
    args = []
    for key, value in values.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (tuple, list)):
            value = ",".join(map(str, value))
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def smoke_argv(name, output_dir, *extra, **overrides):
    """`dlrecipes run NAME` of the smoke run into `output_dir` (quiet),
    with `overrides` (field values) and `extra` flags."""
    return (["run", name, "--output-dir", str(output_dir), "--verbose", "0"]
            + flags(smoke_values(name, **overrides)) + [str(a) for a in extra])


# ------------------------------------------------------- run directories


def run_dirs(output_dir, name):
    """The run directories of recipe `name` under `output_dir`, sorted
    (paths of the same type as `output_dir`)."""
    recipe_dir = os.path.join(output_dir, name)
    if not os.path.isdir(recipe_dir):
        return []
    found = sorted(os.listdir(recipe_dir))
    if isinstance(output_dir, str):
        return [os.path.join(recipe_dir, run) for run in found]
    return [output_dir / name / run for run in found]


def run_dir_of(output_dir, name):
    """The one run directory of recipe `name` under `output_dir`."""
    found = run_dirs(output_dir, name)
    assert len(found) == 1, found
    return found[0]


def metrics(run_dir):
    """A run's metrics.json."""
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return json.load(f)


def history(run_dir):
    """A run's history.csv, one dict of strings per epoch."""
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def config_of(run_dir):
    """A run's config.json."""
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- fixtures


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`-n 2`, `--dist loadgroup` from pyproject), the
    tests that use the trained main job run on one worker: a
    session fixture is per worker, and a second worker would train it
    again."""
    for item in items:
        if "main_job_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("main-job"))


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session, float32 and a fixed seed."""
    # free_memory=False: no gc.collect() per test (0.4 s each, minutes
    # over the suite); Python's collector still runs on its own.
    keras.backend.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def main_job_run(tmp_path_factory):
    """The README's main job as a user runs it, `dlrecipes run
    image-classification` (default ResNet on the digits, seed 0): its run
    directory. Trained once per session, for the tests that need a finished
    default run (its accuracy, `dlrecipes explain` on it)."""
    from dlrecipes.cli import main

    out = tmp_path_factory.mktemp("main-job")
    assert main(["run", "image-classification", "--seed", "0",
                 "--output-dir", str(out), "--verbose", "0"]) == 0
    return run_dir_of(out, "image-classification")
