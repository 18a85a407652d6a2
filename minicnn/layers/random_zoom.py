"""RandomZoom: augmentation that zooms images in or out at random, in training only, as Keras's.

For x (N, H, W, C), image n is read at zooms zh[n] = 1 + u (rows) and zw[n] = 1 + v (columns),
u drawn per image uniformly in [lower, upper] of `height_factor` and v of `width_factor` (None:
zw = zh, the aspect ratio kept); at inference (training=False) y = x. About the image's centre
(cx, cy) = ((W - 1) / 2, (H - 1) / 2), output pixel (i, j) reads the input at

    column cx + zw * (j - cx),   row cy + zh * (i - cy)

Keras's transform (zw, 0, cx * (1 - zw), 0, zh, cy * (1 - zh), 0, 0). A zoom above 1 reads a
larger part of the image into the frame (zooms out: a positive factor), below 1 a smaller one
(zooms in: a negative factor). `fill_mode` brings a point that fell off the image back onto it
and `interpolation` reads it, as TensorFlow does (minicnn/layers/_image_transform.py). Each
output pixel reads T input pixels (1 "nearest", 4 "bilinear") with weights from the zoom alone:

    y[n, p, c] = sum_t weight[n, p, t] * x[n, index[n, p, t], c]   (p = i * W + j)
    =>  dx[n, q, c] = sum over (p, t) with index[n, p, t] = q of weight[n, p, t] * dout[n, p, c]

x, y, dout, dx (N, H, W, C); index, weight (N, H*W, T). Backward is the transpose: each pixel's
dout goes back to the pixels it read, times the weight it read them with (when zooming out,
several output pixels read one input pixel: their gradients add up). The fill has no gradient.
(A zoom is separable, rows apart from columns, like RandomTranslation; it shares RandomRotation's
general map instead, which costs little at augmentation sizes.)

The draws come from `self.rng` as in RandomFlip: fit gives the layer a generator per training
step, keyed by (its seed or the model's, the step number), so a seeded run is reproducible.
A factor f means [-|f|, |f|] and a pair (lower, upper) is sorted, every number in (-1, 1], as
Keras checks them (so a zoom is never below 0; a factor of 1 may draw a zoom of 0, which reads
the centre pixel everywhere, as Keras's does).
"""

from __future__ import annotations

import numpy as np

from minicnn.layers._image_transform import AffineTransformLayer, factor_range


def zoom_transform(height_zoom: np.ndarray, width_zoom: np.ndarray, H: int,
                   W: int) -> np.ndarray:
    """height_zoom, width_zoom (N,) -> (N, 8): Keras's transform zooming about the centre."""
    zero = np.zeros_like(height_zoom)
    return np.stack([width_zoom, zero, (W - 1) / 2 * (1 - width_zoom),
                     zero, height_zoom, (H - 1) / 2 * (1 - height_zoom), zero, zero], axis=1)


class RandomZoom(AffineTransformLayer):
    _config_keys = ("height_factor", "width_factor", "fill_mode", "interpolation", "seed",
                    "fill_value")

    def __init__(self, height_factor, width_factor=None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, input_shape=None, *, name: str | None = None,
                 dtype=None):
        self.height_lower, self.height_upper = factor_range(height_factor, "height_factor",
                                                            low_open=True)
        self.width_lower, self.width_upper = (None, None) if width_factor is None else (
            factor_range(width_factor, "width_factor", low_open=True))
        super().__init__(fill_mode, interpolation, seed, fill_value, input_shape, name, dtype)
        self.height_factor, self.width_factor = height_factor, width_factor

    def draw(self, N: int, H: int, W: int) -> np.ndarray:
        # uniform in [lower, upper), one per image, heights first as Keras; drawn with
        # random(N), the one draw a data-parallel worker's generator offers (RowsOf)
        low, high = self.height_lower, self.height_upper
        height_zoom = 1 + low + (high - low) * self.rng.random(N)
        width_zoom = height_zoom
        if self.width_factor is not None:
            low, high = self.width_lower, self.width_upper
            width_zoom = 1 + low + (high - low) * self.rng.random(N)
        return zoom_transform(height_zoom, width_zoom, H, W)

    def zoom(self, x: np.ndarray, height_zoom, width_zoom) -> np.ndarray:
        """x (N, H, W, C), zooms (N,) (or one for all) -> y: forward's zoom with the zooms
        given instead of drawn. Keeps what backward needs."""
        N, H, W, _ = np.shape(x)
        height_zoom = np.broadcast_to(np.asarray(height_zoom, np.float64), (N,))
        width_zoom = np.broadcast_to(np.asarray(width_zoom, np.float64), (N,))
        return self.transform(x, zoom_transform(height_zoom, width_zoom, H, W))
