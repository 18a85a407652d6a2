"""Argument checking and window arithmetic shared by the layers."""

from __future__ import annotations

import math


def positive_pair(value, argument: str) -> tuple[int, int]:
    """An int or a pair of ints, each > 0, as a pair; a Keras-style error otherwise."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(
        value, (tuple, list)) else None
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair)):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a strictly positive int or a "
            f"tuple of 2 strictly positive ints. Received {argument}={value!r}"
        )
    return pair


def padding_mode(value) -> str:
    if not isinstance(value, str) or value.lower() not in ("valid", "same"):
        raise ValueError(
            "Invalid value for argument `padding`. Expected 'valid' or 'same'. "
            f"Received padding={value!r}"
        )
    return value.lower()


def window_geometry(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) along one axis, with Keras's rules.

    "valid": out = floor((size - window) / stride) + 1, no padding.
    "same":  out = ceil(size / stride); the padding needed is split with the extra row, if odd,
             at the end (bottom/right), as TensorFlow does.
    """
    if padding == "same":
        out = math.ceil(size / stride)
        pad_total = max((out - 1) * stride + window - size, 0)
        return out, pad_total // 2
    return (size - window) // stride + 1, 0


def positive_int(value, argument: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a strictly positive value. "
            f"Received {argument}={value!r}"
        )
    return value


def check_images(layer, input_shape, class_name: str | None = None) -> None:
    """A 2-D spatial layer takes 4-D input (batch, height, width, channels): else the error
    naming the layer (as `class_name`, by default its class) and the shape received."""
    if len(input_shape) != 4:
        raise ValueError(
            f"Layer '{layer.name}' ({class_name or type(layer).__name__}) expects 4-D input "
            f"(batch, height, width, channels), received input_shape={tuple(input_shape)}")


def conv_geometry(layer, H: int, W: int, class_name: str | None = None
                  ) -> tuple[int, int, int, int]:
    """(H_out, W_out, PT, PL) of a convolution window (`layer.kernel_size`, `.strides`,
    `.padding`) over an H x W input: the output size and the padding at the top and left;
    an error naming the layer when the kernel does not fit."""
    (KH, KW), (SH, SW) = layer.kernel_size, layer.strides
    H_out, PT = window_geometry(H, KH, SH, layer.padding)
    W_out, PL = window_geometry(W, KW, SW, layer.padding)
    if H_out <= 0 or W_out <= 0:
        raise ValueError(
            f"Layer '{layer.name}' ({class_name or type(layer).__name__}): kernel "
            f"{layer.kernel_size} does not fit an input of {H}x{W} with padding='valid'")
    return H_out, W_out, PT, PL
