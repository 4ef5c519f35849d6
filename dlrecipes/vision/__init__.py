"""Vision building blocks of the image recipes.

- `dlrecipes.vision.augment`: augmentation presets (`none`, `light`,
  `strong`, `auto`) as Keras preprocessing layers;
- `dlrecipes.vision.models`: the image classifiers trained from scratch
  (`mlp`, `lenet`, `vgg`, `resnet`) and batch norm for short runs;
- `dlrecipes.vision.backbones`: the `keras.applications` zoo, its
  preprocessing as a layer, saved `.keras` models as backbones (checked,
  cut at the last pooling layer, noise layers dropped) and `unfreeze_top`.

Each imports Keras on first use (`dlrecipes.lazy`), not at import: their
names (`AUGMENTS`, `MODELS`, `BACKBONES`) and the `--backbone` checks serve
the flag parser, which answers without Keras.
"""
