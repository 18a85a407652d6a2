"""ReLU and Softmax as layers of their own (the same functions as `activation="relu"` etc.)."""

from __future__ import annotations

import numpy as np

from minicnn import activations
from minicnn.layers.base import Layer


class _ActivationLayer(Layer):
    function: activations.Activation

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        x = self._prepare(x)
        z = np.array(x, order="C")  # the activation works in place; never on the caller's x
        y, logits = activations.apply(self.function, z.reshape(-1, z.shape[-1]), None)
        y = y.reshape(x.shape)
        self.cache = (y, logits) if training else None
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        y, _ = self._cached()
        flat = (-1, y.shape[-1])
        return self.function.backward(dout.reshape(flat), y.reshape(flat)).reshape(y.shape)


class ReLU(_ActivationLayer):
    """y = max(x, 0); dx = dout where x > 0."""

    function = activations.relu


class Softmax(_ActivationLayer):
    """y = exp(x) / sum(exp(x)) along the last axis."""

    function = activations.softmax

    def softmax_logits(self):
        return self._cached()[1]

    def backward_from_logits(self, dz):
        self._cached()
        return dz
