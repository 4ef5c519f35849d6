"""The recipe registry, in timm's manner.

A recipe module registers its config dataclass:

    @register_recipe("image-classification")
    @dataclass(frozen=True)
    class ImageClassificationConfig(TrainConfig): ...

and defines, at module level, `load_data(config)`, `build_model(config,
data)` (returns an uncompiled model), `compile_kwargs(config, data)` (loss
and metrics), `OBJECTIVE = ("val_accuracy", "max")`, optionally
`report(model, data, run_dir, config)` for recipe-specific artifacts, and
`main(argv=None)`.

`dlrecipes` never imports `recipes`; the CLI and tests do (`import recipes`
registers every recipe).
"""

import dataclasses
import sys

from dlrecipes.errors import UsageError, choices_message

_RECIPES = {}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A registered recipe: its name, config class and defining module."""

    name: str
    config_class: type

    @property
    def module(self):
        return sys.modules[self.config_class.__module__]

    @property
    def objective(self):
        return getattr(self.module, "OBJECTIVE", ("val_loss", "min"))

    @property
    def description(self):
        doc = (self.module.__doc__ or "").strip().splitlines()
        for line in doc:
            if line.lower().startswith("description:"):
                return line.split(":", 1)[1].strip()
        return doc[0] if doc else ""

    def load_data(self, config):
        return self.module.load_data(config)

    def build_model(self, config, data):
        return self.module.build_model(config, data)

    def compile_kwargs(self, config, data):
        return self.module.compile_kwargs(config, data)

    def report(self, model, data, run_dir, config):
        fn = getattr(self.module, "report", None)
        return fn(model, data, run_dir, config) if fn else {}


def register_recipe(name):
    """Class decorator that registers a recipe's config dataclass under `name`."""

    def decorator(config_class):
        if config_class.__module__ == "__main__":
            # `python -m recipes.x`: the CLI imports `recipes.x` properly and
            # registers it there; registering `__main__` too would clash.
            return config_class
        if name in _RECIPES:
            raise ValueError(
                f"recipe {name!r} is already registered by "
                f"{_RECIPES[name].config_class.__module__}"
            )
        if not dataclasses.is_dataclass(config_class):
            raise TypeError(f"register_recipe({name!r}) expects a dataclass")
        _RECIPES[name] = Recipe(name, config_class)
        config_class.recipe_name = name
        return config_class

    return decorator


def list_recipes():
    """Names of the registered recipes, sorted."""
    return sorted(_RECIPES)


def get_recipe(name):
    """The registered `Recipe` called `name`; unknown names list valid ones."""
    if name not in _RECIPES:
        raise UsageError(choices_message("recipe", name, list_recipes()))
    return _RECIPES[name]
