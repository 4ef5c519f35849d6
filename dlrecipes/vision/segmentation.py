"""Semantic segmentation: the models, the metrics, the classical baselines,
`masks.png` and the report of the segmentation recipe.

- `build_segmenter`: raw pixels -> `Rescaling` -> `dlrecipes.layers`'
  `UNet` (`unet`: with skip connections; `fcn`: the same encoder-decoder
  without them) -> a 1x1 convolution with a float32 softmax: a class
  distribution per pixel at full input resolution.
- `check_depth`: the down-sampling stages an image size allows.
- `mean_iou_metric`: Keras' `MeanIoU` on the argmax of the softmax, named
  `miou` (so `history.csv` has `miou` and `val_miou`).
- `confusion`, `scores`: per-class IoU, mean IoU (over the classes present
  in the truth or the prediction, as Keras' `MeanIoU`) and pixel accuracy,
  in NumPy.
- The classical baselines, NumPy only: `component_baseline` (threshold,
  connected components, nearest training digit with a shift search: for
  digit_scenes), `colour_baseline` (a per-pixel colour lookup table, for
  other datasets) and the majority class (all-background).
- `segmentation_report`: all of it on the test split, and `masks.png`.

Keras loads on first use (`MODELS`, `UPSAMPLINGS` and `check_depth` serve
the flag checks, which run without it).
"""

import math
import os

import numpy as np

from dlrecipes.errors import UsageError
from dlrecipes.lazy import LazyModule, keras

# dlrecipes.layers.upsampling, imported on first use.
_upsampling = LazyModule("dlrecipes.layers.upsampling")

MODELS = ("unet", "fcn")
UPSAMPLINGS = ("transpose", "nearest", "bilinear")  # as the layers'
NORMS = ("batch", "layer", "group", "none")
GROUPS = 8  # group norm: gcd(width, 8) groups, which divides every stage
COLOUR_LEVELS = 8  # colour baseline: levels per channel
MIN_PART = 6  # component baseline: fewer pixels left join the last digit
MASK_EXAMPLES = 8  # rows of masks.png
# Batch norm's moving averages follow the weights within ~10 steps: a
# batch of 32 scenes holds 18,432 pixels, so one batch's statistics are
# already steady, while Keras' 0.99 lags ~100 steps behind weights that
# still move (measured: validation mIoU far below training mIoU until the
# learning rate has decayed).
BATCH_NORM_MOMENTUM = 0.9
BASELINE_TRAIN_LIMIT = 2000  # training images the colour baseline counts


# ------------------------------------------------------------------ checks


def max_depth(height, width):
    """The most 2x down-sampling stages an image allows: the largest `d`
    with `2**d <= min(height, width)` (the bottleneck keeps a pixel)."""
    return int(min(height, width)).bit_length() - 1


def check_depth(height, width, depth, what="the images"):
    """A `UsageError` unless `depth` stages fit an image of `height` x
    `width`: at most `max_depth`, and both sizes divisible by
    `2**depth` (every pooling halves exactly, so the decoder's output
    has the input's size)."""
    most = max_depth(height, width)
    if depth > most:
        raise UsageError(
            f"--depth {depth} is more down-sampling stages than {what} "
            f"({height} x {width}) allow: at most {most} (2**{most} = "
            f"{2 ** most} <= {min(height, width)}). Received: depth={depth}")
    unit = 2 ** depth
    if height % unit or width % unit:
        fits = [d for d in range(1, most + 1)
                if not (height % 2 ** d or width % 2 ** d)]
        hint = (f"--depth {fits[-1]} or smaller" if fits
                else "an even --image-size")
        raise UsageError(
            f"--depth {depth} needs an image size divisible by 2**{depth} = "
            f"{unit}, but {what} are {height} x {width}: use --image-size "
            f"{math.ceil(max(height, width) / unit) * unit} (a multiple of "
            f"{unit}) or {hint}. Received: depth={depth}")


# ------------------------------------------------------------------- model


def build_segmenter(input_shape, num_classes, *, scale=1.0, model="unet",
                    upsample="transpose", width=16, depth=2, convs=2,
                    norm="batch", dropout=0.0,
                    kernel_initializer="he_normal", activation="relu"):
    """The uncompiled segmentation model: `(batch, h, w, c)` raw pixels to
    `(batch, h, w, num_classes)` class probabilities (float32).

    Args:
        input_shape: one image's shape.
        num_classes: classes per pixel.
        scale: the `Rescaling` factor of the raw pixels.
        model: `unet` (skip connections) or `fcn` (none).
        upsample: the decoder's up-sampling (`UPSAMPLINGS`).
        width: channels of the first stage, doubled per stage.
        depth: down-sampling stages.
        convs: convolutions per stage.
        norm: normalization of every convolution block.
        dropout: dropout after the bottleneck.
        kernel_initializer: initializer of the kernels.
        activation: activation of every convolution block.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}. "
                         f"Received: model={model!r}")
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(scale, name="rescaling")(inputs)
    x = _upsampling.UNet(
        width, depth=depth, upsample=upsample,
        skip_connections=model == "unet", convs=convs, norm=norm,
        dropout=dropout, kernel_initializer=kernel_initializer,
        activation=activation, norm_groups=math.gcd(width, GROUPS), name=model)(x)
    outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax",
                                  dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"{model}_segmenter")


def mean_iou_metric(num_classes):
    """Keras' `MeanIoU` of the integer masks and the argmax of the
    predicted probabilities, named `miou`."""
    return keras.metrics.MeanIoU(num_classes, name="miou",
                                 sparse_y_true=True, sparse_y_pred=False)


# ----------------------------------------------------------------- metrics


def confusion(y_true, y_pred, num_classes):
    """The `(num_classes, num_classes)` confusion matrix of integer masks
    (rows: true class, columns: predicted)."""
    index = (np.asarray(y_true, dtype="int64").ravel() * num_classes
             + np.asarray(y_pred, dtype="int64").ravel())
    return np.bincount(index, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


def scores(cm):
    """Per-class IoU (NaN where a class is in neither the truth nor the
    prediction), their mean over the other classes (Keras' `MeanIoU`) and
    the pixel accuracy of a confusion matrix.

    Returns:
        `{"iou": array, "mean_iou": float, "pixel_accuracy": float}`.
    """
    cm = np.asarray(cm, dtype="float64")
    hits = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - hits
    iou = np.full(len(cm), np.nan)
    present = union > 0
    iou[present] = hits[present] / union[present]
    return {"iou": iou,
            "mean_iou": float(np.mean(iou[present])) if present.any()
            else 0.0,
            "pixel_accuracy": float(hits.sum() / max(cm.sum(), 1))}


def _batches(part, batch_size, limit=None):
    """`(x, y)` NumPy batches of a split held as arrays or as a batched
    dataset (at most about `limit` examples)."""
    seen = 0
    if isinstance(part, tuple):
        x, y = part
        end = len(y) if limit is None else min(len(y), limit)
        for i in range(0, end, batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    for xb, yb in part:
        xb, yb = np.asarray(xb), np.asarray(yb)
        yield xb, yb
        seen += len(yb)
        if limit is not None and seen >= limit:
            return


def predict_confusion(model, data, batch_size=256, keep=MASK_EXAMPLES):
    """The model's test confusion matrix, and the first `keep` test
    examples `(images, true masks, predicted masks)`."""
    n = data.num_classes
    cm = np.zeros((n, n), dtype="int64")
    kept = ([], [], [])
    for x, y in _batches(data.test, batch_size):
        pred = np.argmax(np.asarray(model.predict_on_batch(x)), axis=-1)
        cm += confusion(y, pred, n)
        room = keep - sum(len(a) for a in kept[0])
        if room > 0:
            for store, value in zip(kept, (x, y, pred)):
                store.append(np.asarray(value)[:room])
    return cm, tuple(np.concatenate(a) if a else np.zeros((0,))
                     for a in kept)


# ---------------------------------------------------------------- baselines


def class_counts(data, batch_size=256, limit=None):
    """Pixels per class in the training masks."""
    counts = np.zeros(data.num_classes, dtype="int64")
    for _, y in _batches(data.train, batch_size, limit):
        counts += np.bincount(np.asarray(y, dtype="int64").ravel(),
                              minlength=data.num_classes)
    return counts


def label_components(mask):
    """Connected components (8-connectivity) of boolean masks
    `(n, h, w)`: int64 `(n, h, w)`, 0 off the mask, else an id unique over
    all images (the flat index + 1 of the component's first pixel).
    NumPy only: each component's smallest id spreads to its neighbours
    until nothing changes."""
    mask = np.asarray(mask, dtype=bool)
    n, h, w = mask.shape
    off = np.iinfo("int64").max
    labels = np.where(mask, np.arange(1, n * h * w + 1).reshape(n, h, w),
                      off)
    while True:
        padded = np.pad(labels, ((0, 0), (1, 1), (1, 1)),
                        constant_values=off)
        spread = labels
        for dr in range(3):
            for dc in range(3):
                spread = np.minimum(spread, padded[:, dr:dr + h, dc:dc + w])
        spread = np.where(mask, spread, off)
        if np.array_equal(spread, labels):
            return np.where(mask, labels, 0)
        labels = spread


def _nearest_digit(patch, remaining, templates, norms, size):
    """The window (row, col) of `size` x `size` that contains the
    remaining pixels (or, where they span more, lies inside their bounding
    box and holds some of them) whose content is nearest (Euclidean) to a
    template; and that template's index."""
    h, w = patch.shape
    rows, cols = np.nonzero(remaining)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    r_lo = max(0, min(r0, r1 - size + 1))
    r_hi = min(h - size, max(r0, r1 - size + 1))
    c_lo = max(0, min(c0, c1 - size + 1))
    c_hi = min(w - size, max(c0, c1 - size + 1))
    where = [(r, c) for r in range(r_lo, r_hi + 1)
             for c in range(c_lo, c_hi + 1)
             if remaining[r:r + size, c:c + size].any()]
    windows = np.stack([patch[r:r + size, c:c + size].ravel()
                        for r, c in where])
    dist = (np.sum(windows ** 2, axis=1)[:, None]
            - 2 * windows @ templates.T + norms[None])
    best = np.unravel_index(np.argmin(dist), dist.shape)
    return where[best[0]], best[1]


def component_baseline(digits, x, ink):
    """The classical segmentation of digit scenes, no learning beyond a
    nearest-neighbour lookup:

    1. threshold: a pixel of at least `ink` is a digit's;
    2. connected components of those pixels (8-connectivity);
    3. each component: the 8x8 window around it (all placements that
       contain it: a small shift search) nearest to a training digit (ink
       only) names its class; a component larger than a digit (touching
       or overlapping digits) is cut greedily: the best window's pixels
       take its class, the rest is searched again, until fewer than
       `MIN_PART` pixels are left (they join the last class).

    Args:
        digits: `(x, y)` training digits `(m, 8, 8)`, raw values, and
            their labels 0..9.
        x: scenes `(n, h, w, 1)` (or `(n, h, w)`), raw values.
        ink: the threshold.

    Returns:
        int32 predicted masks `(n, h, w)`: 0 background, 1 + digit.
    """
    images = np.asarray(x, dtype="float64")
    if images.ndim == 4:
        images = images[..., 0]
    n, h, w = images.shape
    shape = np.asarray(digits[0]).shape
    size = shape[-1]
    templates = np.asarray(digits[0], dtype="float64").reshape(
        len(digits[1]), -1)
    templates = np.where(templates >= ink, templates, 0)
    norms = np.sum(templates ** 2, axis=1)
    labels = np.asarray(digits[1], dtype="int64")
    components = label_components(images >= ink)
    pred = np.zeros((n, h, w), dtype="int32")
    for cid in np.unique(components[components > 0]):
        i = int((cid - 1) // (h * w))
        remaining = components[i] == cid
        while True:
            patch = np.where(remaining, images[i], 0)
            (r, c), j = _nearest_digit(patch, remaining, templates, norms,
                                       size)
            label = labels[j] + 1
            inside = np.zeros((h, w), dtype=bool)
            inside[r:r + size, c:c + size] = True
            pred[i][remaining & inside] = label
            remaining = remaining & ~inside
            left = int(remaining.sum())
            if left < MIN_PART:
                pred[i][remaining] = label
                break
    return pred


def colour_codes(x, scale):
    """Each pixel's colour, `COLOUR_LEVELS` levels per channel, as one
    integer code `(n, h, w)`."""
    x = np.asarray(x, dtype="float64") * scale
    levels = np.clip((x * COLOUR_LEVELS).astype("int64"), 0,
                     COLOUR_LEVELS - 1)
    weights = COLOUR_LEVELS ** np.arange(levels.shape[-1])
    return levels @ weights


def colour_baseline(data, batch_size=256, limit=BASELINE_TRAIN_LIMIT):
    """A per-pixel colour lookup table fitted on (at most `limit`)
    training images: each quantized colour takes the class its training
    pixels have most often (an unseen colour: the majority class).

    Returns:
        The test confusion matrix.
    """
    n = data.num_classes
    channels = data.input_shape[-1]
    table_size = COLOUR_LEVELS ** channels
    counts = np.zeros((table_size, n), dtype="int64")
    for x, y in _batches(data.train, batch_size, limit):
        index = colour_codes(x, data.scale).ravel() * n + np.asarray(
            y, dtype="int64").ravel()
        counts += np.bincount(index, minlength=table_size * n).reshape(
            table_size, n)
    majority = int(np.argmax(counts.sum(axis=0)))
    table = np.where(counts.sum(axis=1) > 0, np.argmax(counts, axis=1),
                     majority)
    cm = np.zeros((n, n), dtype="int64")
    for x, y in _batches(data.test, batch_size):
        cm += confusion(y, table[colour_codes(x, data.scale)], n)
    return cm


def majority_confusion(data, majority, batch_size=256):
    """The test confusion matrix of predicting class `majority` everywhere
    (all-background)."""
    n = data.num_classes
    cm = np.zeros((n, n), dtype="int64")
    for _, y in _batches(data.test, batch_size):
        cm[:, majority] += np.bincount(np.asarray(y, dtype="int64").ravel(),
                                       minlength=n)
    return cm


# ------------------------------------------------------------------ report


def class_colours(num_classes):
    """RGB colours of the classes: background (0) black, then tab20's."""
    base = [(0.12, 0.47, 0.71), (1.0, 0.50, 0.05), (0.17, 0.63, 0.17),
            (0.84, 0.15, 0.16), (0.58, 0.40, 0.74), (0.55, 0.34, 0.29),
            (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13),
            (0.09, 0.75, 0.81)]
    return [(0.0, 0.0, 0.0)] + [base[i % len(base)]
                                for i in range(num_classes - 1)]


def masks_figure(images, true, pred, class_names, path):
    """Writes `path`: one row per example: the image, the true mask, the
    predicted mask (one colour per class, a legend below)."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None or not len(images):
        return
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = class_colours(len(class_names))
    cmap = ListedColormap(colours)
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(6, 2 * rows + 0.6),
                             squeeze=False)
    for row, (image, t, p) in enumerate(zip(images, true, pred)):
        image = np.asarray(image, dtype="float32")
        image = (image - image.min()) / max(1e-8, float(image.max()
                                                        - image.min()))
        panels = (image[..., 0] if image.shape[-1] == 1 else image, t, p)
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.axis("off")
            if col == 0:
                ax.imshow(panel, cmap="gray")
            else:
                ax.imshow(panel, cmap=cmap, vmin=0,
                          vmax=len(class_names) - 1, interpolation="nearest")
            if row == 0:
                ax.set_title(("image", "true mask", "predicted")[col],
                             fontsize=9)
    if len(class_names) <= 24:
        fig.legend(handles=[Patch(color=c, label=name) for c, name in
                            zip(colours, class_names)],
                   loc="lower center", ncol=min(6, len(class_names)),
                   fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    plots.save_figure(fig, path)


def segmentation_report(model, data, run_dir, batch_size=256):
    """The test split's per-class IoU, mean IoU and pixel accuracy,
    `masks.png`, and the classical baselines on the same test split:
    the majority class of the training pixels (all-background) and, for
    digit_scenes, `component_baseline`, else `colour_baseline`.

    Returns:
        metrics: `test_mean_iou`, `test_pixel_accuracy`, `iou_per_class`
        (`{class: IoU or None}`), `baseline` (its name),
        `test_baseline_miou`, `test_baseline_pixel_accuracy`,
        `baseline_iou_per_class`, `test_majority_miou`,
        `test_majority_pixel_accuracy`, and `train_repeats` for a
        repeated training set.
    """
    names = data.class_names

    def per_class(iou):
        return {name: None if math.isnan(v) else float(v)
                for name, v in zip(names, iou)}

    cm, (x, y, pred) = predict_confusion(model, data, batch_size)
    model_scores = scores(cm)
    masks_figure(x, y, pred, names, os.path.join(run_dir, "masks.png"))
    metrics = {"test_mean_iou": model_scores["mean_iou"],
               "test_pixel_accuracy": model_scores["pixel_accuracy"],
               "iou_per_class": per_class(model_scores["iou"])}
    if data.digits is not None and isinstance(data.test, tuple):
        predicted = component_baseline(data.digits, data.test[0], data.ink)
        base = scores(confusion(data.test[1], predicted, data.num_classes))
        metrics["baseline"] = ("threshold + connected components + nearest "
                               "training digit (shift search)")
    else:
        base = scores(colour_baseline(data, batch_size))
        metrics["baseline"] = (f"per-pixel colour lookup ({COLOUR_LEVELS} "
                               "levels per channel)")
    metrics.update({
        "test_baseline_miou": base["mean_iou"],
        "test_baseline_pixel_accuracy": base["pixel_accuracy"],
        "baseline_iou_per_class": per_class(base["iou"])})
    majority = int(np.argmax(class_counts(data, batch_size,
                                          BASELINE_TRAIN_LIMIT)))
    every = scores(majority_confusion(data, majority, batch_size))
    metrics.update({"majority_class": names[majority],
                    "test_majority_miou": every["mean_iou"],
                    "test_majority_pixel_accuracy":
                        every["pixel_accuracy"]})
    if data.train_repeats > 1:
        metrics["train_repeats"] = data.train_repeats
    return metrics
