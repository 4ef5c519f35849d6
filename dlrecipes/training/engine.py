"""The one training engine: `dlrecipes run` and every tuning trial call
`start` then `train`.

    start(config)                       clear the session, seed, precision
    train(recipe, config, data, ...)    build, then for each declared phase:
                                        prepare, compile, fit

The caller plugs in its own callbacks (a run directory's history, best
checkpoint, TensorBoard and `EpochBackup`; a trial's best-weights saver and
HParams logs). The engine adds the callbacks that change training (NaN stop,
early stopping, plateau), feeds arrays in an order drawn from the seed and
the epoch (so a resumed run and a trial see the batches a run sees), and
resumes inside the phase an `EpochBackup` stopped in. A recipe never sees
the backup; the engine never knows a recipe by name.
"""

import contextlib
import dataclasses
import math

import numpy as np

from dlrecipes.errors import UsageError
from dlrecipes.lazy import import_keras, import_tensorflow_quietly

keras = import_keras()  # quietly (TensorFlow's native start-up lines)

from dlrecipes.training.callbacks import StopOnNaN
from dlrecipes.training.distribute import Distribution, jit_under_jax
from dlrecipes.training.optimizers import make_optimizer
from dlrecipes.training.precision import set_precision


@dataclasses.dataclass
class Trained:
    """What `train` returns: the model (weights of the last epoch run) and
    the logs of the epochs this call ran (`{"epoch": i, "loss": ...}`)."""

    model: object
    rows: list
    steps_per_epoch: int
    teacher: object = None  # a `distill.Teacher` with --teacher
    averager: object = None  # `EMAWeights` / `SWAWeights`, or None


def start(config):
    """Fresh Keras state for one training: clear the session (and JAX's
    compile caches, which otherwise grow with every trial), seed every
    generator from `config.seed`, set the dtype policy. Returns the policy
    name in force."""
    keras.backend.clear_session()
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()
    # Under JAX or torch, Keras seeds TensorFlow too where it is installed,
    # importing it: quietly (its native start-up lines).
    import_tensorflow_quietly()
    keras.utils.set_random_seed(config.seed)
    return set_precision(config)


def steps_per_epoch(data, config):
    n = data.num_examples("train")
    if n:
        return max(1, math.ceil(n / config.batch_size))
    try:
        return max(1, len(data.train))
    except TypeError:
        return 1


def _jit(config):
    return {"auto": "auto", "on": True, "off": False}[config.jit_compile]


def training_callbacks(config, monitor, mode):
    """The callbacks that change training: a NaN stop, early stopping and
    learning-rate reduction on a plateau (both per phase)."""
    cbs = [StopOnNaN()]
    if config.early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=config.early_stopping,
            restore_best_weights=False))
    if config.reduce_lr_patience:  # with --schedule constant (validated)
        cbs.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, mode=mode, patience=config.reduce_lr_patience))
    return cbs


class EpochLogs(keras.callbacks.Callback):
    """Keeps every epoch's logs, across the phases' `fit` calls."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": int(epoch)}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows.append(row)


def compile_model(recipe, model, config, data, steps, overrides=None,
                  epochs=None, plain=False):
    """Compile `model` through the recipe with an optimizer made from the
    config (with a phase's `overrides`; its schedule spans `epochs`).

    With `--ema` the optimizer keeps Keras' moving average of the weights
    (recipes whose `engine_averaging` is on); with `--teacher` the loss is
    `DistillationLoss` on `[label, teacher probabilities]` targets, with
    accuracy and agreement on them, unless `plain` (the test split)."""
    phase_config = config.replace(**(overrides or {}),
                                  epochs=epochs or config.epochs)
    ema = getattr(config, "ema", 0.0) if recipe.engine_averaging else 0.0
    optimizer = make_optimizer(phase_config, steps, ema=ema)
    options = dict(jit_compile=_jit(config),
                   steps_per_execution=config.steps_per_execution)
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow
    scope = strategy.scope() if strategy is not None else \
        contextlib.nullcontext()
    with scope:
        if getattr(config, "teacher", "") and not plain:
            from dlrecipes import distillation

            model.compile(
                optimizer=optimizer,
                loss=distillation.DistillationLoss(
                    alpha=config.distill_alpha,
                    temperature=config.temperature),
                metrics=[distillation.LabelAccuracy(),
                         distillation.TeacherAgreement()], **options)
        else:
            recipe.compile(model, config, data, optimizer, **options)
    jit_under_jax(model, config.jit_compile)


def build(recipe, config, data, dist=None):
    """The recipe's model, built in the distribution's scope and compiled
    for its first phase: what `train` starts from."""
    dist = dist or Distribution(config)
    steps = steps_per_epoch(data, config)
    with dist.scope():
        model = recipe.build_model(config, data)
        penalize_kernels(model, getattr(config, "l1", 0.0),
                         getattr(config, "l2", 0.0))
        if getattr(config, "mc_dropout", 0):
            _check_dropout(model, config)
        first = _phases(recipe, config)[0]
        if first.prepare is not None:
            first.prepare(model)
        compile_model(recipe, model, config, data, steps, first.overrides,
                      first.epochs)
    return model, steps


def penalize_kernels(model, l1=0.0, l2=0.0):
    """Put an L1/L2 penalty (`keras.regularizers.L1L2`) on every trainable
    kernel of `model` (`.../kernel` variables of dense, convolution and
    recurrent input weights, inside blocks too; not biases, embeddings,
    normalization or recurrent kernels): Keras adds `model.losses` to the
    training loss. The penalty is a training setting of the run (its
    `config.json`), not part of the saved layers' configs. Returns the
    penalized variables."""
    if not (l1 or l2):
        return []
    penalty = keras.regularizers.L1L2(l1=float(l1), l2=float(l2))
    kernels = [v for v in model.trainable_variables
               if v.path.rsplit("/", 1)[-1] == "kernel"]
    for variable in kernels:
        variable.regularizer = penalty
    return kernels


def monitor_callbacks(config, model, data, probe_size=64):
    """The `dlrecipes.callbacks` that `--monitor` names, in the order of
    `config.MONITORS`; each writes its figures into the epoch's logs
    (before the history and TensorBoard read them). `activations` probes
    every top-level layer with weights on the first `probe_size`
    validation examples; `update-ratio` measures each such layer over the
    epoch's first step (a batch hook: the only one a run has); `gap` logs
    validation minus training loss (a `GapEarlyStopping` that never
    stops)."""
    import sys

    from dlrecipes.config import MONITORS

    chosen = {m.strip() for m in getattr(config, "monitor", "").split(",")}
    if not chosen - {""}:
        return []
    from dlrecipes import callbacks as monitors

    layers = [layer.name for layer in model.layers if layer.weights]
    cbs = []
    for name in MONITORS:
        if name not in chosen:
            continue
        if name == "activations":
            cbs.append(monitors.ActivationStats(
                layers, _probe_batch(data, probe_size)))
        elif name == "update-ratio":
            cbs.append(monitors.UpdateRatioMonitor(layers=layers, verbose=0))
        else:
            cbs.append(monitors.GapEarlyStopping(
                margin=sys.float_info.max, restore_best_weights=False))
    return cbs


def _probe_batch(data, size):
    """The first `size` validation inputs (training inputs without a
    validation split), as arrays."""
    split = data.val if data.val is not None else data.train
    if isinstance(split, tuple):
        return split[0][:size]
    for x, _ in split.take(1) if hasattr(split, "take") else split:
        return np.asarray(x)[:size]
    raise ValueError("no batch to probe activations on")


def _check_dropout(model, config):
    """`--mc-dropout` samples the model's top-level `Dropout` layers: a
    model without one is refused before training."""
    if not any(isinstance(layer, keras.layers.Dropout) and layer.rate > 0
               for layer in model.layers):
        model_name = getattr(config, "model", model.name)
        raise UsageError(
            f"--mc-dropout needs a model with Dropout layers; --model "
            f"{model_name} has none at its top level (its dropout, if any, "
            "is inside its blocks). Received: "
            f"mc_dropout={config.mc_dropout}")


def _phases(recipe, config):
    phases = list(recipe.phases(config))
    if not phases or not any(p.epochs for p in phases):
        raise ValueError(f"recipe {recipe.name!r} declares no training "
                         "phase with epochs")
    return phases


def _resume_point(backup, initial_epoch):
    """(epochs done, phase index, stopped early, diverged) to start from:
    the backup's, or `initial_epoch` without one."""
    state = backup.state() if backup is not None else None
    if not state:
        return initial_epoch, 0, False, False
    return (int(state["epoch"]), int(state.get("phase", 0)),
            bool(state.get("stopped")), bool(state.get("diverged")))


def plan(epochs, done=0, saved_phase=0, stopped=False, diverged=False):
    """Which phases to fit, from which epoch to which.

    Args:
        epochs: epochs per phase, in order (one epoch counter runs through
            them: phase `i` covers `[sum(epochs[:i]), sum(epochs[:i+1]))`).
        done: epochs already trained (a backup's, or Hyperband's start).
        saved_phase: the phase the backup was saved in.
        stopped: training had stopped early in `saved_phase` (that phase
            is over; the next starts at its own first epoch).
        diverged: the loss had become NaN: nothing more to train.

    Returns:
        `[(phase index, initial_epoch, epochs), ...]` for `model.fit`. When
        nothing is left, one empty fit `(last phase, total, total)` in the
        phase that saved the backup's state, so the backup is restored.
    """
    steps, offset = [], 0
    for i, n in enumerate(epochs):
        end = offset + n
        finished = (diverged or done >= end or saved_phase > i
                    or (stopped and saved_phase == i))
        if n and not finished:
            steps.append((i, max(done, offset), end))
        offset = end
    if not steps:
        steps = [(min(saved_phase, len(epochs) - 1), offset, offset)]
    return steps


def make_averager(recipe, config):
    """The callback behind `--ema` (`EMAWeights`) or `--swa-start`
    (`SWAWeights`, averaging from that fraction of all the phases'
    epochs), or None."""
    from dlrecipes.training.averaging import EMAWeights, SWAWeights

    if not recipe.engine_averaging:
        return None
    if getattr(config, "ema", 0.0):
        return EMAWeights()
    if getattr(config, "swa_start", 0.0):
        total = recipe.total_epochs(config)
        return SWAWeights(min(total - 1, int(config.swa_start * total)))
    return None


def bootstrap(data, seed):
    """`data` whose training split is a resample with replacement of its
    own (as many examples), drawn from `seed`: a bagging member."""
    from dlrecipes.errors import UsageError
    from dlrecipes.training.resume import num_rows, take

    if not isinstance(data.train, tuple):
        raise UsageError("--bootstrap needs the training split as arrays "
                         "(the embedded datasets, mnist, folders); this "
                         "dataset streams")
    x, y = data.train
    n = num_rows(y)
    rows = np.random.default_rng([seed, 0xB0075]).integers(0, n, n)
    return dataclasses.replace(data, train=(take(x, rows), take(y, rows)))


def prepare_data(config, data):
    """What `fit` sees: a bootstrap resample (`--bootstrap`), targets
    packed with a teacher's probabilities (`--teacher`). Returns
    `(data, teacher or None)`."""
    if getattr(config, "bootstrap", False):
        data = bootstrap(data, config.seed)
    teacher = None
    if getattr(config, "teacher", ""):
        from dlrecipes.training import distill

        teacher = distill.load_teacher(config, data)
        data = distill.with_teacher(data, teacher)
    return data, teacher


def train(recipe, config, data, *, callbacks=(), backup=None, dist=None,
          initial_epoch=0, warm_start=None, verbose=None, run_dir=None,
          averager=None):
    """Build the recipe's model and train it through its phases.

    Args:
        recipe: a `Recipe`.
        config: its validated config (`start(config)` already called).
        data: the recipe's `Data`.
        callbacks: the caller's callbacks, after the engine's own.
        backup: an `EpochBackup` (last in `callbacks`) to resume from and
            to tell which phase is running.
        dist: the `Distribution` that feeds the data (default: one device).
        initial_epoch: the epoch to start from without a backup (Hyperband).
        warm_start: a weights file loaded before training (Hyperband).
        verbose: Keras' progress setting (default `config.verbose`).
        run_dir: the run directory, for the recipe's own callbacks (None
            in a tuning trial).
        averager: the `make_averager` callback the caller also gives its
            checkpoint (default: made here from the config).

    Returns:
        `Trained(model, rows, steps_per_epoch, teacher, averager)`; after
        `--swa-start` the model holds the mean, batch norm recomputed.
    """
    dist = dist or Distribution(config)
    monitor, mode = recipe.monitor(data)
    if averager is None:
        averager = make_averager(recipe, config)
    model, steps = build(recipe, config, data, dist)
    # After the build: loading a teacher builds its layers, which would
    # draw from the seeded generators the student's initial weights come
    # from (`--distill-alpha 1` then trains what a plain run trains).
    data, teacher = prepare_data(config, data)
    if warm_start:
        # Build the optimizer first so its saved state is restored too.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(warm_start)
    recorder = EpochLogs()
    cbs = [*recipe.callbacks(config, data, run_dir),
           *monitor_callbacks(config, model, data),
           *training_callbacks(config, monitor, mode), recorder,
           *([averager] if averager is not None else []), *callbacks]
    if backup is not None:
        backup.callbacks_to_restore = [c for c in cbs if c is not backup]
    base = dict(validation_data=data.val, callbacks=cbs,
                verbose=config.verbose if verbose is None else verbose)
    if isinstance(data.train, tuple):
        base.update(x=data.train[0], y=data.train[1],
                    batch_size=config.batch_size, shuffle=True)
    else:
        base.update(x=data.train)
    fit_kwargs = dist.fit_kwargs(base)

    phases = _phases(recipe, config)
    steps_plan = plan([p.epochs for p in phases],
                      *_resume_point(backup, initial_epoch))
    compiled_for = 0
    for i, phase in enumerate(phases[:steps_plan[-1][0] + 1]):
        if i and phase.prepare is not None:
            phase.prepare(model)  # every phase's, up to where training is
        runs = [s for s in steps_plan if s[0] == i]
        if not runs:
            continue
        if i != compiled_for:
            with dist.scope():
                compile_model(recipe, model, config, data, steps,
                              phase.overrides, phase.epochs)
            compiled_for = i
        _, first, end = runs[0]
        if backup is not None:
            # A run with nothing left to train still fits once (0 epochs):
            # that restores the backup's weights and counters.
            backup.phase = i
        with dist.scope():
            model.fit(**{**fit_kwargs, "initial_epoch": first,
                         "epochs": end})
        if recorder.rows and not math.isfinite(
                recorder.rows[-1].get("loss", 0.0)):
            break  # diverged: StopOnNaN ended training
    if hasattr(averager, "finish"):  # SWA: the mean, batch norm recomputed
        train_x = data.train[0] if isinstance(data.train, tuple) else \
            data.train
        averager.finish(model, train_x, config.batch_size)
    return Trained(model, recorder.rows, steps, teacher, averager)

