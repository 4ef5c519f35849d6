"""Autoencoders on images: data, models, classical baselines and the report
of the autoencoder recipe.

- data: `check_autoencoder_config` (every flag, before anything loads),
  `load_autoencoder_data` -> `AutoencoderData` (pixels in [0, 1]; the
  input is the target; with noise, fixed noisy validation and test inputs);
- models: `build_autoencoder` -> a Keras model of two nested models,
  `encoder` (image -> code; for the VAE, `[mean, log_var]`) and `decoder`
  (code -> image): `dense`, `conv` and `vae` (convolutional, with
  `dlrecipes.layers.gaussian_sampling.GaussianSampling`);
- baselines, NumPy only: `PCA` (fitted on the training split, eigen-
  decomposition of the covariance), `LinearDenoiser` (least squares from
  noisy to clean pixels), `logistic_regression` (the linear probe: L-BFGS,
  scikit-learn's objective), the mean image;
- `autoencoder_report`: `encoder.keras`, `decoder.keras`,
  `reconstructions.png`, `latent.png`, `samples.png` (VAE) and the test
  metrics beside the baselines'.

NumPy at import; Keras inside the functions that build or predict
(`dlrecipes.lazy`), TensorFlow only in the tensorflow-datasets loader, so
the embedded digits train under JAX without TensorFlow.
"""

import dataclasses
import math
import os
import warnings

import numpy as np

from dlrecipes.data import images
from dlrecipes.data.description import Data
from dlrecipes.errors import UsageError
from dlrecipes.lazy import keras

MODELS = ("dense", "conv", "vae")
TFDS_DATASETS = ("mnist", "fashion_mnist")
DATASETS = ("digits", *TFDS_DATASETS, "folder:PATH")
# Image shapes known before loading (folders: --image-size, RGB).
SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1),
          "fashion_mnist": (28, 28, 1)}
# The noisy validation and test inputs are drawn once from this seed, the
# same for every run: every model and baseline sees the same test inputs.
NOISE_SEED = 1_000_003
# The linear denoiser fits on copies of the training split with fresh
# noise, at least this many images in all.
DENOISER_EXAMPLES = 10_000
# ... and is skipped for larger images (a (pixels + 1)^2 system).
MAX_DENOISER_DIM = 4096
MAX_COPIES = 16  # noisy copies of a small training split, at most
GRID = 12  # samples.png is a GRID x GRID grid of decoded codes


# ------------------------------------------------------------------ checks


def image_shape(dataset, image_size=0):
    """`(height, width, channels)` of `dataset`'s images, before loading."""
    if images.folder_of(dataset) is not None:
        size = image_size or images.FOLDER_IMAGE_SIZE
        return (size, size, 3)
    return SHAPES[dataset]


def max_stages(height, width):
    """The most stride-2 stages an image allows: halvings that leave whole
    sizes (8 -> 3, 28 -> 2, 32 -> 5)."""
    stages = 0
    while height % 2 == 0 and width % 2 == 0 and height > 1 and width > 1:
        height, width, stages = height // 2, width // 2, stages + 1
    return stages


def check_dataset(dataset, who="the autoencoder"):
    """UsageError unless `dataset` is an image dataset `who` (a recipe)
    takes; a text or series dataset is named as such."""
    from dlrecipes.data import series, text

    kind = ("text" if dataset in text.SOURCES and ":" not in dataset
            else "series" if dataset in series.SERIES
            or dataset.startswith("csv:") else None)
    if kind is not None:
        raise UsageError(
            f"--dataset {dataset!r} is a {kind} dataset; {who} "
            f"takes images: {', '.join(DATASETS)}. Received: "
            f"dataset={dataset!r}")
    images.check_dataset(dataset, ("digits", *TFDS_DATASETS))


def check_autoencoder_config(config):
    """Every cross-field check of an autoencoder config (UsageError): the
    dataset, the image size, the code size against the input dimension,
    the stages against the image size."""
    check_dataset(config.dataset)
    folder = images.folder_of(config.dataset)
    if config.image_size and folder is None:
        raise UsageError("--image-size works with --dataset folder:PATH "
                         f"only. Received: dataset={config.dataset}")
    height, width, channels = image_shape(config.dataset, config.image_size)
    dim = height * width * channels
    if config.code_size >= dim:
        raise UsageError(
            f"--code-size must be below the input dimension, {dim} "
            f"({height}x{width}x{channels} pixels of {config.dataset}). "
            f"Received: code_size={config.code_size}")
    if config.beta != 1.0 and config.model != "vae":
        raise UsageError("--beta works with --model vae only. Received: "
                         f"model={config.model}, beta={config.beta}")
    if config.model in ("conv", "vae"):
        most = max_stages(height, width)
        if config.stages > most:
            raise UsageError(
                f"--stages {config.stages} halves the {height}x{width} "
                f"images of {config.dataset} more often than they allow: "
                f"at most {most} (each stage needs a size divisible by 2; "
                f"{height}x{width} is not divisible by "
                f"2**{config.stages}={2 ** config.stages}). Received: "
                f"stages={config.stages}")


# -------------------------------------------------------------------- data


@dataclasses.dataclass(kw_only=True)
class AutoencoderData(Data):
    """`Data` whose splits are `(input, clean image)`: pixels in [0, 1],
    `(n, h, w, c)` float32. The training input is the clean image (the
    model adds its own noise); with `noise`, the validation and test
    inputs carry fixed noise (`NOISE_SEED`).

    Attributes:
        labels: `(train, val, test)` integer labels (val None without a
            validation split), for the probe and `latent.png`.
        noise: the noise's standard deviation (0: none).
    """

    labels: tuple
    noise: float = 0.0


def add_noise(x, std, rng):
    """`clip(x + N(0, std**2), 0, 1)` as float32."""
    noisy = x + std * rng.standard_normal(x.shape, dtype="float32")
    return np.clip(noisy, 0.0, 1.0).astype("float32")


def load_image_arrays(dataset, *, data_dir="", image_size=0,
                      val_fraction=0.1):
    """`dataset`'s images as arrays in [0, 1] with their labels.

    Digits: the embedded 8x8 digits, the project's split (stratified,
    seed 0: 20% test, then `val_fraction` of the rest). mnist,
    fashion_mnist: tensorflow-datasets (`images.tfds_image_arrays`).
    `folder:PATH`: one sub-folder of images per class
    (`images.load_folder`), resized to `image_size` (0: 32), RGB.

    Returns:
        `Data` whose splits are `(x float32 (n, h, w, c), labels)` and
        `val` None without a validation split.
    """
    folder = images.folder_of(dataset)
    if dataset == "digits":
        data = images.digits_data(val_fraction=val_fraction)
    elif folder is not None:
        data = images.load_folder(
            folder, image_size or images.FOLDER_IMAGE_SIZE, val_fraction)
    else:
        data = images.tfds_image_arrays(dataset, data_dir=data_dir,
                                        val_fraction=val_fraction)
    scale = np.float32(data.scale)
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        if part is not None:
            setattr(data, split, (np.asarray(part[0], "float32") * scale,
                                  np.asarray(part[1]).astype("int32")))
    return data


def load_autoencoder_data(dataset, *, noise=0.0, data_dir="", image_size=0,
                          val_fraction=0.1):
    """The `AutoencoderData` of `dataset` (see `load_image_arrays`)."""
    data = load_image_arrays(dataset, data_dir=data_dir,
                             image_size=image_size,
                             val_fraction=val_fraction)
    rng = np.random.default_rng(NOISE_SEED)

    def pair(part):
        if part is None:
            return None
        x = part[0]
        return (add_noise(x, noise, rng) if noise else x, x)

    test = pair(data.test)  # drawn first: the same whatever val_fraction
    return AutoencoderData(
        train=(data.train[0], data.train[0]), val=pair(data.val), test=test,
        input_shape=tuple(data.train[0].shape[1:]),
        num_classes=data.num_classes, class_names=data.class_names,
        source=data.source,
        labels=(data.train[1], None if data.val is None else data.val[1],
                data.test[1]),
        noise=noise)


# ------------------------------------------------------------------ models


def _hidden_units(width, stages):
    """Dense encoder widths, widest first: 4 * width * 2**(stages - 1 - i)."""
    return [4 * width * 2 ** (stages - 1 - i) for i in range(stages)]


def dense_encoder(shape, code_size, width=32, stages=2, heads=1,
                  kernel_initializer="he_normal", activation="relu"):
    """Image -> `stages` ReLU dense layers -> linear code (`heads` of them:
    2 for a VAE's mean and log-variance). Codes are float32."""
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Flatten()(inputs)
    for units in _hidden_units(width, stages):
        x = keras.layers.Dense(units, activation=activation,
                               kernel_initializer=kernel_initializer)(x)
    return keras.Model(inputs, _code_heads(x, code_size, heads),
                       name="encoder")


def conv_encoder(shape, code_size, width=32, stages=2, heads=1,
                 kernel_initializer="he_normal", activation="relu"):
    """Image -> `stages` stride-2 3x3 ReLU convolutions (width doubling,
    resolution halving) -> flatten -> linear code (`heads` of them)."""
    inputs = keras.Input(shape, name="image")
    x = inputs
    for i in range(stages):
        x = keras.layers.Conv2D(width * 2 ** i, 3, strides=2,
                                padding="same", activation=activation,
                                kernel_initializer=kernel_initializer)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, _code_heads(x, code_size, heads),
                       name="encoder")


def _code_heads(x, code_size, heads):
    names = ("code",) if heads == 1 else ("mean", "log_var")
    outputs = [keras.layers.Dense(code_size, dtype="float32", name=name)(x)
               for name in names]
    return outputs[0] if heads == 1 else outputs


def dense_decoder(shape, code_size, width=32, stages=2,
                  kernel_initializer="he_normal", activation="relu"):
    """Code -> the dense encoder's layers in reverse -> sigmoid pixels."""
    inputs = keras.Input((code_size,), name="code")
    x = inputs
    for units in reversed(_hidden_units(width, stages)):
        x = keras.layers.Dense(units, activation=activation,
                               kernel_initializer=kernel_initializer)(x)
    x = keras.layers.Dense(int(np.prod(shape)), activation="sigmoid",
                           dtype="float32", name="pixels")(x)
    outputs = keras.layers.Reshape(shape, dtype="float32",
                                   name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="decoder")


def conv_decoder(shape, code_size, width=32, stages=2,
                 kernel_initializer="he_normal", activation="relu"):
    """Code -> dense ReLU map at the encoder's last resolution -> `stages`
    stride-2 3x3 transposed convolutions (width halving) -> 3x3 sigmoid
    convolution to the image's channels."""
    height, wide, channels = shape
    factor = 2 ** stages
    deep = width * 2 ** (stages - 1)
    inputs = keras.Input((code_size,), name="code")
    x = keras.layers.Dense(height // factor * (wide // factor) * deep,
                           activation=activation,
                           kernel_initializer=kernel_initializer)(inputs)
    x = keras.layers.Reshape((height // factor, wide // factor, deep))(x)
    for i in reversed(range(stages)):
        x = keras.layers.Conv2DTranspose(
            width * 2 ** i, 3, strides=2, padding="same",
            activation=activation,
            kernel_initializer=kernel_initializer)(x)
    outputs = keras.layers.Conv2D(channels, 3, padding="same",
                                  activation="sigmoid", dtype="float32",
                                  name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="decoder")


def build_autoencoder(model, shape, code_size, *, width=32, stages=2,
                      noise=0.0, beta=1.0, seed=None,
                      kernel_initializer="he_normal", activation="relu"):
    """The autoencoder `model` ("dense", "conv" or "vae") for images of
    `shape`, pixels in [0, 1].

    In training, `noise` > 0 adds Gaussian noise to the input and clips it
    to [0, 1] (a denoising autoencoder; at inference the input passes as
    it is). `activation` is the hidden layers' (the code is linear, the
    pixels sigmoid). The VAE's `GaussianSampling` adds `beta` times the KL
    divergence divided by the number of pixels to the loss, so that with
    the per-pixel binary cross-entropy the total is the negative ELBO per
    pixel (`beta` 1).

    Returns:
        A `keras.Model` image -> image holding the nested models `encoder`
        and `decoder` (`model.get_layer("encoder")`).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}. "
                         f"Received: model={model!r}")
    from dlrecipes.layers.gaussian_sampling import GaussianSampling

    shape = tuple(shape)
    kwargs = dict(width=width, stages=stages,
                  kernel_initializer=kernel_initializer,
                  activation=activation)
    if model == "dense":
        encoder = dense_encoder(shape, code_size, **kwargs)
        decoder = dense_decoder(shape, code_size, **kwargs)
    else:
        encoder = conv_encoder(shape, code_size,
                               heads=2 if model == "vae" else 1, **kwargs)
        decoder = conv_decoder(shape, code_size, **kwargs)
    inputs = keras.Input(shape, name="image")
    x = inputs
    if noise:
        x = keras.layers.GaussianNoise(noise, seed=seed, name="noise")(x)
        x = keras.layers.ReLU(max_value=1.0, name="clip")(x)
    code = encoder(x)
    if model == "vae":
        code = GaussianSampling(kl_weight=beta / int(np.prod(shape)),
                                seed=seed, dtype="float32",
                                name="sampling")(code)
    outputs = decoder(code)
    return keras.Model(inputs, outputs, name=f"{model}_autoencoder")


# --------------------------------------------------------------- baselines


def _flat(x):
    return np.asarray(x, dtype="float64").reshape(len(x), -1)


class PCA:
    """Principal components of the training images (NumPy: eigenvectors of
    the covariance, or the SVD when there are fewer images than pixels),
    largest first, each signed so that its largest entry is positive.

    `encode(x, k)` gives the first `k` coordinates, `decode(codes)` the
    images back, clipped to `bounds` (the pixels' range, [0, 1]; None: not
    clipped), `reconstruct(x, k)` both.
    """

    def __init__(self, x, bounds=(0.0, 1.0)):
        x = _flat(x)
        self.bounds = bounds
        self.mean = x.mean(axis=0)
        centred = x - self.mean
        if len(x) >= x.shape[1]:  # the smaller problem: D x D covariance
            values, vectors = np.linalg.eigh(centred.T @ centred)
            order = np.argsort(values, kind="stable")[::-1]
            singular = np.sqrt(np.maximum(values[order], 0))
            vectors = vectors[:, order]
        else:  # fewer images than pixels: SVD of the images
            _, singular, vt = np.linalg.svd(centred, full_matrices=False)
            vectors = vt.T
        signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0),
                                np.arange(vectors.shape[1])])
        self.components = vectors * np.where(signs == 0, 1, signs)
        self.variances = singular ** 2 / len(x)

    def encode(self, x, k):
        return (_flat(x) - self.mean) @ self.components[:, :k]

    def decode(self, codes):
        k = codes.shape[1]
        images_ = codes @ self.components[:, :k].T + self.mean
        return images_ if self.bounds is None else np.clip(images_,
                                                           *self.bounds)

    def reconstruct(self, x, k):
        return self.decode(self.encode(x, k))

    def mse(self, x, target, k):
        """MSE per pixel of the rank-`k` reconstruction of `x` against
        `target`."""
        return float(np.mean((self.reconstruct(x, k) - _flat(target)) ** 2))

    def best_mse(self, x, target, candidates=5):
        """`(k, mse)` of the rank `k` (0: the mean image) whose
        reconstruction of `x` is closest to `target`: the `candidates`
        best ranks before clipping (every rank at once, in closed form),
        then the best of them clipped."""
        centred = _flat(target) - self.mean
        r = (_flat(x) - self.mean) @ self.components
        t = centred @ self.components
        # |V_k V_k' r - t|^2 = sum_{j<=k} (r_j^2 - 2 r_j t_j) + |t|^2
        gain = np.cumsum(np.mean(r ** 2 - 2 * r * t, axis=0))
        per_rank = np.concatenate([[0.0], gain])
        ranks = np.argsort(per_rank, kind="stable")[:candidates]
        found = [(self.mse(x, target, int(k)), int(k)) for k in ranks]
        mse, k = min(found)
        return k, mse


class LinearDenoiser:
    """The least-squares affine map from noisy to clean pixels, fitted on
    copies of the training images with fresh noise (`clip(x + N(0,
    std**2), 0, 1)`, at least `examples` images in all, at most
    `MAX_COPIES` copies)."""

    def __init__(self, x, std, seed=NOISE_SEED + 1,
                 examples=DENOISER_EXAMPLES, chunk=4096):
        x = np.asarray(x, dtype="float32")
        rng = np.random.default_rng(seed)
        dim = int(np.prod(x.shape[1:]))
        gram = np.zeros((dim + 1, dim + 1))
        cross = np.zeros((dim + 1, dim))
        copies = min(MAX_COPIES, max(1, math.ceil(examples / len(x))))
        for _ in range(copies):
            for i in range(0, len(x), chunk):
                clean = _flat(x[i:i + chunk])
                noisy = _flat(add_noise(x[i:i + chunk], std, rng))
                noisy = np.hstack([noisy, np.ones((len(noisy), 1))])
                gram += noisy.T @ noisy
                cross += noisy.T @ clean
        # A ridge of 1e-9 of the mean diagonal keeps the system regular
        # (a pixel that is constant in every image) at no visible cost.
        ridge = 1e-9 * np.trace(gram) / len(gram)
        self.weights = np.linalg.solve(gram + ridge * np.eye(len(gram)),
                                       cross)

    def predict(self, x):
        x = _flat(x)
        return x @ self.weights[:-1] + self.weights[-1]

    def mse(self, x, target):
        return float(np.mean((self.predict(x) - _flat(target)) ** 2))


def logistic_regression(x, y, num_classes, l2=1.0, max_iter=1000,
                        tol=1e-6):
    """Multinomial logistic regression, NumPy only: minimizes the summed
    cross-entropy plus `l2 / 2 * |W|^2` (the bias unpenalized), which is
    scikit-learn's `LogisticRegression(C=1 / l2)`, with L-BFGS.

    Returns:
        `predict(x) -> labels`.
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y).astype(int)
    n, d = x.shape
    k = num_classes
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1

    def objective(theta):
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        log_z = np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
        log_p = logits - log_z
        loss = -np.sum(onehot * log_p) + 0.5 * l2 * np.sum(w ** 2)
        residual = np.exp(log_p) - onehot
        grad = np.concatenate([(x.T @ residual + l2 * w).ravel(),
                               residual.sum(axis=0)])
        return loss / n, grad / n

    theta = _lbfgs(objective, np.zeros(d * k + k), max_iter, tol)
    w, b = theta[:d * k].reshape(d, k), theta[d * k:]
    return lambda z: np.argmax(np.asarray(z, "float64") @ w + b, axis=1)


def _lbfgs(objective, theta, max_iter, tol, memory=10):
    """Minimizes a smooth convex `objective(theta) -> (value, gradient)`
    by L-BFGS with a backtracking (Armijo) line search; deterministic."""
    value, grad = objective(theta)
    steps, changes = [], []
    for _ in range(max_iter):
        if np.max(np.abs(grad)) < tol:
            break
        # Two-loop recursion: direction = -H grad.
        q = grad.copy()
        alphas = []
        for s, g in reversed(list(zip(steps, changes))):
            a = (s @ q) / (g @ s)
            alphas.append(a)
            q -= a * g
        if steps:
            q *= (steps[-1] @ changes[-1]) / (changes[-1] @ changes[-1])
        for (s, g), a in zip(zip(steps, changes), reversed(alphas)):
            q += s * (a - (g @ q) / (g @ s))
        direction = -q
        slope = grad @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps, changes, direction = [], [], -grad
            slope = grad @ direction
        step = 1.0
        while True:
            new = theta + step * direction
            new_value, new_grad = objective(new)
            if new_value <= value + 1e-4 * step * slope or step < 1e-10:
                break
            step /= 2
        s, g = new - theta, new_grad - grad
        if g @ s > 1e-12:
            steps.append(s)
            changes.append(g)
            if len(steps) > memory:
                steps.pop(0)
                changes.pop(0)
        done = abs(value - new_value) <= tol * max(1.0, abs(value))
        theta, value, grad = new, new_value, new_grad
        if done:
            break
    return theta


def probe_accuracy(train_codes, train_labels, test_codes, test_labels,
                   num_classes):
    """Test accuracy of the linear probe: logistic regression (C=1) on
    codes standardized with the training codes' mean and deviation."""
    train_codes = np.asarray(train_codes, "float64").reshape(
        len(train_codes), -1)
    test_codes = np.asarray(test_codes, "float64").reshape(
        len(test_codes), -1)
    mean = train_codes.mean(axis=0)
    std = train_codes.std(axis=0) + 1e-8
    predict = logistic_regression((train_codes - mean) / std, train_labels,
                                  num_classes)
    pred = predict((test_codes - mean) / std)
    return float(np.mean(pred == np.asarray(test_labels).astype(int)))


# ------------------------------------------------------------------ report


def _predict(model, x, batch_size=256):
    """`model.predict` in float32, the input padded to whole batches (one
    batch shape: no retracing of the predict function)."""
    x = np.asarray(x)
    n = len(x)
    pad = -n % batch_size
    if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, (list, tuple)):
        return [np.asarray(o[:n], "float32") for o in out]
    return np.asarray(out[:n], "float32")


def vae_elbo(encoder, decoder, x, target, samples=4, seed=0):
    """The test ELBO of a VAE per image, in nats, with its two terms:
    `(elbo, log_likelihood, kl)`, where the log-likelihood is the Bernoulli
    one of the decoder's pixels (minus the binary cross-entropy summed over
    pixels) averaged over `samples` codes drawn from the encoder's
    posterior, and `kl` is `KL(q(z|x) || N(0, I))` in closed form."""
    mean, log_var = _predict(encoder, x)
    mean, log_var = mean.astype("float64"), log_var.astype("float64")
    kl = -0.5 * np.sum(1 + log_var - mean ** 2 - np.exp(log_var), axis=1)
    rng = np.random.default_rng(seed)
    flat = _flat(target)
    likelihood = np.zeros(len(x))
    for _ in range(samples):
        z = mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape)
        p = np.clip(_flat(_predict(decoder, z.astype("float32"))),
                    1e-7, 1 - 1e-7)
        likelihood += np.sum(flat * np.log(p) + (1 - flat) * np.log1p(-p),
                             axis=1) / samples
    return (float(np.mean(likelihood - kl)), float(np.mean(likelihood)),
            float(np.mean(kl)))


def save_submodel(model, path):
    """Save `model` to `path` atomically (write, then rename)."""
    from dlrecipes.training.callbacks import writing

    tmp = os.path.join(os.path.dirname(path),
                       ".tmp-" + os.path.basename(path))
    with writing(path, temporary=tmp):
        model.save(tmp)
        os.replace(tmp, path)


def autoencoder_report(model, data, run_dir, *, model_kind, code_size,
                       seed=0):
    """What an autoencoder run adds: `encoder.keras`, `decoder.keras`,
    `reconstructions.png`, `latent.png`, `samples.png` (VAE), and the
    test metrics beside their classical baselines.

    Returns:
        `{"test_pca_mse": ..., "test_mean_image_mse": ...,
        "test_probe_accuracy": ..., "test_pca_probe_accuracy": ...}`, with
        noise `test_noisy_mse`, `test_linear_denoiser_mse`,
        `test_best_pca_mse`, and for the VAE `test_elbo`,
        `test_elbo_log_likelihood`, `test_elbo_kl` (nats per image).
    """
    encoder = model.get_layer("encoder")
    decoder = model.get_layer("decoder")
    save_submodel(encoder, os.path.join(run_dir, "encoder.keras"))
    save_submodel(decoder, os.path.join(run_dir, "decoder.keras"))
    train = data.train[1]  # clean training images
    x_test, clean_test = data.test
    y_train, _, y_test = data.labels
    pca = PCA(train)
    metrics = {
        "test_pca_mse": pca.mse(x_test, clean_test, code_size),
        "test_mean_image_mse": float(np.mean(
            (_flat(clean_test) - pca.mean) ** 2)),
    }
    if data.noise:
        metrics["test_noisy_mse"] = float(np.mean(
            (_flat(x_test) - _flat(clean_test)) ** 2))
        metrics["test_best_pca_mse"] = pca.best_mse(x_test, clean_test)[1]
        dim = int(np.prod(data.input_shape))
        if dim <= MAX_DENOISER_DIM:
            metrics["test_linear_denoiser_mse"] = LinearDenoiser(
                train, data.noise).mse(x_test, clean_test)
        else:
            warnings.warn(f"no linear denoiser baseline for {dim} pixels "
                          f"(at most {MAX_DENOISER_DIM}: its least squares "
                          "grow with the square)", stacklevel=2)
    codes_train = _codes(encoder, train, model_kind)
    codes_test = _codes(encoder, x_test, model_kind)
    num_classes = data.num_classes
    metrics["test_probe_accuracy"] = probe_accuracy(
        codes_train, y_train, codes_test, y_test, num_classes)
    metrics["test_pca_probe_accuracy"] = probe_accuracy(
        pca.encode(train, code_size), y_train,
        pca.encode(x_test, code_size), y_test, num_classes)
    if model_kind == "vae":
        elbo, likelihood, kl = vae_elbo(encoder, decoder, x_test, clean_test,
                                        seed=seed)
        metrics.update(test_elbo=elbo, test_elbo_log_likelihood=likelihood,
                       test_elbo_kl=kl)
    outputs = _predict(model, x_test)
    reconstructions_figure(
        clean_test, x_test if data.noise else None, outputs,
        pca.reconstruct(x_test, code_size).reshape(clean_test.shape),
        y_test, data.class_names, code_size,
        os.path.join(run_dir, "reconstructions.png"))
    latent_figure(codes_test, y_test, data.class_names,
                  os.path.join(run_dir, "latent.png"))
    if model_kind == "vae":
        samples_figure(decoder, code_size, clean_test.shape[1:],
                       os.path.join(run_dir, "samples.png"), seed=seed)
    return metrics


def _codes(encoder, x, model_kind):
    codes = _predict(encoder, x)
    return codes[0] if model_kind == "vae" else codes  # the VAE's mean


def decode_prior_samples(decoder, code_size, count, seed=0):
    """`count` images decoded from codes drawn from `N(0, I)`."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((count, code_size)).astype("float32")
    return _predict(decoder, z)


# ----------------------------------------------------------------- figures


def _show(ax, image):
    image = np.clip(np.asarray(image, dtype="float32"), 0, 1)
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
              cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def example_indices(labels, count=10):
    """Up to `count` test examples: the first of each class in class order,
    then the next ones, so a figure shows every class it can."""
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    taken = set(firsts)
    rest = [i for i in range(min(len(labels), 2 * count)) if i not in taken]
    return (firsts + rest)[:count]


def mosaic(tiles, gap=1, fill=0.5):
    """Images `(rows, cols, h, w, c)` as one `(rows * (h + gap) - gap,
    cols * (w + gap) - gap, c)` canvas, `gap` pixels of `fill` between."""
    rows, cols, h, w, c = tiles.shape
    canvas = np.full((rows, h + gap, cols, w + gap, c), fill, "float32")
    canvas[:, :h, :, :w] = np.transpose(tiles, (0, 2, 1, 3, 4))
    canvas = canvas.reshape(rows * (h + gap), cols * (w + gap), c)
    return canvas[:canvas.shape[0] - gap, :canvas.shape[1] - gap]


def reconstructions_figure(clean, noisy, outputs, pca, labels, class_names,
                           code_size, path, count=10):
    """`reconstructions.png`: rows input, noisy input (with noise), the
    autoencoder's output and PCA's at the same code size; one column per
    test example (the first of each class)."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    chosen = example_indices(labels, count)
    rows = [("input", clean)] + ([("noisy input", noisy)]
                                 if noisy is not None else [])
    rows += [("output", outputs), (f"PCA ({code_size})", pca)]
    tiles = np.stack([np.asarray(images_, "float32")[chosen]
                      for _, images_ in rows])
    h, w = tiles.shape[2:4]
    fig, ax = plt.subplots(figsize=(1.0 * len(chosen) + 1,
                                    1.0 * len(rows) + 0.4))
    _show(ax, mosaic(tiles))
    ax.set_yticks([(h + 1) * r + h / 2 for r in range(len(rows))],
                  [title for title, _ in rows], fontsize=8)
    if class_names is not None:
        ax.set_xticks([(w + 1) * c + w / 2 for c in range(len(chosen))],
                      [str(class_names[labels[i]]) for i in chosen],
                      fontsize=8)
        ax.xaxis.tick_top()
    ax.tick_params(length=0)
    fig.tight_layout()
    plots.save_figure(fig, path)


def latent_figure(codes, labels, class_names, path):
    """`latent.png`: the test codes coloured by label; codes of more than
    two dimensions projected on their first two principal components."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    codes = np.asarray(codes, dtype="float64").reshape(len(codes), -1)
    if codes.shape[1] > 2:
        codes = PCA(codes, bounds=None).encode(codes, 2)
        xlabel, ylabel = "principal component 1", "principal component 2"
    elif codes.shape[1] == 2:
        xlabel, ylabel = "code 1", "code 2"
    else:
        codes = np.hstack([codes, np.zeros_like(codes)])
        xlabel, ylabel = "code", ""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10",
                        s=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if class_names is not None and len(class_names) <= 20:
        handles, _ = points.legend_elements(num=None)
        names = [str(class_names[int(v)]) for v in np.unique(labels)]
        ax.legend(handles, names, fontsize=7,
                  loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    plots.save_figure(fig, path)


def samples_figure(decoder, code_size, shape, path, seed=0, grid=GRID):
    """`samples.png`: decoded codes over the latent space; a regular grid
    over [-2, 2]^2 for two dimensions, else draws from the prior."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    if code_size == 2:
        values = np.linspace(-2, 2, grid, dtype="float32")
        z = np.array([[a, b] for b in values[::-1] for a in values],
                     dtype="float32")
        decoded = _predict(decoder, z)
        title = "decoded codes on a grid over [-2, 2]^2"
    else:
        decoded = decode_prior_samples(decoder, code_size, grid * grid, seed)
        title = "decoded codes drawn from N(0, I)"
    canvas = mosaic(decoded.reshape(grid, grid, *shape))
    fig, ax = plt.subplots(figsize=(6, 6))
    _show(ax, canvas)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    plots.save_figure(fig, path)


__all__ = ["MODELS", "DATASETS", "TFDS_DATASETS", "AutoencoderData",
           "check_autoencoder_config", "load_autoencoder_data",
           "build_autoencoder", "PCA", "LinearDenoiser",
           "logistic_regression", "probe_accuracy", "vae_elbo",
           "autoencoder_report"]
