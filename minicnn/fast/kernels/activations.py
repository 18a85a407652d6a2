"""Fused bias + ReLU forward and the ReLU backward mask, in one pass over memory each.

Shapes: z, y, dout, dz (M, F) with bias (F,); layers pass their outputs flattened to 2-D.
Non-finite numbers propagate as in NumPy: relu(NaN) is NaN (`v <= 0` is false for NaN, where
`v > 0 ? v : 0` would turn it into 0), and the mask multiplies, so a NaN dout stays NaN.
"""

import numpy as np
from numba import njit


def _bias_relu(z, bias):
    """In place: z <- max(z + bias, 0). z (M, F), bias (F,)."""
    M, F = z.shape
    zero = z.dtype.type(0)  # a float64 0.0 would turn every float32 comparison into a float64 one
    for m in range(M):
        for f in range(F):
            v = z[m, f] + bias[f]
            z[m, f] = zero if v <= zero else v


def _relu_backward(dout, y, dz):
    """dz <- dout * (y > 0): dout where the ReLU output y was positive, else 0 (NaN for a
    non-finite dout, as the product gives). All (M, F)."""
    M, F = dout.shape
    zero = dout.dtype.type(0)
    for m in range(M):
        for f in range(F):
            d = dout[m, f]
            dz[m, f] = d if y[m, f] > zero else d * zero


bias_relu = njit(cache=True, nogil=True)(_bias_relu)
relu_backward = njit(cache=True, nogil=True)(_relu_backward)


def bias_relu_reference(z, bias):
    """Plain NumPy max(z + bias, 0); z (M, F), bias (F,); returns y (M, F) in z's dtype."""
    return np.maximum(z + bias, 0).astype(z.dtype, copy=False)


def relu_backward_reference(dout, y):
    """Plain NumPy dout * (y > 0), as TensorFlow's ReluGrad; dout, y (M, F); returns dz (M, F)."""
    return (dout * (y > 0)).astype(dout.dtype, copy=False)
