"""Flatten: (N, H, W, C) -> (N, H * W * C) in NHWC (row-major) order, as Keras flattens."""

from __future__ import annotations

import math

import numpy as np

from minicnn.layers.base import Layer


class Flatten(Layer):
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (None, None if None in rest else math.prod(rest))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> (N, H * W * C)."""
        x = self._prepare(x)
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H * W * C) -> dx (N, H, W, C)."""
        return dout.reshape(self._cached())
