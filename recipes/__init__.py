"""One module per task; importing this package registers every recipe.

`dlrecipes` is imported first, before any recipe module imports Keras: it
sets TensorFlow's environment (oneDNN kernels off, C++ logs quiet) before
TensorFlow loads, however a recipe is reached (`import recipes.x`,
`python -m recipes.x`, `dlrecipes run`).
"""

import dlrecipes  # noqa: F401  (first: TensorFlow's environment)
from dlrecipes.backend import require_backend

require_backend()  # an uninstalled backend: one clear ImportError

from recipes import image_classification  # noqa: F401,E402
from recipes import sequence_classification  # noqa: F401,E402
from recipes import text_classification  # noqa: F401,E402
from recipes import timeseries_forecasting  # noqa: F401,E402
from recipes import transfer_learning  # noqa: F401,E402
