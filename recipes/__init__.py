"""One module per task; importing this package registers every recipe."""

from recipes import image_classification  # noqa: F401
from recipes import sequence_classification  # noqa: F401
from recipes import text_classification  # noqa: F401
from recipes import timeseries_forecasting  # noqa: F401
from recipes import transfer_learning  # noqa: F401
