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
backend, on an axis of L pixels: "reflect" (d c b a | a b c d | d c b a) mirrors about -0.5 and
L - 0.5, "wrap" (a b c d | a b c d) moves by L, "nearest" clamps to the edge; then all three
clamp to [0, L - 1], so a point less than a pixel past an edge reads one pixel, never a blend
across the seam. "constant" reads fill_value for each neighbour outside the image. "nearest"
interpolation rounds halves away from zero, as C's round does.

The draws come from `self.rng` as in RandomFlip: fit gives the layer a generator per training
step, keyed by (its seed or the model's, the step number), so a seeded run is reproducible.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from minicnn.layers.base import Layer

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


class TranslationCache(NamedTuple):
    height_shift: np.ndarray | None  # (N,) pixels down; None at inference (y = x)
    width_shift: np.ndarray | None  # (N,) pixels right
    rows: np.ndarray | None  # (N, H, H): rows[n, i, h], the weight of input row h in output row i
    cols: np.ndarray | None  # (N, W, W): the same for columns


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _factor_range(value, argument: str) -> tuple[float, float]:
    """Keras's rule: f means [-|f|, |f|], a pair is sorted; every bound within [-1, 1]."""
    pair = (-abs(value), abs(value)) if _is_number(value) else (
        tuple(value) if isinstance(value, (tuple, list)) else None)
    if pair is None or len(pair) != 2 or not all(_is_number(v) and -1 <= v <= 1 for v in pair):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a number in [-1, 1] or a tuple "
            f"(lower, upper) of two numbers in [-1, 1]. Received {argument}={value!r}")
    lower, upper = sorted(float(v) for v in pair)
    return lower, upper


def _source(c: np.ndarray, L: int, fill_mode: str) -> np.ndarray:
    """The coordinates c (float) on an axis of L pixels brought onto it by `fill_mode`."""
    if fill_mode == "constant":
        return c
    if L == 1:
        return np.zeros_like(c)
    if fill_mode == "reflect":  # period 2L; the second half of each period runs backwards
        c = np.mod(c, 2 * L)
        c = np.where(c >= L, 2 * L - 1 - c, c)
    elif fill_mode == "wrap":
        # TensorFlow counts the periods in steps of L - 1 but moves by L: for shifts under
        # L - 1 pixels that is c -+ L; longer ones land on an edge. Kept, to agree with Keras.
        c = np.where(c < 0, c + L * (np.trunc(-c / (L - 1)) + 1),
                     np.where(c > L - 1, c - L * np.trunc(c / (L - 1)), c))
    return np.clip(c, 0, L - 1)


def _axis_map(shift: np.ndarray, L: int, fill_mode: str, interpolation: str,
              dtype) -> np.ndarray:
    """shift (N,) -> A (N, L, L): (A[n] @ v)[i] is v read at i - shift[n]; a row sums to
    less than 1 where "constant" reads fill_value."""
    c = _source(np.arange(L) - shift[:, None], L, fill_mode)  # (N, L)
    if interpolation == "nearest":  # halves away from zero (np.round would go to even)
        at = np.sign(c) * np.floor(np.abs(c) + 0.5)
        taps = [(at, np.ones_like(c))]
    else:
        at = np.floor(c)
        taps = [(at, 1 - (c - at)), (at + 1, c - at)]
    A = np.zeros((len(shift), L, L), dtype)
    n, i = np.indices(c.shape)
    for at, weight in taps:  # two taps may read the same pixel (at an edge): add them
        inside = (at >= 0) & (at < L)
        np.add.at(A, (n, i, np.clip(at, 0, L - 1).astype(int)), np.where(inside, weight, 0))
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
        self.height_lower, self.height_upper = _factor_range(height_factor, "height_factor")
        self.width_lower, self.width_upper = _factor_range(width_factor, "width_factor")
        for argument, value, allowed in (("fill_mode", fill_mode, FILL_MODES),
                                         ("interpolation", interpolation, INTERPOLATIONS)):
            if value not in allowed:
                raise ValueError(f"Invalid value for argument `{argument}`. Expected one of "
                                 f"{allowed}. Received {argument}={value!r}")
        if not _is_number(fill_value):
            raise ValueError("Invalid value for argument `fill_value`. Expected a number. "
                             f"Received fill_value={fill_value!r}")
        self.height_factor, self.width_factor = height_factor, width_factor
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.seed, self.fill_value = seed, float(fill_value)
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Layer '{self.name}' (RandomTranslation) expects 4-D input "
                             f"(batch, height, width, channels), received input_shape="
                             f"{tuple(input_shape)}")
        return tuple(input_shape)

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
