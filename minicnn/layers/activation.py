"""ReLU and Softmax as layers of their own (the same functions as `activation="relu"` etc.).

    y = activation(x);   dx = activation'(dout), from the output y
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import activations
from minicnn.layers.base import Layer


class ActivationCache(NamedTuple):
    z: np.ndarray  # (N, ...), the input: the activation's z
    y: np.ndarray  # (N, ...), the output


class _ActivationLayer(Layer):
    activation: activations.Activation

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ...) -> y (N, ...), the activation along the last axis."""
        x = self._prepare(x)
        y = self.activation.forward(x)
        self.cache = ActivationCache(x, y)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ...) -> dx (N, ...)."""
        return self.activation.backward(dout, self._cached().y)

    def backward_from_z(self, dz: np.ndarray) -> np.ndarray:
        """The input is z itself, so a gradient at z is the input gradient."""
        self._cached()
        return dz


class ReLU(_ActivationLayer):
    """y = max(x, 0); dx = dout where y > 0."""

    activation = activations.relu


class Softmax(_ActivationLayer):
    """y = exp(x) / sum(exp(x)) along the last axis."""

    activation = activations.softmax
