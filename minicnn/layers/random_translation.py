"""RandomTranslation: augmentation that shifts images at random, in training only, as Keras's.

For x (N, H, W, C), image n moves height_shift[n] pixels down and width_shift[n] pixels right,
drawn per image uniformly in [lower * H, upper * H] and [lower * W, upper * W] of the factors;
at inference (training=False) y = x. Output pixel (i, j) reads the input at (i - height_shift,
j - width_shift): `fill_mode` brings a point that fell off the image back onto it, and
`interpolation` reads it, "nearest" as one pixel, "bilinear" as the two neighbours along each
axis weighted by closeness. Rows and columns move independently, so image n's map is a rows
matrix R (H, H) and a columns matrix K (W, W), each of their rows holding at most two weights:

    y[n, :, :, c] = R[n] @ x[n, :, :, c] @ K[n].T  (+ fill_value where "constant" reads outside)
    =>  dx[n, :, :, c] = R[n].T @ dout[n, :, :, c] @ K[n]

Backward is the transpose: each input pixel gets dout back from every output pixel that read
it, times the weight it was read with. The fill is a constant: it has no gradient.

Where a point lands follows TensorFlow's kernel (ImageProjectiveTransformV3), Keras's default
backend, as minicnn/layers/_image_transform.py describes it for all three moving layers
(RandomRotation and RandomZoom read with the same taps, in a map that is not separable).

The draws come from `self.rng` as in RandomFlip: fit gives the layer a generator per training
step, keyed by (its seed or the model's, the step number), so a seeded run is reproducible.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.layers._image_transform import (
    FILL_MODES,
    INTERPOLATIONS,
    check_choice,
    check_number,
    factor_range,
    image_shape,
    source,
    taps,
)
from minicnn.layers.base import Layer


class TranslationCache(NamedTuple):
    height_shift: np.ndarray | None  # (N,) pixels down; None at inference (y = x)
    width_shift: np.ndarray | None  # (N,) pixels right
    rows: np.ndarray | None  # (N, H, H): rows[n, i, h], the weight of input row h in output row i
    cols: np.ndarray | None  # (N, W, W): the same for columns


def _axis_map(shift: np.ndarray, L: int, fill_mode: str, interpolation: str,
              dtype) -> np.ndarray:
    """shift (N,) -> A (N, L, L): (A[n] @ v)[i] is v read at i - shift[n]; a row sums to
    less than 1 where "constant" reads fill_value."""
    c = source(np.arange(L) - shift[:, None], L, fill_mode)  # (N, L)
    A = np.zeros((len(shift), L, L), dtype)
    n, i = np.indices(c.shape)
    for at, weight in taps(c, L, interpolation):  # two taps may read one pixel (at an edge)
        np.add.at(A, (n, i, at), weight)
    return A


def _move(rows: np.ndarray, cols: np.ndarray, a: np.ndarray) -> np.ndarray:
    """rows (N, H, H), cols (N, W, W), a (N, H, W, C) -> rows[n] @ a[n, :, :, c] @ cols[n].T."""
    N, H, W, C = a.shape
    a = (rows @ a.reshape(N, H, W * C)).reshape(N, H, W, C)  # each image's rows
    return cols[:, None] @ a  # then each row's columns: (W, W) @ (W, C)


class RandomTranslation(Layer):
    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)
    _config_keys = ("height_factor", "width_factor", "fill_mode", "interpolation", "seed",
                    "fill_value")
    draws_in_training = True  # see models/step.py's seed_draws
    training_by_default = True  # called on its own (training=None), it augments: Keras 3

    def __init__(self, height_factor, width_factor, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, input_shape=None, *, name: str | None = None,
                 dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.height_lower, self.height_upper = factor_range(height_factor, "height_factor")
        self.width_lower, self.width_upper = factor_range(width_factor, "width_factor")
        check_choice("fill_mode", fill_mode, FILL_MODES)
        check_choice("interpolation", interpolation, INTERPOLATIONS)
        self.height_factor, self.width_factor = height_factor, width_factor
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.seed, self.fill_value = seed, check_number("fill_value", fill_value)
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return image_shape(self, input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H, W, C)."""
        x = self._prepare(x)
        if not training:
            self.cache = TranslationCache(None, None, None, None)
            return x.copy()
        if self.rng is None:  # used on its own, outside a model and without a seed
            self.rng = np.random.default_rng()
        N, H, W, _ = x.shape
        # uniform in [lower, upper), one per image; drawn with random(N), the one draw a
        # data-parallel worker's generator offers (minicnn.distributed.replica.RowsOf)
        low, high = self.height_lower, self.height_upper
        height_shift = (low + (high - low) * self.rng.random(N)) * H
        low, high = self.width_lower, self.width_upper
        width_shift = (low + (high - low) * self.rng.random(N)) * W
        return self.translate(x, height_shift, width_shift)

    def translate(self, x: np.ndarray, height_shift, width_shift) -> np.ndarray:
        """x (N, H, W, C), shifts (N,) in pixels (or one for all) -> y (N, H, W, C): forward's
        translation with the shifts given instead of drawn. Keeps what backward needs."""
        x = self._prepare(x)
        N, H, W, _ = x.shape
        height_shift = np.broadcast_to(np.asarray(height_shift, np.float64), (N,))
        width_shift = np.broadcast_to(np.asarray(width_shift, np.float64), (N,))
        rows = _axis_map(height_shift, H, self.fill_mode, self.interpolation, x.dtype)
        cols = _axis_map(width_shift, W, self.fill_mode, self.interpolation, x.dtype)
        self.cache = TranslationCache(height_shift, width_shift, rows, cols)
        y = _move(rows, cols, x)
        if self.fill_mode == "constant" and self.fill_value != 0:
            read = rows.sum(axis=2)[:, :, None] * cols.sum(axis=2)[:, None, :]  # (N, H, W)
            y += (x.dtype.type(self.fill_value) * (1 - read))[..., None]
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H, W, C) -> dx (N, H, W, C): R.T @ dout @ K, image by image."""
        cache = self._cached()
        if cache.rows is None:
            return dout.copy()
        return _move(cache.rows.swapaxes(1, 2), cache.cols.swapaxes(1, 2), dout)
