"""RandomContrast: augmentation that scales each image's contrast at random, in training only,
as Keras 3.15's.

For x (N, H, W, C), image n gets one contrast factor f[n], drawn uniformly in
[1 - lower, 1 + upper] of `factor`, and each of its channels moves away from (f > 1) or toward
(f < 1) that channel's mean over the image, then is clipped to `value_range` (low, high); at
inference (training=False) y = x, unclipped. Keras 3.15 reads one number f as (lower, upper) =
(0, f), so RandomContrast(0.2) only raises contrast, by 1 to 1.2 (its docstring says [1 - f,
1 + f]; its code, followed here, does not); a pair (lower, upper) gives [1 - lower, 1 + upper].

    m[n, c] = mean over (h, w) of x[n, h, w, c]                      (N, 1, 1, C)
    u = (x - m) * f[n] + m = f[n] * x + (1 - f[n]) * m               (N, H, W, C)
    y = clip(u, low, high)

Backward: clip passes dout where low <= u <= high (TensorFlow's clip_by_value does the same at
the ends) and nothing elsewhere; the rest is linear, and every pixel of the channel reaches u
through the mean, each with weight 1 / (H * W):

    g = dout * [low <= u <= high]                                     (N, H, W, C)
    dx = f[n] * g + (1 - f[n]) / (H * W) * sum over (h, w) of g       (N, H, W, C)

The draws come from `self.rng` as in RandomFlip: fit gives the layer a generator per training
step, keyed by (its seed or the model's, the step number), so a seeded run is reproducible.
`factor`: every number in [0, 1], as Keras checks one number (a pair Keras checks only for
lower <= 1 and upper >= 0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.layers._image_transform import factor_range, image_shape, is_number
from minicnn.layers.base import Layer


class ContrastCache(NamedTuple):
    factor: np.ndarray | None  # (N,) each image's contrast factor; None at inference (y = x)
    passed: np.ndarray | None  # (N, H, W, C) bool: where low <= u <= high (clip passed u)


class RandomContrast(Layer):
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)
    _config_keys = ("factor", "value_range", "seed")
    draws_in_training = True  # see models/step.py's seed_draws
    training_by_default = True  # called on its own (training=None), it augments: Keras 3

    def __init__(self, factor, value_range=(0, 255), seed: int | None = None,
                 input_shape=None, *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.lower, self.upper = factor_range(factor, "factor", 0.0, 1.0)
        if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
                or not all(is_number(v) for v in value_range)
                or value_range[0] > value_range[1]):
            raise ValueError("Invalid value for argument `value_range`. Expected a tuple "
                             "(low, high) of two numbers, low <= high. Received "
                             f"value_range={value_range!r}")
        self.factor, self.value_range, self.seed = factor, value_range, seed
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return image_shape(self, input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H, W, C)."""
        x = self._prepare(x)
        if not training:
            self.cache = ContrastCache(None, None)
            return x.copy()
        if self.rng is None:  # used on its own, outside a model and without a seed
            self.rng = np.random.default_rng()
        # uniform in [1 - lower, 1 + upper), one per image; drawn with random(N), the one
        # draw a data-parallel worker's generator offers (minicnn.distributed.replica.RowsOf)
        low, high = 1 - self.lower, 1 + self.upper
        return self.adjust(x, low + (high - low) * self.rng.random(x.shape[0]))

    def adjust(self, x: np.ndarray, factor) -> np.ndarray:
        """x (N, H, W, C), factor (N,) (or one for all) -> y: forward with the contrast factors
        given instead of drawn. Keeps what backward needs."""
        x = self._prepare(x)
        factor = np.broadcast_to(np.asarray(factor, np.float64), (x.shape[0],))
        f = factor.astype(x.dtype)[:, None, None, None]
        mean = x.mean(axis=(1, 2), keepdims=True)
        u = (x - mean) * f + mean
        low, high = (x.dtype.type(v) for v in self.value_range)
        self.cache = ContrastCache(factor, (low <= u) & (u <= high))
        return np.clip(u, low, high)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H, W, C) -> dx (N, H, W, C): f * g plus (1 - f) times g's mean per channel."""
        cache = self._cached()
        if cache.factor is None:
            return dout.copy()
        f = cache.factor.astype(dout.dtype)[:, None, None, None]
        g = np.where(cache.passed, dout, 0)
        return f * g + (1 - f) * g.mean(axis=(1, 2), keepdims=True)
