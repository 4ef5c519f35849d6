"""One function per method of `dlrecipes explain`: compute it on a loaded
run (`run.Subject`), draw `<method>.png`, return its `explain.json` entry.
"""

import numpy as np

from dlrecipes.explain import methods as m
from dlrecipes.training import plots


def _display(subject, x):
    """Raw inputs as displayable images in [0, 1] (`(h, w)` or
    `(h, w, 3)`), or sequences as `(channels, time)` heat maps."""
    x = np.asarray(x, "float64")
    if subject.kind != "image":
        return x.T
    x = np.clip(x * subject.scale, 0.0, 1.0)
    return x[..., 0] if x.shape[-1] == 1 else x[..., :3]


def _picture(subject, a):
    """A map as an image: as is for images; a sequence's `(time,)` or
    `(time, channels)` map as rows over time."""
    a = np.asarray(a)
    if subject.kind == "image":
        return a
    return a[None, :] if a.ndim == 1 else a.T


def _targets(subject, options, count):
    if options.target >= 0:
        return np.full(count, options.target, "int64")
    return np.asarray(subject.y[:count], "int64")


def _grid(count, columns):
    rows = -(-count // columns)
    return rows, columns


def _save(fig, out_dir, name):
    import os

    plots.save_figure(fig, os.path.join(out_dir, name))
    return name


def _check_set(subject):
    count = min(len(subject.x), _check_examples(subject))
    return subject.x[:count]


def _check_examples(subject):
    from dlrecipes.explain.run import CHECK_EXAMPLES

    size = int(np.prod(subject.x.shape[1:-1])) if subject.x.ndim > 2 else 1
    # Occlusion costs a forward pass per patch: fewer examples for larger
    # inputs.
    return CHECK_EXAMPLES if size <= 256 else CHECK_EXAMPLES // 2


# ------------------------------------------------------------------ filters


def filters(subject, options, out_dir):
    plt = plots.pyplot()
    path, kernels = m.first_conv_kernels(subject.model)
    height, width, channels, count = kernels.shape
    shown = min(options.n or 32, count)
    if channels == 3:
        lo, hi = kernels.min(), kernels.max()
        tiles = (kernels - lo) / max(hi - lo, 1e-12)
        note = "RGB, one colour scale for all"
    else:
        tiles = kernels.mean(axis=2, keepdims=True) if channels > 1 \
            else kernels
        note = ("mean over the input channels, " if channels > 1 else "") \
            + "one colour scale for all (red +, blue -)"
    bound = float(np.abs(kernels).max()) or 1.0
    rows, columns = _grid(shown, min(8, shown))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns,
                                                     1.4 * rows + 0.4),
                             squeeze=False)
    image = None
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= shown:
            continue
        if channels == 3:
            ax.imshow(tiles[..., i])
        else:
            image = ax.imshow(tiles[..., 0, i], cmap="RdBu_r", vmin=-bound,
                              vmax=bound)
        ax.set_title(f"filter {i}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6)
    fig.suptitle(f"{path} {tuple(kernels.shape)}: {note}", fontsize=9)
    return {"image": _save(fig, out_dir, "filters.png"), "weight": path,
            "shape": list(kernels.shape), "shown": shown, "scale": note}


# ----------------------------------------------------------------- features


def _layer(subject, options, candidates, default_last):
    if options.layer:
        return next(layer for layer in candidates
                    if layer.name == options.layer)
    return candidates[-1] if default_last else candidates[0]


def features(subject, options, out_dir):
    plt = plots.pyplot()
    layer = _layer(subject, options, m.spatial_layers(subject.model), False)
    maps = m.feature_maps(subject.model, layer, subject.x[:1])[0]
    shown = min(options.n or 16, maps.shape[-1])
    columns = min(8, shown + 1)
    rows, _ = _grid(shown + 1, columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns,
                                                     1.5 * rows + 0.4),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes.flat[0].imshow(_display(subject, subject.x[0]), cmap="gray")
    axes.flat[0].set_title("input", fontsize=8)
    for i in range(shown):
        axes.flat[i + 1].imshow(maps[..., i], cmap="viridis")
        axes.flat[i + 1].set_title(f"channel {i}", fontsize=8)
    fig.suptitle(f"feature maps of {layer.name} {tuple(maps.shape)} "
                 "(each map its own colour scale)", fontsize=9)
    return {"image": _save(fig, out_dir, "features.png"),
            "layer": layer.name, "shape": list(maps.shape), "shown": shown}


# ------------------------------------------------------------- attributions


def _attribution_figure(subject, rows, classes, title, name, out_dir):
    """The inputs above one row of maps per `(label, maps)` in `rows`."""
    plt = plots.pyplot()
    shown = len(rows[0][1])
    aspect = "auto" if subject.kind != "image" else None
    fig, axes = plt.subplots(1 + len(rows), shown,
                             figsize=(1.5 * shown, 1.7 * (1 + len(rows))),
                             squeeze=False)
    for i in range(shown):
        axes[0, i].imshow(_display(subject, subject.x[i]), cmap="gray",
                          aspect=aspect)
        label = subject.class_names[int(classes[i])]
        axes[0, i].set_title(f"class {label}", fontsize=8)
        for r, (row_label, maps) in enumerate(rows, start=1):
            axes[r, i].imshow(_picture(subject, maps[i]), cmap="inferno",
                              aspect=aspect)
            if i == 0 and row_label:
                axes[r, i].set_title(row_label, fontsize=8, loc="left")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _save(fig, out_dir, name)


def _shown(subject, options):
    return min(options.n or 8, len(subject.x))


def _deletion(subject, maps, classes, x, seed):
    return m.deletion_check(subject.model, x, classes, maps, seed=seed,
                            from_logits=subject.from_logits)


# SmoothGrad's copies per map (Smilkov et al. 2017, who use 10 to 50).
SMOOTHGRAD_SAMPLES = 16


def _smoothgrad(subject, options, x, classes):
    """SmoothGrad saliency of the check set, computed once per call of
    `explain` (saliency and guided Grad-CAM both use it)."""
    key = ("smoothgrad", len(x), tuple(classes.tolist()), options.seed)
    if key not in subject.cache:
        subject.cache[key] = m.saliency(
            subject.model, x, classes, subject.from_logits,
            samples=SMOOTHGRAD_SAMPLES, seed=options.seed)
    return subject.cache[key]


def saliency(subject, options, out_dir):
    x = _check_set(subject)
    classes = _targets(subject, options, len(x))
    maps = _smoothgrad(subject, options, x, classes)
    plain = m.saliency(subject.model, x, classes, subject.from_logits)
    shown = _shown(subject, options)
    image = _attribution_figure(
        subject, [("", maps[:shown])], classes,
        "saliency: |d log p(class) / d input|, SmoothGrad "
        f"({SMOOTHGRAD_SAMPLES} noisy copies)", "saliency.png", out_dir)
    sanity_x = x[:min(len(x), 100)]
    return {"image": image, "examples": len(x),
            "class": options.target if options.target >= 0 else "true",
            "smoothgrad_samples": SMOOTHGRAD_SAMPLES,
            "deletion": _deletion(subject, maps, classes, x, options.seed),
            "plain_gradient_deletion": _deletion(subject, plain, classes, x,
                                                 options.seed),
            "sanity": m.sanity_check(subject.model, sanity_x,
                                     classes[:len(sanity_x)],
                                     seed=options.seed,
                                     from_logits=subject.from_logits,
                                     samples=SMOOTHGRAD_SAMPLES)}


def occlusion_patch(subject):
    spatial = subject.x.shape[1:-1]
    patch = max(2, int(round(min(spatial) / 8)))
    return patch, max(1, patch // 2)


def occlusion(subject, options, out_dir):
    x = _check_set(subject)
    classes = _targets(subject, options, len(x))
    patch, stride = occlusion_patch(subject)
    maps = m.occlusion(subject.model, x, classes, patch, stride,
                       from_logits=subject.from_logits)
    shown = _shown(subject, options)
    image = _attribution_figure(
        subject, [("", maps[:shown])], classes,
        f"occlusion: drop of p(class) when a {patch}-wide patch is set to 0",
        "occlusion.png", out_dir)
    return {"image": image, "examples": len(x), "patch": patch,
            "stride": stride,
            "deletion": _deletion(subject, maps, classes, x, options.seed)}


def gradcam(subject, options, out_dir):
    """Grad-CAM of a layer (coarse: the layer's resolution, up-sampled) and
    guided Grad-CAM (Selvaraju et al. 2017: the coarse map times a
    pixel-level gradient map; here the SmoothGrad saliency stands in for
    guided back-propagation, which needs each backend's ReLU gradient
    rewritten)."""
    from dlrecipes.explain.run import _gradcam_layers

    layer = _layer(subject, options, _gradcam_layers(subject.model), True)
    x = _check_set(subject)
    classes = _targets(subject, options, len(x))
    coarse = m.gradcam(subject.model, layer, x, classes, subject.from_logits)
    pixels = _smoothgrad(subject, options, x, classes)
    guided = coarse * pixels
    shown = _shown(subject, options)
    image = _attribution_figure(
        subject, [("Grad-CAM", coarse[:shown]),
                  ("guided", guided[:shown])], classes,
        f"Grad-CAM of {layer.name} {tuple(layer.output.shape[1:3])}, and "
        "guided Grad-CAM (x SmoothGrad saliency)", "gradcam.png", out_dir)
    return {"image": image, "examples": len(x), "layer": layer.name,
            "deletion": _deletion(subject, guided, classes, x, options.seed),
            "coarse_deletion": _deletion(subject, coarse, classes, x,
                                         options.seed)}


# ----------------------------------------------------------------- maximize


def maximize(subject, options, out_dir):
    plt = plots.pyplot()
    classes = ([options.target] if options.target >= 0
               else list(range(subject.num_classes)))
    low, high = float(subject.x.min()), float(subject.x.max())
    images, probs = m.maximize(subject.model, classes, low, high,
                               seed=options.seed,
                               from_logits=subject.from_logits)
    columns = min(10, len(classes))
    rows, _ = _grid(len(classes), columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns,
                                                     1.6 * rows + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (c, p) in enumerate(zip(classes, probs)):
        axes.flat[i].imshow(_display(subject, images[i]), cmap="gray")
        axes.flat[i].set_title(f"{subject.class_names[c]}: p {p:.2f}",
                               fontsize=8)
    fig.suptitle("inputs that maximise each class (gradient ascent, "
                 "jitter, blur, L2)", fontsize=9)
    return {"image": _save(fig, out_dir, "maximize.png"),
            "probabilities": {str(subject.class_names[c]): float(p)
                              for c, p in zip(classes, probs)},
            "classes_above_0.9": int(np.sum(probs > 0.9))}


# -------------------------------------------------------------------- t-SNE


def tsne(subject, options, out_dir):
    from dlrecipes.explain.run import TSNE_EXAMPLES

    plt = plots.pyplot()
    x = subject.x[:TSNE_EXAMPLES]
    y = subject.y[:TSNE_EXAMPLES]
    features = m.penultimate_features(subject.model, x)
    points = m.tsne_map(features, seed=options.seed)
    knn = {"features": m.knn_accuracy(points, y)}
    if subject.kind != "text":
        raw = m.tsne_map(x.reshape(len(x), -1), seed=options.seed)
        knn["raw_inputs"] = m.knn_accuracy(raw, y)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=y, cmap="tab10",
                         s=8)
    handles = scatter.legend_elements()[0]
    ax.legend(handles, [str(subject.class_names[int(c)])
                        for c in np.unique(y)], fontsize=7, loc="best",
              markerscale=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of the last layer's inputs ({features.shape[1]} "
                 f"features, {len(x)} test examples); 5-NN accuracy "
                 f"{knn['features']:.3f}", fontsize=9)
    return {"image": _save(fig, out_dir, "tsne.png"), "examples": len(x),
            "features": int(features.shape[1]), "knn5": knn}
