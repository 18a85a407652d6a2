"""Layers with Keras's names, arguments and weight layouts; `Layer` is the base to subclass."""

from minicnn.layers.activation import Activation, LeakyReLU, ReLU, Softmax
from minicnn.layers.avg_pool import AveragePooling2D, AvgPool2D
from minicnn.layers.base import Layer, Parameter, clear_session
from minicnn.layers.batch_norm import BatchNormalization
from minicnn.layers.conv import Conv2D
from minicnn.layers.dense import Dense
from minicnn.layers.dropout import Dropout
from minicnn.layers.flatten import Flatten
from minicnn.layers.global_pool import (
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
)
from minicnn.layers.input import Input
from minicnn.layers.pool import MaxPool2D, MaxPooling2D
from minicnn.layers.random_flip import RandomFlip
from minicnn.layers.rescaling import Rescaling

__all__ = [
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "Input",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "MaxPooling2D",
    "Parameter",
    "RandomFlip",
    "ReLU",
    "Rescaling",
    "Softmax",
    "clear_session",
]
