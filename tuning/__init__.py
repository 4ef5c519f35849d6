"""KerasTuner searches over every recipe's hyperparameters.

    from tuning import Choice, Float, search_space, run_search

    space = search_space("image-classification")      # {field: spec}, editable
    space["width"] = Choice((16, 32))
    result = run_search("image-classification", tuner="random", space=space,
                        max_trials=10, fixed={"epochs": 5})
    result.best_config, result.directory, result.test_metrics

Each recipe declares its space (`Recipe.search_space`; hp names are config
field names). `tuning.spec` is a search's frozen description, `tuning.runner`
runs it with KerasTuner's RandomSearch, GridSearch, Hyperband and
BayesianOptimization (`tuning.tuner`; the KerasTuner patches live in
`tuning.kt_compat`), every trial through the training engine
(`tuning.trial`); `dlrecipes tune` is `tuning.cli`.
"""

import dlrecipes  # noqa: F401  (first: TensorFlow's environment, see recipes)
from dlrecipes.backend import require_backend

require_backend()  # an uninstalled backend: one clear ImportError

from tuning.space import (  # noqa: F401,E402
    Boolean, Choice, Float, Int, search_space)


def run_search(recipe, **kwargs):
    """Run (or resume) a search; see `tuning.runner.run_search`."""
    from tuning.runner import run_search as _run_search

    return _run_search(recipe, **kwargs)


def report_search(path):
    """Print a search directory's trials table again (and redraw its plot)."""
    from tuning.runner import report_search as _report_search

    return _report_search(path)
