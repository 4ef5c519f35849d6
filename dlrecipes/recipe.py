"""The `Recipe` object and its registry, in timm's and keras-hub's manner.

A recipe is a subclass of `Recipe`, registered once:

    @register_recipe
    class ImageClassification(Recipe):
        name = "image-classification"
        config_class = ImageClassificationConfig
        objective = ("val_accuracy", "max")
        smoke = {"epochs": 1, "width": 8}            # the quick test run
        search_space = {"width": Choice((16, 32))}   # {config field: spec}
        data_fields = ("dataset", "seed")            # fields load_data reads

        def load_data(self, config): ...             # -> Data
        def build_model(self, config, data): ...     # -> uncompiled model
        def compile(self, model, config, data, optimizer, **options): ...
        def phases(self, config): ...                # -> [Phase, ...]
        def callbacks(self, config, data, run_dir): ...  # -> [Callback]
        def report(self, model, data, run_dir, config): ...  # -> {metric}
        def restore(self, path, config, data): ...   # saved model -> model

The training engine (`dlrecipes.training.engine`) calls these methods and
nothing else; it never knows a recipe by name. This module imports no Keras:
the CLI lists recipes and parses flags without loading a backend.
"""

import dataclasses
import importlib
import pkgutil
import typing

from dlrecipes.errors import UsageError, choices_message

_RECIPES = {}


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stretch of training with one optimizer.

    The engine runs a recipe's phases in order over one epoch counter:
    phase `i` trains from the epoch where phase `i - 1` ended for `epochs`
    epochs. Before a phase starts, `prepare(model)` runs (freeze or unfreeze
    layers) and the model is compiled afresh through `Recipe.compile` with
    an optimizer made from the config with `overrides` applied (for example
    `{"learning_rate": 1e-4}`), whose schedule spans this phase's epochs. An
    interrupted run resumes inside the phase it stopped in; early stopping
    and a plateau in one phase end that phase only.

    Args:
        name: shown in logs and saved with the backups.
        epochs: epochs in this phase (0: skipped).
        prepare: `fn(model)` run before the phase, or None. On resume the
            `prepare` of every phase up to the current one runs, in order.
        overrides: config fields changed for this phase's optimizer.
    """

    name: str
    epochs: int
    prepare: typing.Optional[typing.Callable] = None
    overrides: dict = dataclasses.field(default_factory=dict)


class Recipe:
    """Base class of every recipe: override the class attributes and the
    methods `load_data`, `build_model` and, where the defaults do not fit,
    `compile`, `phases`, `check` and `report`.

    Class attributes:
        name: the registered name (`dlrecipes run NAME`).
        config_class: the typed config dataclass (extends `TrainConfig`).
        description: one line for `dlrecipes list` and `--help`.
        objective: `(monitor, "min" | "max")` for checkpoints, early
            stopping and tuning; `val_` is dropped when there is no
            validation split.
        smoke: config values of a seconds-long run on embedded data (the
            test sweeps run it).
        search_space: `{config field: Choice/Float/Int/Boolean}` from
            `dlrecipes.search_space`: what `dlrecipes tune` searches.
        data_fields: config fields `load_data` reads (a tuning trial that
            changes one reloads the data).
        datasets: the dataset names `--dataset` accepts (for help and the
            offline-download tests); `tfds_datasets` those loaded by tfds.
        classifier: the default `compile` (sparse categorical
            cross-entropy on a softmax over `data.num_classes`, accuracy):
            `--teacher` distils into it, ensembles vote.
        engine_averaging: the engine applies `--ema`, `--swa-start` and
            `--snapshots`; False where the recipe's own `compile` does
            what it can (the GAN averages its generator itself).
        model_knobs: the shared config fields `build_model` honours among
            `activation` and `kernel_initializer` (a value other than the
            default is refused for the others).
        kernel_penalties: the training loss includes the model's
            `losses` (Keras' default `train_step` does), so `--l1`/`--l2`
            penalties apply; False for a `train_step` of its own.
    """

    name: typing.ClassVar[str] = ""
    config_class: typing.ClassVar[type] = None
    description: typing.ClassVar[str] = ""
    objective: typing.ClassVar[tuple] = ("val_loss", "min")
    smoke: typing.ClassVar[dict] = {}
    search_space: typing.ClassVar[dict] = {}
    data_fields: typing.ClassVar[tuple] = ()
    datasets: typing.ClassVar[tuple] = ()
    tfds_datasets: typing.ClassVar[tuple] = ()
    classifier: typing.ClassVar[bool] = False
    engine_averaging: typing.ClassVar[bool] = True
    model_knobs: typing.ClassVar[tuple] = ("activation", "kernel_initializer")
    kernel_penalties: typing.ClassVar[bool] = True

    # ------------------------------------------------------------ contract

    def check(self, config):
        """Cross-field checks before any data loads: raise `UsageError`."""

    def load_data(self, config):
        """Return a `dlrecipes.data.Data` for `config`."""
        raise NotImplementedError(f"{type(self).__name__}.load_data")

    def build_model(self, config, data):
        """Return the uncompiled Keras model for `config` and `data`."""
        raise NotImplementedError(f"{type(self).__name__}.build_model")

    def compile(self, model, config, data, optimizer, **options):
        """Compile `model` with `optimizer` (made by the engine from the
        config) and the engine's `options` (`jit_compile`,
        `steps_per_execution`): override to set the loss and metrics, or to
        compile a model with its own `train_step` (several optimizers)."""
        model.compile(optimizer=optimizer, loss=self.loss(config, data),
                      metrics=self.metrics(config, data), **options)

    def loss(self, config, data):
        """The loss the default `compile` uses."""
        return "sparse_categorical_crossentropy"

    def metrics(self, config, data):
        """The metrics the default `compile` uses."""
        return ["accuracy"]

    def phases(self, config):
        """The training phases; by default one of `config.epochs`."""
        return [Phase("train", config.epochs)]

    def callbacks(self, config, data, run_dir=None):
        """Callbacks of the recipe's own, first in every `fit` of a run or
        a tuning trial (`run_dir` None): one that adds a metric to the
        epoch's logs (a GAN's Fréchet distance) is seen by the history,
        the checkpoints, early stopping and the tuner."""
        return []

    def report(self, model, data, run_dir, config):
        """Write recipe-specific artifacts into `run_dir`; return extra
        metrics for `metrics.json` (the model holds the saved weights)."""
        return {}

    def restore(self, path, config, data):
        """The model saved at `path` (a run's `model.keras`), uncompiled,
        on one device, for evaluation and reports. By default the safe
        loader (`dlrecipes.load_model`), which loads Keras' and dlrecipes'
        classes only; a recipe whose model is a class of its own (a GAN
        with its own `train_step`) builds the model again and loads the
        weights instead."""
        from dlrecipes.saving import load_model

        return load_model(path, compile=False)

    # ------------------------------------------------------------- helpers

    def monitor(self, data):
        """The objective as monitored on `data` (`val_` dropped when it has
        no validation split)."""
        monitor, mode = self.objective
        if data is not None and data.val is None:
            monitor = monitor.replace("val_", "")
        return monitor, mode

    def total_epochs(self, config):
        return sum(p.epochs for p in self.phases(config))

    @property
    def module(self):
        return importlib.import_module(type(self).__module__)

    def __repr__(self):
        return f"<Recipe {self.name}>"


def register_recipe(cls):
    """Class decorator: register an instance of the `Recipe` subclass `cls`
    under `cls.name`. A duplicate name is an error."""
    if not (isinstance(cls, type) and issubclass(cls, Recipe)):
        raise TypeError(f"register_recipe expects a Recipe subclass. "
                        f"Received: {cls!r}")
    if cls.__module__ == "__main__":
        # `python -m recipes.x`: the CLI imports `recipes.x` properly and
        # registers it there; registering `__main__` too would clash.
        return cls
    if not cls.name or not dataclasses.is_dataclass(cls.config_class):
        raise TypeError(f"{cls.__name__} needs a name and a config "
                        "dataclass (config_class)")
    old = _RECIPES.get(cls.name)
    if old is not None and type(old).__qualname__ != cls.__qualname__:
        raise ValueError(f"recipe {cls.name!r} is already registered by "
                         f"{type(old).__module__}")
    _RECIPES[cls.name] = cls()
    cls.config_class.recipe_name = cls.name
    return cls


def discover(package="recipes"):
    """Import every module of `package` (modules starting with `_` are
    helpers), which registers its recipes. No hand-kept list."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def list_recipes():
    """Names of the registered recipes, sorted."""
    return sorted(_RECIPES)


def get_recipe(name):
    """The registered `Recipe` called `name` (a `Recipe` passes through);
    an unknown name lists the valid ones."""
    if isinstance(name, Recipe):
        return name
    if name not in _RECIPES:
        raise UsageError(choices_message("recipe", name, list_recipes()))
    return _RECIPES[name]
