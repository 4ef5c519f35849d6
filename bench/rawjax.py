"""Where Keras-on-JAX time goes: `model.fit` against a raw JAX step of the
same model.

    KERAS_BACKEND=jax python -m bench.rawjax                 # quick shapes
    KERAS_BACKEND=jax python -m bench.rawjax --models resnet50

For each throughput model (`bench.throughput`, quick shapes; 30 steps per
timed run, 3 for ResNet-50): the step time of Keras' `fit` (Adam, XLA, the
batch already on the device) and of a hand-written step: `jax.jit` of `jax.value_and_grad` over the model's
`stateless_call`, plain SGD, buffers donated: the least Keras can add.
Ratio fit / raw near 1 says Keras' trainer costs nothing and the gap to
PyTorch is the compiler's kernels (XLA:CPU against oneDNN); well above 1
says the cost is Keras' (or ours, in the model code).
"""

import statistics
import sys
import time

from bench.harness import OneLineParser


def raw_step_time(name, s, steps, repeats):
    import jax
    import jax.numpy as jnp
    import keras

    from bench import throughput

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model, loss_name = throughput.keras_model(name, s)
    x, y = throughput.batch_data(name, s)
    x, y = jnp.asarray(x), jnp.asarray(y)
    loss_fn = {"mse": keras.losses.mean_squared_error,
               "sparse_categorical_crossentropy":
                   keras.losses.sparse_categorical_crossentropy}[loss_name]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, non_trainable, x, y):
        out, non_trainable = model.stateless_call(trainable, non_trainable,
                                                  x, training=True)
        return jnp.mean(loss_fn(y, out)), non_trainable

    def step(trainable, non_trainable, x, y):
        (value, non_trainable), grads = jax.value_and_grad(
            loss, has_aux=True)(trainable, non_trainable, x, y)
        trainable = [w - 1e-3 * g for w, g in zip(trainable, grads)]
        return trainable, non_trainable, value

    step = jax.jit(step, donate_argnums=(0, 1))

    def run(n):
        nonlocal trainable, non_trainable
        start = time.perf_counter()
        for _ in range(n):
            trainable, non_trainable, value = step(trainable, non_trainable,
                                                   x, y)
        value.block_until_ready()
        return (time.perf_counter() - start) / n

    run(steps)  # compiles
    return [run(steps) for _ in range(repeats)]


def run(models=("resnet-cifar", "resnet50", "transformer", "tcn"),
        steps=None, log=lambda message: None):
    import keras

    from bench import throughput

    if keras.backend.backend() != "jax":
        raise SystemExit("error: run with KERAS_BACKEND=jax (this compares "
                         f"against raw JAX); now: {keras.backend.backend()}")
    profile = throughput.PROFILES["quick"]
    repeats = profile["repeats"]
    rows = []
    for name in models:
        log(f"rawjax: {name}")
        s = profile[name]
        # Per-epoch work of `fit` (its iterator, callbacks, logs) spread
        # over `steps` steps: enough of them that the step dominates.
        steps = steps or (3 if name == "resnet50" else 30)
        fit = throughput.time_keras(name, s, steps, repeats, mixed=False)
        fit_step = statistics.median(fit["times"]) / steps
        raw = statistics.median(raw_step_time(name, s, steps, repeats))
        rows.append({"model": name, "fit_ms": 1000 * fit_step,
                     "raw_ms": 1000 * raw, "ratio": fit_step / raw})
    return rows


def main(argv=None):
    parser = OneLineParser(prog="python -m bench.rawjax")
    parser.add_argument("--models",
                        default="resnet-cifar,resnet50,transformer,tcn")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per timed run (default 30; resnet50 3)")
    args = parser.parse_args(argv)
    from dlrecipes.lazy import import_keras

    import_keras()
    from bench import throughput

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in throughput.MODELS]
    if bad or not models:
        parser.error(f"unknown model {(bad or [args.models])[0]!r}; valid "
                     f"choices: {', '.join(throughput.MODELS)}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1. Received: {args.steps}")
    rows = run(models, args.steps,
               log=lambda m: print(m, file=sys.stderr, flush=True))
    print("| model | Keras fit ms/step | raw JAX ms/step | fit / raw |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['fit_ms']:.1f} | {r['raw_ms']:.1f} | "
              f"{r['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
