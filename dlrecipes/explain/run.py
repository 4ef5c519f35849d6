"""`dlrecipes explain RUN_DIR`: the methods of `dlrecipes.explain` on a
finished run, written to `RUN_DIR/explain/<method>.png` and
`RUN_DIR/explain/explain.json`.

The model is read through `dlrecipes.load_model`; the test split comes
from the recipe's own `load_data` with the run's `config.json`.
`model.keras`, `metrics.json` and every other file of the run stay as
they are.
"""

import dataclasses
import json
import os

import numpy as np

from dlrecipes.errors import UsageError

METHODS = ("filters", "features", "saliency", "occlusion", "gradcam",
           "maximize", "tsne")
# What each method needs of the model and its inputs.
NEEDS = {
    "filters": "a 2-D convolution",
    "features": "image inputs and a layer with feature maps",
    "saliency": "a classifier of numeric inputs (images or sequences)",
    "occlusion": "a classifier of numeric inputs (images or sequences)",
    "gradcam": "an image classifier with a convolutional layer",
    "maximize": "an image classifier",
    "tsne": "a classifier",
}
# Examples the checks use (deletion, sanity, t-SNE).
CHECK_EXAMPLES = 200
TSNE_EXAMPLES = 1000


@dataclasses.dataclass
class Options:
    methods: tuple
    layer: str = ""
    n: int = 0  # 0: each method's default
    target: int = -1  # --class; -1: each example's true class
    seed: int = 0


@dataclasses.dataclass
class Subject:
    """A finished run, loaded: the model, its test examples, what it is."""

    path: str
    recipe: str
    model: object
    x: np.ndarray  # test inputs, the model's raw input format
    y: np.ndarray  # their labels (None for models that are not classifiers)
    kind: str  # "image", "sequence" or "text"
    num_classes: int  # 0: not a classifier
    class_names: tuple
    scale: float
    from_logits: bool = False
    # Maps computed once and used by more than one method.
    cache: dict = dataclasses.field(default_factory=dict)

    def applies(self, method):
        """None when `method` applies, else why not."""
        from dlrecipes.explain import methods as m

        numeric = self.kind in ("image", "sequence")
        classifier = self.num_classes > 0
        image = self.kind == "image"
        ok = {
            "filters": lambda: m.first_conv_kernels(self.model) is not None,
            "features": lambda: image and bool(m.spatial_layers(self.model)),
            "saliency": lambda: numeric and classifier,
            "occlusion": lambda: numeric and classifier,
            "gradcam": lambda: image and classifier
            and bool(_gradcam_layers(self.model)),
            "maximize": lambda: image and classifier,
            "tsne": lambda: classifier,
        }[method]()
        if ok:
            return None
        what = {"image": "an image model", "sequence": "a sequence model",
                "text": "a text model (raw strings in)"}[self.kind]
        if self.num_classes == 0:
            what = what.replace("model", "model that is not a classifier")
        return f"{method} needs {NEEDS[method]}; {self.path} holds {what}"


def _gradcam_layers(model):
    from dlrecipes.explain import methods as m

    chain = m.chain_layers(model)
    if chain is None:
        return []
    return [layer for layer in m.spatial_layers(model) if layer in chain]


# ------------------------------------------------------------------ loading


def check_run_dir(path):
    """UsageError unless `path` is a finished run directory with a model."""
    from dlrecipes.paths import path_kind

    kind = path_kind(path)
    if kind is None:
        raise UsageError(f"no such directory: {path}")
    if kind != "a directory":
        raise UsageError(f"{path} is {kind}, not a run directory")
    missing = [f for f in ("config.json", "metrics.json", "model.keras")
               if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise UsageError(
            f"{path} is not a finished run directory (no "
            f"{' or '.join(missing)}): explain needs a run that has "
            "finished training (`dlrecipes report "
            f"{path}` says more)")


def _test_examples(data, limit):
    """Up to `limit` test examples `(x, y)` as NumPy arrays."""
    test = data.test
    if isinstance(test, tuple):
        x, y = test
        return np.asarray(x[:limit]), np.asarray(y[:limit])
    xs, ys = [], []
    for batch in test:
        x, y = batch[0], batch[1]
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
        if sum(len(b) for b in xs) >= limit:
            break
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


def load_subject(path, recipe):
    """The run at `path` (checked by `check_run_dir`) of `recipe`."""
    import dlrecipes
    from dlrecipes.config import config_from_dict
    from dlrecipes.explain import methods as m

    with open(os.path.join(path, "config.json")) as f:
        saved = json.load(f)
    saved.pop("recipe", None)
    config = config_from_dict(recipe.config_class, saved,
                              source=os.path.join(path, "config.json"))
    model = dlrecipes.load_model(os.path.join(path, "model.keras"),
                                 compile=False)
    main_model = getattr(model, "main_model", None)
    if main_model is not None:  # the classifier without auxiliary heads
        model = main_model()
    if len(model.inputs) != 1:
        raise UsageError(
            f"no method applies to {path}: its {recipe.name} model reads "
            f"{len(model.inputs)} inputs "
            f"({', '.join(t.name for t in model.inputs)}), and explain's "
            "methods explain models of one input")
    data = recipe.load_data(config)
    x, y = _test_examples(data, max(TSNE_EXAMPLES, CHECK_EXAMPLES))
    shape = tuple(data.input_shape)
    if x.dtype.kind in "OUS":
        kind = "text"
    elif len(shape) == 3:
        kind = "image"
    else:
        kind = "sequence"
    num_classes = int(data.num_classes or 0)
    if num_classes and (y.ndim != 1 or y.dtype.kind not in "iu"):
        num_classes = 0  # not class labels (masks, images, values)
    subject = Subject(path, recipe.name, model, x, y if num_classes else None,
                      kind, num_classes,
                      tuple(data.class_names or range(num_classes)),
                      float(data.scale or 1.0))
    if num_classes and kind != "text":
        subject.from_logits = m.outputs_logits(model, x)
    return subject


# ------------------------------------------------------------------ running


def resolve(subject, options):
    """The methods to run: all that apply (none asked), or the asked ones
    (UsageError if one does not apply); `--layer` and `--class` checked."""
    from dlrecipes.explain import methods as m

    if options.methods:
        for method in options.methods:
            why = subject.applies(method)
            if why is not None:
                fits = [f for f in METHODS if subject.applies(f) is None]
                raise UsageError(
                    f"{why}; the methods that apply: "
                    f"{', '.join(fits) or 'none'}")
        chosen = list(options.methods)
    else:
        chosen = [f for f in METHODS if subject.applies(f) is None]
        if not chosen:
            raise UsageError(f"no method applies to {subject.path} "
                             f"({subject.kind} model)")
    if options.target >= 0 and options.target >= subject.num_classes:
        raise UsageError(
            f"--class must be in 0..{max(subject.num_classes - 1, 0)} "
            f"(the model has {subject.num_classes} classes). "
            f"Received: class={options.target}")
    if options.layer:
        for method in chosen:
            if method not in ("features", "gradcam"):
                continue
            fits = [layer.name for layer in (
                _gradcam_layers(subject.model) if method == "gradcam"
                else m.spatial_layers(subject.model))]
            if options.layer not in fits:
                raise UsageError(
                    f"--layer {options.layer!r} is not a layer {method} "
                    f"can use; layers that fit: {', '.join(fits)}")
    return chosen


def explain_run(path, recipe, options):
    """Run the methods on the finished run at `path`; returns the record
    written to `explain.json`."""
    from dlrecipes.explain import figures
    from dlrecipes.training.rundir import atomic_write_json

    check_run_dir(path)
    subject = load_subject(path, recipe)
    chosen = resolve(subject, options)
    out_dir = os.path.join(path, "explain")
    os.makedirs(out_dir, exist_ok=True)
    record_path = os.path.join(out_dir, "explain.json")
    record = {}
    if os.path.isfile(record_path):
        try:
            with open(record_path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            record = {}
    if not isinstance(record.get("methods"), dict):
        record = {"methods": {}}
    record.update({"run": os.path.abspath(path), "recipe": subject.recipe,
                   "kind": subject.kind})
    for method in chosen:
        result = getattr(figures, method)(subject, options, out_dir)
        record["methods"][method] = result
        # Written after each method: what is done stays done.
        atomic_write_json(record_path, record)
        print(f"{method}: {os.path.join(out_dir, result['image'])}"
              + _summary(result))
    return record


def _summary(result):
    parts = []
    for key in ("deletion", "sanity", "knn5", "classes_above_0.9"):
        value = result.get(key)
        if isinstance(value, dict) and "ratio" in value:
            parts.append(f"deletion ratio {value['ratio']:.2f}")
        elif isinstance(value, dict) and "rank_correlation" in value:
            parts.append("rank correlation with a re-initialised model "
                         f"{value['rank_correlation']:.2f}")
        elif isinstance(value, dict):
            parts.append(", ".join(f"5-NN {k} {v:.3f}"
                                   for k, v in value.items()))
        elif value is not None:
            parts.append(f"{value} classes above p 0.9")
    return f" ({'; '.join(parts)})" if parts else ""
