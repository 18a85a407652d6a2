"""Activations as layers of their own: Activation(name), ReLU, LeakyReLU and Softmax (the same
functions as `activation="relu"` etc., from minicnn/activations.py).

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
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)
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


class LeakyReLU(_ActivationLayer):
    """y = x if x > 0 else negative_slope * x; Keras's layer default is 0.3 (the function's,
    `activation="leaky_relu"`, is 0.2)."""

    def __init__(self, negative_slope: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(negative_slope, (int, float)) or negative_slope < 0:
            raise ValueError(
                "Invalid value for argument `negative_slope`. Expected a non-negative number. "
                f"Received negative_slope={negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self.activation = activations.LeakyReLUActivation(self.negative_slope)


class Activation(_ActivationLayer):
    """Any activation by name, `Activation("tanh")`; saved by that name."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
