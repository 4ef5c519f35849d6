"""What every public layer of `dlrecipes.layers` shares, from one table:

- the `run_layer_test` checks (config round trip, symbolic call against
  `compute_output_shape`, eager call, a fit step, `.keras` reload through
  `dlrecipes.load_model`, mixed precision, masking), one case per layer;
- the house style: arguments stored as objects (`keras.*.get`), serialized
  in `get_config`, sublayers private;
- an initializer given as a plain Python function, as `keras.layers.Dense`
  takes one;
- the docstring examples of `dlrecipes.layers` and `dlrecipes.schedules`,
  run as doctests.

A new public layer fails `test_every_public_layer_has_a_case` until it has
its row in `CASES`.
"""

import doctest
import importlib
import inspect
import os
import tempfile

import keras
import numpy as np
import pytest

import dlrecipes.layers as dl_layers
from layer_testing import run_layer_test

# The layer checks run under every backend (the JAX half of the suite runs
# `backends` tests); the docstring and README examples are backend-free
# documentation, run under TensorFlow only.
backends = pytest.mark.backends


def _np(x):
    return keras.ops.convert_to_numpy(x)


# class -> (init kwargs, input shape, run_layer_test options). Each row
# picks non-default values where it can, so the config check sees them.
CASES = {
    dl_layers.ConvNormAct: (
        dict(filters=4, kernel_size=3, rank=1, norm="layer",
             activation="gelu", kernel_regularizer="l2"),
        (2, 7, 3), dict(supports_masking=False)),
    dl_layers.ResidualBlock: (
        dict(filters=8, strides=2, bottleneck=True, norm="group",
             norm_groups=2, drop_path=0.1),
        (2, 6, 6, 4), dict(supports_masking=False)),
    dl_layers.DenseBlock: (
        dict(num_layers=2, growth_rate=3, rank=1, dropout=0.1,
             norm="none"),
        (2, 9, 4), dict(supports_masking=False)),
    dl_layers.InceptionBlock: (
        dict(filters_1x1=2, filters_3x3_reduce=2, filters_3x3=4,
             filters_5x5_reduce=2, filters_5x5=2, pool_proj=2, norm="group",
             norm_groups=2, activation="gelu", kernel_regularizer="l2"),
        (2, 5, 5, 3), dict(supports_masking=False)),
    dl_layers.TemporalBlock: (
        dict(filters=6, kernel_size=2, dilation_rate=2, norm="layer",
             kernel_regularizer="l2"),
        (2, 12, 3), dict(supports_masking=False)),
    dl_layers.TCN: (
        dict(filters=6, kernel_size=2, dilations=(1, 2), norm="batch",
             return_sequences=True, dropout=0.1),
        (2, 12, 3), dict(supports_masking=False)),
    dl_layers.TransformerEncoder: (
        dict(num_heads=2, intermediate_dim=8, normalize_first=True,
             attention_dropout=0.1, bias_initializer="ones",
             kernel_regularizer="l2"),
        (2, 6, 4), dict(supports_masking=True)),
    dl_layers.TransformerDecoder: (
        dict(num_heads=2, intermediate_dim=8, normalize_first=True,
             attention_dropout=0.1, bias_initializer="ones",
             kernel_regularizer="l2"),
        (2, 6, 4), dict(supports_masking=True)),
    dl_layers.SinePositionEncoding: (
        dict(max_wavelength=100), (2, 6, 4),
        dict(supports_masking=True, run_training_check=False)),
    dl_layers.PositionEmbedding: (
        dict(sequence_length=8, hierarchical_alpha=0.3), (2, 6, 4),
        dict(supports_masking=True)),
    dl_layers.TokenAndPositionEmbedding: (
        dict(vocabulary_size=10, sequence_length=8, embedding_dim=4,
             mask_zero=True),
        (2, 6), dict(supports_masking=True, input_dtype="int32",
                     input_maxval=10)),
    dl_layers.UpsamplingBlock: (
        dict(filters=4, upsample="nearest", convs=1, norm="layer",
             kernel_regularizer="l2"),
        (2, 3, 3, 5), dict(supports_masking=False)),
    dl_layers.UNet: (
        dict(filters=4, depth=1, rank=1, upsample="bilinear",
             skip_connections=False, convs=1, norm="group", norm_groups=2,
             dropout=0.1),
        (2, 8, 3), dict(supports_masking=False)),
    dl_layers.GaussianSampling: (
        # Inference returns the mean: the reload check compares it.
        dict(kl_weight=0.5, seed=3), (2, 6), dict(supports_masking=False)),
    dl_layers.StochasticDepth: (
        dict(rate=0.2, seed=3), (2, 6, 4), dict(supports_masking=True)),
    dl_layers.EnsembleCombine: (
        # The members on axis 1 of one tensor.
        dict(combine="geometric"), (2, 3, 4),
        dict(supports_masking=False, run_training_check=False)),
    dl_layers.MCDropout: (
        # rate 0: the reload check compares inference outputs.
        dict(rate=0.0, seed=1), (2, 6, 4), dict(supports_masking=True)),
    dl_layers.RandomRot90: (
        # Inference is the identity: the reload check compares it.
        dict(seed=2), (2, 5, 5, 3), dict(supports_masking=False)),
}


def _public_layers():
    return sorted((obj for obj in vars(dl_layers).values()
                   if inspect.isclass(obj)
                   and issubclass(obj, keras.layers.Layer)),
                  key=lambda cls: cls.__name__)


@backends
def test_every_public_layer_has_a_case():
    assert set(_public_layers()) == set(CASES)


@backends
@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_layer(cls):
    init_kwargs, input_shape, options = CASES[cls]
    run_layer_test(cls, init_kwargs, input_shape, **options)


# --- one house style ---------------------------------------------------------

def _built(cls):
    init_kwargs, input_shape, options = CASES[cls]
    layer = cls(**init_kwargs)
    dtype = options.get("input_dtype", "float32")
    x = np.ones(input_shape, dtype)
    layer(x)
    return layer


@backends
@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_house_style(cls):
    layer = _built(cls)
    config = layer.get_config()
    for name, value in vars(layer).items():
        # Sublayers are private (attributes starting with "_").
        if isinstance(value, keras.layers.Layer) or (
                isinstance(value, (list, tuple)) and value
                and isinstance(value[0], keras.layers.Layer)):
            assert name.startswith("_"), f"public sublayer {name!r}"
    for name, value in config.items():
        held = getattr(layer, name, None)
        if name.endswith("initializer"):
            # Stored as the object `keras.initializers.get` returns.
            assert isinstance(held, keras.initializers.Initializer), name
            assert isinstance(value, dict), name  # serialized in get_config
        if name.endswith("regularizer") and value is not None:
            assert isinstance(held, keras.regularizers.Regularizer), name
        if name == "activation":
            assert callable(held) and isinstance(value, str)


# --- initializers given as plain functions -----------------------------------

def _half(shape, dtype=None):
    """Not registered: works in a layer, as in `keras.layers.Dense`."""
    return keras.ops.full(shape, 0.5, dtype=dtype)


@keras.saving.register_keras_serializable(package="dlrecipes_tests")
def registered_half(shape, dtype=None):
    return keras.ops.full(shape, 0.5, dtype=dtype)


# class -> (the initializer argument, weights it initializes: path ends)
INITIALIZED = {
    dl_layers.ConvNormAct: ("kernel_initializer", ("kernel",)),
    dl_layers.ResidualBlock: ("kernel_initializer", ("kernel",)),
    dl_layers.DenseBlock: ("kernel_initializer", ("kernel",)),
    dl_layers.InceptionBlock: ("kernel_initializer", ("kernel",)),
    dl_layers.TemporalBlock: ("kernel_initializer", ("kernel",)),
    dl_layers.TCN: ("kernel_initializer", ("kernel",)),
    dl_layers.TransformerEncoder: ("kernel_initializer", ("kernel",)),
    dl_layers.TransformerDecoder: ("kernel_initializer", ("kernel",)),
    dl_layers.UpsamplingBlock: ("kernel_initializer", ("kernel",)),
    dl_layers.UNet: ("kernel_initializer", ("kernel",)),
    dl_layers.PositionEmbedding: ("initializer", ("embeddings",)),
    dl_layers.TokenAndPositionEmbedding: ("embeddings_initializer",
                                          ("embeddings",)),
}


@backends
def test_every_initializer_argument_is_covered():
    taking = {cls for cls in CASES
              if any(name.endswith("initializer") for name in
                     inspect.signature(cls.__init__).parameters)}
    assert taking == set(INITIALIZED)


@backends
@pytest.mark.parametrize("cls", sorted(INITIALIZED, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_function_initializer(cls):
    arg, ends = INITIALIZED[cls]
    init_kwargs, input_shape, options = CASES[cls]
    x = np.ones(input_shape, options.get("input_dtype", "float32"))
    layer = cls(**{**init_kwargs, arg: _half})
    layer(x)
    initialized = [w for w in layer.weights if w.path.endswith(ends)]
    assert initialized
    for w in initialized:
        np.testing.assert_array_equal(_np(w), 0.5, err_msg=w.path)
    # Registered, it round-trips through the config and a .keras file.
    layer = cls(**{**init_kwargs, arg: registered_half})
    revived = cls.from_config(layer.get_config())
    assert getattr(revived, arg) is registered_half
    inputs = keras.Input(input_shape[1:],
                         dtype=options.get("input_dtype", "float32"))
    model = keras.Model(inputs, layer(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        # Keras' loader: dlrecipes.load_model refuses functions from
        # outside dlrecipes and Keras, whatever their registration.
        loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6)


# --- docstring examples --------------------------------------------------------

def _layer_modules():
    package = os.path.dirname(dl_layers.__file__)
    return sorted("dlrecipes.layers." + f[:-3] for f in os.listdir(package)
                  if f.endswith(".py") and not f.startswith("_"))


# Every module of dlrecipes.layers (a new one joins by itself), and the
# schedules.
DOCUMENTED = _layer_modules() + ["dlrecipes.schedules"]


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    globs = {**vars(dl_layers), **vars(module), "keras": keras, "np": np}
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS
                                   | doctest.NORMALIZE_WHITESPACE)
    examples, report = 0, []
    for test in finder.find(module, module_name, globs=globs):
        if test.name.split(".")[-1].startswith("_"):
            continue
        examples += len(test.examples)
        runner.run(test, out=report.append, clear_globs=False)
    assert examples, f"{module_name} has no docstring example"
    assert runner.failures == 0, "".join(report)


def test_every_public_layer_has_an_example():
    for cls in CASES:
        assert ">>> " in (cls.__doc__ or ""), cls.__name__


def test_readme_layer_example_runs():
    """The README's layer section: its code block builds, and the Add
    pattern hands the encoder the embedding's mask."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Layers, schedules and callbacks"):]
    code = section[section.index("```python") + len("```python"):]
    code = code[:code.index("```")]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    h, ids = namespace["h"], namespace["ids"]
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(ids, [h, pooled])
    real = np.array([[5, 9, 13]], "int32")
    padded = np.array([[5, 9, 13, 0, 0, 0]], "int32")
    (seq_a, mean_a), (seq_b, mean_b) = ([_np(t) for t in model(x)]
                                        for x in (real, padded))
    np.testing.assert_allclose(seq_b[:, :3], seq_a, atol=1e-5)
    np.testing.assert_allclose(mean_b, mean_a, atol=1e-5)
