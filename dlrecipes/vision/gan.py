"""DCGAN builders, the scores of a generator and the GAN recipe's report.

- `build_generator`, `build_discriminator`: DCGAN-style networks
  (Radford et al. 2016) from `dlrecipes.layers` (`UpsamplingBlock`,
  `ConvNormAct`), for any image size that `stages` halvings divide;
  conditional versions take the label (an embedding concatenated to the
  code; a projection discriminator, Miyato & Koyama 2018).
- `FeatureSpace` (PCA of the training images), `frechet_distance` and
  `classical_baselines`: the Fréchet distance between generated and real
  images in a fixed feature space, with the distances of a Gaussian
  mixture, of independent per-pixel Gaussians and of the training images
  themselves beside it; `coverage` (the classes a pixel classifier sees
  among the samples).
- `GANMonitor`: per epoch, the Fréchet distance of fresh samples to the
  validation images (`val_fd`, the run's objective) and
  `samples/epoch-NNNN.png` from a fixed latent grid.
- `gan_report`: `generator.keras`, `discriminator.keras`, `samples.png`
  and the scores in `metrics.json`.

NumPy only for the scores (no scikit-learn: a GPU machine may have none;
the Gaussian mixture baseline uses it where installed).
"""

import dataclasses
import os

import numpy as np

from dlrecipes.data import images
from dlrecipes.data.description import Data
from dlrecipes.errors import UsageError
from dlrecipes.lazy import dl_layers, keras
from dlrecipes.vision import autoencoders as ae

DATASETS = ae.DATASETS
TFDS_DATASETS = ae.TFDS_DATASETS
D_NORMS = ("spectral", "batch", "layer", "none")
FEATURES = 16        # PCA components of the feature space
SAMPLES = 1000       # generated images per score
GRID = 10            # samples.png: GRID x GRID images
MIXTURE = 10         # components of the Gaussian mixture baseline


# ------------------------------------------------------------------ checks


def reachable_sizes(stages, limit=64):
    """Image sizes up to `limit` that `stages` doublings reach."""
    step = 2 ** stages
    return list(range(step, limit + 1, step))


def check_image_size(shape, stages):
    """Raise `UsageError` when `stages` halvings do not divide the image."""
    h, w = shape[:2]
    step = 2 ** stages
    if h % step or w % step:
        sizes = ", ".join(map(str, reachable_sizes(stages, max(h, w, 32))))
        raise UsageError(
            f"the generator's {stages} up-sampling stages (x{step}) cannot "
            f"make {h}x{w} images: each side must be a multiple of {step} "
            f"({sizes} ...); choose --stages (now {stages}) or, for a "
            "folder, --image-size")


def check_gan_config(config):
    """Cross-field checks of the GAN recipe's config, before any data."""
    ae.check_dataset(config.dataset, "the GAN")
    if config.image_size and images.folder_of(config.dataset) is None:
        raise UsageError("--image-size works with --dataset folder:PATH "
                         f"only. Received: dataset={config.dataset}")
    check_image_size(ae.image_shape(config.dataset, config.image_size),
                     config.stages)
    if config.ema and not 0 < config.ema < 1:
        raise UsageError("--ema must be in (0, 1) (0: no average). "
                         f"Received: ema={config.ema}")
    if config.val_fraction == 0:
        raise UsageError(
            "--val-fraction must be > 0: the run's objective (val_fd, what "
            "--checkpoint best keeps and a search minimises) is the Fréchet "
            "distance of samples to validation images; a GAN's losses do "
            "not rank its epochs. Received: val_fraction=0")


# -------------------------------------------------------------------- data


@dataclasses.dataclass(kw_only=True)
class GANData(Data):
    """`Data` of the GAN recipe: `train` and `test` are `(images, labels)`
    (pixels in [0, 1]); `val` is None (`fit` has nothing to validate) and
    the validation images are `fd_val`, which the per-epoch Fréchet
    distance compares samples with.

    Attributes:
        fd_val: validation images (the project's split).
        space: the `FeatureSpace` (PCA of the training images).
    """

    fd_val: object
    space: object


def load_gan_data(dataset, *, data_dir="", image_size=0, val_fraction=0.1):
    """`GANData` of an image dataset (see `autoencoders.load_image_arrays`).
    """
    data = ae.load_image_arrays(dataset, data_dir=data_dir,
                                image_size=image_size,
                                val_fraction=val_fraction)
    if data.val is None:
        raise UsageError("the GAN's objective is the Fréchet distance to "
                         "validation images: --val-fraction must be > 0")
    return GANData(
        train=data.train, val=None, test=data.test,
        input_shape=tuple(data.train[0].shape[1:]),
        num_classes=data.num_classes, class_names=data.class_names,
        source=data.source, fd_val=data.val[0],
        space=FeatureSpace(data.train[0]))


# ------------------------------------------------------------------ models


def build_generator(shape, latent_dim, *, width=32, stages=2,
                    num_classes=None, kernel_initializer="he_normal"):
    """`z -> image` in [0, 1] (`[z, label] -> image` with `num_classes`).

    A dense layer to a `(h / 2**stages, w / 2**stages, width * 2**stages)`
    map, batch norm and ReLU, then `stages` `UpsamplingBlock`s (a stride-2
    transposed convolution and one 3x3 `ConvNormAct`), halving the width
    each time, and a sigmoid 3x3 convolution to the image's channels.
    """
    h, w, channels = shape
    base = (h // 2 ** stages, w // 2 ** stages)
    z = keras.Input((latent_dim,), name="z")
    inputs, x = z, z
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs = [z, label]
        embedded = keras.layers.Embedding(num_classes, latent_dim,
                                          name="label_embedding")(label)
        x = keras.layers.Concatenate()([z, embedded])
    x = keras.layers.Dense(base[0] * base[1] * width * 2 ** stages,
                           use_bias=False,
                           kernel_initializer=kernel_initializer)(x)
    x = keras.layers.Reshape((*base, width * 2 ** stages))(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for i in range(stages):
        x = dl_layers.UpsamplingBlock(
            width * 2 ** (stages - 1 - i), convs=1,
            kernel_initializer=kernel_initializer, name=f"up{i + 1}")(x)
    image = keras.layers.Conv2D(channels, 3, padding="same",
                                activation="sigmoid", dtype="float32",
                                name="image")(x)
    return keras.Model(inputs, image, name="generator")


def build_discriminator(shape, *, width=32, stages=2, norm="spectral",
                        num_classes=None, kernel_initializer="he_normal"):
    """`image -> logit` (`[image, label] -> logit` with `num_classes`).

    `stages` stride-2 3x3 convolutions with leaky ReLU (0.2), doubling the
    width from `width`; the first without normalization, the others with
    `norm` (`"spectral"`: every kernel spectrally normalized, Miyato et al.
    2018), then one linear logit. Conditional: the projection
    discriminator's logit adds the inner product of a class embedding with
    the features.
    """
    image = keras.Input(shape, name="image")
    inputs, x = image, image
    for i in range(stages):
        filters = width * 2 ** i
        if norm == "spectral":
            x = keras.layers.SpectralNormalization(keras.layers.Conv2D(
                filters, 3, strides=2, padding="same",
                kernel_initializer=kernel_initializer), name=f"conv{i + 1}")(x)
            x = keras.layers.LeakyReLU(0.2)(x)
        else:
            x = dl_layers.ConvNormAct(
                filters, 3, strides=2, norm=norm if i else "none",
                activation="leaky_relu",
                kernel_initializer=kernel_initializer, name=f"conv{i + 1}")(x)
    features = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(1, name="logit")
    if norm == "spectral":
        dense = keras.layers.SpectralNormalization(dense, name="logit")
    logit = dense(features)
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs = [image, label]
        embedded = keras.layers.Embedding(
            num_classes, features.shape[-1], name="projection")(label)
        projection = keras.layers.Dot(axes=1)([embedded, features])
        logit = keras.layers.Add()([logit, projection])
    logit = keras.layers.Activation("linear", dtype="float32",
                                    name="float32")(logit)
    return keras.Model(inputs, logit, name="discriminator")


# ------------------------------------------------------------------ scores


class FeatureSpace:
    """The first `k` principal components of the training images (the
    fixed space the Fréchet distance is measured in)."""

    def __init__(self, train_images, k=FEATURES):
        self.pca = ae.PCA(train_images, bounds=None)
        self.k = min(k, self.pca.components.shape[1])

    def __call__(self, images):
        return self.pca.encode(images, self.k)

    def stats(self, images):
        """Mean and covariance of `images`' features."""
        features = self(images)
        return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.maximum(values, 0))) @ vectors.T


def frechet_distance(stats_a, stats_b):
    """The Fréchet distance between two Gaussians `(mean, covariance)`:
    `|m_a - m_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)`, the
    FID's formula (Heusel et al. 2017) in any feature space."""
    (m_a, s_a), (m_b, s_b) = stats_a, stats_b
    root = _sqrt_psd(s_a)
    cross = _sqrt_psd(root @ s_b @ root)
    value = np.sum((m_a - m_b) ** 2) + np.trace(s_a + s_b - 2 * cross)
    return float(max(value, 0.0))


def classical_baselines(space, train, test_stats, seed=0, count=SAMPLES):
    """The Fréchet distance to the test images of: the training images
    themselves (`fd_train_images`, what real images score), samples of a
    `MIXTURE`-component Gaussian mixture fitted to the training images
    (scikit-learn, full covariances; None where it is not installed) and
    of independent per-pixel Gaussians; samples clipped to [0, 1]."""
    flat = train.reshape(len(train), -1).astype("float64")
    rng = np.random.default_rng(seed)
    pixels = rng.normal(flat.mean(0), flat.std(0), (count, flat.shape[1]))
    result = {
        "fd_train_images": frechet_distance(space.stats(train), test_stats),
        "fd_pixel_gaussians": frechet_distance(
            space.stats(np.clip(pixels, 0, 1)), test_stats),
        "fd_gaussian_mixture": None,
    }
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        return result
    mixture = GaussianMixture(MIXTURE, random_state=seed).fit(flat)
    samples, _ = mixture.sample(count)
    result["fd_gaussian_mixture"] = frechet_distance(
        space.stats(np.clip(samples[rng.permutation(count)], 0, 1)),
        test_stats)
    return result


def pixel_classifier(train_images, train_labels, num_classes):
    """A multinomial logistic regression on the pixels (NumPy, C=1): the
    judge of which class a generated image shows."""
    flat = train_images.reshape(len(train_images), -1)
    return ae.logistic_regression(flat, train_labels, num_classes)


def coverage(predict, images, num_classes):
    """Each class's share among `images` as `predict` labels them."""
    labels = predict(images.reshape(len(images), -1))
    counts = np.bincount(labels, minlength=num_classes)
    return counts / max(1, len(images))


# ---------------------------------------------------------------- sampling


def latent_grid(latent_dim, seed, count=GRID * GRID):
    """The fixed latent codes of `samples.png` (and its labels: row `i`
    is class `i % num_classes` for a conditional GAN)."""
    rng = np.random.default_rng([seed, 7919])
    z = rng.standard_normal((count, latent_dim)).astype("float32")
    labels = (np.arange(count) // GRID).astype("int32")
    return z, labels


def _predict(generator, z, labels=None):
    """The generator's images for codes `z` (NumPy), called eagerly in
    batches of `GRID * GRID` (padded): one input shape, so a backend that
    compiles each operation per shape (JAX) compiles it once. Not
    `predict`: under JAX, `predict` inside `fit` (the per-epoch monitor)
    would take the variables' buffers from the running `fit`."""
    n, size = len(z), GRID * GRID
    pad = -n % size
    z = np.concatenate([z, np.zeros((pad, z.shape[1]), "float32")])
    if labels is not None:
        labels = np.concatenate([np.asarray(labels, "int32"),
                                 np.zeros(pad, "int32")])
    out = []
    for start in range(0, len(z), size):
        inputs = z[start:start + size]
        if labels is not None:
            inputs = [inputs, labels[start:start + size]]
        out.append(keras.ops.convert_to_numpy(
            generator(inputs, training=False)))
    return np.concatenate(out).astype("float32")[:n]


def generate(gan, count, seed, labels=None):
    """`count` images from `gan`'s generator (NumPy), codes from `seed`;
    a conditional GAN gets `labels` (default: classes in turn)."""
    rng = np.random.default_rng([seed, 104729])
    z = rng.standard_normal((count, gan.latent_dim)).astype("float32")
    if gan.conditional and labels is None:
        labels = np.arange(count) % num_classes_of(gan)
    return _predict(gan.generator, z, labels if gan.conditional else None)


def num_classes_of(gan):
    return int(gan.generator.get_layer("label_embedding").input_dim)


class averaged_generator:
    """Context manager: the generator holds its moving average (Keras'
    `use_ema` on the generator's optimizer) inside the block, its trained
    weights again after it. Without `use_ema`, nothing changes."""

    def __init__(self, gan):
        self.gan = gan
        optimizer = getattr(gan, "optimizer", None)
        self.optimizer = getattr(optimizer, "generator_optimizer", None)

    def __enter__(self):
        self.saved = None
        if self.optimizer is None or not self.optimizer.use_ema:
            return self.gan
        variables = self.gan.generator.trainable_variables
        self.saved = [keras.ops.convert_to_numpy(v) for v in variables]
        self.optimizer.finalize_variable_values(variables)
        return self.gan

    def __exit__(self, *exc):
        if self.saved is not None:
            for v, value in zip(self.gan.generator.trainable_variables,
                                self.saved):
                v.assign(value)


def save_grid(images, path, grid=GRID):
    """`images` (`grid * grid` of them) as one PNG mosaic."""
    from dlrecipes.training import plots

    plt = plots.pyplot()
    if plt is None:
        return
    canvas = ae.mosaic(images[:grid * grid].reshape(
        grid, grid, *images.shape[1:]))
    if canvas.shape[-1] == 1:
        canvas = canvas[..., 0]
    tmp = os.path.join(os.path.dirname(path), ".tmp-" +
                       os.path.basename(path))
    plt.imsave(tmp, np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1,
               format="png")
    os.replace(tmp, path)


def grid_images(gan, seed):
    z, labels = latent_grid(gan.latent_dim, seed)
    return _predict(gan.generator, z, labels % num_classes_of(gan)
                    if gan.conditional else None)


def _monitor_base():
    # A class body subclassing keras.callbacks.Callback would import Keras
    # when this module is imported.
    return keras.callbacks.Callback


def make_monitor(data, seed, run_dir=None):
    """The `GANMonitor` callback of a run (see the module docstring):
    `val_fd` in the epoch's logs (before the history and the checkpoints
    read them) and, with a run directory, `samples/epoch-NNNN.png`."""

    class GANMonitor(_monitor_base()):
        def __init__(self):
            super().__init__()
            self.space = data.space
            self.val_stats = data.space.stats(data.fd_val)
            self.directory = (os.path.join(run_dir, "samples")
                              if run_dir else None)

        def on_epoch_end(self, epoch, logs=None):
            with averaged_generator(self.model) as gan:
                fake = generate(gan, SAMPLES, seed + epoch)
                grid = grid_images(gan, seed) if self.directory else None
            if logs is not None:
                logs["val_fd"] = frechet_distance(self.space.stats(fake),
                                                  self.val_stats)
            if grid is not None:
                os.makedirs(self.directory, exist_ok=True)
                save_grid(grid, os.path.join(self.directory,
                                             f"epoch-{epoch + 1:04d}.png"))

    return GANMonitor()


# ------------------------------------------------------------------ report


def gan_report(gan, data, run_dir, *, seed=0):
    """Scores and artifacts of a trained GAN (its generator as saved:
    the moving average with `--ema`)."""
    test_images, test_labels = data.test
    test_stats = data.space.stats(test_images)
    fake = generate(gan, SAMPLES, seed + 1_000_003)
    metrics = {"test_fd": frechet_distance(data.space.stats(fake),
                                           test_stats),
               "fd_features": f"PCA-{data.space.k} of the training images",
               "fd_samples": SAMPLES}
    # The baselines are properties of the data, not of the run: one seed.
    metrics.update(classical_baselines(data.space, data.train[0],
                                       test_stats))
    train_images, train_labels = data.train
    if data.num_classes:
        predict = pixel_classifier(train_images, train_labels,
                                   data.num_classes)
        flat_test = test_images.reshape(len(test_images), -1)
        metrics["classifier_test_accuracy"] = float(
            np.mean(predict(flat_test) == test_labels))
        shares = coverage(predict, fake, data.num_classes)
        metrics["class_coverage"] = {
            str(name): round(float(s), 4)
            for name, s in zip(data.class_names or range(len(shares)),
                               shares)}
        metrics["min_class_share"] = float(shares.min())
        if gan.conditional:
            wanted = np.arange(SAMPLES) % data.num_classes
            images = generate(gan, SAMPLES, seed + 2_000_003, labels=wanted)
            metrics["conditional_accuracy"] = float(np.mean(
                predict(images.reshape(len(images), -1)) == wanted))
    save_grid(grid_images(gan, seed), os.path.join(run_dir, "samples.png"))
    ae.save_submodel(gan.generator, os.path.join(run_dir, "generator.keras"))
    ae.save_submodel(gan.discriminator,
                     os.path.join(run_dir, "discriminator.keras"))
    return metrics


__all__ = ["D_NORMS", "DATASETS", "TFDS_DATASETS", "build_generator",
           "build_discriminator", "FeatureSpace", "frechet_distance",
           "classical_baselines", "pixel_classifier", "coverage",
           "generate", "averaged_generator", "make_monitor", "gan_report",
           "check_gan_config", "GANData", "load_gan_data", "check_image_size", "reachable_sizes"]
