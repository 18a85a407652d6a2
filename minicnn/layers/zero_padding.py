"""ZeroPadding2D: rows and columns of zeros around each image, as Keras's.

For x (N, H, W, C) and padding ((top, bottom), (left, right)) the output is
y (N, top + H + bottom, left + W + right, C), zero everywhere except the window

    y[:, top:top + H, left:left + W, :] = x

Each output element is either a copy of one input element or the constant 0, so with
f = sum(y * dout), df/dx[n, h, w, c] = dout[n, top + h, left + w, c]: backward reads that window
back out of dout (N, H_out, W_out, C) -> dx (N, H, W, C). The zeros carry no gradient.

`side_pairs` and `channels_last` also serve Cropping2D, which takes the same argument forms.
"""

from __future__ import annotations

import numpy as np

from minicnn.layers._args import check_images
from minicnn.layers.base import Layer

Pairs = tuple[tuple[int, int], tuple[int, int]]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def side_pairs(value, argument: str) -> Pairs:
    """Keras's three forms as ((top, bottom), (left, right)), each >= 0: an int for all four
    sides, (h, w) for symmetric height and width, or ((top, bottom), (left, right))."""
    pairs = None
    if _is_int(value):
        pairs = ((value, value), (value, value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        if all(_is_int(v) for v in value):
            pairs = ((value[0], value[0]), (value[1], value[1]))
        elif all(isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v)
                 for v in value):
            pairs = (tuple(value[0]), tuple(value[1]))
    if pairs is None or any(e < 0 for pair in pairs for e in pair):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected an int >= 0, a tuple of 2 ints "
            f">= 0 (symmetric height, symmetric width) or a tuple of 2 tuples of 2 ints >= 0 "
            f"((top, bottom), (left, right)). Received {argument}={value!r}")
    return tuple((int(a), int(b)) for a, b in pairs)


def channels_last(data_format) -> str:
    """None or "channels_last" (Keras's default, minicnn's only layout): "channels_last"."""
    if data_format in (None, "channels_last"):
        return "channels_last"
    raise ValueError(
        "Invalid value for argument `data_format`. Expected 'channels_last' or None: minicnn "
        "keeps images as (batch, height, width, channels) only; transpose channels-first data "
        f"with x.transpose(0, 2, 3, 1). Received data_format={data_format!r}")


class ZeroPadding2D(Layer):
    """Keras's `ZeroPadding2D(padding=(1, 1), data_format=None)`."""

    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def __init__(self, padding=(1, 1), data_format=None, input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.padding: Pairs = side_pairs(padding, "padding")
        self.data_format = channels_last(data_format)

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": [list(p) for p in self.padding],
                "data_format": self.data_format}

    def compute_output_shape(self, input_shape):
        check_images(self, input_shape)
        (top, bottom), (left, right) = self.padding
        N, H, W, C = input_shape
        return (N, None if H is None else top + H + bottom,
                None if W is None else left + W + right, C)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, top + H + bottom, left + W + right, C), in x's dtype."""
        x = self._prepare(x)
        (top, bottom), (left, right) = self.padding
        N, H, W, C = x.shape
        self.cache = x.shape
        y = np.zeros((N, top + H + bottom, left + W + right, C), dtype=x.dtype)
        y[:, top:top + H, left:left + W] = x
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, C) -> dx (N, H, W, C): the window x was copied into."""
        _, H, W, _ = self._cached()
        (top, _), (left, _) = self.padding
        return dout[:, top:top + H, left:left + W].copy()
