"""Dropout: inverted dropout, as Keras does it.

In training each element is kept with probability 1 - rate and scaled by 1 / (1 - rate), so the
expected output equals the input and inference needs no rescaling:

    mask = (u >= rate) / (1 - rate),  u ~ U[0, 1)  (shape noise_shape, broadcast over x)
    y = x * mask                              (training=True)
    y = x                                     (training=False)

Backward, from dout = dL/dy: dx = dout * mask (dx = dout at inference). The mask is the only
thing the backward needs, so it is what the cache keeps (and what `record()` shows).

The draws come from `self.rng`: a generator seeded by `seed`, or, when seed is None, the model's
own (Sequential.build hands it over), so a seeded model drops the same units on every run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.layers.base import Layer


class DropoutCache(NamedTuple):
    mask: np.ndarray | None  # broadcastable to x (N, ...): 0 or 1 / (1 - rate); None at inference


class Dropout(Layer):
    @property
    def per_sample(self) -> bool:
        """One mask per sample, unless noise_shape fixes the batch entry (one mask shared)."""
        return self.noise_shape is None or self.noise_shape[0] is None

    _config_keys = ("rate", "noise_shape", "seed")
    # fit gives the layer a generator for each training step, keyed by the step (see
    # Trainer._train_step), so that training resumed from a file draws the same masks.
    draws_in_training = True

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, input_shape=None,
                 *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 (included) and 1 (excluded). Received: rate={rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _mask_shape(self, shape: tuple) -> tuple:
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Layer '{self.name}' (Dropout) has noise_shape={self.noise_shape}, "
                             f"which does not broadcast to its input of shape {shape}")
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape, strict=True))

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ...) -> y (N, ...), the same shape and dtype."""
        x = self._prepare(x)
        if not training or self.rate == 0:
            self.cache = DropoutCache(None)
            return x.copy()
        if self.rng is None:  # a layer used on its own, outside a model and without a seed
            self.rng = np.random.default_rng()
        keep = self.rng.random(self._mask_shape(x.shape)) >= self.rate
        mask = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        self.cache = DropoutCache(mask)
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ...) -> dx (N, ...)."""
        mask = self._cached().mask
        return dout.copy() if mask is None else dout * mask
