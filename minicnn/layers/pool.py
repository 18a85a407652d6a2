"""MaxPooling2D: the max of each window forward, the gradient routed to that max backward.

Forward, for x (N, H, W, C): y[n, i, j, c] = max of x[n, window(i, j), c], and the kernel records
where that max was. Backward: dx is zero except at those positions, which receive dout.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.kernels import maxpool_backward, maxpool_forward
from minicnn.layers._args import check_images, padding_mode, positive_pair, window_geometry
from minicnn.layers.base import Layer


class PoolCache(NamedTuple):
    x_shape: tuple
    argmax: np.ndarray  # (N, H_out, W_out, C) int32, flat index h * W + w of each max


class Pooling2D(Layer):
    """What every 2-D window pool shares: Keras's pool_size / strides / padding arguments, the
    output geometry, and the output shape. MaxPooling2D and AveragePooling2D differ only in
    forward and backward."""
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    _config_keys = ("pool_size", "strides", "padding")

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", *,
                 name: str | None = None, dtype=None, input_shape=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.pool_size = positive_pair(pool_size, "pool_size")
        # Keras: strides default to the pool size, i.e. windows that do not overlap.
        self.strides = self.pool_size if strides is None else positive_pair(strides, "strides")
        self.padding = padding_mode(padding)

    def geometry(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(H_out, W_out, PT, PL): the output size and the padding at the top and left."""
        (PH, PW), (SH, SW) = self.pool_size, self.strides
        H_out, PT = window_geometry(H, PH, SH, self.padding)
        W_out, PL = window_geometry(W, PW, SW, self.padding)
        if H_out <= 0 or W_out <= 0:
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): pool {self.pool_size} does not "
                f"fit an input of {H}x{W} with padding='valid'"
            )
        return H_out, W_out, PT, PL

    def compute_output_shape(self, input_shape):
        check_images(self, input_shape)
        _, H, W, C = input_shape
        H_out, W_out, _, _ = self.geometry(H, W)
        return (None, H_out, W_out, C)


class MaxPooling2D(Pooling2D):
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, C)."""
        x = self._prepare(x)
        N, H, W, C = x.shape
        H_out, W_out, PT, PL = self.geometry(H, W)
        y = np.empty((N, H_out, W_out, C), dtype=x.dtype)
        argmax = np.empty((N, H_out, W_out, C), dtype=np.int32)
        (PH, PW), (SH, SW) = self.pool_size, self.strides
        maxpool_forward(np.ascontiguousarray(x), PH, PW, SH, SW, PT, PL, y, argmax)
        self.cache = PoolCache(x.shape, argmax)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, C) -> dx (N, H, W, C)."""
        x_shape, argmax = self._cached()
        dx = np.empty(x_shape, dtype=dout.dtype)
        maxpool_backward(np.ascontiguousarray(dout), argmax, dx)
        return dx


MaxPool2D = MaxPooling2D
