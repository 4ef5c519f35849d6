"""`AuxiliaryClassifierModel` (GoogLeNet's auxiliary classifiers): the
training loss adds the weighted auxiliary cross-entropies, the heads learn
from it, inference and saving see the main output only; and the image
recipe's `--aux-loss` on inception."""

import os

import keras
import numpy as np
import pytest

import dlrecipes
from dlrecipes.models.auxiliary import AuxiliaryClassifierModel


def _model(aux_weight, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    aux = keras.layers.Dense(5, activation="softmax", name="aux")(
        keras.layers.GlobalAveragePooling2D()(x))
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    main = keras.layers.Dense(5, activation="softmax", name="main")(
        keras.layers.GlobalAveragePooling2D()(x))
    model = AuxiliaryClassifierModel(inputs, [main, aux],
                                     aux_weight=aux_weight)
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=32):
    rng = np.random.default_rng(0)
    return (rng.random((n, 8, 8, 1)).astype("float32"),
            rng.integers(0, 5, n).astype("int32"))


def _ce(y, p):
    p = keras.ops.convert_to_numpy(p)
    return float(-np.log(p[np.arange(len(y)), y]).mean())


@pytest.mark.backends
def test_training_loss_adds_the_weighted_auxiliary_loss():
    x, y = _data()
    model = _model(0.3)
    main, aux = model(x, training=True)
    loss = keras.ops.convert_to_numpy(
        model.compute_loss(x, y, [main, aux], training=True))
    assert loss == pytest.approx(_ce(y, main) + 0.3 * _ce(y, aux),
                                 rel=1e-5)
    # Out of training: the main output alone, the main loss alone.
    out = model(x, training=False)
    assert not isinstance(out, (list, tuple))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out),
                               keras.ops.convert_to_numpy(main), atol=1e-6)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    assert logs["loss"] == pytest.approx(_ce(y, main), rel=1e-4)
    assert model.predict(x, verbose=0).shape == (32, 5)


@pytest.mark.backends
@pytest.mark.parametrize("aux_weight", [0.0, 0.3])
def test_auxiliary_head_learns_only_from_its_weight(aux_weight):
    x, y = _data()
    model = _model(aux_weight)
    head = model.get_layer("aux")
    before = [w.copy() for w in head.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    changed = any(not np.array_equal(a, b)
                  for a, b in zip(before, head.get_weights()))
    assert changed == (aux_weight > 0)


@pytest.mark.backends
def test_saves_loads_and_gives_its_main_model(tmp_path):
    x, y = _data()
    model = _model(0.5)
    model.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = dlrecipes.load_model(path)
    assert isinstance(loaded, AuxiliaryClassifierModel)
    assert loaded.aux_weight == 0.5
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)
    main = loaded.main_model()
    assert type(main) is not AuxiliaryClassifierModel
    assert len(main.outputs) == 1 and "aux" not in [
        layer.name for layer in main.layers]
    np.testing.assert_allclose(main.predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)


def test_refuses_a_single_output_and_a_negative_weight():
    inputs = keras.Input((3,))
    out = keras.layers.Dense(2, activation="softmax")(inputs)
    with pytest.raises(ValueError, match="at least one auxiliary output"):
        AuxiliaryClassifierModel(inputs, [out])
    with pytest.raises(ValueError, match="aux_weight"):
        AuxiliaryClassifierModel(inputs, [out, out], aux_weight=-1)


def test_inception_with_aux_loss_builds_heads_and_restores_the_classifier(
        tmp_path):
    from conftest import smoke_config
    from dlrecipes.recipe import get_recipe

    recipe = get_recipe("image-classification")
    config = smoke_config("image-classification", model="inception",
                          aux_loss=0.3, stages=3, width=4)
    data = recipe.load_data(config)
    model = recipe.build_model(config, data)
    assert isinstance(model, AuxiliaryClassifierModel)
    assert model.aux_weight == 0.3
    assert [model.get_layer(f"auxiliary_classifier_{i}").output
            for i in (0, 1)] == model.outputs[1:]
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = recipe.restore(path, config, data)
    assert len(restored.outputs) == 1
    assert restored.count_params() < model.count_params()
    plain = recipe.build_model(smoke_config("image-classification",
                                            model="inception", width=4),
                               data)
    assert type(plain) is not AuxiliaryClassifierModel
