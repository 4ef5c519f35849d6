"""
Title: Semantic segmentation with U-Net and FCN
Description: Label every pixel: generated digit scenes (offline), oxford_iiit_pet or a folder of images and masks.

Commands:

    dlrecipes run segmentation                  # U-Net, digit_scenes, offline
    dlrecipes run segmentation --model fcn      # no skips: what they add
    dlrecipes run segmentation --upsample bilinear   # transpose | nearest
    dlrecipes run segmentation --dataset oxford_iiit_pet   # tfds
    dlrecipes run segmentation --dataset folder:path/to/data
                                  # images/ and masks/, matching file stems
    dlrecipes tune segmentation --max-trials 8
    python -m recipes.segmentation --help
"""

import dataclasses

from dlrecipes.config import TrainConfig, default, option
from dlrecipes.data import images
from dlrecipes.data import scenes as scene_data
from dlrecipes.errors import UsageError
from dlrecipes.recipe import Recipe, register_recipe
from dlrecipes.search_space import Choice, Float
from dlrecipes.vision import models
from dlrecipes.vision import segmentation as seg


@dataclasses.dataclass(frozen=True)
class SegmentationConfig(TrainConfig):
    model: str = option("unet", "unet (skip connections) or fcn (the same "
                        "encoder-decoder without them)", choices=seg.MODELS)
    upsample: str = option("transpose", "the decoder's up-sampling",
                           choices=seg.UPSAMPLINGS)
    dataset: str = option(scene_data.DIGIT_SCENES, "digit_scenes | "
                          "oxford_iiit_pet | folder:PATH (images/ and "
                          "masks/ with matching file stems)")
    data_dir: str = option("", "tensorflow-datasets data directory")
    image_size: int = option(
        0, "resize images to N x N (0: native; digit_scenes: the canvas, "
        f"{scene_data.SCENE_SIZE}; oxford_iiit_pet: "
        f"{scene_data.PET_IMAGE_SIZE}; folder: the files' common size)",
        min=0)
    scenes: int = option(scene_data.SCENES, "digit_scenes: training scenes "
                         "(validation a tenth, test a quarter as many)",
                         min=1)
    num_classes: int = option(0, "folder: the number of classes, every "
                              "mask value below it (0: the largest mask "
                              "value + 1)", min=0)
    width: int = option(16, "channels of the first stage (doubled at each "
                        "down-sampling)", min=1)
    depth: int = option(2, "down-sampling stages (the image size must be "
                        "divisible by 2**depth)", min=1)
    convs: int = option(2, "convolutions per stage", min=1)
    norm: str = option("batch", "normalization in conv blocks",
                       choices=seg.NORMS)
    dropout: float = option(0.3, "dropout after the bottleneck", min=0,
                            max=0.95)
    val_fraction: float = option(0.1, "fraction of training data held out "
                                 "for validation", min=0, max=0.5)
    # Training defaults measured on digit_scenes (see Results).
    epochs: int = default(8)
    optimizer: str = default("adamw")
    learning_rate: float = default(3e-3)
    weight_decay: float = default(1e-4)
    schedule: str = default("warmup_cosine")
    warmup_epochs: float = default(1.0)
    checkpoint: str = default("last")

    def check(self):
        scene_data.check_dataset(self.dataset)
        folder = images.folder_of(self.dataset)
        if self.num_classes and folder is None:
            raise UsageError(
                "--num-classes works with --dataset folder:PATH only "
                f"({scene_data.DIGIT_SCENES} has "
                f"{len(scene_data.DIGIT_CLASSES)} classes, {scene_data.PETS} "
                f"{len(scene_data.PET_CLASSES)}). "
                f"Received: num_classes={self.num_classes}")
        if (self.dataset == scene_data.DIGIT_SCENES and self.image_size
                and self.image_size < scene_data.DIGIT_SIZE):
            raise UsageError(
                f"--image-size must be at least {scene_data.DIGIT_SIZE} for "
                f"{scene_data.DIGIT_SCENES} (the digits are 8 x 8). "
                f"Received: image_size={self.image_size}")
        size = scene_data.native_size(self.dataset, self.image_size)
        if size is not None:
            seg.check_depth(*size, self.depth)


@register_recipe
class Segmentation(Recipe):
    name = "segmentation"
    config_class = SegmentationConfig
    description = ("Label every pixel (U-Net, FCN): generated digit scenes, "
                   "oxford_iiit_pet or a folder of images and masks.")
    objective = ("val_miou", "max")
    smoke = {"epochs": 1, "scenes": 64, "width": 4, "depth": 1,
             "batch_size": 16}
    datasets = (*scene_data.NAMES, "folder:PATH")
    tfds_datasets = (scene_data.PETS,)
    # Fields `load_data` reads: a tuning trial that changes one reloads.
    data_fields = ("dataset", "data_dir", "image_size", "scenes",
                   "num_classes", "val_fraction", "batch_size", "seed")
    search_space = {
        "model": Choice(seg.MODELS, grid=("unet",)),
        "upsample": Choice(seg.UPSAMPLINGS, grid=("transpose", "bilinear")),
        "width": Choice((8, 16, 32), grid=(16,)),
        "depth": Choice((1, 2, 3), grid=(2,)),
        "convs": Choice((1, 2), grid=(2,)),
        "norm": Choice(("batch", "group", "none"), grid=("batch",)),
        "dropout": Float(0.0, 0.5, grid=(0.3,)),
        "learning_rate": Float(3e-4, 1e-2, sampling="log",
                               grid=(1e-3, 3e-3)),
        "weight_decay": Float(1e-6, 1e-3, sampling="log", grid=(1e-4,)),
        "batch_size": Choice((16, 32, 64), grid=(32,)),
    }

    # ## Load the data
    #
    # `digit_scenes` needs no network and no TensorFlow: each scene is a
    # 24x24 canvas holding 3 of the embedded 8x8 digits at random offsets
    # (overlap allowed), drawn with the seed; a pixel is labelled with the
    # digit (1 + its value) of the brightest digit whose ink (a raw value
    # of at least 4 of 16) covers it, else background (0): 11 classes.
    # Training, validation and test scenes are made of the training,
    # validation and test digits of the digits split (`images.digits_data`),
    # so the test digits are new to the model. `--scenes` (4,000) training
    # scenes, a tenth as many for validation, a quarter for testing. More
    # scenes, not more epochs, is what generalizes (measured, same number
    # of steps: 2,000 scenes x 10 epochs 0.717 test mIoU, 4,000 x 5 0.715;
    # 1,000 x 15 0.600 with a training mIoU of 0.78).
    # `folder:PATH` reads `images/` and `masks/` (matching stems; a mask is
    # a single-channel or palette image of class indices), decoded once
    # with Pillow: every mask must have its image's size and a value below
    # `--num-classes`. `oxford_iiit_pet` (tensorflow-datasets) arrives as
    # batched `tf.data` splits resized to 128x128, its trimaps mapped to
    # background, pet and border.

    def load_data(self, config):
        data = scene_data.load(
            config.dataset, seed=config.seed, scenes=config.scenes,
            image_size=config.image_size, val_fraction=config.val_fraction,
            num_classes=config.num_classes, batch_size=config.batch_size,
            data_dir=config.data_dir)
        if images.folder_of(config.dataset) is not None:
            height, width = data.input_shape[:2]
            seg.check_depth(height, width, config.depth,
                            f"the images of {config.dataset}")
            data = images.repeat_small_train(data, config.batch_size)
        return data

    # ## Build the model
    #
    # Raw pixels, a `Rescaling` layer, then `dlrecipes.layers.UNet`: `depth`
    # stages of `convs` 3x3 `ConvNormAct` convolutions and 2x max pooling
    # (the width doubles each stage), a bottleneck, and as many
    # `UpsamplingBlock`s back up (`--upsample`: a transposed convolution,
    # or nearest / bilinear interpolation and a 1x1 convolution). The
    # U-Net concatenates each encoder stage's features into the decoder
    # stage of the same resolution; `--model fcn` is the same network
    # without those skip connections. A 1x1 convolution with a softmax
    # (float32 under mixed precision) gives the class distribution of
    # every pixel at full input resolution. Dropout 0.3 after the
    # bottleneck (measured: 0.690 -> 0.717 test mIoU at 2,000 scenes), and
    # batch norm's moving averages with momentum 0.9 instead of Keras'
    # 0.99: a batch holds 18,432 pixels, and with 0.99 the averages lag the
    # still-moving weights (validation mIoU stayed near 0.2 while training
    # mIoU passed 0.6; at 1,000 scenes x 15 epochs 0.519 test mIoU with
    # 0.99, 0.600 with 0.9). Depth 3 did worse than 2 (0.681 vs 0.717);
    # group norm and no norm learned far slower (0.308, 0.245 at 1,000
    # scenes x 15 epochs).

    def build_model(self, config, data):
        model = seg.build_segmenter(
            data.input_shape, data.num_classes, scale=data.scale,
            model=config.model, upsample=config.upsample, width=config.width,
            depth=config.depth, convs=config.convs, norm=config.norm,
            dropout=config.dropout,
            kernel_initializer=config.initializer,
            activation=config.hidden_activation or "relu")
        models.set_batch_norm_momentum(model, seg.BATCH_NORM_MOMENTUM)
        return model

    # ## Train
    #
    # Per-pixel sparse categorical cross-entropy; the metrics are pixel
    # accuracy and Keras' `MeanIoU` on the argmax (`miou`, so `history.csv`
    # has `val_miou`, the objective). AdamW at 3e-3 with a one-epoch
    # warm-up and cosine decay to zero over 8 epochs (1,000 steps of 32
    # scenes); the last epoch is kept.

    def metrics(self, config, data):
        return ["accuracy", seg.mean_iou_metric(data.num_classes)]

    # ## Results
    #
    # The report adds `masks.png` (image, true mask, predicted mask), the
    # per-class IoU (`iou_per_class`), mean IoU and pixel accuracy, and
    # two classical baselines on the same test scenes: the majority class
    # everywhere (all-background) and, for digit_scenes, threshold +
    # connected components + the nearest training digit with a shift search
    # (`dlrecipes.vision.segmentation.component_baseline`; a per-pixel
    # colour lookup table on other datasets). Default config (`dlrecipes
    # run segmentation --seed S`, `--model fcn`), CPU, TensorFlow,
    # digit_scenes: 4,000 training, 400 validation and 1,000 test scenes;
    # mIoU over the 11 classes, as Keras' MeanIoU (checked by
    # tests/test_segmentation.py):
    #
    # | model          | seed | test mIoU | pixel accuracy |
    # |----------------|------|-----------|----------------|
    # | unet           | 0    | 0.776     | 0.980          |
    # | unet           | 1    | 0.772     | 0.980          |
    # | unet           | 2    | 0.773     | 0.980          |
    # | fcn            | 0    | 0.531     | 0.939          |
    # | fcn            | 1    | 0.572     | 0.944          |
    # | fcn            | 2    | 0.451     | 0.930          |
    # | classical      | 0    | 0.561     | 0.959          |
    # | classical      | 1    | 0.551     | 0.957          |
    # | classical      | 2    | 0.554     | 0.958          |
    # | all-background | 0    | 0.079     | 0.870          |
    #
    # The U-Net's mean, 0.774, is 0.219 above the classical baseline's
    # (0.555; the test requires 0.15) and above the FCN on every seed (mean
    # 0.518: without the skips the decoder loses which digit a stroke
    # belongs to where digits touch, and it is no better than the
    # classical pipeline). Per class (U-Net, seed 0): background 0.997,
    # digits 0.634 (8) to 0.818 (1). The classical pipeline is exact on
    # background (the threshold is the label's) and loses where digits
    # touch or overlap: one component, cut greedily into digit windows.
    # Issue 14's classical pipeline (an SVC per component, a small shift
    # search) measured 0.412 mIoU and 0.940 pixel accuracy, all-background
    # 0.080, on its scenes. All-background is the same here (0.079: digits
    # are 13% of the pixels); this pipeline without the cutting (one class
    # per component) gives 0.488 / 0.949 on seed 0's test scenes, the
    # cutting 0.561 / 0.959; the rest of the gap to 0.412 is the issue's
    # classifier and threshold, which were not reproduced. One default run
    # trains 1,000 steps: 289 s for seed 0 on the 2-core test machine
    # (with other work beside it), which reproduced the seed-0 rows.

    def report(self, model, data, run_dir, config):
        return seg.segmentation_report(model, data, run_dir)


if __name__ == "__main__":
    from dlrecipes.cli import run_recipe_main

    raise SystemExit(run_recipe_main(Segmentation.name))
