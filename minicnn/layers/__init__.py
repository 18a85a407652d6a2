"""Layers with Keras's names, arguments and weight layouts; `Layer` is the base to subclass."""

from minicnn.layers.activation import Activation, LeakyReLU, ReLU, Softmax
from minicnn.layers.avg_pool import AveragePooling2D, AvgPool2D
from minicnn.layers.base import Layer, Parameter, clear_session
from minicnn.layers.batch_norm import BatchNormalization
from minicnn.layers.conv import Conv2D
from minicnn.layers.conv_transpose import Conv2DTranspose
from minicnn.layers.cropping import Cropping2D
from minicnn.layers.dense import Dense
from minicnn.layers.depthwise_conv import DepthwiseConv2D
from minicnn.layers.dropout import Dropout
from minicnn.layers.flatten import Flatten
from minicnn.layers.global_pool import (
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
)
from minicnn.layers.merge import (
    Add,
    Average,
    Concatenate,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    multiply,
    subtract,
)
from minicnn.layers.node import Input, InputLayer
from minicnn.layers.pool import MaxPool2D, MaxPooling2D
from minicnn.layers.random_contrast import RandomContrast
from minicnn.layers.random_flip import RandomFlip
from minicnn.layers.random_rotation import RandomRotation
from minicnn.layers.random_translation import RandomTranslation
from minicnn.layers.random_zoom import RandomZoom
from minicnn.layers.rescaling import Rescaling
from minicnn.layers.reshape import Reshape
from minicnn.layers.separable_conv import SeparableConv2D
from minicnn.layers.upsampling import UpSampling2D
from minicnn.layers.zero_padding import ZeroPadding2D

__all__ = [
    "Activation",
    "Add",
    "Average",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
    "Concatenate",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "MaxPooling2D",
    "Multiply",
    "Parameter",
    "RandomContrast",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "ReLU",
    "Rescaling",
    "Reshape",
    "SeparableConv2D",
    "Softmax",
    "Subtract",
    "UpSampling2D",
    "ZeroPadding2D",
    "add",
    "average",
    "clear_session",
    "concatenate",
    "multiply",
    "subtract",
]

# Where a missing layer's error sends the reader (load_model's too): the guide to writing one.
_CUSTOM_LAYER_GUIDE = ('docs/backprop.md, "How to write and check your own layer" '
                       "(docs/backprop.md#how-to-write-and-check-your-own-layer)")


def __getattr__(name: str):
    """`layers.LSTM`, `layers.Conv1D`: a layer minicnn does not have. Say so, list the ones it
    has, and point at the guide to writing your own. Private and dunder names (`__wrapped__`,
    which tools probe for) get the plain AttributeError."""
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import difflib

    have = [n for n in __all__ if n[0].isupper() and n not in ("Layer", "Parameter")]
    # A typo (Maxpooling2D), not another layer with a similar name (Conv1D for Conv2D).
    close = difflib.get_close_matches(name, have, n=1, cutoff=0.85)
    raise AttributeError(
        f"minicnn has no layer `{name}` (module {__name__!r} has no attribute {name!r})."
        + (f" Did you mean `{close[0]}`?" if close else "")
        + f" Its layers are: {', '.join(have)}. To write the one you need, subclass "
        "`minicnn.layers.Layer` (forward and backward) and check it with "
        f"`minicnn.gradcheck.check_layer`: see {_CUSTOM_LAYER_GUIDE}.")
