"""`dlrecipes ensemble RUN_DIR RUN_DIR ...`: the prediction average of
finished runs, measured on their common test split and saved as one model.

    check_members(paths)              no Keras: each a finished run of one
                                      recipe and one dataset, none twice
    build_ensemble(paths, combine)    load (safe loader), predict the test
                                      split, combine, write ensembles/<id>/

`ensembles/<id>/` holds `members.json` (the run directories, their config
hashes and seeds), `metrics.json` (the ensemble's and every member's test
figures, `gain_over_mean`, `gain_over_best`, each way of combining),
`confusion.png` (classifiers) and `model.keras`: one Keras model that calls
every member on its input and combines their outputs with
`dlrecipes.layers.EnsembleCombine`, loadable with `dlrecipes.load_model`.
The folder is written under a temporary name and renamed when whole.

The members' figures are measured here, on the same test arrays, with the
same code as the ensemble's, so gains compare like with like (a member's
`metrics.json` may report in other units, e.g. a forecaster's scaled MAE).
Averaging the members' parameters instead of their predictions is behind
`parameter_average=True`: for independently trained networks it almost
never works (their hidden units are not in the same order), and the figure
is there to show it.
"""

import datetime
import hashlib
import json
import logging
import os
import shutil

import numpy as np

from dlrecipes.errors import UsageError

COMBINES = ("mean", "vote", "geometric")
# Config fields that decide the data a model sees (and so its test split,
# its inputs and its classes): every member must agree on them.
DATA_KEYS = ("dataset", "data_dir", "image_size", "classes", "val_fraction",
             "sequence", "column", "time_column", "lookback", "horizon",
             "season", "window_norm", "max_tokens", "sequence_length",
             "scenes", "num_classes")
REQUIRED = ("config.json", "metrics.json", "model.keras")


def _read_config(path):
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}/config.json is unreadable ({e})") from None
    if not isinstance(config, dict) or "recipe" not in config:
        raise UsageError(f"{path}/config.json names no recipe: not a run "
                         "directory")
    return config


def config_hash(config):
    """A short hash of a run's settings (what `members.json` records)."""
    text = json.dumps(config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_members(paths):
    """The members' configs, in order; UsageError (one line) unless there
    are two or more distinct finished runs of one recipe and one dataset."""
    from dlrecipes.paths import path_kind

    if len(paths) < 2:
        raise UsageError(f"an ensemble needs at least 2 finished runs. "
                         f"Received: {len(paths)}")
    seen = {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{path} is given twice (as {seen[real]!r} "
                             "too): every member must be another run")
        seen[real] = path
    configs = []
    for path in paths:
        kind = path_kind(path)
        if kind is None:
            raise UsageError(f"no such directory: {path}")
        if kind != "a directory":
            raise UsageError(f"{path} is {kind}, not a run directory")
        missing = [f for f in REQUIRED
                   if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise UsageError(
                f"{path} is not a finished run (no {' or '.join(missing)}); "
                f"finish it first (`dlrecipes report {path}` says how)")
        configs.append(_read_config(path))
    first = configs[0]
    for path, config in zip(paths[1:], configs[1:]):
        if config["recipe"] != first["recipe"]:
            raise UsageError(
                f"members of different recipes: {paths[0]} is "
                f"{first['recipe']}, {path} is {config['recipe']}")
        for key in DATA_KEYS:
            if config.get(key) != first.get(key):
                raise UsageError(
                    f"members on different data: {paths[0]} has "
                    f"{key}={first.get(key)!r}, {path} has "
                    f"{key}={config.get(key)!r}")
    return configs


def combine_predictions(predictions, combine):
    """NumPy twin of `EnsembleCombine`: `predictions` is a list of the
    members' outputs (arrays of one shape)."""
    stack = np.stack([np.asarray(p, dtype="float64") for p in predictions],
                     axis=1)
    mean = stack.mean(axis=1)
    if combine == "mean":
        return mean
    if combine == "geometric":
        logs = np.log(np.clip(stack, 1e-7, 1.0)).mean(axis=1)
        logs -= logs.max(axis=-1, keepdims=True)
        e = np.exp(logs)
        return e / e.sum(axis=-1, keepdims=True)
    classes = stack.shape[-1]
    votes = np.eye(classes)[stack.argmax(axis=-1)].mean(axis=1)
    return (votes + 1e-3 * mean) / (1.0 + 1e-3)


def is_classifier(y, out_shape, num_classes):
    """Whether integer labels `y` `(n, ...)` are classes of outputs of
    shape `out_shape` (class probabilities last): one label per example,
    or one per pixel (segmentation)."""
    y = np.asarray(y)
    out_shape = tuple(out_shape)
    return bool(num_classes) and y.dtype.kind in "iu" and \
        out_shape[-1:] == (num_classes,) and \
        tuple(y.shape[1:]) == out_shape[:-1]


def classification_figures(probabilities, y):
    """Accuracy and log loss of class probabilities `(n, ..., C)` against
    integer labels `(n, ...)` (per pixel for a segmentation)."""
    probabilities = np.asarray(probabilities)
    probabilities = probabilities.reshape(-1, probabilities.shape[-1])
    y = np.asarray(y).reshape(-1).astype(int)
    p = np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)
    return {"accuracy": float(np.mean(probabilities.argmax(-1) == y)),
            "log_loss": float(-np.mean(np.log(p)))}


def regression_figures(prediction, y):
    err = np.asarray(prediction, "float64").reshape(len(y), -1) - \
        np.asarray(y, "float64").reshape(len(y), -1)
    return {"mae": float(np.mean(np.abs(err))),
            "mse": float(np.mean(err ** 2))}


def _average_parameters(models):
    """A copy of the first member holding the mean of every member's
    weights; None where their shapes differ."""
    import keras

    shapes = [[w.shape for w in m.get_weights()] for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        return None
    averaged = keras.models.clone_model(models[0])
    averaged.set_weights([np.mean(ws, axis=0) for ws in
                          zip(*(m.get_weights() for m in models))])
    return averaged


def ensemble_model(members, combine):
    """One Keras model: every member called on the same input, combined by
    `EnsembleCombine(combine)`."""
    import keras

    from dlrecipes.layers import EnsembleCombine

    for i, member in enumerate(members):
        member.name = f"member_{i}"
    first = members[0]
    inputs = keras.Input(shape=tuple(first.inputs[0].shape[1:]),
                         dtype=first.inputs[0].dtype, name="inputs")
    outputs = EnsembleCombine(combine, name="combine", dtype="float32")(
        [member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=f"ensemble_{combine}")


def _new_id(paths):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256("\n".join(
        os.path.realpath(p) for p in paths).encode()).hexdigest()[:6]
    return f"{stamp}-{digest}"


def build_ensemble(paths, recipe, combine="mean", output_dir="ensembles",
                   parameter_average=False):
    """Combine the finished runs at `paths` (checked by `check_members`)
    of `recipe`; returns `(directory, metrics)`."""
    import dlrecipes
    from dlrecipes.config import config_from_dict
    from dlrecipes.training import plots
    from dlrecipes.training.reports import test_arrays
    from dlrecipes.training.rundir import atomic_write_json

    if combine not in COMBINES:
        raise UsageError(f"unknown combine {combine!r}; valid choices: "
                         f"{', '.join(COMBINES)}")
    configs = check_members(paths)
    # TensorFlow warns (several lines) when it traces a predict function
    # for the fifth model in one process (the loader's checks and the
    # predictions below): expected here, so kept quiet.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    saved = dict(configs[0])
    saved.pop("recipe", None)
    config = config_from_dict(recipe.config_class, saved,
                              source=os.path.join(paths[0], "config.json"))
    models = [dlrecipes.load_model(os.path.join(p, "model.keras"),
                                   compile=False) for p in paths]
    if len(models[0].inputs) != 1:
        raise UsageError(
            f"an ensemble combines models of one input; {paths[0]} is a "
            f"{recipe.name} model of {len(models[0].inputs)} inputs "
            f"({', '.join(t.name for t in models[0].inputs)})")
    shape = tuple(models[0].inputs[0].shape[1:])
    out_shape = tuple(models[0].outputs[0].shape[1:])
    for path, model in zip(paths[1:], models[1:]):
        if len(model.inputs) != 1 or \
                tuple(model.inputs[0].shape[1:]) != shape:
            raise UsageError(f"members take different inputs: {paths[0]} "
                             f"{shape}, {path} "
                             f"{tuple(model.inputs[0].shape[1:])}")
        if tuple(model.outputs[0].shape[1:]) != out_shape:
            raise UsageError(
                f"members predict different outputs (class lists): "
                f"{paths[0]} {out_shape}, {path} "
                f"{tuple(model.outputs[0].shape[1:])}")
    data = recipe.load_data(config)
    x, y = test_arrays(data)
    y = np.asarray(y)
    classifier = is_classifier(y, out_shape, data.num_classes)
    if not classifier and combine != "mean":
        raise UsageError(f"--combine {combine} needs classifiers; "
                         f"{recipe.name} predicts values: use --combine "
                         "mean")
    averaged = None
    if parameter_average:
        averaged = _average_parameters(models)
        if averaged is None:
            raise UsageError("--parameter-average needs members of one "
                             "architecture (their weight shapes differ)")
    predictions = [np.asarray(m.predict(x, batch_size=256, verbose=0))
                   for m in models]
    figures = classification_figures if classifier else \
        regression_figures
    key = "accuracy" if classifier else "mae"
    higher = classifier  # accuracy up, MAE down
    members = [figures(p, y) for p in predictions]
    ensemble = figures(combine_predictions(predictions, combine), y)
    values = [m[key] for m in members]
    best = max(values) if higher else min(values)
    sign = 1.0 if higher else -1.0
    metrics = {
        "recipe": recipe.name, "combine": combine, "members": len(paths),
        **{f"test_{k}": v for k, v in ensemble.items()},
        "member_test": members,
        f"member_mean_test_{key}": float(np.mean(values)),
        f"member_best_test_{key}": best,
        "gain_over_mean": sign * (ensemble[key] - float(np.mean(values))),
        "gain_over_best": sign * (ensemble[key] - best),
        "test_examples": int(len(y)),
    }
    if classifier:
        metrics["combines"] = {
            c: figures(combine_predictions(predictions, c), y)[key]
            for c in COMBINES}
    if averaged is not None:
        pred = np.asarray(averaged.predict(x, batch_size=256, verbose=0))
        metrics[f"parameter_average_test_{key}"] = figures(pred, y)[key]

    os.makedirs(output_dir, exist_ok=True)
    name = _new_id(paths)
    final = os.path.join(output_dir, name)
    tmp = os.path.join(output_dir, f".tmp-{name}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        atomic_write_json(os.path.join(tmp, "members.json"), {
            "recipe": recipe.name, "combine": combine, "members": [
                {"run_dir": os.path.realpath(p),
                 "config_hash": config_hash(c), "seed": c.get("seed")}
                for p, c in zip(paths, configs)]})
        ensemble_model(models, combine).save(os.path.join(tmp,
                                                          "model.keras"))
        if classifier:
            n = data.num_classes
            cm = np.zeros((n, n), dtype=int)
            np.add.at(cm, (y.astype(int).reshape(-1), combine_predictions(
                predictions, combine).argmax(-1).reshape(-1)), 1)
            plots.confusion_matrix(cm, data.class_names or range(n),
                                   os.path.join(tmp, "confusion.png"))
        atomic_write_json(os.path.join(tmp, "metrics.json"), metrics)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, metrics
