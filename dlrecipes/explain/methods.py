"""What a trained classifier learned, on any Keras model: the numerics of
`dlrecipes explain`, backend-neutral (TensorFlow, JAX, PyTorch).

Every function takes a Keras model and NumPy inputs in the model's own
input format (for the image recipes: raw pixels; the model rescales them)
and returns NumPy arrays. Gradients with respect to the inputs go through
`input_gradient`, the one place that knows the backends.

- `first_conv_kernels`: the first 2-D convolution's kernels (filters).
- `feature_maps`: a layer's activations for one input.
- `saliency`: |d log p(class) / d input| (Simonyan et al. 2014).
- `occlusion`: the drop of p(class) when a patch is blanked (Zeiler and
  Fergus 2014).
- `gradcam`: class-weighted feature maps of a convolutional layer
  (Selvaraju et al. 2017), up-sampled to the input.
- `maximize`: an input that maximises a class score, by gradient ascent
  with jitter, blur and an L2 penalty.
- `penultimate_features`, `tsne_map`, `knn_accuracy`: t-SNE of the
  features the classifier reads, scored by leave-one-out k-NN.
- `deletion_check`, `sanity_check`: do the maps mean something (blanking
  the top-ranked pixels hurts more than random ones; a re-initialised
  model gives other maps, Adebayo et al. 2018).
"""

import numpy as np

import keras

# ----------------------------------------------------------------- gradients


def gradient_function(fn):
    """`x -> d fn(x) / dx` as NumPy, for a scalar `fn`.

    `fn` takes a backend tensor and returns a scalar tensor computed with
    Keras layers and `keras.ops`. Examples in a batch are independent (the
    model in inference mode), so the gradient of a sum over the batch is
    every example's own gradient. Under JAX the gradient is compiled once
    (`jax.jit`) and reused for every call with inputs of one shape.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def grad(x):
            t = tf.convert_to_tensor(np.asarray(x, "float32"))
            with tf.GradientTape() as tape:
                tape.watch(t)
                y = fn(t)
            return tape.gradient(y, t).numpy()

        return grad
    if backend == "jax":
        import jax

        compiled = jax.jit(jax.grad(fn))
        return lambda x: np.asarray(compiled(np.asarray(x, "float32")))
    if backend == "torch":
        import torch

        def grad(x):
            t = torch.tensor(np.asarray(x, "float32"), requires_grad=True)
            fn(t).backward()
            return t.grad.detach().cpu().numpy()

        return grad
    raise ValueError(f"No input gradients for the {backend!r} backend")


def input_gradient(fn, x):
    """The gradient of the scalar `fn(x)` with respect to `x`, as NumPy
    (see `gradient_function`)."""
    return gradient_function(fn)(x)


def _picked_log_prob(out, classes, from_logits):
    """Sum over the batch of log p(classes[i]) from model outputs `out`
    (probabilities, or logits when `from_logits`)."""
    if from_logits:
        out = keras.ops.log_softmax(out, axis=-1)
    else:
        out = keras.ops.log(keras.ops.clip(out, 1e-12, 1.0))
    picked = keras.ops.take_along_axis(
        out, keras.ops.convert_to_tensor(
            np.asarray(classes, "int32")[:, None]), axis=-1)
    return keras.ops.sum(picked)


def _log_prob(model, x, classes, from_logits=False):
    """Sum over the batch of log p(classes[i] | x[i])."""
    return _picked_log_prob(model(x, training=False), classes, from_logits)


def predict_proba(model, x, from_logits=False, batch_size=256):
    """The model's class probabilities as NumPy (a softmax of its outputs
    when they are logits)."""
    out = np.asarray(model.predict(np.asarray(x), batch_size=batch_size,
                                   verbose=0), dtype="float64")
    if from_logits:
        out = np.exp(out - out.max(axis=-1, keepdims=True))
        out /= out.sum(axis=-1, keepdims=True)
    return out


def outputs_logits(model, x):
    """Whether the model's outputs are logits rather than probabilities
    (rows of non-negative numbers summing to 1), judged on inputs `x`."""
    out = np.asarray(model.predict(np.asarray(x[:16]), verbose=0),
                     dtype="float64")
    probabilities = (out.min() >= 0 and out.max() <= 1
                     and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))
    return not probabilities


# ------------------------------------------------------------ model anatomy


def chain_layers(model):
    """The model's top-level layers when they form one chain (each layer
    reads the previous one's output), else None. Grad-CAM splits a chain
    at a layer; other graphs are refused."""
    layers = list(model.layers)
    for prev, layer in zip(layers, layers[1:]):
        try:
            if layer.input is not prev.output:
                return None
        except (AttributeError, ValueError):
            return None
    return layers


def spatial_layers(model):
    """Top-level layers whose output is a feature map `(batch, height,
    width, channels)` (not the input itself nor a rescaling/augmentation of
    it: those keep the input's channel count and size)."""
    shape = tuple(model.inputs[0].shape)
    found = []
    for layer in model.layers[1:]:
        try:
            out = tuple(layer.output.shape)
        except (AttributeError, ValueError):
            continue
        if len(out) == 4 and out[1:] != shape[1:]:
            found.append(layer)
    return found


def first_conv_kernels(model):
    """`(path, kernels)` of the first 2-D convolution kernel among the
    model's weights (`(height, width, in_channels, filters)`), or None."""
    for weight in model.weights:
        if len(weight.shape) == 4 and weight.path.endswith("kernel"):
            return weight.path, keras.ops.convert_to_numpy(weight)
    return None


def feature_maps(model, layer, x):
    """`layer`'s output for the inputs `x`, as NumPy."""
    sub = keras.Model(model.inputs, layer.output)
    return np.asarray(sub.predict(np.asarray(x), verbose=0))


def penultimate_features(model, x, batch_size=256):
    """The input of the model's last layer (the classifier's features),
    flattened: `(examples, features)`."""
    sub = keras.Model(model.inputs, model.layers[-1].input)
    out = sub.predict(np.asarray(x), batch_size=batch_size, verbose=0)
    return np.asarray(out).reshape(len(out), -1)


# -------------------------------------------------------------- attribution


def saliency(model, x, classes, from_logits=False, samples=0, noise=0.15,
             seed=0):
    """|d log p(class) / d x|, the maximum over channels: `(n, *spatial)`.

    With `samples` > 0, SmoothGrad (Smilkov et al. 2017): the map averaged
    over `samples` copies of `x` with Gaussian noise of standard deviation
    `noise` times the inputs' range, which removes most of the gradient's
    pixel-to-pixel noise.
    """
    x = np.asarray(x, "float32")
    grad_of = gradient_function(
        lambda t: _log_prob(model, t, classes, from_logits))
    if samples:
        rng = np.random.default_rng(seed)
        sigma = noise * float(x.max() - x.min() or 1.0)
        grad = sum(np.abs(grad_of(
            x + rng.normal(0.0, sigma, x.shape).astype("float32")))
            for _ in range(samples)) / samples
    else:
        grad = np.abs(grad_of(x))
    return grad.max(axis=-1) if grad.ndim > 2 else grad


def occlusion(model, x, classes, patch, stride=1, fill=0.0,
              from_logits=False):
    """The drop of p(class) when a `patch` x `patch` square (a run of
    `patch` steps for sequences) is set to `fill`, averaged over the
    patches covering each position: `(n, *spatial)`."""
    x = np.asarray(x, "float32")
    n, spatial = len(x), x.shape[1:-1]
    rows = np.arange(n)
    base = predict_proba(model, x, from_logits)[rows, classes]
    if len(spatial) == 1:
        starts = [(s,) for s in range(0, max(1, spatial[0] - patch + 1),
                                      stride)]
    else:
        starts = [(r, c)
                  for r in range(0, max(1, spatial[0] - patch + 1), stride)
                  for c in range(0, max(1, spatial[1] - patch + 1), stride)]
    drop = np.zeros((n, *spatial))
    count = np.zeros(spatial)
    batch = []
    for start in starts:
        window = tuple(slice(s, s + patch) for s in start)
        blanked = x.copy()
        blanked[(slice(None), *window)] = fill
        batch.append((window, blanked))
    probs = predict_proba(model, np.concatenate([b for _, b in batch]),
                          from_logits)
    for i, (window, _) in enumerate(batch):
        p = probs[i * n:(i + 1) * n][rows, classes]
        drop[(slice(None), *window)] += (base - p).reshape(
            (n,) + (1,) * len(spatial))
        count[window] += 1
    return drop / np.maximum(count, 1)


def gradcam(model, layer, x, classes, from_logits=False):
    """Grad-CAM maps of `layer` (a top-level layer of a chain model with
    a `(batch, h, w, channels)` output), up-sampled to the input size and
    scaled to [0, 1] per example: `(n, height, width)`."""
    layers = chain_layers(model)
    if layers is None or layer not in layers:
        raise ValueError(
            "Grad-CAM needs a model whose top-level layers form a chain, "
            f"and one of them. Received: layer={layer.name!r}")
    head = layers[layers.index(layer) + 1:]
    maps = feature_maps(model, layer, x)

    def score(a):
        out = a
        for later in head:
            out = later(out, training=False)
        return _picked_log_prob(out, classes, from_logits)

    grads = input_gradient(score, maps)
    weights = grads.mean(axis=(1, 2), keepdims=True)  # (n, 1, 1, channels)
    cam = np.maximum((weights * maps).sum(axis=-1), 0.0)  # (n, h, w)
    size = tuple(model.inputs[0].shape[1:3])
    cam = np.asarray(keras.ops.image.resize(
        cam[..., None].astype("float32"), size,
        interpolation="bilinear"))[..., 0]
    peak = cam.reshape(len(cam), -1).max(axis=1)
    return cam / np.where(peak > 0, peak, 1.0)[:, None, None]


# ---------------------------------------------------------------- maximize


def _blur(image):
    """A 3x3 binomial blur of `(h, w, channels)` (edges replicated)."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    kernel = np.array([1.0, 2.0, 1.0]) / 4.0
    rows = sum(kernel[i] * padded[i:i + image.shape[0]] for i in range(3))
    return sum(kernel[j] * rows[:, j:j + image.shape[1]] for j in range(3))


def maximize(model, classes, low, high, steps=200, learning_rate=None,
             l2=1e-3, jitter=1, blur_every=10, seed=0, from_logits=False):
    """One input per class that the model assigns to that class: gradient
    ascent on log p(class) from the middle grey, with random jitter (a
    shift of up to `jitter` pixels each step), a blur every `blur_every`
    steps, an L2 penalty towards grey and clipping to `[low, high]` (the
    model's raw input range). Returns `(images, probabilities)`, the
    latter the model's p(class) for each image."""
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    classes = np.asarray(classes)
    mid = (low + high) / 2.0
    span = float(high - low)
    lr = learning_rate if learning_rate is not None else 0.05 * span
    x = np.full((len(classes),) + shape, mid, "float32")
    x += rng.normal(0.0, 0.01 * span, x.shape).astype("float32")
    grad_of = gradient_function(
        lambda t: _log_prob(model, t, classes, from_logits))
    for step in range(steps):
        dy, dx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
        shifted = np.roll(x, (dy, dx), axis=(1, 2))
        grad = grad_of(shifted)
        grad = np.roll(grad, (-dy, -dx), axis=(1, 2))
        # Normalized steps: the same progress whatever the gradient scale.
        norm = np.sqrt((grad ** 2).reshape(len(x), -1).mean(axis=1))
        grad /= np.maximum(norm, 1e-12).reshape((-1,) + (1,) * len(shape))
        x += lr * grad - l2 * (x - mid)
        if blur_every and (step + 1) % blur_every == 0 \
                and step + 1 < steps:
            x = np.stack([_blur(image) for image in x]).astype("float32")
        x = np.clip(x, low, high)
    probs = predict_proba(model, x, from_logits)[np.arange(len(x)), classes]
    return x, probs


# -------------------------------------------------------------------- t-SNE


def tsne_map(features, seed=0, perplexity=30.0):
    """A 2-D t-SNE map of `features` (`(n, d)`; scikit-learn), after
    standardizing each feature."""
    from sklearn.manifold import TSNE

    features = np.asarray(features, "float64")
    std = features.std(axis=0)
    features = (features - features.mean(axis=0)) / np.where(std > 0, std, 1)
    perplexity = min(perplexity, max(2.0, (len(features) - 1) / 3.0))
    return TSNE(2, perplexity=perplexity, init="pca",
                random_state=seed).fit_transform(features)


def knn_accuracy(points, labels, k=5):
    """Leave-one-out `k`-nearest-neighbour accuracy of `labels` in
    `points` (each point votes with its `k` nearest others)."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    k = min(k, len(points) - 1)
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(
        points)
    votes = labels[index[:, 1:]]  # (n, k): the nearest others
    predicted = np.array([np.bincount(v).argmax() for v in votes])
    return float((predicted == labels).mean())


# ------------------------------------------------------------------ checks


def deletion_check(model, x, classes, maps, fraction=0.1, fill=0.0,
                   repeats=5, seed=0, from_logits=False):
    """Blank the top `fraction` of each input's positions by `maps` (set
    them to `fill`, every channel) and, `repeats` times, a random
    `fraction`: the mean drop of p(class) for each. A map that means
    something hurts more than chance: `ratio` = top / random."""
    x = np.asarray(x, "float32")
    rows = np.arange(len(x))
    base = predict_proba(model, x, from_logits)[rows, classes]
    flat = np.asarray(maps).reshape(len(x), -1)
    count = max(1, int(round(fraction * flat.shape[1])))

    def drop(order):
        blanked = x.copy().reshape(len(x), flat.shape[1], -1)
        blanked[rows[:, None], order[:, :count]] = fill
        p = predict_proba(model, blanked.reshape(x.shape),
                          from_logits)[rows, classes]
        return float((base - p).mean())

    top = drop(np.argsort(-flat, axis=1, kind="stable"))
    rng = np.random.default_rng(seed)
    random = float(np.mean([drop(np.argsort(rng.random(flat.shape), axis=1))
                            for _ in range(repeats)]))
    return {"fraction": fraction, "top_drop": top, "random_drop": random,
            "ratio": top / random if random > 0 else float("inf")}


def reinitialized(model, seed=0):
    """The same architecture with fresh weights (its initializers)."""
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def rank_correlation(a, b):
    """Spearman's rank correlation of two maps, per example, averaged."""
    from scipy.stats import spearmanr

    a = np.asarray(a).reshape(len(a), -1)
    b = np.asarray(b).reshape(len(b), -1)
    values = [spearmanr(u, v).statistic for u, v in zip(a, b)]
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else 0.0


def sanity_check(model, x, classes, seed=0, from_logits=False, samples=0):
    """Adebayo et al.'s model-randomization test: the rank correlation
    between the saliency maps (`saliency(..., samples)`) of `model` and of
    the same architecture re-initialised. Maps that explain the trained
    weights differ (low correlation); maps that only show the input's
    edges do not."""
    trained = saliency(model, x, classes, from_logits, samples, seed=seed)
    fresh = saliency(reinitialized(model, seed), x, classes, from_logits,
                     samples, seed=seed)
    return {"rank_correlation": rank_correlation(trained, fresh)}
