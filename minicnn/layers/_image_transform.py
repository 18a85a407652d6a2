"""What the random image layers share: their arguments (Keras's factor rules, RandomContrast's
too), and, for RandomTranslation, RandomRotation and RandomZoom, reading an image at moved points
as TensorFlow's kernel (ImageProjectiveTransformV3, Keras's default backend) does.

A transform is Keras's 8 numbers per image, (a0, a1, a2, b0, b1, b2, 0, 0): output pixel (i, j)
(row i, column j) reads the input at column a0*j + a1*i + a2 and row b0*j + b1*i + b2. On an axis
of L pixels: "reflect" (d c b a | a b c d | d c b a) mirrors about -0.5 and L - 0.5, "wrap"
(a b c d | a b c d) moves by L, "nearest" clamps to the edge; then all three clamp to [0, L - 1],
so a point less than a pixel past an edge reads one pixel, never a blend across the seam.
"constant" reads fill_value for each neighbour outside the image. "nearest" interpolation reads
one pixel, rounding halves away from zero as C's round does; "bilinear" reads the 2 x 2
neighbours, each weighted by closeness along rows times closeness along columns.

So each output pixel p of image n is a weighted sum of at most T input pixels (T = 1 or 4):

    y[n, p, c] = sum_t weight[n, p, t] * x[n, index[n, p, t], c]  (+ fill_value * (1 - sum_t
                 weight[n, p, t]) where "constant" read outside)
    =>  dx[n, q, c] = sum over (p, t) with index[n, p, t] = q of weight[n, p, t] * dout[n, p, c]

x, y, dout, dx (N, H, W, C) seen as (N, H*W, C); index, weight (N, H*W, T). Backward scatters
each output pixel's dout back to the pixels it read, times the weight it read them with. The
weights depend on the draw, not on x: the layer is linear in x, and the fill has no gradient.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from minicnn.layers._args import check_images
from minicnn.layers.base import Layer

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def factor_range(value, argument: str, low: float = -1.0, high: float = 1.0, *,
                 low_open: bool = False) -> tuple[float, float]:
    """Keras's rule: f means [max(-|f|, low), |f|], a pair is sorted; every number given lies
    within [low, high] ((low, high] with `low_open`)."""
    def within(v) -> bool:
        return is_number(v) and (low < v if low_open else low <= v) and v <= high

    if within(value):  # checked as given: RandomZoom(1.0) may draw a zoom of 1 - 1
        return max(-abs(float(value)), low), abs(float(value))
    pair = tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(within(v) for v in pair):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected a number in {bounds} or a tuple "
            f"(lower, upper) of two numbers in {bounds}. Received {argument}={value!r}")
    lower, upper = sorted(float(v) for v in pair)
    return lower, upper


def check_choice(argument: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"Invalid value for argument `{argument}`. Expected one of "
                         f"{allowed}. Received {argument}={value!r}")


def check_number(argument: str, value) -> float:
    if not is_number(value):
        raise ValueError(f"Invalid value for argument `{argument}`. Expected a number. "
                         f"Received {argument}={value!r}")
    return float(value)


def image_shape(layer, input_shape) -> tuple:
    """compute_output_shape of a layer that maps images to images of the same shape."""
    check_images(layer, input_shape)
    return tuple(input_shape)


def source(c: np.ndarray, L: int, fill_mode: str) -> np.ndarray:
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


def taps(c: np.ndarray, L: int, interpolation: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Where points c (on the axis, after `source`) read: (pixel, weight) pairs of c's shape,
    the pixel clipped into [0, L - 1] and its weight 0 where it fell outside (for "constant")."""
    if interpolation == "nearest":  # halves away from zero (np.round would go to even)
        at = np.sign(c) * np.floor(np.abs(c) + 0.5)
        pairs = [(at, np.ones_like(c))]
    else:
        at = np.floor(c)
        pairs = [(at, 1 - (c - at)), (at + 1, c - at)]
    return [(np.clip(at, 0, L - 1).astype(np.intp), np.where((at >= 0) & (at < L), w, 0.0))
            for at, w in pairs]


def affine_taps(transform: np.ndarray, H: int, W: int, fill_mode: str,
                interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """transform (N, 8) -> index (N, H*W, T) into an image's H*W pixels, weight (N, H*W, T)."""
    i, j = (a.ravel() for a in np.indices((H, W)))  # each output pixel's row and column
    a0, a1, a2, b0, b1, b2 = (t[:, None] for t in np.asarray(transform, np.float64).T[:6])
    rows = taps(source(b0 * j + b1 * i + b2, H, fill_mode), H, interpolation)  # (N, H*W) each
    cols = taps(source(a0 * j + a1 * i + a2, W, fill_mode), W, interpolation)
    index = np.stack([r * W + k for r, _ in rows for k, _ in cols], axis=-1)
    weight = np.stack([u * v for _, u in rows for _, v in cols], axis=-1)
    return index, weight


def gather(x: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x (N, H, W, C) -> y (N, H, W, C): y[n, p] = sum_t weight[n, p, t] * x[n, index[n, p, t]]."""
    N, H, W, C = x.shape
    flat = x.reshape(N, H * W, C)
    weight = weight.astype(x.dtype)
    y = np.zeros_like(flat)
    for t in range(index.shape[-1]):  # one tap at a time: (N, H*W, C) arrays, never T of them
        y += weight[..., t, None] * np.take_along_axis(flat, index[..., t, None], axis=1)
    return y.reshape(N, H, W, C)


def scatter(dout: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """dout (N, H, W, C) -> dx (N, H, W, C): gather's transpose, each weight * dout added to
    the pixel it read. bincount sums the (many) contributions to one pixel, as np.add.at would,
    in one pass."""
    N, H, W, C = dout.shape
    pixel = (np.arange(N)[:, None, None] * (H * W) + index).ravel()  # into (N*H*W,)
    flat, dx = dout.reshape(N, H * W, 1, C), np.empty((N * H * W, C), dout.dtype)
    for c in range(C):
        dx[:, c] = np.bincount(pixel, (weight * flat[..., c]).ravel(), minlength=N * H * W)
    return dx.reshape(N, H, W, C)


class AffineCache(NamedTuple):
    transform: np.ndarray | None  # (N, 8) Keras's transform of each image; None at inference
    index: np.ndarray | None  # (N, H*W, T): the input pixels each output pixel read
    weight: np.ndarray | None  # (N, H*W, T): the weights it read them with


class AffineTransformLayer(Layer):
    """A layer that moves each image by an affine map it draws (`draw`), in training only."""

    per_sample = True  # each sample's output from that sample alone (Layer.per_sample)
    draws_in_training = True  # see models/step.py's seed_draws
    training_by_default = True  # called on its own (training=None), it augments: Keras 3

    def __init__(self, fill_mode: str, interpolation: str, seed: int | None, fill_value: float,
                 input_shape, name: str | None, dtype) -> None:
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        check_choice("fill_mode", fill_mode, FILL_MODES)
        check_choice("interpolation", interpolation, INTERPOLATIONS)
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.seed, self.fill_value = seed, check_number("fill_value", fill_value)
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return image_shape(self, input_shape)

    def draw(self, N: int, H: int, W: int) -> np.ndarray:
        """(N, 8): each image's transform, drawn from self.rng."""
        raise NotImplementedError

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H, W, C)."""
        x = self._prepare(x)
        if not training:
            self.cache = AffineCache(None, None, None)
            return x.copy()
        if self.rng is None:  # used on its own, outside a model and without a seed
            self.rng = np.random.default_rng()
        N, H, W, _ = x.shape
        return self.transform(x, self.draw(N, H, W))

    def transform(self, x: np.ndarray, transform: np.ndarray) -> np.ndarray:
        """x (N, H, W, C), transform (N, 8) (or (8,) for all) -> y (N, H, W, C): forward with
        the transforms given instead of drawn. Keeps what backward needs."""
        x = self._prepare(x)
        N, H, W, _ = x.shape
        transform = np.broadcast_to(np.asarray(transform, np.float64), (N, 8))
        index, weight = affine_taps(transform, H, W, self.fill_mode, self.interpolation)
        self.cache = AffineCache(transform, index, weight)
        y = gather(x, index, weight)
        if self.fill_mode == "constant" and self.fill_value != 0:
            read = weight.sum(axis=-1).reshape(N, H, W, 1)  # < 1 where it read outside
            y += (self.fill_value * (1 - read)).astype(x.dtype)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H, W, C) -> dx (N, H, W, C): each pixel's dout back where it read."""
        cache = self._cached()
        if cache.transform is None:
            return dout.copy()
        return scatter(dout, cache.index, cache.weight)
