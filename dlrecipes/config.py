"""Typed config dataclasses, turned into command-line flags automatically.

A recipe's config is a frozen dataclass that extends `TrainConfig`. Each
field is declared with `option(default, help, choices=..., min=...)`; the
CLI turns it into `--field-name VALUE`, a `--config FILE` (TOML or JSON)
may set the same fields, and flags override the file.
"""

import argparse
import dataclasses
import json
import math
import typing

from dlrecipes.errors import UsageError, choices_message
from dlrecipes.paths import check_file

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam",
              "adamw")
# The learning-rate schedules `dlrecipes.schedules.get` builds, by name
# (here, not there, so that flags parse without Keras; schedules.py checks
# at import that it has a factory for each name).
SCHEDULES = ("constant", "step", "exponential", "inverse_time",
             "inverse_sqrt", "cosine", "warmup_cosine", "cosine_restarts",
             "piecewise", "polynomial")
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform",
                "lecun_normal", "lecun_uniform", "orthogonal", "random_normal",
                "zeros")
# The hidden layers' activation (`--activation`), passed to every model
# builder; Keras names all.
ACTIVATIONS = ("auto", "relu", "leaky_relu", "elu", "gelu", "selu", "tanh",
               "sigmoid")
# What `--monitor` can log every epoch (dlrecipes.callbacks).
MONITORS = ("activations", "update-ratio", "gap")
# Keras' own default standard deviation of `RandomNormal`.
DEFAULT_INIT_STD = 0.05


# Seeds feed `keras.utils.set_random_seed` and NumPy, which take 32 bits.
MAX_SEED = 2**32 - 1


def option(default, help="", choices=None, min=None, max=None,
           exclusive_min=False, presentation=False):
    """A config field with CLI help and validation metadata.

    Args:
        default: the default value (a tuple for sequences).
        help: the `--help` text.
        choices: the valid values, if they are a fixed set.
        min, max: the valid range of a number (inclusive).
        exclusive_min: `min` itself is not valid.
        presentation: the field says how a run reports or where it
            writes, not what it trains (e.g. `verbose`, `output_dir`): an
            interrupted run resumes whatever its value.
    """
    metadata = {"help": help, "choices": choices, "min": min, "max": max,
                "exclusive_min": exclusive_min, "presentation": presentation}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return dataclasses.field(default=default, metadata=metadata)


def default(value):
    """Re-declare a field of a base config with another default only: its
    help, choices and range stay the base field's.

        @dataclasses.dataclass(frozen=True)
        class MyConfig(TrainConfig):
            epochs: int = default(20)
    """
    if isinstance(value, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return dataclasses.field(default=value, metadata={"inherit": True})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Fields every recipe shares: the training harness reads these."""

    def __init_subclass__(cls, **kwargs):
        # `default(value)` fields take the base field's metadata (help,
        # choices, range) before @dataclass reads the class body.
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not (isinstance(value, dataclasses.Field)
                    and value.metadata.get("inherit")):
                continue
            base = next((b.__dataclass_fields__[name] for b in cls.__mro__[1:]
                         if name in getattr(b, "__dataclass_fields__", {})),
                        None)
            if base is None:
                raise TypeError(f"{cls.__name__}.{name}: default() re-declares"
                                " a field of a base config; no base has it")
            setattr(cls, name, dataclasses.field(default=value.default,
                                                 metadata=base.metadata))

    seed: int = option(0, "random seed (same seed, same result on CPU)", min=0,
                       max=MAX_SEED)
    epochs: int = option(10, "training epochs", min=1)
    batch_size: int = option(32, "global batch size", min=1)
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    learning_rate: float = option(1e-3, "peak learning rate", min=0,
                                  exclusive_min=True)
    momentum: float = option(0.9, "momentum (momentum, nesterov, rmsprop)",
                             min=0, max=1)
    weight_decay: float = option(
        0.0, "decoupled weight decay (adamw) or L2 factor (others)", min=0)
    clipnorm: float = option(0.0, "clip gradient norm (0: off)", min=0)
    schedule: str = option("constant", "learning-rate schedule",
                           choices=SCHEDULES)
    warmup_epochs: float = option(0.0, "linear warm-up epochs", min=0)
    kernel_initializer: str = option(
        "he_normal", "kernel initializer (zeros: every unit of a layer "
        "stays the same; random_normal: see --init-std)",
        choices=INITIALIZERS)
    init_std: float = option(
        DEFAULT_INIT_STD, "standard deviation of --kernel-initializer "
        "random_normal", min=0, exclusive_min=True)
    activation: str = option(
        "auto", "activation of the hidden layers (auto: the model's own, "
        "relu in most, gelu in transformers' feed-forward; recurrent cells "
        "keep their tanh and sigmoid gates)", choices=ACTIVATIONS)
    l1: float = option(0.0, "L1 penalty on every kernel, added to the loss",
                       min=0)
    l2: float = option(0.0, "L2 penalty on every kernel, added to the loss "
                       "(classic L2; --weight-decay is decoupled)", min=0)
    clipvalue: float = option(0.0, "clip each gradient value to [-V, V] "
                              "(0: off)", min=0)
    gradient_noise: float = option(
        0.0, "annealed Gaussian gradient noise of variance ETA / (1 + "
        "step)^0.55 added to every gradient (Neelakantan et al. 2015: ETA "
        "0.01, 0.3 or 1; 0: off)", min=0)
    early_stopping: int = option(
        0, "early-stopping patience in epochs (0: off)", min=0)
    reduce_lr_patience: int = option(
        0, "ReduceLROnPlateau patience (0: off; constant schedule only)",
        min=0)
    checkpoint: str = option(
        "best", "model.keras keeps the best epoch by the recipe's "
        "validation objective, or the last epoch", choices=("best", "last"))
    mixed_precision: bool = option(False, "mixed precision (bf16/fp16)")
    jit_compile: str = option("auto", "XLA compilation",
                              choices=("auto", "on", "off"))
    steps_per_execution: int = option(
        1, "training steps per compiled call (fewer host round trips; "
        "batch callbacks then run every N steps)", min=1)
    distribute: bool = option(False, "data parallelism over local devices")
    ema: float = option(
        0.0, "keep an exponential moving average of the weights with this "
        "momentum (Keras' use_ema; 0: off); validation, checkpoints and the "
        "saved model use the average", min=0, max=1)
    swa_start: float = option(
        0.0, "stochastic weight averaging: average the weights of every "
        "epoch from this fraction of the epochs on, batch-norm statistics "
        "recomputed; the average is saved (0: off)", min=0, max=1)
    snapshots: int = option(
        0, "snapshot ensemble: N equal cycles of --schedule "
        "cosine_restarts, each from the peak rate (no warm-up), a model "
        "saved at each cycle's end (0: off)",
        min=0)
    bootstrap: bool = option(
        False, "train on a bootstrap resample of the training split, drawn "
        "from --seed (bagging members)")
    teacher: str = option(
        "", "distil from this finished run or ensemble directory (its "
        "softened predictions are part of the loss)")
    temperature: float = option(4.0, "distillation temperature", min=0,
                                exclusive_min=True)
    distill_alpha: float = option(
        0.1, "weight of the true labels' loss against the teacher's (1: no "
        "distillation)", min=0, max=1)
    monitor: str = option(
        "", "log every epoch, comma separated: activations (mean and std "
        "of each layer's output on a validation batch), update-ratio "
        "(each layer's update-to-weight ratio over the epoch's first "
        "step), gap (validation minus training loss); columns in "
        "history.csv, TensorBoard scalars, monitor.png")
    mc_dropout: int = option(
        0, "classifiers: N stochastic test passes with dropout on (Monte "
        "Carlo dropout): predictive accuracy, entropy and the most "
        "uncertain test images (0: off)", min=0)
    backup_every: float = option(
        60.0, "seconds between backups of the training state (a crash "
        "repeats at most this much training; 0: after every epoch)", min=0,
        presentation=True)
    output_dir: str = option("runs", "where run directories are created",
                             presentation=True)
    verbose: int = option(1, "Keras progress: 0 silent, 1 bar, 2 line",
                          min=0, max=2, presentation=True)

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def initializer(self):
        """`--kernel-initializer` as model builders and Keras layers take
        it: a name, or for `random_normal` a config with `--init-std`."""
        if self.kernel_initializer == "random_normal":
            return {"class_name": "RandomNormal",
                    "config": {"mean": 0.0, "stddev": self.init_std}}
        return self.kernel_initializer

    @property
    def hidden_activation(self):
        """`--activation` for a model builder: None for `auto` (the
        builder's own default)."""
        return None if self.activation == "auto" else self.activation

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def presentation_fields(config_class):
    """Names of the fields of `config_class` declared with
    `option(..., presentation=True)`: they do not change the trained model."""
    return tuple(f.name for f in dataclasses.fields(config_class)
                 if f.metadata.get("presentation"))


PRESENTATION_FIELDS = presentation_fields(TrainConfig)


def _base_type(tp):
    """int for `int`, `Optional[int]` ...; tuple element type for tuples."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return tp


def _field_types(config_class):
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class)}


def _convert(name, tp, value):
    """Convert and type-check one value (from a flag string or a file)."""
    tp = _base_type(tp)
    if typing.get_origin(tp) is tuple:
        elem = typing.get_args(tp)[0]
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"--{_flag(name)} expects a list. "
                             f"Received: {name}={value!r}")
        return tuple(_convert(name, elem, v) for v in value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float)
                                           and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
            if not math.isfinite(result):
                raise ValueError
            return result
        if tp is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "an integer",
                float: "a finite number", str: "a string"}[tp]
        raise UsageError(f"--{_flag(name)} expects {kind}. "
                         f"Received: {name}={value!r}") from None
    raise TypeError(f"unsupported config type {tp} for {name}")


def _flag(name):
    return name.replace("_", "-")


def _valid_range(meta):
    """`>= 1`, `<= 2`, `in [0, 1]` or `in (0, 1]` from a field's metadata."""
    lo, hi = meta.get("min"), meta.get("max")
    if hi is None:
        return f"> {lo}" if meta.get("exclusive_min") else f">= {lo}"
    if lo is None:
        return f"<= {hi}"
    return f"in {'(' if meta.get('exclusive_min') else '['}{lo}, {hi}]"


def validate(config):
    """Check choices and ranges of every field; raise UsageError."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        meta = f.metadata
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if meta.get("choices") and v not in meta["choices"]:
                raise UsageError(
                    f"--{_flag(f.name)}: "
                    + choices_message(f.name.replace("_", " "), v,
                                      meta["choices"]))
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            lo, hi = meta.get("min"), meta.get("max")
            if (lo is not None and (v < lo or (meta.get("exclusive_min")
                                               and v == lo))) or (
                    hi is not None and v > hi):
                raise UsageError(f"--{_flag(f.name)} must be "
                                 f"{_valid_range(meta)}. "
                                 f"Received: {f.name}={v}")
    if getattr(config, "reduce_lr_patience", 0) and getattr(
            config, "schedule", "constant") != "constant":
        raise UsageError("--reduce-lr-patience needs --schedule constant (a "
                         "schedule already sets the learning rate). "
                         f"Received: schedule={config.schedule}")
    _check_averaging(config)
    _check_knobs(config)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


def _check_knobs(config):
    """Flags that only mean something together."""
    std = getattr(config, "init_std", DEFAULT_INIT_STD)
    init = getattr(config, "kernel_initializer", "")
    if std != DEFAULT_INIT_STD and init != "random_normal":
        raise UsageError("--init-std needs --kernel-initializer "
                         f"random_normal. Received: kernel_initializer={init}"
                         f", init_std={std}")
    monitors = [m.strip() for m in getattr(config, "monitor", "").split(",")
                if m.strip()]
    for name in monitors:
        if name not in MONITORS:
            raise UsageError("--monitor: " + choices_message(
                "monitor", name, MONITORS) + " (comma separated)")
        if monitors.count(name) > 1:
            raise UsageError(f"--monitor names {name} twice. Received: "
                             f"monitor={config.monitor}")
    if getattr(config, "mc_dropout", 0) == 1:
        raise UsageError("--mc-dropout must be >= 2 (stochastic passes to "
                         "average; 0: off). Received: mc_dropout=1")
    if getattr(config, "clipnorm", 0) and getattr(config, "clipvalue", 0):
        raise UsageError("--clipnorm and --clipvalue: choose one (Keras "
                         "clips gradients one way). Received: "
                         f"clipnorm={config.clipnorm}, "
                         f"clipvalue={config.clipvalue}")


def _check_averaging(config):
    """Weight averaging and snapshot ensembles: open intervals and cycles
    that end on epochs (one technique at a time: `techniques.check`)."""
    for name in ("ema", "swa_start"):
        value = getattr(config, name, 0.0)
        if value and not 0.0 < value < 1.0:
            raise UsageError(f"--{_flag(name)} must be in (0, 1) (0: off). "
                             f"Received: {name}={value}")
    snapshots = getattr(config, "snapshots", 0)
    if not snapshots:
        return
    if snapshots < 2:
        raise UsageError("--snapshots must be >= 2 (one model per cycle of "
                         f"--schedule cosine_restarts; 0: off). Received: "
                         f"snapshots={snapshots}")
    if getattr(config, "schedule", "") != "cosine_restarts":
        raise UsageError("--snapshots needs a cyclic learning rate: "
                         "--schedule cosine_restarts. Received: "
                         f"schedule={config.schedule}")
    epochs = config.epochs
    if snapshots > epochs or epochs % snapshots:
        raise UsageError(
            f"--snapshots {snapshots} needs --epochs divisible by it (the "
            f"schedule's cycles are whole epochs; --epochs {epochs} has at "
            f"most {epochs} cycles). Received: snapshots={snapshots}, "
            f"epochs={epochs}")


def load_config_file(path, flag="--config"):
    """Read a TOML or JSON config file into a dict.

    Args:
        path: a `.toml` file, or JSON (any other name).
        flag: the option that named it (e.g. "--space"), for messages.

    Raises:
        UsageError: the path is missing or not a regular file (a
            directory, a FIFO, `/dev/zero`: never opened), the file is
            malformed, or it does not hold a table/object.
    """
    check_file(path, flag, "a TOML or JSON file")
    what = f"{flag} file"
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"cannot read {what} {path}: {first}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path} must hold a table/object of "
                         f"fields. Received: {type(data).__name__}")
    return data


def read_config_file(path, config_class):
    """The fields of a `--config` file for `config_class`'s recipe.

    The `recipe` key that runs write into `config.json` is checked and
    dropped: a config of another recipe is refused, not half-applied.
    """
    values = load_config_file(path)
    expected = getattr(config_class, "recipe_name", None)
    recipe = values.pop("recipe", expected)
    if expected is not None and recipe != expected:
        raise UsageError(
            f"config file {path} is for recipe {recipe!r}, not {expected!r} "
            "(remove its `recipe` key to use its fields anyway). "
            f"Received: recipe={recipe!r}")
    return values


def config_from_dict(config_class, values, source="config"):
    """Build and validate a config from a dict; unknown keys are errors."""
    types = _field_types(config_class)
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise UsageError(f"unknown field {unknown[0]!r} in {source}; valid "
                         f"fields: {', '.join(types)}")
    converted = {k: _convert(k, types[k], v) for k, v in values.items()}
    return validate(config_class(**converted))


def add_config_arguments(parser, config_class):
    """Add one `--flag` per config field (defaults suppressed)."""
    types = _field_types(config_class)
    group = parser.add_argument_group("recipe options")
    for f in dataclasses.fields(config_class):
        tp = _base_type(types[f.name])
        meta = f.metadata
        default = f.default
        help_text = meta.get("help", "")
        if meta.get("choices"):
            help_text += f" {{{', '.join(map(str, meta['choices']))}}}"
        help_text += f" (default: {default!r})"
        if tp is bool:
            group.add_argument(f"--{_flag(f.name)}", dest=f.name,
                               nargs="?", const="true", default=argparse.SUPPRESS,
                               metavar="BOOL", help=help_text)
            group.add_argument(f"--no-{_flag(f.name)}", dest=f.name,
                               action="store_const", const="false",
                               default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS)
        else:
            group.add_argument(f"--{_flag(f.name)}", dest=f.name,
                               default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=help_text)
    parser.add_argument("--config", dest="config_file", default=None,
                        metavar="FILE",
                        help="TOML or JSON file of fields; flags override it")


def resolve_config(config_class, namespace):
    """defaults <- --config file <- flags, then validate."""
    names = {f.name for f in dataclasses.fields(config_class)}
    values = {}
    config_file = getattr(namespace, "config_file", None)
    if config_file:
        values.update(read_config_file(config_file, config_class))
    values.update({k: v for k, v in vars(namespace).items() if k in names})
    return config_from_dict(config_class, values,
                            source=config_file or "flags")
