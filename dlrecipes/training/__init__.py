"""The shared training harness: every recipe trains through `run_recipe`."""

from dlrecipes.training.loop import Data, RunResult, run_recipe  # noqa: F401
from dlrecipes.training.optimizers import make_optimizer  # noqa: F401
