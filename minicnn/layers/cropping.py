"""Cropping2D: rows and columns cut off each image's edges, as Keras's.

For x (N, H, W, C) and cropping ((top, bottom), (left, right)) the output is the window

    y = x[:, top:H - bottom, left:W - right, :]      y (N, H - top - bottom, W - left - right, C)

Each output element is a copy of one input element and the cut ones are read by nothing, so
with f = sum(y * dout): df/dx[n, top + i, left + j, c] = dout[n, i, j, c], and 0 for a cut
element. Backward is ZeroPadding2D's forward with the same pairs: dout (N, H_out, W_out, C)
written into zeros of x's shape, dx (N, H, W, C).

As in Keras, the crop must leave at least one row and one column: top + bottom < H and
left + right < W, checked when the layer is built and again for each input (an unknown height
or width in the built shape is only known then).
"""

from __future__ import annotations

import numpy as np

from minicnn.layers._args import check_images
from minicnn.layers.base import Layer, shape_str
from minicnn.layers.zero_padding import Pairs, channels_last, side_pairs


class Cropping2D(Layer):
    """Keras's `Cropping2D(cropping=((0, 0), (0, 0)), data_format=None)`."""

    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.cropping: Pairs = side_pairs(cropping, "cropping")
        self.data_format = channels_last(data_format)

    def get_config(self) -> dict:
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping],
                "data_format": self.data_format}

    def _check_fits(self, shape) -> None:
        (top, bottom), (left, right) = self.cropping
        _, H, W, _ = shape
        if (H is not None and top + bottom >= H) or (W is not None and left + right >= W):
            raise ValueError(
                f"Invalid value for argument `cropping`. Expected values smaller than the "
                f"input's height and width (top + bottom < height, left + right < width) of "
                f"layer '{self.name}' (Cropping2D). Received cropping={self.cropping} for "
                f"input shape {shape_str(tuple(shape))}")

    def compute_output_shape(self, input_shape):
        check_images(self, input_shape)
        self._check_fits(input_shape)
        (top, bottom), (left, right) = self.cropping
        N, H, W, C = input_shape
        return (N, None if H is None else H - top - bottom,
                None if W is None else W - left - right, C)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H - top - bottom, W - left - right, C), in x's dtype."""
        x = self._prepare(x)
        self._check_fits(x.shape)
        (top, bottom), (left, right) = self.cropping
        _, H, W, _ = x.shape
        self.cache = x.shape
        # a copy, not a view: a later layer that writes into its input must not change x
        return x[:, top:H - bottom, left:W - right].copy()

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, C) -> dx (N, H, W, C): dout in the window, 0 where cut."""
        shape = self._cached()
        (top, bottom), (left, right) = self.cropping
        _, H, W, _ = shape
        dx = np.zeros(shape, dtype=dout.dtype)
        dx[:, top:H - bottom, left:W - right] = dout
        return dx
