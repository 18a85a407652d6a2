"""RandomFlip: augmentation that mirrors images at random, in training only, as Keras's.

For x (N, H, W, C), each image is flipped left-right ("horizontal": the W axis) and/or upside
down ("vertical": the H axis), each with probability 1/2, drawn per image; at inference
(training=False) y = x. A flip only moves numbers, so the backward pass moves the gradient back:

    y[n] = x[n, :, ::-1]   =>   dx[n] = dout[n, :, ::-1]     (and the same for the H axis)

The draws come from `self.rng` as in Dropout: fit gives the layer a generator per training step,
keyed by (its seed or the model's, the step number), so a seeded run is reproducible.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.layers.base import Layer

_MODES = {"horizontal": (True, False), "vertical": (False, True),
          "horizontal_and_vertical": (True, True)}


class FlipCache(NamedTuple):
    left_right: np.ndarray | None  # (N,) bool: which images were mirrored along W
    up_down: np.ndarray | None  # (N,) bool: which were mirrored along H


class RandomFlip(Layer):
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)
    _config_keys = ("mode", "seed")
    draws_in_training = True  # see models/step.py's seed_draws
    training_by_default = True  # called on its own (training=None), it augments: Keras 3

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None,
                 input_shape=None, *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        if mode not in _MODES:
            raise ValueError(f"Invalid value for argument `mode`. Expected one of "
                             f"{sorted(_MODES)}. Received mode={mode!r}")
        self.mode, self.seed = mode, seed
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Layer '{self.name}' (RandomFlip) expects 4-D input (batch, "
                             f"height, width, channels), received input_shape="
                             f"{tuple(input_shape)}")
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H, W, C)."""
        x = self._prepare(x)
        if not training:
            self.cache = FlipCache(None, None)
            return x.copy()
        if self.rng is None:  # used on its own, outside a model and without a seed
            self.rng = np.random.default_rng()
        horizontal, vertical = _MODES[self.mode]
        N = x.shape[0]
        left_right = self.rng.random(N) < 0.5 if horizontal else None
        up_down = self.rng.random(N) < 0.5 if vertical else None
        self.cache = FlipCache(left_right, up_down)
        return self._flip(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H, W, C) -> dx (N, H, W, C): the same flips, undone."""
        self._cached()
        return self._flip(dout)

    def _flip(self, a: np.ndarray) -> np.ndarray:
        left_right, up_down = self.cache
        a = a.copy()
        if left_right is not None:
            a[left_right] = a[left_right][:, :, ::-1]
        if up_down is not None:
            a[up_down] = a[up_down][:, ::-1]
        return a
