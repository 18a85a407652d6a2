"""Fused bias + ReLU forward and the ReLU backward mask, in one pass over memory each.

Shapes: z, y, dout, dz (M, F) with bias (F,); layers pass their outputs flattened to 2-D.
"""

import numpy as np
from numba import njit


def _bias_relu(z, bias):
    """In place: z <- max(z + bias, 0). z (M, F), bias (F,)."""
    M, F = z.shape
    for m in range(M):
        for f in range(F):
            v = z[m, f] + bias[f]
            z[m, f] = v if v > 0.0 else 0.0


def _relu_backward(dout, y, dz):
    """dz <- dout where the ReLU output y was positive, else 0. All (M, F)."""
    M, F = dout.shape
    for m in range(M):
        for f in range(F):
            dz[m, f] = dout[m, f] if y[m, f] > 0.0 else 0.0


bias_relu = njit(cache=True, nogil=True)(_bias_relu)
relu_backward = njit(cache=True, nogil=True)(_relu_backward)


def bias_relu_reference(z, bias):
    """Plain NumPy max(z + bias, 0); z (M, F), bias (F,); returns y (M, F) in z's dtype."""
    return np.maximum(z + bias, 0).astype(z.dtype, copy=False)


def relu_backward_reference(dout, y):
    """Plain NumPy: dout (M, F) where y (M, F) > 0, else 0; returns dz (M, F)."""
    return np.where(y > 0, dout, 0).astype(dout.dtype, copy=False)
