"""Training: the engine (`engine.start`, `engine.train`) and `run_recipe`,
the run directory around it.

Names load on first use (PEP 562), so that `dlrecipes.training.rundir` and
`.locks` (run directories, which the CLI and tuning read) import no Keras.
"""

_EXPORTS = {
    "Data": ("dlrecipes.data.description", "Data"),
    "build_compiled_model": ("dlrecipes.training.engine", "build"),
    "RunResult": ("dlrecipes.training.loop", "RunResult"),
    "run_recipe": ("dlrecipes.training.loop", "run_recipe"),
    "make_optimizer": ("dlrecipes.training.optimizers", "make_optimizer"),
    "jit_under_jax": ("dlrecipes.training.distribute", "jit_under_jax"),
}


def __getattr__(name):
    import importlib

    if name not in _EXPORTS:
        raise AttributeError(
            f"module 'dlrecipes.training' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    if module != "dlrecipes.data.description":
        from dlrecipes.lazy import import_keras

        import_keras()  # quietly, before any submodule imports it
    return getattr(importlib.import_module(module), attr)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
