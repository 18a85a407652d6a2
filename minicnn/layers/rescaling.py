"""Rescaling: y = x * scale + offset, e.g. `Rescaling(1 / 255)` for pixels; dx = dout * scale.

Shapes: x, y, dout and dx are all (N, ...). scale and offset are fixed numbers, not weights.
"""

from __future__ import annotations

import numpy as np

from minicnn.layers.base import Layer


class Rescaling(Layer):
    """Keras's `Rescaling(scale, offset=0.0)`, with scalar scale and offset."""
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def __init__(self, scale: float, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        for argument, value in (("scale", scale), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Invalid value for argument `{argument}`. Expected a number. "
                                 f"Received {argument}={value!r}")
        self.scale = float(scale)
        self.offset = float(offset)

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ...) -> y (N, ...), in x's dtype."""
        x = self._prepare(x)
        self.cache = x.dtype  # backward needs nothing of x but its dtype
        return x * x.dtype.type(self.scale) + x.dtype.type(self.offset)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ...) -> dx (N, ...)."""
        self._cached()
        return dout * dout.dtype.type(self.scale)
