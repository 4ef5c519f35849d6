"""Training: the engine (`engine.start`, `engine.train`) and `run_recipe`,
the run directory around it."""

from dlrecipes.data.description import Data  # noqa: F401
from dlrecipes.training.engine import build as build_compiled_model  # noqa: F401
from dlrecipes.training.loop import RunResult, run_recipe  # noqa: F401
from dlrecipes.training.optimizers import make_optimizer  # noqa: F401
