"""The recipe registry (kept for imports; it lives in `dlrecipes.recipe`)."""

from dlrecipes.recipe import (  # noqa: F401
    Recipe, discover, get_recipe, list_recipes, register_recipe)
