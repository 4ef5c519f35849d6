"""`--augment`: presets plus operations (crop, zoom, rot90, blur, color)
and the `RandomRot90` layer."""

import keras
import numpy as np
import pytest

from dlrecipes.errors import UsageError
from dlrecipes.vision import augment as aug


@pytest.mark.parametrize("value, expected", [
    ("auto", ("auto", ())),
    ("light,crop,blur", ("light", ("crop", "blur"))),
    ("zoom, rot90", ("none", ("zoom", "rot90"))),
    ("color,strong", ("strong", ("color",))),
])
def test_parse(value, expected):
    assert aug.parse(value) == expected


@pytest.mark.parametrize("value, needle", [
    ("light,sharpen", "unknown name 'sharpen'"),
    ("light,none", "takes one preset"),
    ("crop,crop", "names crop twice"),
    (",", "--augment is empty"),
])
def test_parse_refuses(value, needle):
    with pytest.raises(UsageError, match=needle):
        aug.parse(value)


def test_shape_checks():
    with pytest.raises(UsageError, match="color needs three-channel"):
        aug.check_shape("light,color", (8, 8, 1))
    with pytest.raises(UsageError, match="rot90 needs square"):
        aug.check_shape("rot90", (32, 24, 3))
    aug.check_shape("color,rot90", (32, 32, 3))


@pytest.mark.backends
def test_operations_are_keras_layers_active_in_training_only():
    layers = aug.augmentation("none,crop,zoom,rot90,blur,color", seed=0,
                              shape=(16, 16, 3))
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["RandomTranslation", "RandomZoom", "RandomZoom",
                     "RandomRot90",
                     "RandomGaussianBlur", "RandomColorJitter"]
    inputs = keras.Input((16, 16, 3))
    x = inputs
    for layer in layers:
        x = layer(x)
    model = keras.Model(inputs, x)
    images = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype(
        "float32")
    out = keras.ops.convert_to_numpy(model(images, training=False))
    np.testing.assert_allclose(out, images, atol=1e-5)  # inference: as is
    trained = keras.ops.convert_to_numpy(model(images, training=True))
    assert trained.shape == images.shape
    assert not np.allclose(trained, images)
    assert [type(layer).__name__ for layer in
            aug.augmentation("auto", shape=(8, 8, 1))] == \
        ["RandomTranslation", "RandomRotation"]


@pytest.mark.backends
def test_random_rot90_turns_each_image_by_quarter_turns():
    from dlrecipes.layers import RandomRot90

    images = np.random.default_rng(1).normal(size=(64, 5, 5, 2)).astype(
        "float32")
    layer = RandomRot90(seed=3)
    out = keras.ops.convert_to_numpy(layer(images, training=True))
    turns = []
    for image, turned in zip(images, out):
        matches = [k for k in range(4) if np.array_equal(
            np.rot90(image, k, axes=(0, 1)), turned)]
        assert len(matches) == 1
        turns.append(matches[0])
    assert set(turns) == {0, 1, 2, 3}  # 64 draws: every turn occurs
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(images, training=False)), images)
    with pytest.raises(ValueError, match="square"):
        RandomRot90()(np.zeros((1, 4, 6, 1), "float32"), training=True)
