"""Time to accuracy on the embedded digits, CPU: the image recipe's default
run against a plain Keras script of the kind keras-io's "Simple MNIST
convnet" example shows, on the same split, in the same process.

- `dlrecipes`: `image-classification` with its default config (ResNet
  from `ResidualBlock`, augmentation, AdamW, warm-up cosine, 40 epochs),
  built and compiled by the harness (`build_compiled_model`) and fitted
  with the harness' arguments, minus its run-directory callbacks.
- `keras-io`: Conv2D(32) -> MaxPool -> Conv2D(64) -> MaxPool -> Flatten ->
  Dropout(0.5) -> Dense(softmax), Adam, batch 128, 15 epochs, pixels
  scaled to [0, 1]. The example's 3x3 "valid" convolutions would shrink
  an 8x8 digit to nothing, so they pad "same"; nothing else changes.

After every epoch the test accuracy is measured (not timed); the figure
is the training time until it first reaches `TARGET`, and the final test
accuracy. Median (min-max) over seeds.
"""

import dataclasses
import time

import keras
import numpy as np

from bench import common

TARGET = 0.97


class TestAccuracyClock(keras.callbacks.Callback):
    """Training seconds (evaluation excluded) until the test accuracy
    first reaches `target`, and the accuracy after every epoch."""

    def __init__(self, x, y, target):
        super().__init__()
        self.x, self.y, self.target = x, y, target
        self.elapsed, self.reached, self.history = 0.0, None, []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.elapsed += time.perf_counter() - self._start
        pred = self.model.predict(self.x, batch_size=512, verbose=0)
        acc = float(np.mean(np.argmax(pred, axis=-1) == self.y))
        self.history.append(acc)
        if self.reached is None and acc >= self.target:
            self.reached = self.elapsed


def _dlrecipes_run(seed, x_test, y_test, epochs=None):
    from dlrecipes.training import build_compiled_model
    from dlrecipes.training.distribute import jit_under_jax
    import recipes  # noqa: F401  (registers the recipes)
    from dlrecipes.registry import get_recipe

    recipe = get_recipe("image-classification")
    config = recipe.config_class(seed=seed, verbose=0)
    if epochs:
        config = dataclasses.replace(config, epochs=epochs)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    data = recipe.load_data(config)
    model, _ = build_compiled_model(recipe, config, data)
    jit_under_jax(model, config.jit_compile)
    clock = TestAccuracyClock(x_test, y_test, TARGET)
    model.fit(data.train[0], data.train[1], batch_size=config.batch_size,
              shuffle=True, epochs=config.epochs, validation_data=data.val,
              callbacks=[clock], verbose=0)
    return clock, int(model.count_params())


def _keras_io_run(seed, data, x_test, y_test, epochs=15):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    clock = TestAccuracyClock(x_test / 16.0, y_test, TARGET)
    x, y = data.train
    model.fit(x / 16.0, keras.utils.to_categorical(y, 10), batch_size=128,
              epochs=epochs, validation_data=(
                  data.val[0] / 16.0, keras.utils.to_categorical(
                      data.val[1], 10)),
              callbacks=[clock], verbose=0)
    return clock, int(model.count_params())


def run(seeds=(0,), epochs=None, log=print):
    import recipes  # noqa: F401  (registers the recipes)
    from dlrecipes.registry import get_recipe

    recipe = get_recipe("image-classification")
    data = recipe.load_data(recipe.config_class())
    x_test, y_test = data.test
    results = {"dlrecipes": [], "keras-io": []}
    params = {}
    for seed in seeds:
        log(f"accuracy: dlrecipes seed {seed} ...")
        clock, params["dlrecipes"] = _dlrecipes_run(seed, x_test, y_test,
                                                    epochs)
        results["dlrecipes"].append(clock)
        log(f"accuracy: keras-io seed {seed} ...")
        clock, params["keras-io"] = _keras_io_run(seed, data, x_test, y_test)
        results["keras-io"].append(clock)
    rows = []
    for name, clocks in results.items():
        reached = [c.reached for c in clocks if c.reached is not None]
        rows.append({
            "run": name, "params": params[name],
            "epochs": len(clocks[0].history),
            "reached": f"{len(reached)}/{len(clocks)}",
            "time_to_target": common.stats(reached) if reached else None,
            "train_time": common.stats([c.elapsed for c in clocks]),
            "final_acc": common.stats([c.history[-1] for c in clocks]),
        })
    return {"rows": rows, "seeds": list(seeds), "n_test": len(y_test),
            "n_train": len(data.train[1])}


def markdown(result):
    lines = [f"- digits: {result['n_train']} training, {result['n_test']} "
             f"test images (the recipe's stratified split); seeds "
             f"{', '.join(map(str, result['seeds']))}; time = training "
             f"seconds, test evaluation excluded; target test accuracy "
             f"{TARGET}", "",
             "| run | params | epochs | reached | s to target | "
             "s training | final test accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        ttt = (common.fmt_stats(row["time_to_target"], 1, 1)
               if row["time_to_target"] else "not reached")
        lines.append(
            f"| {row['run']} | {row['params']:,} | {row['epochs']} | "
            f"{row['reached']} | {ttt} | "
            f"{common.fmt_stats(row['train_time'], 1, 1)} | "
            f"{common.fmt_stats(row['final_acc'], 1, 4)} |")
    return lines
