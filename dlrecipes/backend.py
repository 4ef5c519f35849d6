"""Which Keras backend is configured, and whether it can be imported,
answered without importing Keras (which imports the backend at `import
keras`, with a long traceback when that fails). Imports nothing heavy:
`dlrecipes/__init__.py` and the CLI ask it first."""

import os
import sys

BACKENDS = {
    "tensorflow": ("tensorflow", "pip install tensorflow"),
    "jax": ("jax", 'pip install "jax[cpu]" (or jax[cuda12])'),
    "torch": ("torch", "pip install torch"),
    "numpy": ("jax", "pip install jax (Keras' numpy backend uses it)"),
    "openvino": ("openvino", "pip install openvino"),
}


def _configured_backend():
    """(name, where it is set) as Keras reads it at `import keras`:
    KERAS_BACKEND, else `keras.json` in KERAS_HOME or ~/.keras, else
    tensorflow."""
    import json

    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name, f"KERAS_BACKEND={name}"
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "keras.json")
    try:
        with open(path) as f:
            name = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        name = None
    if isinstance(name, str) and name:
        return name, f"{path} sets backend {name!r}"
    return "tensorflow", "Keras' default backend is tensorflow"


def backend_problem():
    """One line saying why Keras cannot import its backend, or None.

    Checked without importing Keras (keras imports the backend at `import
    keras`): an unknown backend name, or a backend whose package is not
    installed.
    """
    import importlib.util

    name, where = _configured_backend()
    if name not in BACKENDS:
        return (f"{where} is not a Keras backend; valid choices: "
                f"{', '.join(BACKENDS)}")
    module, install = BACKENDS[name]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    fallback = ("unset KERAS_BACKEND to use tensorflow"
                if where.startswith("KERAS_BACKEND") else
                "set KERAS_BACKEND to an installed backend")
    return (f"{where}, but {module} is not installed: {install} (or "
            f"{fallback})")


def require_backend():
    """Raise ImportError with `backend_problem()`'s line, if there is one
    (for `import recipes`, `import tuning`: clearer than Keras' own)."""
    problem = backend_problem()
    if problem is not None:
        raise ImportError(problem)


# What `--backend` accepts: the backends dlrecipes is tested under.
CHOICES = ("tensorflow", "jax", "torch")
BACKEND_HELP = ("Keras backend for this command: " + ", ".join(CHOICES) +
                " (sets KERAS_BACKEND before Keras loads; default: "
                "KERAS_BACKEND, else tensorflow)")


def pop_backend_flag(argv):
    """`(argv without --backend NAME / --backend=NAME, NAME or None)`.

    Raises ValueError with one line for a `--backend` without a value."""
    rest, name, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--backend":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise ValueError("--backend needs a value; valid choices: "
                                 + ", ".join(CHOICES))
            name, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--backend="):
            name = arg.partition("=")[2]
        else:
            rest.append(arg)
        i += 1
    return rest, name


def select_backend(name):
    """Make `name` the Keras backend of this process (before Keras is
    imported: `KERAS_BACKEND`). One line saying why it cannot be, or None.
    """
    import importlib.util

    if name not in CHOICES:
        return (f"--backend {name!r} is not a backend; valid choices: "
                f"{', '.join(CHOICES)}")
    keras = sys.modules.get("keras")
    if keras is not None:
        current = keras.backend.backend()
        if current == name:
            return None
        return (f"--backend {name}: Keras is already running on {current} "
                "in this process; run the command in a new process (or set "
                f"KERAS_BACKEND={name} before Python starts)")
    module, install = BACKENDS[name]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return f"--backend {name}, but {module} is not installed: {install}"
    os.environ["KERAS_BACKEND"] = name
    return None
