"""Input pipeline: does feeding from host memory starve the device?

The image recipe's ResNet (the throughput benchmark's `resnet-cifar`
shapes) is trained with `model.fit` on the same compiled model, fed:

- `device`: one batch already on the device (the reference);
- `host arrays`: NumPy arrays, `batch_size`, `shuffle=True`, as the harness
  feeds embedded data (Keras slices, converts and, on accelerators under
  JAX, transfers one batch ahead);
- `host arrays + TerminateOnNaN`: the same with the harness' per-batch
  NaN check, which reads the loss every step (a host synchronisation:
  any callback with a batch hook makes Keras call all of them in step);
- `... (async_safe)`: the same callback marked `async_safe`, which Keras
  then calls from a worker thread;
- `host tf.data` (TensorFlow installed): `from_tensor_slices` -> `cache` ->
  `shuffle` -> `batch` -> `prefetch`, the recipes' tfds/folder pipeline.

Target: host step time <= 1.1x the device-resident step time. On top, the
tf.data pipeline alone (no model) is timed: the examples/s it delivers
against the examples/s the model consumes.
"""

import importlib.util
import time

import keras
import numpy as np

from bench import common, throughput


def _host_data(s, steps):
    rng = np.random.default_rng(1)
    n = steps * s["batch"]
    x = rng.integers(0, 256, (n, s["image"], s["image"], 3)).astype("float32")
    y = rng.integers(0, s["classes"], (n,)).astype("int32")
    return x, y


def _tf_dataset(x, y, batch):
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices((x, y)).cache()
            .shuffle(10_000, seed=0).batch(batch)
            .prefetch(tf.data.AUTOTUNE))


def _time_dataset(ds, repeats):
    """Seconds per full pass over `ds` (after a warm-up pass)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        for _ in ds:
            pass
        if i:
            times.append(time.perf_counter() - start)
    return times


def run(profile_name, log=print):
    profile = throughput.PROFILES[profile_name]
    s = profile["resnet-cifar"]
    steps, repeats = max(profile["steps"], 10), profile["repeats"]
    batch = s["batch"]
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    gpu = profile_name == "gpu"
    keras.config.set_dtype_policy("mixed_bfloat16" if gpu else "float32")
    try:
        model, loss = throughput.keras_model("resnet-cifar", s)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss,
                      jit_compile="auto")
        from dlrecipes.training.distribute import jit_under_jax

        jit_under_jax(model)
        x, y = _host_data(s, steps)
        variants = [("device", dict(data=throughput.on_device(
            x[:batch], y[:batch], steps)))]
        variants.append(("host arrays", dict(
            data=x, y=y, batch_size=batch, shuffle=True)))
        variants.append(("host arrays + TerminateOnNaN", dict(
            data=x, y=y, batch_size=batch, shuffle=True,
            extra_callbacks=[keras.callbacks.TerminateOnNaN()])))
        nan_async = keras.callbacks.TerminateOnNaN()
        nan_async.async_safe = True  # Keras then calls it in a thread
        variants.append(("host arrays + TerminateOnNaN (async_safe)", dict(
            data=x, y=y, batch_size=batch, shuffle=True,
            extra_callbacks=[nan_async])))
        has_tf = importlib.util.find_spec("tensorflow") is not None
        if has_tf:
            variants.append(("host tf.data", dict(
                data=_tf_dataset(x, y, batch))))
        rows = []
        for label, kw in variants:
            log(f"pipeline: {label} ...")
            data = kw.pop("data")
            times = throughput.time_fit(model, data, repeats, **kw)
            rows.append({"feed": label,
                         "step_ms": common.stats([1e3 * t / steps
                                                  for t in times])})
    finally:
        keras.config.set_dtype_policy("float32")
    device_ms = rows[0]["step_ms"][0]
    for row in rows:
        row["ratio"] = row["step_ms"][0] / device_ms
    result = {"rows": rows, "batch": batch, "steps": steps,
              "repeats": repeats, "consumed": batch * 1e3 / device_ms}
    if has_tf:
        times = _time_dataset(_tf_dataset(x, y, batch), repeats)
        result["delivered"] = common.stats([len(y) / t for t in times])
    return result


def markdown(result):
    lines = [f"- model: the image recipe's ResNet (`resnet-cifar` shapes), "
             f"batch {result['batch']}; each figure: median (min-max) over "
             f"{result['repeats']} epochs of {result['steps']} steps after "
             "a warm-up epoch; ratio = step time / device-resident step "
             "time (target <= 1.10)", "",
             "| feed | ms/step | ratio |", "|---|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['feed']} | {common.fmt_stats(row['step_ms'])}"
                     f" | {row['ratio']:.2f} |")
    lines.append("")
    consumed = result["consumed"]
    if "delivered" in result:
        delivered = result["delivered"]
        lines.append(
            f"tf.data pipeline alone delivers "
            f"{common.fmt_stats(delivered)} examples/s; the model "
            f"consumes {consumed:,.0f} examples/s (device-resident): "
            f"{delivered[0] / consumed:.1f}x headroom.")
    else:
        lines.append(f"The model consumes {consumed:,.0f} examples/s; "
                     "tf.data not measured (TensorFlow is not installed).")
    return lines
