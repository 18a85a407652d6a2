"""Layers with Keras's names, arguments and weight layouts; `Layer` is the base to subclass."""

from minicnn.layers.activation import ReLU, Softmax
from minicnn.layers.base import Layer, Parameter, clear_session
from minicnn.layers.conv import Conv2D
from minicnn.layers.dense import Dense
from minicnn.layers.flatten import Flatten
from minicnn.layers.pool import MaxPool2D, MaxPooling2D

__all__ = [
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "MaxPooling2D",
    "Parameter",
    "ReLU",
    "Softmax",
    "clear_session",
]
