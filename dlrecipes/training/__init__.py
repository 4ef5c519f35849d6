"""The shared training harness: every recipe trains through `run_recipe`."""

from dlrecipes.training.loop import (  # noqa: F401
    Data, RunResult, build_compiled_model, run_recipe)
from dlrecipes.training.optimizers import make_optimizer  # noqa: F401
