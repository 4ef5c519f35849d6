"""Checks of the model-level techniques a run can ask for, before any
backend loads: weight averaging (`--ema`, `--swa-start`), snapshot
ensembles (`--snapshots`), bagging (`--bootstrap`) and distillation
(`--teacher`). The ranges and combinations a config alone decides are in
`config.validate`; these need the recipe (and the teacher's directory).
No Keras here: a bad flag answers in well under a second.
"""

import json
import os

from dlrecipes.errors import UsageError
from dlrecipes.recipe import get_recipe, list_recipes


def classifier_recipes():
    return [name for name in list_recipes() if get_recipe(name).classifier]


def check(recipe, config):
    """Raise `UsageError` (one line) where `recipe` cannot apply a
    technique `config` asks for."""
    _check_model_knobs(recipe, config)
    if not recipe.engine_averaging:
        for name, flag in (("swa_start", "--swa-start"),
                           ("snapshots", "--snapshots"),
                           ("teacher", "--teacher"),
                           ("bootstrap", "--bootstrap")):
            if getattr(config, name, None):
                raise UsageError(f"{flag} is not available for {recipe.name} "
                                 "(it trains with its own train_step)")
    chosen = [flag for name, flag in (("ema", "--ema"),
                                      ("swa_start", "--swa-start"),
                                      ("snapshots", "--snapshots"))
              if getattr(config, name, 0)]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} are different ways to "
                         "average weights or models: choose one")
    if getattr(config, "snapshots", 0) and len(recipe.phases(config)) > 1:
        names = ", ".join(p.name for p in recipe.phases(config))
        raise UsageError(f"--snapshots needs one training phase; "
                         f"{recipe.name} trains in {len(recipe.phases(config))}"
                         f" with these settings ({names})")
    teacher = getattr(config, "teacher", "")
    if teacher:
        if not recipe.classifier:
            raise UsageError(
                f"--teacher needs a classification recipe "
                f"({', '.join(classifier_recipes())}); {recipe.name} does "
                "not predict classes")
        teacher_kind(teacher)
        made_by = (teacher_config(teacher) or {}).get("recipe")
        if made_by in list_recipes() and not get_recipe(made_by).classifier:
            raise UsageError(f"--teacher {teacher} was trained by "
                             f"{made_by}, which does not predict classes: a "
                             "teacher must be a classifier")


def _check_model_knobs(recipe, config):
    """`--activation`, `--kernel-initializer`, `--l1`, `--l2` where the
    recipe's model and loss can take them."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name in ("activation", "kernel_initializer"):
        if name in recipe.model_knobs or name not in defaults:
            continue
        value = getattr(config, name)
        if value != defaults[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(
                f"{flag} is not available for {recipe.name} (its model "
                f"keeps its own; it takes {flag} {defaults[name]} only). "
                f"Received: {name}={value}")
    if getattr(config, "mc_dropout", 0):
        if not recipe.classifier:
            raise UsageError(
                f"--mc-dropout needs a classification recipe "
                f"({', '.join(classifier_recipes())}); {recipe.name} does "
                "not predict classes")
        if not getattr(config, "dropout", 0):
            raise UsageError(
                "--mc-dropout needs dropout to sample: set --dropout > 0. "
                f"Received: dropout={getattr(config, 'dropout', None)}")
    if not recipe.kernel_penalties:
        for name in ("l1", "l2"):
            if getattr(config, name, 0.0):
                raise UsageError(
                    f"--{name} is not available for {recipe.name} (its "
                    "train_step computes its own losses). "
                    f"Received: {name}={getattr(config, name)}")


def teacher_kind(path):
    """"run" or "ensemble": what the directory `path` holds; UsageError
    unless it is a finished run or an ensemble directory."""
    from dlrecipes.paths import path_kind

    kind = path_kind(path)
    if kind is None:
        raise UsageError(f"--teacher: no such directory: {path}")
    if kind != "a directory":
        raise UsageError(f"--teacher: {path} is {kind}, not a run or "
                         "ensemble directory")
    has = {name: os.path.isfile(os.path.join(path, name)) for name in
           ("model.keras", "metrics.json", "members.json", "config.json")}
    if has["members.json"]:
        if not (has["model.keras"] and has["metrics.json"]):
            raise UsageError(f"--teacher: {path} is an unfinished ensemble "
                             "(no model.keras or metrics.json)")
        return "ensemble"
    if not has["config.json"]:
        raise UsageError(f"--teacher: {path} is neither a run directory "
                         "(config.json) nor an ensemble (members.json)")
    if not (has["model.keras"] and has["metrics.json"]):
        raise UsageError(
            f"--teacher: {path} is not a finished run (no "
            f"{'model.keras' if not has['model.keras'] else 'metrics.json'})"
            f"; finish it first (`dlrecipes report {path}` says how)")
    return "run"


def teacher_config(path):
    """The recipe name and settings the teacher was trained with: a run's
    `config.json`, or an ensemble's first member's (None where
    unreadable)."""
    try:
        if teacher_kind(path) == "ensemble":
            with open(os.path.join(path, "members.json")) as f:
                first = json.load(f)["members"][0]["run_dir"]
            path = first
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError, KeyError, IndexError, TypeError,
            UsageError):
        return None
