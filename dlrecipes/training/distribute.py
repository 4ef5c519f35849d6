"""Data parallelism for the training harness: one device, several devices of
one machine, several machines.

`--distribute` replicates the model on every device and splits each batch
between them:

- JAX: `keras.distribution.DataParallel` over all devices. Several processes
  (one per machine, or several on one machine) join with
  `keras.distribution.initialize`; each feeds its own shard of every global
  batch (`auto_shard_dataset=False`), and the compiled step all-reduces the
  gradients, so every process holds the same weights after every step.
- TensorFlow: `tf.distribute.MirroredStrategy` over the local devices. Keras 3
  does not support `MultiWorkerMirroredStrategy` (keras-team/keras#20585):
  several machines need `KERAS_BACKEND=jax`.
- PyTorch: not supported; it warns and trains on one device.

`batch_size` is the global batch: each of N devices computes
`batch_size / N` examples per step, and the learning rate is used as given
(no automatic scaling: scale it yourself, linearly with the batch, if you
change `--batch-size`). Under JAX the global batch must be a multiple of
the number of devices.

A multi-process run is described by three settings, read from the config
fields `coordinator`, `num_processes` and `process_id` where the config
has them, else from the environment (`DLRECIPES_COORDINATOR=host:port` of
process 0, `DLRECIPES_NUM_PROCESSES`, `DLRECIPES_PROCESS_ID`). Every
process runs the same command. Process 0 (the chief) writes the run
directory and evaluates the test set; the others train in lockstep and
write nothing there (Keras' saving is a collective operation under
multi-process JAX, so they save into a private temporary directory that
is removed at the end). A multi-process run always starts a fresh run
directory: resuming would need every process to restore the same backup.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
import warnings

import keras

from dlrecipes.errors import UsageError
from dlrecipes.training.resume import EpochArrays

ENV_COORDINATOR = "DLRECIPES_COORDINATOR"
ENV_NUM_PROCESSES = "DLRECIPES_NUM_PROCESSES"
ENV_PROCESS_ID = "DLRECIPES_PROCESS_ID"

MULTI_WORKER_TF_MESSAGE = (
    "multi-process training needs KERAS_BACKEND=jax: Keras 3 does not "
    "support tf.distribute.MultiWorkerMirroredStrategy "
    "(keras-team/keras#20585)")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in a (possibly one-process) training job.

    Attributes:
        coordinator: `"host:port"` of process 0 (empty for one process).
        num_processes: processes in the job.
        process_id: this process, `0 <= process_id < num_processes`.
    """

    coordinator: str = ""
    num_processes: int = 1
    process_id: int = 0

    @property
    def multi_process(self):
        return self.num_processes > 1

    @property
    def is_chief(self):
        return self.process_id == 0


_CLUSTER = None  # the Cluster this process joined, once initialized


def _setting(config, name, env, convert, default):
    """A config field if set (not its default), else the environment."""
    value = getattr(config, name, None)
    if value not in (None, "", default):
        return value
    text = os.environ.get(env, "").strip()
    if not text:
        return value if value is not None else default
    try:
        return convert(text)
    except ValueError:
        raise UsageError(f"{env} must be an integer. "
                         f"Received: {env}={text!r}") from None


def cluster_from(config):
    """The `Cluster` described by `config` (fields `coordinator`,
    `num_processes`, `process_id`, where it has them) and the
    `DLRECIPES_*` environment variables; `UsageError` if inconsistent."""
    coordinator = _setting(config, "coordinator", ENV_COORDINATOR, str, "")
    num = _setting(config, "num_processes", ENV_NUM_PROCESSES, int, 1)
    pid = _setting(config, "process_id", ENV_PROCESS_ID, int, 0)
    if num < 1:
        raise UsageError("the number of processes must be >= 1. "
                         f"Received: num_processes={num}")
    if not 0 <= pid < num:
        raise UsageError(f"the process id must be in 0..{num - 1}. "
                         f"Received: process_id={pid}")
    if num > 1:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(
                "a multi-process run needs the coordinator's address as "
                f"host:port (process 0 listens there; set {ENV_COORDINATOR}"
                f" or --coordinator). Received: coordinator={coordinator!r}")
    return Cluster(coordinator if num > 1 else "", num, pid)


def initialize_cluster(config):
    """Join the multi-process job described by `config`, once per process.

    Must run before anything touches a device (JAX fixes its device list
    on first use). A one-process config does nothing. Returns the
    `Cluster`.
    """
    global _CLUSTER
    cluster = cluster_from(config)
    if not cluster.multi_process:
        return _CLUSTER or cluster
    if _CLUSTER is not None:
        if _CLUSTER != cluster:
            raise UsageError(
                "this process already joined a different job "
                f"({_CLUSTER}); start a new process for {cluster}")
        return _CLUSTER
    if not getattr(config, "distribute", False):
        raise UsageError(f"{cluster.num_processes} processes need "
                         "--distribute (data parallelism over all of "
                         "their devices)")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        raise UsageError(MULTI_WORKER_TF_MESSAGE)
    if backend != "jax":
        raise UsageError(f"multi-process training needs KERAS_BACKEND=jax. "
                         f"Received: backend={backend}")
    import jax

    # CPU processes need a collectives library (GPUs use NCCL); harmless
    # where the devices are GPUs.
    try:
        if not jax.config.jax_cpu_collectives_implementation:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # an older JAX without the option
        pass
    keras.distribution.initialize(job_addresses=cluster.coordinator,
                                  num_processes=cluster.num_processes,
                                  process_id=cluster.process_id)
    _CLUSTER = cluster
    return cluster


def is_chief():
    """True in process 0 of a multi-process job, and in a lone process."""
    return _CLUSTER is None or _CLUSTER.is_chief


def jit_under_jax(model, jit_compile="auto"):
    """Let XLA compile `model`'s train step under JAX.

    Keras marks its image-augmentation layers (`RandomTranslation`,
    `RandomRotation`, `RandomZoom` ...) `supports_jit=False` because
    TensorFlow's XLA has no kernel for their transform; one such layer
    turns `jit_compile` off for the whole model, which under JAX means
    op-by-op execution (measured: ~60x slower steps on CPU, worse on a
    GPU). JAX compiles those layers fine, so under JAX they are marked
    jit-safe and the model's `jit_compile` is resolved again. Does nothing
    under other backends or with `jit_compile="off"`. Call it after
    `compile` and before `fit`.

    Returns:
        The model's `jit_compile` in force.
    """
    if keras.backend.backend() != "jax" or jit_compile in ("off", False):
        return model.jit_compile
    from dlrecipes.training import sublayers

    for layer in sublayers.walk(model, include_self=False):
        if not layer.supports_jit:
            layer.supports_jit = True
    if not model.jit_compile:
        model.jit_compile = True
    return model.jit_compile


def list_devices():
    """Every device of the job (all processes' under multi-process JAX),
    e.g. `["gpu:0", "gpu:1"]`; `["cpu:0"]` where the backend cannot say."""
    from dlrecipes._quiet import quiet_native_stderr

    try:
        with quiet_native_stderr():
            return list(keras.distribution.list_devices())
    except Exception:  # a backend without a distribution library
        return ["cpu:0"]


class Distribution:
    """Data parallelism for one run of the harness, from its config.

    Use: construct after `keras.backend.clear_session()` (and after
    `initialize_cluster`), build and compile in `scope()`, pass the fit
    arguments through `fit_kwargs()`, `close()` before evaluating on one
    device.

    Attributes:
        num_replicas: devices that share each batch (1: no distribution).
        num_processes: processes of the job.
        process_id: this process.
        is_chief: this process writes the run directory.
        strategy: the `tf.distribute` strategy, or None.
    """

    def __init__(self, config):
        self.cluster = initialize_cluster(config)
        self.strategy = None
        self.num_replicas = 1
        self.num_processes = self.cluster.num_processes
        self.process_id = self.cluster.process_id
        self.is_chief = self.cluster.is_chief
        self.seed = getattr(config, "seed", 0)
        self.batch_size = config.batch_size
        self._jax = False
        self._scratch = None
        if not getattr(config, "distribute", False):
            return
        devs = list_devices()
        if len(devs) < 2:
            warnings.warn(f"--distribute: only one device ({devs[0]}); "
                          "training on one.", stacklevel=3)
            return
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            self.strategy = tf.distribute.MirroredStrategy()
            self.num_replicas = self.strategy.num_replicas_in_sync
        elif backend == "jax":
            if config.batch_size % len(devs):
                raise UsageError(
                    f"--batch-size is the global batch and must be a "
                    f"multiple of the number of devices ({len(devs)}) with "
                    f"--distribute under JAX. "
                    f"Received: batch_size={config.batch_size}")
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(
                    devices=devs, auto_shard_dataset=False))
            self.num_replicas = len(devs)
            self._jax = True
        else:
            warnings.warn(f"--distribute is not supported under {backend}; "
                          "training on one device.", stacklevel=3)

    @property
    def multi_process(self):
        return self.num_processes > 1

    @property
    def can_resume(self):
        """Whether an interrupted run may be resumed (one process only)."""
        return not self.multi_process

    def scope(self):
        if self.strategy is not None:
            return self.strategy.scope()
        return contextlib.nullcontext()

    def scratch_dir(self):
        """A private directory for a non-chief process' callbacks (removed
        by `close`): its saves take part in collectives but are not kept."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(
                prefix=f"dlrecipes-process{self.process_id}-")
        return self._scratch

    def _feed(self, part, batch_size, shuffle):
        """`{"x": ...}` for one split under JAX data parallelism: arrays
        through `EpochArrays`, a `tf.data.Dataset` rebatched (and sliced
        per process); every batch splits evenly between the devices."""
        unit = self.num_replicas if self._jax else 1
        if isinstance(part, tuple):
            x, y = part
            return {"x": EpochArrays(x, y, batch_size, shuffle=shuffle,
                                     seed=self.seed,
                                     num_processes=self.num_processes,
                                     process_id=self.process_id, unit=unit)}
        if hasattr(part, "rebatch"):  # a tf.data.Dataset of batches
            part = part.rebatch(batch_size, drop_remainder=True)
            if self.multi_process:
                local = batch_size // self.num_processes
                start = self.process_id * local

                def take(*batch):
                    import tensorflow as tf

                    return tf.nest.map_structure(
                        lambda t: t[start:start + local], batch)

                part = part.map(take)
            return {"x": part}
        if self.multi_process:
            raise UsageError(
                "multi-process training feeds (x, y) arrays or a "
                f"tf.data.Dataset. Received: {type(part).__name__}")
        return {"x": part}

    def fit_kwargs(self, kwargs):
        """`model.fit` arguments with the data fed to this process' devices.

        Training arrays always go through `EpochArrays` (an order drawn
        from the seed and the epoch, so a resumed run sees the batches an
        uninterrupted one would), with a callback that keeps its epoch in
        step. Under JAX data parallelism every batch is also a multiple of
        the device count, each process feeds its slice, and validation
        data is fed the same way; otherwise validation data is unchanged.
        """
        kwargs = dict(kwargs)
        x = kwargs.pop("x")
        y = kwargs.pop("y", None)
        shuffle = bool(kwargs.pop("shuffle", False))
        batch_size = kwargs.pop("batch_size", None) or self.batch_size
        if y is None and not self._jax:
            # A dataset shuffles itself (Keras would only warn).
            kwargs.update(x=x, shuffle=False)
            return kwargs
        part = (x, y) if y is not None else x
        kwargs.update(self._feed(part, batch_size, shuffle))
        if isinstance(kwargs["x"], EpochArrays):
            kwargs["callbacks"] = [kwargs["x"].callback(),
                                   *(kwargs.get("callbacks") or [])]
            if keras.backend.backend() == "tensorflow":
                # The same batches, without a Python call per batch.
                kwargs["x"] = kwargs["x"].tf_dataset() or kwargs["x"]
            # Keras would also shuffle the batches of a PyDataset, with
            # Python's global RNG: that order would not survive a resume.
            kwargs["shuffle"] = False
        val = kwargs.get("validation_data")
        if self._jax and val is not None:
            kwargs["validation_data"] = self._feed(val, batch_size,
                                                   False)["x"]
        elif isinstance(val, tuple):
            # Else Keras validates arrays in batches of 32.
            kwargs["validation_batch_size"] = batch_size
        return kwargs

    def worker_result(self, rows):
        """What a non-chief process reports: where it stood and its last
        epoch's logs (the same as the chief's)."""
        last = dict(rows[-1]) if rows else {}
        return {"process_id": self.process_id,
                "num_processes": self.num_processes,
                "epochs_run": len(rows),
                **{k: v for k, v in last.items() if k != "epoch"}}

    def close(self):
        """Back to one device (evaluation and reports run there)."""
        if self._jax:
            keras.distribution.set_distribution(None)
            self._jax = False
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
