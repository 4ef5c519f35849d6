"""Plots of a run: learning curves (train vs validation, learning rate),
confusion matrices, image grids.

matplotlib is imported on first use. Where it is not installed (the GPU
machines carry no matplotlib wheel) every plot is skipped with one warning
and the run goes on: a figure is never worth a failed training run.
"""

import functools
import io
import warnings

import numpy as np

from dlrecipes.training.rundir import atomic_write_bytes


@functools.lru_cache(maxsize=None)
def pyplot():
    """`matplotlib.pyplot` on the Agg backend, or None (warned once)."""
    try:
        import matplotlib
    except ImportError:
        warnings.warn("matplotlib is not installed: no plots are written "
                      "(pip install matplotlib)", stacklevel=3)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """Save a matplotlib figure atomically as PNG and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def curves(rows, path):
    """Loss and metric curves (train vs validation) and the learning rate."""
    plt = pyplot()
    if plt is None:
        return
    keys = [k for k in rows[0] if k != "epoch" and not k.startswith("val_")
            and k != "learning_rate" and not is_monitor_key(k)] \
        if rows else []
    panels = keys + (["learning_rate"] if rows and "learning_rate" in rows[0]
                     else [])
    fig, axes = plt.subplots(1, max(1, len(panels)),
                             figsize=(4 * max(1, len(panels)), 3.2))
    axes = axes if hasattr(axes, "__len__") else [axes]
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, key in zip(axes, panels):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train"
                if key != "learning_rate" else key)
        if f"val_{key}" in rows[0]:
            ax.plot(epochs, [float(r[f"val_{key}"]) for r in rows],
                    label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


MONITOR_PANELS = (("act_mean/", "activation mean"),
                  ("act_std/", "activation std"),
                  ("update_ratio/", "update / weight ratio"),
                  ("gap", "validation - training loss"))


def is_monitor_key(key):
    """A column `--monitor` adds to the history (`monitor.png` draws it,
    `curves.png` does not)."""
    return key == "gap" or key.startswith(("act_mean/", "act_std/",
                                           "update_ratio/"))


def monitor(rows, path):
    """`monitor.png`: the `--monitor` columns of a history, one panel per
    kind (a line per layer; the update ratio on a log scale, with the
    1e-4 .. 1e-2 band around the usual 1e-3). Nothing without them."""
    plt = pyplot()
    present = [(prefix, title) for prefix, title in MONITOR_PANELS
               if rows and any(k == prefix or k.startswith(prefix)
                               for k in rows[0] if prefix.endswith("/")
                               or k == prefix)]
    if plt is None or not present:
        return
    fig, axes = plt.subplots(1, len(present),
                             figsize=(4.5 * len(present), 3.4))
    axes = axes if hasattr(axes, "__len__") else [axes]
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, (prefix, title) in zip(axes, present):
        keys = [k for k in rows[0]
                if (k.startswith(prefix) if prefix.endswith("/")
                    else k == prefix)]
        for key in keys:
            values = [float(r[key]) if r.get(key) not in (None, "")
                      else float("nan") for r in rows]
            if prefix == "update_ratio/":  # 0 (no step yet, a zero rate)
                values = [v if v > 0 else float("nan") for v in values]
            ax.plot(epochs, values, label=key[len(prefix):] or key)
        if prefix == "update_ratio/":
            ax.set_yscale("log")
            ax.axhspan(1e-4, 1e-2, color="green", alpha=0.08)
        if prefix == "gap":
            ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if 1 < len(keys) <= 12:
            ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)


def confusion_matrix(cm, class_names, path):
    """A confusion matrix (rows: true class, columns: predicted)."""
    plt = pyplot()
    if plt is None:
        return
    n = len(cm)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * n + 2),) * 2)
    ax.imshow(cm, cmap="Blues")
    if n <= 30:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                            fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 2
                            else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    save_figure(fig, path)


def image_grid(images, titles, path, cols=6):
    """A grid of images with titles (e.g. misclassified test examples)."""
    plt = pyplot()
    if plt is None:
        return
    count = max(1, len(images))
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, img, title in zip(np.ravel(axes), images, titles):
        img = np.asarray(img, dtype="float32")
        img = (img - img.min()) / max(1e-8, float(img.max() - img.min()))
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
        ax.set_title(title, fontsize=8)
    if not len(images):
        np.ravel(axes)[0].set_title("no errors", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
