"""
Title: Generative adversarial network (DCGAN)
Description: A generator against a discriminator on images, scored by its Fréchet distance to real images beside a Gaussian mixture's, with class coverage.

Commands:

    dlrecipes run gan                               # DCGAN, embedded digits
    dlrecipes run gan --latent-dim 32 --ema 0.999   # averaged generator
    dlrecipes run gan --conditional                 # class-conditional
    dlrecipes run gan --d-steps 2 --d-norm batch    # the discriminator's knobs
    dlrecipes run gan --dataset mnist               # fashion_mnist, folder:PATH
    dlrecipes tune gan --max-trials 10              # minimises val_fd
    python -m recipes.gan --help
"""

import dataclasses

from dlrecipes.config import TrainConfig, default, option
from dlrecipes.recipe import Recipe, register_recipe
from dlrecipes.search_space import Choice, Float
from dlrecipes.vision import gan as gans


@dataclasses.dataclass(frozen=True)
class GANConfig(TrainConfig):
    dataset: str = option("digits", "digits | mnist | fashion_mnist | "
                          "folder:PATH")
    data_dir: str = option("", "tensorflow-datasets data directory")
    image_size: int = option(0, "folder datasets: resize images to N x N "
                             "(0: 32)", min=0)
    latent_dim: int = option(16, "size of the generator's input code z",
                             min=1)
    conditional: bool = option(False, "class-conditional generator and "
                               "(projection) discriminator")
    width: int = option(32, "channels of the discriminator's first stage "
                        "and the generator's last", min=1)
    stages: int = option(2, "up-sampling stages of the generator (halvings "
                         "of the discriminator); the image's sides must be "
                         "multiples of 2**stages", min=1, max=6)
    d_norm: str = option("batch", "normalization of the discriminator",
                         choices=gans.D_NORMS)
    d_steps: int = option(1, "discriminator updates per generator update",
                          min=1)
    d_learning_rate: float = option(0.0, "the discriminator's learning "
                                    "rate (0: --learning-rate)", min=0)
    beta_1: float = option(0.5, "Adam's beta_1 for both networks "
                           "(adam, adamw)", min=0, max=0.999)
    label_smoothing: float = option(0.1, "one-sided label smoothing: real "
                                    "images labelled 1 - this", min=0,
                                    max=0.49)
    ema: float = option(0.99, "moving average of the generator's weights "
                        "(Keras' use_ema), used for samples, scores and "
                        "generator.keras (0: off)", min=0,
                        max=0.9999)
    val_fraction: float = option(0.1, "fraction of training images held "
                                 "out for the per-epoch Fréchet distance",
                                 min=0, max=0.5)
    # Training defaults for the embedded digits (see Results).
    epochs: int = default(60)
    batch_size: int = default(32)
    learning_rate: float = default(1e-3)
    checkpoint: str = default("last")

    def check(self):
        gans.check_gan_config(self)


@register_recipe
class GAN(Recipe):
    name = "gan"
    config_class = GANConfig
    description = ("A DCGAN on images, scored by its Fréchet distance to "
                   "real images beside a Gaussian mixture's, with class "
                   "coverage.")
    # The Fréchet distance of 1,000 samples to the validation images,
    # computed after every epoch (a GAN's losses do not rank its epochs).
    objective = ("val_fd", "min")
    engine_averaging = False  # its --ema averages the generator
    # DCGAN's activations are part of its recipe (ReLU in the generator,
    # leaky ReLU in the discriminator); its train_step has its own losses.
    model_knobs = ("kernel_initializer",)
    kernel_penalties = False
    smoke = {"epochs": 1, "width": 4, "stages": 1}
    datasets = gans.DATASETS
    tfds_datasets = gans.TFDS_DATASETS
    data_fields = ("dataset", "data_dir", "image_size", "val_fraction")
    search_space = {
        "learning_rate": Float(1e-4, 3e-3, sampling="log",
                               grid=(5e-4, 1e-3)),
        "d_learning_rate": Float(1e-4, 3e-3, sampling="log", grid=(1e-3,)),
        "latent_dim": Choice((8, 16, 32, 64), grid=(16,)),
        "d_steps": Choice((1, 2), grid=(1,)),
    }

    # ## Load the data
    #
    # Pixels in [0, 1] with their labels: the embedded 8x8 digits by
    # default (the project's split: 1,293 images train, 144 validate, 360
    # test), mnist and fashion_mnist through tensorflow-datasets, or
    # `folder:PATH` (one sub-folder of images per class, resized to
    # `--image-size`, RGB). The validation images are not fed to `fit`:
    # they are what the per-epoch Fréchet distance compares samples with.
    # The feature space of that distance is fixed before training: the
    # first 16 principal components of the training images.

    def load_data(self, config):
        return gans.load_gan_data(config.dataset, data_dir=config.data_dir,
                                  image_size=config.image_size,
                                  val_fraction=config.val_fraction)

    def monitor(self, data):
        return self.objective  # val_fd is computed without a `val` split

    # ## Build the model
    #
    # DCGAN (Radford et al. 2016), at the scale of the images
    # (`dlrecipes.vision.gan`): the generator maps z ~ N(0, I) through a
    # dense layer to a 2x2x128 map (at width 32), then two
    # `UpsamplingBlock`s (a stride-2 transposed convolution and a 3x3
    # conv, batch norm, ReLU) to 8x8x32 and a sigmoid 3x3 convolution to
    # the pixels; the discriminator is two stride-2 3x3 convolutions with
    # leaky ReLU (0.2) and a linear logit, every kernel spectrally
    # normalized (`--d-norm`). `--conditional` concatenates a class
    # embedding to z and makes the discriminator a projection
    # discriminator. Both live in one `dlrecipes.models.GAN`, a
    # `keras.Model` whose `train_step` updates the discriminator
    # `--d-steps` times, then the generator with the non-saturating loss,
    # under TensorFlow, JAX or PyTorch; `GANOptimizer` gives each network
    # its own Adam.

    def build_model(self, config, data):
        from dlrecipes.models.gan import GAN as GANModel

        classes = data.num_classes if config.conditional else None
        generator = gans.build_generator(
            data.input_shape, config.latent_dim, width=config.width,
            stages=config.stages, num_classes=classes,
            kernel_initializer=config.initializer)
        discriminator = gans.build_discriminator(
            data.input_shape, width=config.width, stages=config.stages,
            norm=config.d_norm, num_classes=classes,
            kernel_initializer=config.initializer)
        model = GANModel(generator, discriminator, config.latent_dim,
                         conditional=config.conditional,
                         d_steps=config.d_steps,
                         label_smoothing=config.label_smoothing,
                         seed=config.seed)
        model.build()
        return model

    # ## Train
    #
    # Both networks train with Adam (beta_1 0.5, as DCGAN), each its own
    # (`--d-learning-rate`), the learning rate constant, batch 64, 60
    # epochs of the 1,293 training digits. The engine's optimizer (from
    # `--optimizer`, `--learning-rate`, `--schedule`, `--clipnorm`) is the
    # generator's; the discriminator's is the same with its own learning
    # rate. With `--ema`, the generator's optimizer keeps a moving average
    # of its weights (Keras' `use_ema`), saved with every backup: the
    # samples, the scores and `generator.keras` use the average. After each
    # epoch 1,000 samples are scored against the validation images
    # (`val_fd` in `history.csv`) and `samples/epoch-NNNN.png` shows the
    # same 100 codes every epoch.

    def callbacks(self, config, data, run_dir=None):
        return [gans.make_monitor(data, config.seed, run_dir)]

    def compile(self, model, config, data, optimizer, **options):
        from dlrecipes.models.gan import GANOptimizer
        from dlrecipes.training.engine import steps_per_epoch
        from dlrecipes.training.optimizers import make_optimizer

        def adjusted(opt, ema):
            cfg = opt.get_config()
            if "beta_1" in cfg:
                cfg["beta_1"] = config.beta_1
            if ema:
                cfg.update(use_ema=True, ema_momentum=config.ema)
            return type(opt).from_config(cfg)

        d_config = config.replace(
            learning_rate=config.d_learning_rate or config.learning_rate)
        d_opt = make_optimizer(d_config, steps_per_epoch(data, config))
        model.compile(GANOptimizer(adjusted(optimizer, config.ema),
                                   adjusted(d_opt, 0.0)), **options)

    def restore(self, path, config, data):
        """The saved GAN, its generator the moving average with `--ema`."""
        from dlrecipes.training.engine import steps_per_epoch
        from dlrecipes.training.optimizers import make_optimizer

        # Zero kernels: the weights are loaded next (under JAX each random
        # initializer compiles, seconds per kernel shape).
        model = self.build_model(config.replace(kernel_initializer="zeros"),
                                 data)
        self.compile(model, config, data,
                     make_optimizer(config, steps_per_epoch(data, config)))
        model.load_weights(path)
        if config.ema:
            model.optimizer.finalize_variable_values(model.trainable_variables)
        return model

    # ## Results
    #
    # The report scores 1,000 samples against the 360 test images: the
    # Fréchet distance in the PCA-16 space (`test_fd`), beside the same
    # distance for the training images themselves, 1,000 samples of a
    # 10-component Gaussian mixture fitted to the training images and of
    # independent per-pixel Gaussians; the share of each class among the
    # samples as a logistic regression on pixels labels them
    # (`class_coverage`, `min_class_share`; its test accuracy beside), and
    # for `--conditional` how often a sample shows the class it was asked
    # for. Files: `generator.keras`, `discriminator.keras` (plain Keras
    # models for `dlrecipes.load_model`), `samples.png`, `samples/`,
    # `curves.png` (both losses, the discriminator's accuracy on real and
    # generated images, `val_fd`).
    #
    # Embedded digits, defaults (`dlrecipes run gan --seed S`, and with
    # `--conditional`), CPU, TensorFlow; the Fréchet distance of 1,000
    # samples to the 360 test images in PCA-16 space, the rarest class's
    # share of the samples, and how often a conditional sample shows the
    # class it was asked for (checked by tests/test_gan.py, the runs to
    # the printed digit; the baselines by a unit test):
    #
    # | model                 | seed | fd    | min class share | conditional acc |
    # |-----------------------|------|-------|-----------------|-----------------|
    # | DCGAN                 | 0    | 0.092 | 0.073           | -               |
    # | DCGAN                 | 1    | 0.080 | 0.080           | -               |
    # | DCGAN                 | 2    | 0.102 | 0.083           | -               |
    # | DCGAN --conditional   | 0    | 0.085 | 0.095           | 0.985           |
    # | DCGAN --conditional   | 1    | 0.093 | 0.088           | 0.991           |
    # | DCGAN --conditional   | 2    | 0.084 | 0.098           | 0.989           |
    # | training images       | -    | 0.044 | -               | -               |
    # | Gaussian mixture (10) | -    | 0.110 | -               | -               |
    # | per-pixel Gaussians   | -    | 1.081 | -               | -               |
    #
    # Every seed scores below the 10-component Gaussian mixture (the
    # issue that asked for this recipe measured the mixture at 0.099 with
    # its own draw; two of three seeds are below that too) and far below
    # independent pixels; the training images themselves, 0.044, are the
    # floor a perfect generator would reach with this many test images.
    # Every class is at least 7% of the samples (no mode collapse; 10% is
    # uniform). The classifier, a logistic regression on pixels, scores
    # 0.967 on the test images. A run takes about 4 minutes on the 2-core
    # test machine (60 epochs, a Fréchet distance after each).
    #
    # What the defaults come from (seed 0, 40 to 100 epochs, val_fd after
    # each epoch): with spectral normalization in the discriminator and
    # batch 64 the generator collapsed to one or two digits (test fd 3.85
    # after 40 epochs); batch normalization instead, 0.62; batch 32 and
    # label smoothing 0.1, 0.27 after 100 epochs, its val_fd no longer
    # falling after 50; the generator's moving average (`--ema 0.99`) on
    # top, 0.084, most of it by epoch 60. `--d-norm spectral` and
    # `--ema 0` stay available.

    def report(self, model, data, run_dir, config):
        return gans.gan_report(model, data, run_dir, seed=config.seed)


if __name__ == "__main__":
    from dlrecipes.cli import run_recipe_main

    raise SystemExit(run_recipe_main(GAN.name))
