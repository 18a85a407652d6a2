"""A direct convolution for layers whose receptive field is tiny (a first layer on grey images).

Shapes: x (N, H, W, C); kernel (KH, KW, C, F); bias (F,); out (N, H_out, W_out, F).
"""

import numpy as np
from numba import njit

from minicnn.kernels import im2col_reference


def _conv_row(x_n, kernel, i, SH, SW, PT, PL, taps_w, taps_c, row):
    """row (W_row, F) += output row i of conv(x_n, kernel) without bias: its first W_row columns.

    x_n (H, W, C) is one image. Each output sums its taps in (kh, kw, c) order, skipping those
    in the zero padding. The KW * C taps of one kernel row (tap t at kw = taps_w[t],
    c = taps_c[t]) are taken three at a time over all the outputs whose window lies inside the
    image, so each pass over the F filters (the SIMD loop) does three multiply-adds per load and
    store of the accumulator: a store per multiply-add is what bounds a tiny-field
    convolution. The sum is still formed left to right, ((acc + a0 k0) + a1 k1) + a2 k2, as one
    tap at a time would form it. Outputs at a padded edge go tap by tap.
    """
    H, W, _ = x_n.shape
    KH, KW, _, F = kernel.shape
    T = taps_w.shape[0]
    W_row = row.shape[0]
    j_lo = min((PL + SW - 1) // SW, W_row)  # the first j with j * SW - PL >= 0
    j_hi = max(min((W - KW + PL) // SW + 1, W_row), j_lo)  # past the last j inside on the right
    for kh in range(KH):
        h = i * SH - PT + kh
        if h < 0 or h >= H:
            continue
        t = 0
        while t < T:
            if t + 3 <= T:
                w0, c0, w1, c1 = taps_w[t], taps_c[t], taps_w[t + 1], taps_c[t + 1]
                w2, c2 = taps_w[t + 2], taps_c[t + 2]
                for j in range(j_lo, j_hi):
                    w = j * SW - PL
                    a0, a1, a2 = x_n[h, w + w0, c0], x_n[h, w + w1, c1], x_n[h, w + w2, c2]
                    for f in range(F):
                        row[j, f] = (row[j, f] + a0 * kernel[kh, w0, c0, f]
                                     + a1 * kernel[kh, w1, c1, f] + a2 * kernel[kh, w2, c2, f])
                t += 3
            else:
                w0, c0 = taps_w[t], taps_c[t]
                for j in range(j_lo, j_hi):
                    a0 = x_n[h, j * SW - PL + w0, c0]
                    for f in range(F):
                        row[j, f] = row[j, f] + a0 * kernel[kh, w0, c0, f]
                t += 1
        for j in range(W_row):  # at a padded edge: tap by tap, skipping the padding
            if j_lo <= j < j_hi:
                continue
            for t in range(T):
                w = j * SW - PL + taps_w[t]
                if 0 <= w < W:
                    a0 = x_n[h, w, taps_c[t]]
                    for f in range(F):
                        row[j, f] = row[j, f] + a0 * kernel[kh, taps_w[t], taps_c[t], f]


def _kernel_row_taps(KW, C):
    """(taps_w, taps_c): the kw and c of each of a kernel row's KW * C taps, in (kw, c) order."""
    t = np.arange(KW * C)
    return t // C, t % C


def _conv_direct(x, kernel, bias, SH, SW, PT, PL, relu, out):
    """out (N, H_out, W_out, F) = [relu](conv(x, kernel) + bias), without an im2col matrix.

    For a layer whose receptive field KH * KW * C is tiny (the first layer of an image model:
    3 * 3 * 1 = 9), the im2col GEMM has an inner dimension of 9, where BLAS runs far below its
    speed and the im2col matrix costs more to write than the arithmetic. Here each output row
    is summed in a small buffer (W_out * F values, filters innermost, so the inner loop is SIMD;
    see `conv_row`) and written once, bias added last (as the im2col GEMM + bias does) and
    ReLU applied on the way out.
    """
    N = x.shape[0]
    F = kernel.shape[3]
    H_out, W_out = out.shape[1], out.shape[2]
    taps_w, taps_c = kernel_row_taps(kernel.shape[1], kernel.shape[2])
    zero = out.dtype.type(0)
    row = np.empty((W_out, F), dtype=out.dtype)
    for n in range(N):
        for i in range(H_out):
            row[:] = zero
            conv_row(x[n], kernel, i, SH, SW, PT, PL, taps_w, taps_c, row)
            o = out[n, i]
            for j in range(W_out):
                for f in range(F):
                    v = row[j, f] + bias[f]
                    # relu(NaN) stays NaN, as np.maximum keeps it
                    o[j, f] = zero if (relu and v <= zero) else v


conv_row = njit(cache=True, nogil=True)(_conv_row)
kernel_row_taps = njit(cache=True, nogil=True)(_kernel_row_taps)
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
