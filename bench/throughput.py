"""Training throughput of four Keras models against PyTorch twins, and
their model FLOPs utilisation.

Models (shapes per profile in `PROFILES`):

- `resnet-cifar`: the image recipe's ResNet (`recipes.image_classification
  .build_model`, augmentation off) on 32x32x3 images;
- `resnet50`: `keras.applications.ResNet50(weights=None)` at 224x224;
- `transformer`: a stack of `dlrecipes.layers.TransformerEncoder`
  (hidden 1024, sequence 512, 16 heads, 8 layers on a GPU);
- `tcn`: the forecasting recipe's TCN (`norm="layer"`) and a dense head.

Each is timed with `model.fit` on one batch already on the device (the
input pipeline is `bench.pipeline`'s subject), Adam, XLA (`jit_compile`)
and, in the GPU profile, `mixed_bfloat16`; its PyTorch twin
(`bench.torch_models`, same layers and parameter count, checked) with a
plain training loop, bf16 autocast, `torch.compile` and channels-last
convolutions in the GPU profile (eager float32 on CPU). Figures are the
median, min and max over `repeats` timed runs of `steps` steps after a
warm-up run (which includes compilation).

Model FLOPs per step (forward and backward matmuls, convolutions and
attention) are counted with `torch.utils.flop_counter` on the PyTorch twin
(the same arithmetic), on the meta device; MFU = achieved FLOP/s over the
dense matmul rate measured in the same run (`matmul_rate`, bf16 on a GPU;
on a CPU the float32 rate, the dtype the models train in there).
"""

import time

import keras
import numpy as np

from bench import common

# name -> per-profile shapes; `batch` is the global batch size.
PROFILES = {
    "quick": {
        "resnet-cifar": dict(batch=32, image=32, width=8, stages=2, depth=1,
                             classes=10),
        "resnet50": dict(batch=2, image=224, classes=1000),
        "transformer": dict(batch=8, seq=32, hidden=64, heads=4,
                            intermediate=256, layers=2, classes=10),
        "tcn": dict(batch=32, lookback=32, filters=16, kernel_size=2,
                    dilations=(1, 2, 4), horizon=1),
        "steps": 3, "repeats": 3, "matmul": 1024,
    },
    "gpu": {
        "resnet-cifar": dict(batch=512, image=32, width=64, stages=3,
                             depth=2, classes=10),
        "resnet50": dict(batch=128, image=224, classes=1000),
        "transformer": dict(batch=16, seq=512, hidden=1024, heads=16,
                            intermediate=4096, layers=8, classes=10),
        "tcn": dict(batch=512, lookback=256, filters=128, kernel_size=3,
                    dilations=(1, 2, 4, 8, 16, 32), horizon=1),
        "steps": 20, "repeats": 5, "matmul": 8192,
    },
}
MODELS = ("resnet-cifar", "resnet50", "transformer", "tcn")
UNITS = {"resnet-cifar": "images", "resnet50": "images",
         "transformer": "tokens", "tcn": "windows"}


# --------------------------------------------------------------- Keras models


def keras_model(name, s):
    """(uncompiled Keras model, loss) of benchmark `name` at shapes `s`."""
    if name == "resnet-cifar":
        import recipes  # noqa: F401  (registers the recipes)
        from dlrecipes.registry import get_recipe
        from dlrecipes.training import Data

        recipe = get_recipe("image-classification")
        config = recipe.config_class(
            model="resnet", width=s["width"], stages=s["stages"],
            depth=s["depth"], augment="none")
        data = Data(None, None, None, input_shape=(s["image"], s["image"], 3),
                    num_classes=s["classes"], scale=1 / 255)
        return (recipe.build_model(config, data),
                "sparse_categorical_crossentropy")
    if name == "resnet50":
        model = keras.applications.ResNet50(
            weights=None, input_shape=(s["image"], s["image"], 3),
            classes=s["classes"])
        return model, "sparse_categorical_crossentropy"
    if name == "transformer":
        from dlrecipes.layers import TransformerEncoder

        inputs = keras.Input((s["seq"], s["hidden"]))
        h = inputs
        for _ in range(s["layers"]):
            h = TransformerEncoder(s["heads"], s["intermediate"],
                                   dropout=0.1)(h)
        h = keras.layers.GlobalAveragePooling1D()(h)
        outputs = keras.layers.Dense(s["classes"], activation="softmax",
                                     dtype="float32")(h)
        return keras.Model(inputs, outputs), "sparse_categorical_crossentropy"
    if name == "tcn":
        from dlrecipes.layers import TCN

        inputs = keras.Input((s["lookback"], 1))
        # dlrecipes.models.sequence.tcn_layer: the forecaster's TCN.
        h = TCN(filters=s["filters"], kernel_size=s["kernel_size"],
                dilations=s["dilations"], dropout=0.0, norm="layer",
                return_sequences=False, causal=True)(inputs)
        outputs = keras.layers.Dense(s["horizon"], dtype="float32")(h)
        return keras.Model(inputs, outputs), "mse"
    raise ValueError(f"unknown model {name!r}")


def units_per_step(name, s):
    return s["batch"] * (s["seq"] if name == "transformer" else 1)


class OnDevice(keras.utils.PyDataset):
    """`steps` copies of one batch that is already on the device (JAX and
    PyTorch backends: Keras passes their tensors through untouched)."""

    def __init__(self, x, y, steps):
        super().__init__()
        self.x = keras.ops.convert_to_tensor(x)
        self.y = keras.ops.convert_to_tensor(y)
        self.steps = steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.x, self.y


def on_device(x, y, steps):
    """`steps` batches of one device-resident batch, for `model.fit`.

    Under TensorFlow a `PyDataset` would go through a Python generator
    every step, so the batch is a `tf.data` tensor repeated instead.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.data.Dataset.from_tensors((tf.constant(x),
                                             tf.constant(y))).repeat(steps)
    return OnDevice(x, y, steps)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch; waits for the device at each epoch end."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs and "loss" in logs:
            float(np.asarray(logs["loss"]))  # wait for the last step
        self.times.append(time.perf_counter() - self._start)


def time_fit(model, data, repeats, extra_callbacks=(), **fit_kwargs):
    """Seconds of each of `repeats` epochs after one warm-up epoch."""
    timer = EpochTimer()
    fit_kwargs.setdefault("shuffle", False)  # host arrays ask for it
    model.fit(data, epochs=repeats + 1, verbose=0,
              callbacks=[*extra_callbacks, timer], **fit_kwargs)
    return timer.times[1:]


def time_keras(name, s, steps, repeats, mixed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_bfloat16" if mixed else "float32")
    try:
        model, loss = keras_model(name, s)
        x, y = batch_data(name, s)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss,
                      jit_compile="auto")
        from dlrecipes.training.distribute import jit_under_jax

        jit = jit_under_jax(model)
        times = time_fit(model, on_device(x, y, steps), repeats)
        return {"params": int(model.count_params()), "times": times,
                "jit": bool(jit)}
    finally:
        keras.config.set_dtype_policy("float32")


# ------------------------------------------------------------- PyTorch twins


def torch_twin(name, s):
    from bench import torch_models as tm

    if name == "resnet-cifar":
        return tm.RecipeResNet(3, s["classes"], s["width"], s["stages"],
                               s["depth"], dropout=0.2, scale=1 / 255)
    if name == "resnet50":
        return tm.KerasResNet50(s["classes"])
    if name == "transformer":
        return tm.EncoderStack(s["hidden"], s["heads"], s["intermediate"],
                               s["layers"], s["classes"], dropout=0.1)
    if name == "tcn":
        return tm.TCNForecaster(1, s["filters"], s["kernel_size"],
                                s["dilations"], s["horizon"])
    raise ValueError(f"unknown model {name!r}")


def _torch_batch(name, x, y, torch, device):
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    if name.startswith("resnet"):
        xt = xt.permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    if name == "tcn":
        return xt, torch.as_tensor(y, dtype=torch.float32, device=device)
    return xt, torch.as_tensor(y, dtype=torch.long, device=device)


def _torch_loss(name, out, target, F):
    if name == "tcn":
        return F.mse_loss(out.float(), target)
    return F.cross_entropy(out.float(), target)


def torch_flops(name, s):
    """Forward + backward FLOPs of one training step (meta device)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    x, y = _shapes(name, s)
    with torch.device("meta"):
        model = torch_twin(name, s)
        xt = torch.empty(x, device="meta")
        yt = (torch.empty(y, device="meta") if name == "tcn" else
              torch.zeros(y, dtype=torch.long, device="meta"))
    if name.startswith("resnet"):
        xt = xt.permute(0, 3, 1, 2)
    counter = FlopCounterMode(display=False)
    with counter:
        _torch_loss(name, model(xt), yt, F).backward()
    return counter.get_total_flops()


def _shapes(name, s):
    """Shapes of one batch: (x, y)."""
    b = s["batch"]
    if name.startswith("resnet"):
        return (b, s["image"], s["image"], 3), (b,)
    if name == "transformer":
        return (b, s["seq"], s["hidden"]), (b,)
    return (b, s["lookback"], 1), (b, s["horizon"])


def time_torch(name, s, steps, repeats, gpu):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    model = torch_twin(name, s).to(device)
    x, y = batch_data(name, s)
    xt, yt = _torch_batch(name, x, y, torch, device)
    conv = name.startswith("resnet")
    if device == "cuda" and conv:
        model = model.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    params = _count(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    compiled = torch.compile(model) if device == "cuda" else model

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16,
                            enabled=device == "cuda"):
            loss = _torch_loss(name, compiled(xt), yt, F)
        loss.backward()
        optimizer.step()
        return loss

    def run(n):
        start = time.perf_counter()
        for _ in range(n):
            loss = step()
        loss.item()  # waits for the device
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    model.train()
    run(steps)  # warm-up (and compilation)
    times = [run(steps) for _ in range(repeats)]
    return {"params": params, "times": times,
            "compiled": compiled is not model, "device": device}


def _count(model):
    from bench.torch_models import count_params

    return count_params(model)


def batch_data(name, s):
    """One random batch (x, y) of the benchmark's shapes (NHWC images)."""
    rng = np.random.default_rng(0)
    xs, ys = _shapes(name, s)
    if name == "resnet-cifar":  # raw pixels; the model rescales them
        x = rng.integers(0, 256, xs).astype("float32")
    else:
        x = rng.standard_normal(xs).astype("float32")
    if name == "tcn":
        return x, rng.standard_normal(ys).astype("float32")
    return x, rng.integers(0, s["classes"], ys).astype("int32")


# -------------------------------------------------------------- matmul rate


def matmul_rate(n, dtype, repeats=5, inner=4):
    """Dense n x n matmul rate (FLOP/s) of the Keras backend: median, min,
    max over `repeats` timings of `inner` matmuls after a warm-up."""
    a = keras.random.normal((n, n), dtype=dtype, seed=1)
    b = keras.random.normal((n, n), dtype=dtype, seed=2)

    def run():
        start = time.perf_counter()
        c = None
        for _ in range(inner):
            c = keras.ops.matmul(a, b)
        keras.ops.convert_to_numpy(c[:1, :1])  # waits for the device
        return time.perf_counter() - start

    run()
    rates = [2 * n ** 3 * inner / t for t in (run() for _ in range(repeats))]
    return common.stats(rates)


# -------------------------------------------------------------------- bench


def run(profile_name, models=MODELS, use_torch=True, log=print):
    """Rows of the throughput table (one per model) and the matmul rates."""
    profile = PROFILES[profile_name]
    gpu = profile_name == "gpu"
    steps, repeats = profile["steps"], profile["repeats"]
    torch_note = None
    if use_torch:
        torch_note = common.torch_missing()
    rates = {"float32": matmul_rate(profile["matmul"], "float32")}
    rates["bfloat16"] = matmul_rate(profile["matmul"], "bfloat16")
    peak = rates["bfloat16" if gpu else "float32"][0]
    rows = []
    for name in models:
        s = profile[name]
        log(f"throughput: {name} ...")
        per_step = units_per_step(name, s)
        k = time_keras(name, s, steps, repeats, mixed=gpu)
        row = {"model": name, "unit": UNITS[name], "batch": s["batch"],
               "params": k["params"], "jit": k["jit"],
               "keras": common.stats([steps * per_step / t
                                      for t in k["times"]])}
        if torch_note is None and use_torch:
            t = time_torch(name, s, steps, repeats, gpu)
            if t["params"] != k["params"]:
                raise RuntimeError(
                    f"{name}: the PyTorch twin has {t['params']:,} "
                    f"parameters, the Keras model {k['params']:,}")
            row["torch"] = common.stats([steps * per_step / x
                                         for x in t["times"]])
            row["torch_compiled"] = t["compiled"]
            flops = torch_flops(name, s)
            row["flops_per_step"] = flops
            for key in ("keras", "torch"):
                row[f"{key}_mfu"] = (flops * row[key][0] / per_step / peak)
        rows.append(row)
    return {"rows": rows, "rates": rates, "peak": peak, "steps": steps,
            "matmul": profile["matmul"],
            "repeats": repeats, "torch_note": torch_note,
            "peak_dtype": "bfloat16" if gpu else "float32"}


def markdown(result):
    lines = []
    r, n = result["rates"], result["matmul"]
    lines.append(
        f"- matmul rate ({n}x{n}x{n}): float32 "
        f"{common.fmt_stats(r['float32'], 1e-12, 3)} TFLOP/s, bfloat16 "
        f"{common.fmt_stats(r['bfloat16'], 1e-12, 3)} TFLOP/s; MFU is "
        f"against the median {result['peak_dtype']} rate")
    lines.append(f"- each figure: median (min-max) over {result['repeats']}"
                 f" runs of {result['steps']} steps after a warm-up run; "
                 "batch already on the device")
    if result["torch_note"]:
        lines.append(f"- PyTorch column skipped: {result['torch_note']}")
    lines.append("")
    lines.append("| model | batch | params | unit | Keras /s | PyTorch /s |"
                 " Keras/PyTorch | Keras MFU | PyTorch MFU | GFLOP/step |")
    lines.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        keras_s = common.fmt_stats(row["keras"])
        if "torch" in row:
            torch_s = common.fmt_stats(row["torch"])
            ratio = f"{row['keras'][0] / row['torch'][0]:.2f}"
            mfu = (f"{100 * row['keras_mfu']:.1f}%",
                   f"{100 * row['torch_mfu']:.1f}%",
                   f"{row['flops_per_step'] / 1e9:.2f}")
        else:
            torch_s, ratio, mfu = "n/a", "n/a", ("n/a", "n/a", "n/a")
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['params']:,} | "
            f"{row['unit']} | {keras_s} | {torch_s} | {ratio} | {mfu[0]} | "
            f"{mfu[1]} | {mfu[2]} |")
    return lines


# --------------------------------------------------- every backend, one run


def torch_part(profile_name, models=MODELS, log=print):
    """The PyTorch column alone: `{model: {"params", "times", "compiled",
    "flops"}}` and PyTorch's own float32 matmul rate."""
    import torch

    profile = PROFILES[profile_name]
    gpu = profile_name == "gpu"
    out = {}
    for name in models:
        log(f"throughput: {name} (PyTorch) ...")
        s = profile[name]
        t = time_torch(name, s, profile["steps"], profile["repeats"], gpu)
        out[name] = {"params": t["params"], "times": t["times"],
                     "compiled": t["compiled"],
                     "flops": torch_flops(name, s)}
    n = profile["matmul"]
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        rates.append(2 * n ** 3 * 4 / (time.perf_counter() - start))
    return {"models": out, "matmul": common.stats(rates)}


_CHILD = r"""
import json, sys
part, profile, models = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
log = lambda m: print(m, file=sys.stderr, flush=True)
if part == "torch":
    from bench import throughput
    out = throughput.torch_part(profile, models, log)
else:
    from dlrecipes.lazy import import_keras
    import_keras()
    from bench import throughput
    out = throughput.run(profile, models, use_torch=False, log=log)
print("RESULT " + json.dumps(out))
"""


def _child(part, backend, profile_name, models, timeout=3600):
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   p for p in (root, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, part, profile_name, ",".join(models)],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"throughput ({part} under {backend}) failed "
                           f"(exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-800:]}")
    return json.loads(lines[-1][len("RESULT "):])


def run_backends(profile_name, backends, models=MODELS, use_torch=True,
                 log=print):
    """Every Keras backend in `backends` and PyTorch, each in a fresh
    process of this one command, one after another: the ratios of one
    sitting. Returns `{"backends", "rows", "rates", "peak", ...}`; each row
    has `keras: {backend: (median, min, max)}` and `torch`."""
    profile = PROFILES[profile_name]
    per_backend, rates = {}, {}
    for backend in backends:
        log(f"throughput: Keras on {backend}")
        result = _child("keras", backend, profile_name, models)
        per_backend[backend] = {r["model"]: r for r in result["rows"]}
        rates[f"Keras-{backend}"] = result["rates"]["float32"]
    torch_note = common.torch_missing() if use_torch else "--no-torch"
    twins = None
    if torch_note is None:
        log("throughput: PyTorch")
        twins = _child("torch", backends[0], profile_name, models)
        rates["PyTorch"] = twins["matmul"]
    peak = max(r[0] for r in rates.values())
    rows = []
    for name in models:
        s = profile[name]
        per_step = units_per_step(name, s)
        first = per_backend[backends[0]][name]
        row = {"model": name, "unit": UNITS[name], "batch": s["batch"],
               "params": first["params"], "units_per_step": per_step,
               "keras": {b: per_backend[b][name]["keras"] for b in backends}}
        if twins is not None:
            t = twins["models"][name]
            if t["params"] != row["params"]:
                raise RuntimeError(
                    f"{name}: the PyTorch twin has {t['params']:,} "
                    f"parameters, the Keras model {row['params']:,}")
            row["torch"] = common.stats(
                [profile["steps"] * per_step / x for x in t["times"]])
            row["flops_per_step"] = t["flops"]
        rows.append(row)
    return {"backends": list(backends), "rows": rows, "rates": rates,
            "peak": peak, "steps": profile["steps"],
            "repeats": profile["repeats"], "matmul": profile["matmul"],
            "torch_note": torch_note}


_SHORT = {"tensorflow": "TF", "jax": "JAX", "torch": "torch"}


def markdown_backends(result):
    """The side-by-side table of `run_backends`."""
    backends = result["backends"]
    n = result["matmul"]
    rates = ", ".join(f"{k} {common.fmt_stats(v, 1e-12, 3)}"
                      for k, v in result["rates"].items())
    lines = [f"- every backend in its own process, one after another in "
             f"one command; each figure: median (min-max) over "
             f"{result['repeats']} runs of {result['steps']} steps after a "
             "warm-up run; batch already on the device",
             f"- float32 matmul rate ({n}x{n}x{n}, TFLOP/s): {rates}; MFU "
             "is against the highest of these"]
    if result["torch_note"]:
        lines.append(f"- PyTorch column skipped: {result['torch_note']}")
    head = ["model", "batch", "params", "unit",
            *(f"Keras-{_SHORT[b]} /s" for b in backends), "PyTorch /s",
            *(f"{_SHORT[b]}/PyTorch" for b in backends),
            "best Keras MFU", "PyTorch MFU"]
    lines += ["", "| " + " | ".join(head) + " |",
              "|---|" + "---:|" * 2 + "---|" + "---:|" * (len(head) - 4)]
    for row in result["rows"]:
        speeds = [row["keras"][b][0] for b in backends]
        cells = [row["model"], str(row["batch"]), f"{row['params']:,}",
                 row["unit"],
                 *(common.fmt_stats(row["keras"][b]) for b in backends)]
        if "torch" in row:
            torch_speed = row["torch"][0]
            per_unit = row["flops_per_step"] / row["units_per_step"]
            cells += [common.fmt_stats(row["torch"]),
                      *(f"{v / torch_speed:.2f}" for v in speeds),
                      f"{100 * max(speeds) * per_unit / result['peak']:.1f}%",
                      f"{100 * torch_speed * per_unit / result['peak']:.1f}%"]
        else:
            cells += ["n/a"] * (3 + len(backends))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
