"""GlobalAveragePooling2D and GlobalMaxPooling2D: one number per channel, over all of H and W.

    average:  y[n, c] = mean of x[n, :, :, c]      dx[n, h, w, c] = dout[n, c] / (H * W)
    max:      y[n, c] = max of x[n, :, :, c]       dx = dout[n, c] at the (first) max, 0 elsewhere

x is (N, H, W, C) and y, dout are (N, C) (Keras's default keepdims=False).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.layers._args import check_images
from minicnn.layers.base import Layer


class _GlobalPooling2D(Layer):
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def compute_output_shape(self, input_shape):
        check_images(self, input_shape)
        return (None, input_shape[3])


class GlobalAveragePooling2D(_GlobalPooling2D):
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, C)."""
        x = self._prepare(x)
        self.cache = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C) -> dx (N, H, W, C)."""
        N, H, W, C = self._cached()
        return np.broadcast_to(dout[:, None, None, :] / (H * W), (N, H, W, C)).copy()


class GlobalMaxCache(NamedTuple):
    x_shape: tuple
    argmax: np.ndarray  # (N, C), flat index h * W + w of each channel's max


class GlobalMaxPooling2D(_GlobalPooling2D):
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, C)."""
        x = self._prepare(x)
        N, H, W, C = x.shape
        flat = x.reshape(N, H * W, C)
        argmax = flat.argmax(axis=1)  # the first maximum on ties
        self.cache = GlobalMaxCache(x.shape, argmax)
        return np.take_along_axis(flat, argmax[:, None, :], axis=1)[:, 0, :]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C) -> dx (N, H, W, C): dout routed to where each max was."""
        (N, H, W, C), argmax = self._cached()
        dx = np.zeros((N, H * W, C), dtype=dout.dtype)
        np.put_along_axis(dx, argmax[:, None, :], dout[:, None, :], axis=1)
        return dx.reshape(N, H, W, C)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
