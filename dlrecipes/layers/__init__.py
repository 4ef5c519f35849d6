"""Reusable Keras 3 layers: `keras.ops` only, registered for serialization."""

from dlrecipes.lazy import import_keras as _import_keras

_import_keras()  # quietly (TensorFlow's native start-up lines), once

# Each module registers its classes with keras.saving on import.
from dlrecipes.layers.normalization import NORMALIZATIONS, normalization  # noqa: F401,E402
from dlrecipes.layers.regularization import MCDropout, StochasticDepth  # noqa: F401,E402
from dlrecipes.layers.conv_norm_act import ConvNormAct  # noqa: F401,E402
from dlrecipes.layers.residual import ResidualBlock  # noqa: F401,E402
from dlrecipes.layers.dense_block import DenseBlock  # noqa: F401,E402
from dlrecipes.layers.inception import InceptionBlock  # noqa: F401,E402
from dlrecipes.layers.tcn import TCN, TemporalBlock  # noqa: F401,E402
from dlrecipes.layers.transformer import TransformerEncoder  # noqa: F401,E402
from dlrecipes.layers.transformer_decoder import TransformerDecoder  # noqa: F401,E402
from dlrecipes.layers.position import (  # noqa: F401,E402
    PositionEmbedding, SinePositionEncoding, TokenAndPositionEmbedding)
from dlrecipes.layers.upsampling import UNet, UpsamplingBlock  # noqa: F401,E402
from dlrecipes.layers.gaussian_sampling import GaussianSampling  # noqa: F401,E402
from dlrecipes.layers.ensemble import EnsembleCombine  # noqa: F401,E402
from dlrecipes.layers.augmentation import RandomRot90  # noqa: F401,E402
