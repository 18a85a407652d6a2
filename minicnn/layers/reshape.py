"""Reshape: each sample's elements laid out in `target_shape`, as Keras's.

For x (N, *in_shape), y = x.reshape(N, *target_shape): the same elements in the same row-major
(C) order, the batch axis kept. One entry of target_shape may be -1, the size that makes the
totals equal (Keras's rule); otherwise prod(target_shape) must equal prod(in_shape).

Element k of a sample's flattened x is element k of its flattened y, so with f = sum(y * dout),
df/dx is dout with x's shape back: dout (N, *target_shape) -> dx = dout.reshape(N, *in_shape).
Nothing is computed, so nothing but x's shape is kept for backward.
"""

from __future__ import annotations

import math

import numpy as np

from minicnn.layers.base import Layer, shape_str


def _target(value) -> tuple[int, ...]:
    """A tuple of ints, each >= 0 or -1, with at most one -1 (Keras's validate_reshape_shape)."""
    dims = tuple(value) if isinstance(value, (tuple, list)) else None
    if (dims is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                and d >= -1 for d in dims) or dims.count(-1) > 1):
        raise ValueError(
            "Invalid value for argument `target_shape`. Expected a tuple of ints, each >= 0 or "
            "-1 for a single unknown dimension (the batch axis left out). "
            f"Received target_shape={value!r}")
    return tuple(int(d) for d in dims)


class Reshape(Layer):
    """Keras's `Reshape(target_shape)`."""

    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)

    def __init__(self, target_shape, input_shape=None, *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.target_shape = _target(target_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "target_shape": list(self.target_shape)}

    def _resolve(self, sample_shape: tuple) -> tuple:
        """target_shape with its -1 worked out for one sample of `sample_shape` (None where a
        size is unknown); a ValueError naming the layer and both shapes when none fits."""
        if None in sample_shape:  # unknown until data arrives, as Keras: -1 stays unknown
            return tuple(None if d == -1 else d for d in self.target_shape)
        size, known = math.prod(sample_shape), math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape and size == known:
            return self.target_shape
        if -1 in self.target_shape and known > 0 and size % known == 0:
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        raise ValueError(
            f"Layer '{self.name}' (Reshape) cannot reshape input of shape "
            f"{shape_str((None, *sample_shape))} ({size} elements per sample) to target_shape="
            f"{self.target_shape}: the total size of each sample must be unchanged"
            + (f" and divisible by the known dimensions' product {known}."
               if -1 in self.target_shape else f", but the target holds {known}."))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._resolve(tuple(input_shape[1:])))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, *in_shape) -> y (N, *target_shape), the same elements in the same order."""
        x = self._prepare(x)
        self.cache = x.shape
        return x.reshape(x.shape[0], *self._resolve(x.shape[1:]))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, *target_shape) -> dx (N, *in_shape)."""
        return dout.reshape(self._cached())
