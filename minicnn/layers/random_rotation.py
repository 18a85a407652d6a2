"""RandomRotation: augmentation that turns images by a random angle, in training only, as Keras's.

For x (N, H, W, C), image n turns by theta[n] = 2*pi * f[n] radians, f[n] drawn per image
uniformly in [lower, upper] of `factor` (Keras draws f * 360 degrees; positive is counter-
clockwise on the screen); at inference (training=False) y = x. The turn is about the image's
centre (cx, cy) = ((W - 1) / 2, (H - 1) / 2): output pixel (i, j) reads the input at

    column cx + cos(theta) * (j - cx) - sin(theta) * (i - cy)
    row    cy + sin(theta) * (j - cx) + cos(theta) * (i - cy)

which is Keras's transform (a0, a1, a2, b0, b1, b2, 0, 0) = (cos, -sin, cx - cx*cos + cy*sin,
sin, cos, cy - cx*sin - cy*cos, 0, 0). `fill_mode` brings a point that fell off the image back
onto it and `interpolation` reads it, as TensorFlow does (minicnn/layers/_image_transform.py).
A turn mixes rows and columns, so it is no product of a rows and a columns matrix (as
RandomTranslation's is): each output pixel reads T input pixels (1 "nearest", 4 "bilinear"),

    y[n, p, c] = sum_t weight[n, p, t] * x[n, index[n, p, t], c]   (p = i * W + j)
    =>  dx[n, q, c] = sum over (p, t) with index[n, p, t] = q of weight[n, p, t] * dout[n, p, c]

x, y, dout, dx (N, H, W, C); index, weight (N, H*W, T), from the angle alone: y is linear in
x, backward is the transpose (each pixel's dout goes back to the pixels it read, times the
weight it read them with), and the fill ("constant") is a constant with no gradient.

The draws come from `self.rng` as in RandomFlip: fit gives the layer a generator per training
step, keyed by (its seed or the model's, the step number), so a seeded run is reproducible.
`factor`: f means [-|f|, |f|] and a pair (lower, upper) is sorted, every number in [-1, 1]
(Keras only checks lower <= 1 and upper >= -1; a turn past a full one adds nothing).
"""

from __future__ import annotations

import numpy as np

from minicnn.layers._image_transform import AffineTransformLayer, factor_range


def rotation_transform(theta: np.ndarray, H: int, W: int) -> np.ndarray:
    """theta (N,) radians -> (N, 8): Keras's transform turning an H x W image about its centre."""
    cx, cy = (W - 1) / 2, (H - 1) / 2
    cos, sin = np.cos(theta), np.sin(theta)
    zero = np.zeros_like(theta)
    return np.stack([cos, -sin, cx - cx * cos + cy * sin,
                     sin, cos, cy - cx * sin - cy * cos, zero, zero], axis=1)


class RandomRotation(AffineTransformLayer):
    _config_keys = ("factor", "fill_mode", "interpolation", "seed", "fill_value")

    def __init__(self, factor, fill_mode: str = "reflect", interpolation: str = "bilinear",
                 seed: int | None = None, fill_value: float = 0.0, input_shape=None, *,
                 name: str | None = None, dtype=None):
        self.lower, self.upper = factor_range(factor, "factor")
        super().__init__(fill_mode, interpolation, seed, fill_value, input_shape, name, dtype)
        self.factor = factor

    def draw(self, N: int, H: int, W: int) -> np.ndarray:
        # uniform in [lower, upper), one per image; drawn with random(N), the one draw a
        # data-parallel worker's generator offers (minicnn.distributed.replica.RowsOf)
        f = self.lower + (self.upper - self.lower) * self.rng.random(N)
        return rotation_transform(2 * np.pi * f, H, W)

    def rotate(self, x: np.ndarray, theta) -> np.ndarray:
        """x (N, H, W, C), theta (N,) radians (or one for all) -> y: forward's turn with the
        angles given instead of drawn. Keeps what backward needs."""
        N, H, W, _ = np.shape(x)
        theta = np.broadcast_to(np.asarray(theta, np.float64), (N,))
        return self.transform(x, rotation_transform(theta, H, W))
