"""Random rotations by multiples of 90 degrees, an augmentation Keras'
preprocessing layers do not have."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlrecipes")
class RandomRot90(keras.layers.Layer):
    """Rotate each image by a random multiple of 90 degrees in training.

    Each image of the batch draws `k` in {0, 1, 2, 3} uniformly and is
    rotated by `k` quarter turns counter-clockwise in its height-width
    plane (`keras.ops.rot90`); in inference the layer is the identity. The
    images must be square (a quarter turn swaps height and width).
    Orientation-free data (textures, satellite and microscope images, top
    views) keeps its labels under such turns; digits do not (a 6 becomes a
    9).

    Args:
        seed: optional integer seed of the layer's
            `keras.random.SeedGenerator`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype` ...).

    Call arguments:
        inputs: `(batch, size, size, channels)` images.
        training: boolean; the layer only rotates in training mode.

    Input shape:
        `(batch, size, size, channels)`.

    Output shape:
        Same as the input.

    Example:

    >>> layer = RandomRot90(seed=0)
    >>> images = keras.ops.reshape(keras.ops.arange(8.0), (2, 2, 2, 1))
    >>> tuple(layer(images, training=True).shape)
    (2, 2, 2, 1)
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, int)):
            raise ValueError("`seed` must be an integer or None. "
                             f"Received: seed={seed!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError("RandomRot90 takes (batch, height, width, "
                             "channels) images. Received: input_shape="
                             f"{tuple(input_shape)}")
        height, width = input_shape[1], input_shape[2]
        if height is not None and width is not None and height != width:
            raise ValueError("RandomRot90 needs square images (a quarter "
                             "turn swaps height and width). Received: "
                             f"input_shape={tuple(input_shape)}")

    def call(self, inputs, training=None):
        if not training:
            return inputs
        turns = keras.random.randint((ops.shape(inputs)[0],), 0, 4,
                                     seed=self.seed_generator)
        rotated = ops.stack(
            [inputs] + [ops.rot90(inputs, k=k, axes=(1, 2))
                        for k in (1, 2, 3)], axis=1)  # (b, 4, h, w, c)
        pick = ops.one_hot(turns, 4, dtype=inputs.dtype)  # (b, 4)
        return ops.sum(rotated * pick[:, :, None, None, None], axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config
