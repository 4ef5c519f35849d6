"""A test-only recipe with three training phases.

A worked example of `Recipe.phases` (see CONTRIBUTING.md, "Add a recipe"):
a digits classifier whose body is frozen for a linear probe, then trained
whole, then annealed at a tenth of the learning rate. The engine compiles
each phase afresh, runs them over one epoch counter and resumes inside the
phase a run was interrupted in; the recipe never sees a backup.
"""

import csv
import dataclasses

import numpy as np
import pytest

from dlrecipes.config import TrainConfig, default, option
from dlrecipes.data import load_digits, stratified_split
from dlrecipes.data.description import Data
from dlrecipes.lazy import keras
from dlrecipes.recipe import Phase, Recipe, register_recipe
from dlrecipes.search_space import Float

# The engine's phase logic is backend-agnostic: run under JAX too.
pytestmark = pytest.mark.backends


@dataclasses.dataclass(frozen=True)
class PhasesConfig(TrainConfig):
    probe_epochs: int = option(2, "epochs with the body frozen", min=0)
    anneal_epochs: int = option(2, "last epochs at a tenth of the rate",
                                min=0)
    epochs: int = default(6)
    learning_rate: float = default(3e-3)


@register_recipe
class ExamplePhases(Recipe):
    name = "example-phases"
    config_class = PhasesConfig
    description = "Probe, train, anneal: three phases (test-only example)."
    objective = ("val_accuracy", "max")
    smoke = {"epochs": 3, "probe_epochs": 1, "anneal_epochs": 1}
    search_space = {"learning_rate": Float(1e-3, 1e-2, sampling="log",
                                           grid=(3e-3, 1e-2))}
    data_fields = ("seed",)
    datasets = ("digits",)

    def check(self, config):
        from dlrecipes.errors import UsageError

        if config.probe_epochs + config.anneal_epochs > config.epochs:
            raise UsageError("--probe-epochs plus --anneal-epochs exceed "
                             f"--epochs. Received: epochs={config.epochs}")

    def load_data(self, config):
        images, labels = load_digits()
        x = images.reshape(len(images), -1) / 16.0
        train, val, test = stratified_split(x, labels, seed=config.seed)
        return Data(train=train, val=val, test=test, input_shape=(64,),
                    num_classes=10, source="digits")

    def build_model(self, config, data):
        inputs = keras.Input(data.input_shape)
        x = keras.layers.Dense(32, activation="relu", name="body")(inputs)
        outputs = keras.layers.Dense(10, activation="softmax",
                                     name="head")(x)
        return keras.Model(inputs, outputs)

    # ## Train
    # Three phases over one epoch counter; `prepare` runs before each.

    def phases(self, config):
        def freeze_body(model):
            model.get_layer("body").trainable = False

        def unfreeze_body(model):
            model.get_layer("body").trainable = True

        middle = config.epochs - config.probe_epochs - config.anneal_epochs
        return [
            Phase("probe", config.probe_epochs, prepare=freeze_body),
            Phase("train", middle, prepare=unfreeze_body),
            Phase("anneal", config.anneal_epochs, overrides={
                "learning_rate": config.learning_rate / 10}),
        ]


class _Interrupt(Exception):
    pass


def _run(tmp_path, stop_after=None, monkeypatch=None):
    from dlrecipes.recipe import get_recipe
    from dlrecipes.training import loop, run_recipe

    if stop_after is not None:
        real = loop._callbacks

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == stop_after:
                    raise _Interrupt()

        def with_stop(*args):  # after the backup: that epoch is saved
            cbs, best, backup = real(*args)
            return [*cbs, Stop()], best, backup

        monkeypatch.setattr(loop, "_callbacks", with_stop)
    config = PhasesConfig(verbose=0, output_dir=str(tmp_path),
                          checkpoint="last")
    return run_recipe(get_recipe("example-phases"), config)


def _rows(result):
    with open(f"{result.run_dir}/history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """One uninterrupted run (shared by the tests below)."""
    return _run(tmp_path_factory.mktemp("whole"))


def test_three_phases_run_in_order(whole):
    """Each phase trains with its own optimizer: the learning rate of each
    epoch is the phase's."""
    result = whole
    rates = [float(r["learning_rate"]) for r in _rows(result)]
    np.testing.assert_allclose(rates, [3e-3] * 4 + [3e-4] * 2, rtol=1e-6)
    assert result.metrics["test_accuracy"] > 0.85, result.metrics


@pytest.mark.parametrize("stop_after", [1, 3])
def test_interrupted_in_a_phase_resumes_to_the_same_weights(
        whole, tmp_path, monkeypatch, stop_after):
    """Interrupted after the probe's last epoch (1) or inside the second
    phase (3), the same run resumes in that phase and ends with the weights
    of an uninterrupted run, bit for bit."""
    with pytest.raises(_Interrupt):
        _run(tmp_path / "cut", stop_after, monkeypatch)
    monkeypatch.undo()
    resumed = _run(tmp_path / "cut")
    assert resumed.metrics["resumed"] is True
    assert [int(r["epoch"]) for r in _rows(resumed)] == list(range(6))
    for a, b in zip(whole.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
