"""One module per task; importing this package registers every recipe."""

from recipes import image_classification  # noqa: F401
from recipes import transfer_learning  # noqa: F401
