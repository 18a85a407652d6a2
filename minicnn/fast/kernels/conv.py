"""A direct convolution for layers whose receptive field is tiny (a first layer on grey images).

Shapes: x (N, H, W, C); kernel (KH, KW, C, F); bias (F,); out (N, H_out, W_out, F).
"""

import numpy as np
from numba import njit

from minicnn.kernels import im2col_reference


def _conv_direct(x, kernel, bias, SH, SW, PT, PL, relu, out):
    """out (N, H_out, W_out, F) = [relu](conv(x, kernel) + bias), without an im2col matrix.

    For a layer whose receptive field KH * KW * C is tiny (the first layer of an image model:
    3 * 3 * 1 = 9), the im2col GEMM has an inner dimension of 9, where BLAS runs far below its
    speed and the im2col matrix costs more to write than the arithmetic. Here each output pixel
    accumulates its F filters in a small buffer (F contiguous, so the inner loop is SIMD) and is
    written once, with bias and ReLU applied on the way out.
    """
    N, H, W, C = x.shape
    KH, KW, _, F = kernel.shape
    H_out, W_out = out.shape[1], out.shape[2]
    acc = np.empty(F, dtype=out.dtype)
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                for f in range(F):
                    acc[f] = bias[f]
                for kh in range(KH):
                    h = i * SH - PT + kh
                    if h < 0 or h >= H:
                        continue
                    for kw in range(KW):
                        w = j * SW - PL + kw
                        if w < 0 or w >= W:
                            continue
                        for c in range(C):
                            a = x[n, h, w, c]
                            for f in range(F):
                                acc[f] += a * kernel[kh, kw, c, f]
                for f in range(F):
                    # relu(NaN) stays NaN, as np.maximum keeps it
                    out[n, i, j, f] = 0.0 if (relu and acc[f] <= 0.0) else acc[f]


conv_direct = njit(cache=True, nogil=True)(_conv_direct)


def conv_direct_reference(x, kernel, bias, SH, SW, PT, PL, relu, H_out, W_out):
    """Plain NumPy: im2col_reference times the reshaped kernel, plus bias, then ReLU if asked.

    x (N, H, W, C), kernel (KH, KW, C, F), bias (F,); returns out (N, H_out, W_out, F).
    """
    KH, KW, _, F = kernel.shape
    z = im2col_reference(x, KH, KW, SH, SW, PT, PL, H_out, W_out) @ kernel.reshape(-1, F) + bias
    if relu:
        z = np.maximum(z, 0)
    return z.reshape(x.shape[0], H_out, W_out, F).astype(x.dtype, copy=False)
