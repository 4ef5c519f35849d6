"""Bai et al.'s adding problem: does `TCN`'s default learn as well as the
same network without skip connections?

Each sequence has T steps of two channels: a value drawn uniformly from
[0, 1] and a marker that is 1 at two distinct random steps and 0
elsewhere; the target is the sum of the two marked values (predicting 1
everywhere scores an MSE of 1/6 = 0.167). The model is `TCN(filters=24,
kernel_size=4, dilations=(1, 2, 4, 8, 16, 32))` (receptive field 379 >=
T) then `Dense(1)`, trained with Adam (learning rate 2e-3, clipnorm 1) on
batches of 64, with the default `use_skip_connections=True`, with
`False` and (`--settings blocks`) with the former design,
`skip_sum="blocks"`. The data come from `--data-seed` (the same for every run: 12,000
sequences by default, 10,000 to train, 2,000 to test); `--seeds` seed the
weights and the shuffling.

    python -m bench.adding                        # 3 seeds x both settings
    KERAS_BACKEND=jax python -m bench.adding
    python -m bench.adding --seeds 0 --settings skip --epochs 2   # quicker

Prints one markdown row per run (test MSE, first-epoch training loss,
seconds) and the median per setting. The figures in the README's layer
section come from the default command; tests/test_layers_tcn.py's slow test
runs seed 0 of the default setting against a bar set from them.
"""

import argparse
import os
import statistics
import sys
import time
import warnings

# --settings name -> TCN arguments; the table's first column.
SETTINGS = {"skip": dict(use_skip_connections=True),
            "no_skip": dict(use_skip_connections=False),
            # The former design: the sum of the blocks' whole outputs.
            "blocks": dict(use_skip_connections=True, skip_sum="blocks")}
LABELS = {"skip": "True (default)", "no_skip": "False",
          "blocks": 'True, skip_sum="blocks"'}


def adding_data(n, length, seed):
    """`(x, y)`: x `(n, length, 2)` float32, y `(n, 1)` float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, length))
    marks = np.zeros((n, length))
    first = rng.integers(0, length, size=n)
    # A second step distinct from the first.
    second = (first + rng.integers(1, length, size=n)) % length
    marks[np.arange(n), first] = 1.0
    marks[np.arange(n), second] = 1.0
    x = np.stack([values, marks], axis=-1).astype("float32")
    y = (values * marks).sum(axis=1, keepdims=True).astype("float32")
    return x, y


def build_model(setting="skip", length=200, filters=24, kernel_size=4,
                dilations=(1, 2, 4, 8, 16, 32)):
    import keras

    from dlrecipes.layers import TCN

    inputs = keras.Input((length, 2))
    x = TCN(filters=filters, kernel_size=kernel_size, dilations=dilations,
            **SETTINGS[setting])(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


def run(seed, setting="skip", *, length=200, n_train=10_000,
        n_test=2_000, epochs=8, batch_size=64, learning_rate=2e-3,
        data_seed=0, verbose=0):
    """Train one model; returns `{"test_mse", "first_epoch_loss",
    "seconds"}`."""
    import keras

    x, y = adding_data(n_train + n_test, length, data_seed)
    keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():
        # The receptive field (379) exceeds T on purpose: Bai et al.'s net.
        warnings.filterwarnings("ignore", message="TCN receptive field")
        model = build_model(setting, length=length)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate,
                                                  clipnorm=1.0),
                  loss="mse")
    start = time.perf_counter()
    history = model.fit(x[:n_train], y[:n_train], batch_size=batch_size,
                        epochs=epochs, shuffle=True, verbose=verbose)
    seconds = time.perf_counter() - start
    test_mse = model.evaluate(x[n_train:], y[n_train:], batch_size=256,
                              verbose=0)
    return {"test_mse": float(test_mse),
            "first_epoch_loss": float(history.history["loss"][0]),
            "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.adding",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2",
                        help="comma-separated weight seeds (default 0,1,2)")
    parser.add_argument("--settings", default="skip,no_skip",
                        help="comma-separated: skip (the default TCN), "
                        "no_skip (use_skip_connections=False), blocks (the "
                        "former design, skip_sum='blocks'); default "
                        "skip,no_skip")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--train", type=int, default=10_000)
    parser.add_argument("--test", type=int, default=2_000)
    parser.add_argument("--data-seed", type=int, default=0)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not seeds:
        parser.error(f"--settings takes {', '.join(SETTINGS)}; --seeds "
                     f"integers. Received: {args.settings!r}, "
                     f"{args.seeds!r}")

    import dlrecipes  # noqa: F401  (TensorFlow's environment, first)
    import keras

    print(f"adding problem, T={args.length}, {args.train} train / "
          f"{args.test} test sequences, {args.epochs} epochs, "
          f"backend {keras.backend.backend()}")
    print(f"    python -m bench.adding {' '.join(argv or sys.argv[1:])}")
    print()
    print("| use_skip_connections | seed | test MSE | first-epoch loss | "
          "seconds |")
    print("|---|---|---|---|---|")
    results = {}
    for setting in settings:
        for seed in seeds:
            r = run(seed, setting, length=args.length,
                    n_train=args.train, n_test=args.test, epochs=args.epochs,
                    data_seed=args.data_seed)
            results.setdefault(setting, []).append(r["test_mse"])
            print(f"| {LABELS[setting]} | {seed} | {r['test_mse']:.4f} | "
                  f"{r['first_epoch_loss']:.4f} | {r['seconds']:.0f} |",
                  flush=True)
    print()
    for setting, values in results.items():
        print(f"{LABELS[setting]}: median test MSE "
              f"{statistics.median(values):.4f} (max {max(values):.4f})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    raise SystemExit(main())
