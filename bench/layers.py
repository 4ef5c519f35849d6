"""Train-step time of dlrecipes layers against the same math in plain Keras.

For each of `ResidualBlock`, `TCN` and `TransformerEncoder`, two small models
with the same parameter count are built: one with the dlrecipes layer, one
written inline with plain `keras.layers` (for the transformer:
`MultiHeadAttention` + `LayerNormalization` + a `Dense` feed-forward
network). Each is compiled (`--jit auto` by default: XLA where Keras enables
it, i.e. JAX always and TensorFlow on GPU; `--jit true` forces XLA) and
timed with `train_on_batch` on random data, the median over
`--steps` steps after a warm-up.

    python -m bench.layers                    # default shapes, 50 steps
    python -m bench.layers --quick            # tiny shapes, a few steps (CI)
    KERAS_BACKEND=jax python -m bench.layers --write BENCHMARKS.md

`--write PATH` replaces (or appends) this benchmark's section of PATH with the
table, the command, the machine and the versions.
"""

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time

import keras
import numpy as np

SECTION_BEGIN = "<!-- BEGIN bench/layers.py -->"
SECTION_END = "<!-- END bench/layers.py -->"

# Default and --quick shapes.
SHAPES = {
    "default": dict(batch=32, image=16, channels=32, time=128, tcn_in=8,
                    tcn_filters=32, dilations=(1, 2, 4, 8, 16), seq=64,
                    hidden=64, heads=4, intermediate=128, num_layers=2),
    "quick": dict(batch=4, image=8, channels=8, time=16, tcn_in=3,
                  tcn_filters=8, dilations=(1, 2), seq=8, hidden=16,
                  heads=2, intermediate=32, num_layers=1),
}


# --- the models --------------------------------------------------------------

def _residual_models(s):
    """Two basic post-activation ResNet blocks (the second one projects)."""
    from dlrecipes.layers.residual import ResidualBlock  # written separately

    shape = (s["image"], s["image"], s["channels"])
    c = s["channels"]

    inputs = keras.Input(shape)
    x = ResidualBlock(c)(inputs)
    x = ResidualBlock(2 * c, strides=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    ours = keras.Model(inputs, keras.layers.Dense(10)(x))

    def block(x, filters, strides):
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, strides, "same", use_bias=False,
                                kernel_initializer="he_normal")(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(filters, 3, 1, "same", use_bias=False,
                                kernel_initializer="he_normal")(y)
        y = keras.layers.BatchNormalization()(y)
        if strides != 1 or x.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, strides, "same",
                                           use_bias=False)(x)
            shortcut = keras.layers.BatchNormalization()(shortcut)
        return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))

    inputs = keras.Input(shape)
    x = block(inputs, c, 1)
    x = block(x, 2 * c, 2)
    x = keras.layers.GlobalAveragePooling2D()(x)
    plain = keras.Model(inputs, keras.layers.Dense(10)(x))
    return ours, plain, shape, (10,)


def _tcn_models(s):
    """A causal TCN with skip connections, last step -> Dense(1)."""
    from dlrecipes.layers import TCN

    shape = (s["time"], s["tcn_in"])
    filters, dilations = s["tcn_filters"], s["dilations"]

    inputs = keras.Input(shape)
    x = TCN(filters=filters, kernel_size=3, dilations=dilations,
            dropout=0.1)(inputs)
    ours = keras.Model(inputs, keras.layers.Dense(1)(x))

    def conv(d):
        return keras.layers.Conv1D(filters, 3, padding="causal",
                                   dilation_rate=d,
                                   kernel_initializer="he_normal")

    inputs = keras.Input(shape)
    x, skips = inputs, []
    for d in dilations:
        y = keras.layers.ReLU()(conv(d)(x))
        y = keras.layers.SpatialDropout1D(0.1)(y)
        y = keras.layers.ReLU()(conv(d)(y))
        y = keras.layers.SpatialDropout1D(0.1)(y)
        shortcut = x
        if x.shape[-1] != filters:
            shortcut = keras.layers.Conv1D(filters, 1)(x)
        x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
        skips.append(x)
    x = keras.layers.ReLU()(keras.layers.Add()(skips) if len(skips) > 1
                            else skips[0])
    x = keras.layers.Cropping1D((s["time"] - 1, 0))(x)  # last step
    x = keras.layers.Flatten()(x)
    plain = keras.Model(inputs, keras.layers.Dense(1)(x))
    return ours, plain, shape, (1,)


def _transformer_models(s):
    """`num_layers` post-norm encoder blocks, mean-pooled -> Dense(1)."""
    from dlrecipes.layers import TransformerEncoder

    shape = (s["seq"], s["hidden"])
    heads, hidden, inter = s["heads"], s["hidden"], s["intermediate"]

    inputs = keras.Input(shape)
    x = inputs
    for _ in range(s["num_layers"]):
        x = TransformerEncoder(heads, inter, dropout=0.1)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    ours = keras.Model(inputs, keras.layers.Dense(1)(x))

    inputs = keras.Input(shape)
    x = inputs
    for _ in range(s["num_layers"]):
        # No dropout on the attention probabilities, as in TransformerEncoder.
        y = keras.layers.MultiHeadAttention(heads, hidden // heads)(x, x)
        y = keras.layers.Dropout(0.1)(y)
        x = keras.layers.LayerNormalization(epsilon=1e-5)(
            keras.layers.Add()([x, y]))
        y = keras.layers.Dense(inter, activation="gelu")(x)
        y = keras.layers.Dense(hidden)(y)
        y = keras.layers.Dropout(0.1)(y)
        x = keras.layers.LayerNormalization(epsilon=1e-5)(
            keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling1D()(x)
    plain = keras.Model(inputs, keras.layers.Dense(1)(x))
    return ours, plain, shape, (1,)


BENCHES = {
    "ResidualBlock": _residual_models,
    "TCN": _tcn_models,
    "TransformerEncoder": _transformer_models,
}


# --- timing ------------------------------------------------------------------

def time_train_step(model, x, y, steps, warmup, jit_compile="auto"):
    """Median seconds of one compiled `train_on_batch` step."""
    model.compile(optimizer="adam", loss="mse", jit_compile=jit_compile)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)  # returns host numbers: synchronous
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(names, shapes, steps, warmup, jit_compile="auto", seed=0):
    """Rows (name, params, ours ms, plain ms, jit) for each benchmark."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        keras.utils.set_random_seed(seed)
        try:
            ours, plain, in_shape, out_shape = BENCHES[name](shapes)
        except ImportError as error:  # a layer module not written yet
            print(f"skipping {name}: {error}", file=sys.stderr)
            continue
        if ours.count_params() != plain.count_params():
            raise RuntimeError(
                f"{name}: the plain model has {plain.count_params()} "
                f"parameters, the dlrecipes one {ours.count_params()}")
        x = rng.standard_normal((shapes["batch"],) + in_shape).astype(
            "float32")
        y = rng.standard_normal((shapes["batch"],) + out_shape).astype(
            "float32")
        ours_s = time_train_step(ours, x, y, steps, warmup, jit_compile)
        plain_s = time_train_step(plain, x, y, steps, warmup, jit_compile)
        rows.append(dict(name=name, params=ours.count_params(),
                         ours_ms=1e3 * ours_s, plain_ms=1e3 * plain_s,
                         jit=bool(ours.jit_compile)))
    return rows


# --- reporting ---------------------------------------------------------------

def markdown_table(rows):
    lines = [
        "| layer | params | dlrecipes ms/step | plain ms/step | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['params']:,} | {r['ours_ms']:.2f} | "
            f"{r['plain_ms']:.2f} | {r['ours_ms'] / r['plain_ms']:.2f} |")
    return "\n".join(lines)


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment():
    """Machine and versions, as one dict of strings."""
    backend = keras.backend.backend()
    dist = {"tensorflow": "tensorflow", "jax": "jax",
            "torch": "torch"}.get(backend, backend)
    return {
        "machine": f"{platform.platform()} ({platform.machine()}), "
                   f"{os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": f"{backend} {_version(dist)}",
    }


def section(rows, command, env, shapes, steps, jit):
    shape_text = ", ".join(f"{k}={v}" for k, v in shapes.items())
    return "\n".join([
        SECTION_BEGIN,
        "## Layers: train-step time against plain Keras",
        "",
        f"Command: `{command}`",
        "",
        f"- machine: {env['machine']}",
        f"- python {env['python']}, keras {env['keras']}, "
        f"backend {env['backend']}",
        f"- median of {steps} `train_on_batch` steps after warm-up; "
        f"jit_compile resolved to {jit}; ratio = dlrecipes / plain",
        f"- shapes: {shape_text}",
        "",
        markdown_table(rows),
        SECTION_END,
        "",
    ])


def write_section(path, text):
    """Replace this benchmark's section of `path`, or append it."""
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    begin, end = old.find(SECTION_BEGIN), old.find(SECTION_END)
    if begin != -1 and end > begin:
        new = old[:begin] + text.rstrip("\n") + old[end + len(SECTION_END):]
    elif old:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        new = "# Benchmarks\n\n" + text
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.layers",
        description="Train-step time of dlrecipes layers vs plain Keras.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes and a few steps (CI smoke run)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per model (default 50, quick 5)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default 5, quick 2)")
    parser.add_argument("--jit", choices=("auto", "true", "false"),
                        default="auto",
                        help="jit_compile of both models (auto: Keras' "
                             "choice, which is off for TensorFlow on CPU)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES),
                        default=list(BENCHES), help="benchmarks to run")
    parser.add_argument("--write", metavar="PATH",
                        help="write/update this section of a Markdown file")
    args = parser.parse_args(argv)
    shapes = SHAPES["quick" if args.quick else "default"]
    steps = args.steps or (5 if args.quick else 50)
    warmup = args.warmup if args.warmup is not None else (
        2 if args.quick else 5)
    if steps < 1 or warmup < 0:
        parser.error("--steps must be positive and --warmup non-negative")

    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit]
    rows = run(args.only, shapes, steps, warmup, jit_compile)
    env = environment()
    print(markdown_table(rows))
    print(f"\n{env['machine']}; python {env['python']}, keras {env['keras']},"
          f" {env['backend']}")
    if args.write:
        argv_text = " ".join(sys.argv[1:] if argv is None else argv)
        command = (f"KERAS_BACKEND={keras.backend.backend()} "
                   f"python -m bench.layers {argv_text}").strip()
        jit = sorted({r["jit"] for r in rows})
        write_section(args.write, section(
            rows, command, env, shapes, steps,
            jit[0] if len(jit) == 1 else jit))
        print(f"wrote {args.write}")
    return rows


if __name__ == "__main__":
    main()
