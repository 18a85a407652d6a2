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
