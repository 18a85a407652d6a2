"""UpSampling2D: each image made `size` times taller and wider, as Keras's.

For x (N, H, W, C) and size (SH, SW) the output is y (N, SH * H, SW * W, C).

"nearest" repeats each pixel into an SH x SW block (Keras's ops.repeat along both axes):

    y[n, i, j, c] = x[n, i // SH, j // SW, c]
    =>  dx[n, h, w, c] = sum of dout[n, h * SH + a, w * SW + b, c] over 0 <= a < SH, 0 <= b < SW

i.e. dout reshaped to (N, H, SH, W, SW, C) and summed over the two block axes.

"bilinear" is TensorFlow's resize (Keras's ops.image.resize, antialias off) with half-pixel
centres: output row i sits at input coordinate c = (i + 0.5) / SH - 0.5, clamped onto [0, H - 1]
(a coordinate below 0 reads row 0, one past H - 1 reads row H - 1), and reads the rows
floor(c) and floor(c) + 1 with weights 1 - (c - floor(c)) and c - floor(c). Rows and columns
are interpolated independently, so the whole map is a rows matrix A_h (SH * H, H) and a columns
matrix A_w (SW * W, W), each of their rows holding at most two weights that sum to 1:

    y[n, :, :, c] = A_h @ x[n, :, :, c] @ A_w.T
    =>  dx[n, :, :, c] = A_h.T @ dout[n, :, :, c] @ A_w

Backward is the transpose: every input pixel collects dout from each output pixel that read it,
times the weight it was read with (RandomTranslation's rows and columns matrices, the same way).
TensorFlow computes the coordinates in float32 whatever the input's dtype, so in float64 its
output differs from this exact interpolation by ~1e-7 of the values.
"""

from __future__ import annotations

import numpy as np

from minicnn.layers._args import check_images, positive_pair
from minicnn.layers.base import Layer
from minicnn.layers.zero_padding import channels_last

INTERPOLATIONS = ("nearest", "bilinear")


def axis_matrix(L: int, s: int, dtype) -> np.ndarray:
    """A (s * L, L): (A @ v)[i] is v (L,) read bilinearly at the half-pixel coordinate
    (i + 0.5) / s - 0.5, as TensorFlow's resize reads it."""
    c = np.clip((np.arange(s * L) + 0.5) / s - 0.5, 0, L - 1)
    low = np.floor(c).astype(int)
    high = np.minimum(low + 1, L - 1)  # at the last row both taps read it: weights still sum to 1
    frac = c - low
    A = np.zeros((s * L, L), dtype)
    rows = np.arange(s * L)
    np.add.at(A, (rows, low), 1 - frac)
    np.add.at(A, (rows, high), frac)
    return A


def _separable(rows: np.ndarray, cols: np.ndarray, a: np.ndarray) -> np.ndarray:
    """rows (I, H), cols (J, W), a (N, H, W, C) -> rows @ a[n, :, :, c] @ cols.T (N, I, J, C)."""
    N, H, W, C = a.shape
    a = (rows @ a.reshape(N, H, W * C)).reshape(N, rows.shape[0], W, C)  # every image's rows
    return cols @ a  # then every row's columns: (J, W) @ (W, C), broadcast over (N, I)


class UpSampling2D(Layer):
    """Keras's `UpSampling2D(size=(2, 2), data_format=None, interpolation="nearest")`."""

    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def __init__(self, size=(2, 2), data_format=None, interpolation: str = "nearest",
                 input_shape=None, *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.size = positive_pair(size, "size")
        self.data_format = channels_last(data_format)
        # Keras lowercases it; its other methods (bicubic, lanczos, area) are not written here
        if not isinstance(interpolation, str) or interpolation.lower() not in INTERPOLATIONS:
            raise ValueError(
                f"Invalid value for argument `interpolation`. Expected one of {INTERPOLATIONS}. "
                f"Received interpolation={interpolation!r}")
        self.interpolation = interpolation.lower()

    def get_config(self) -> dict:
        return {**super().get_config(), "size": list(self.size),
                "data_format": self.data_format, "interpolation": self.interpolation}

    def compute_output_shape(self, input_shape):
        check_images(self, input_shape)
        N, H, W, C = input_shape
        SH, SW = self.size
        return (N, None if H is None else SH * H, None if W is None else SW * W, C)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, SH * H, SW * W, C), in x's dtype."""
        x = self._prepare(x)
        _, H, W, _ = x.shape
        SH, SW = self.size
        if self.interpolation == "nearest":
            self.cache = (x.shape, None, None)
            return np.repeat(np.repeat(x, SH, axis=1), SW, axis=2)
        rows, cols = axis_matrix(H, SH, x.dtype), axis_matrix(W, SW, x.dtype)
        self.cache = (x.shape, rows, cols)
        return _separable(rows, cols, x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, SH * H, SW * W, C) -> dx (N, H, W, C)."""
        (N, H, W, C), rows, cols = self._cached()
        SH, SW = self.size
        if rows is None:  # each SH x SW block of dout came from one pixel: sum it
            return dout.reshape(N, H, SH, W, SW, C).sum(axis=(2, 4))
        return _separable(rows.T, cols.T, dout)
