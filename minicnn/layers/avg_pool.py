"""AveragePooling2D: the mean of each window forward, dout shared out evenly backward.

Forward, for x (N, H, W, C): y[n, i, j, c] = mean of x[n, window(i, j), c]. With padding "same"
the window is clipped to the input and the mean counts only the elements inside it, as Keras
does (padding is never averaged in as zeros). Backward: each of the `count` inputs of a window
receives dout[n, i, j, c] / count, added up where windows overlap (stride < pool size).

Plain NumPy, one window position at a time, each step over the whole batch and all channels.
"""

from __future__ import annotations

import numpy as np

from minicnn.layers.pool import Pooling2D


class AveragePooling2D(Pooling2D):
    """Keras's `AveragePooling2D(pool_size=(2, 2), strides=None, padding="valid")`. Keras 3
    (3.15) requires pool_size; the (2, 2) default is Keras 2's and MaxPooling2D's."""

    def windows(self, H: int, W: int):
        """Yield (i, j, h0, h1, w0, w1): output position and its window clipped to the input."""
        H_out, W_out, PT, PL = self.geometry(H, W)
        (PH, PW), (SH, SW) = self.pool_size, self.strides
        for i in range(H_out):
            h0, h1 = max(i * SH - PT, 0), min(i * SH - PT + PH, H)
            for j in range(W_out):
                w0, w1 = max(j * SW - PL, 0), min(j * SW - PL + PW, W)
                yield i, j, h0, h1, w0, w1

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, C)."""
        x = self._prepare(x)
        N, H, W, C = x.shape
        H_out, W_out, _, _ = self.geometry(H, W)
        y = np.empty((N, H_out, W_out, C), dtype=x.dtype)
        for i, j, h0, h1, w0, w1 in self.windows(H, W):
            y[:, i, j, :] = x[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
        self.cache = x.shape  # the mean's gradient needs only where the windows were
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, C) -> dx (N, H, W, C)."""
        x_shape = self._cached()
        dx = np.zeros(x_shape, dtype=dout.dtype)
        for i, j, h0, h1, w0, w1 in self.windows(x_shape[1], x_shape[2]):
            count = (h1 - h0) * (w1 - w0)
            dx[:, h0:h1, w0:w1, :] += dout[:, i, j, None, None, :] / count
        return dx


AvgPool2D = AveragePooling2D
