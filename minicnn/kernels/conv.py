"""im2col and col2im for NHWC input, columns ordered (kh, kw, c).

With that column order, a Keras conv kernel of shape (KH, KW, C, F) is a plain reshape away from
the GEMM: `out = cols @ kernel.reshape(KH * KW * C, F)`. Padding is never materialised: positions
that fall outside the input read as zero (im2col) and receive nothing (col2im).

Shapes: x (N, H, W, C); cols (N * H_out * W_out, KH * KW * C), rows ordered (n, i, j). x and
dx must be C-contiguous (a kernel row is copied as one run of x seen flat).
"""

import numpy as np
from numba import njit

from minicnn.kernels._stand_in import Kernel

# Below this many channels, im2col and col2im move a kernel row that lies inside the image as
# one run of KW * C values instead of KW runs of C: a loop of C = 1 or 6 values runs far below
# SIMD speed. Measured per chunk of 32 images, one thread: LeNet's conv2 (14x14x6, 5x5) im2col
# 0.25 -> 0.11 ms, col2im 0.28 -> 0.10 ms; its conv1 (28x28x1, 5x5 'same') 1.13 -> 0.69 and
# 1.21 -> 0.61 ms; per 16 images, 32x32x3 3x3 'same' (ResNet-20's and the CIFAR-10 recipe's
# first conv) 0.39 -> 0.28 and 0.44 -> 0.18 ms, the same with stride 2 0.10 -> 0.07 and
# 0.11 -> 0.05 ms, 32x32x8 3x3 0.31 -> 0.30 and 0.33 -> 0.21 ms; but 32x32x16 3x3 (per 32
# images) 0.96 -> 1.57 and 1.04 -> 1.12 ms, where a run of C = 16 values is one SIMD vector and
# a run of 48 is too short for the vectorised loop.
RUN_MAX_CHANNELS = 16


def _run_bounds(n, h, w0, kh, H, W, C, KW):
    """(first, col, R) as unsigned ints: where the run x[n, h, w0:w0 + KW, :] starts in x seen
    flat, where it starts in a row of cols (kernel row kh), and its length KW * C. Unsigned,
    numba indexes without its negative-index wraparound, which kept the copy loop from being
    vectorised (0.34 against 0.11 ms, the first figure above)."""
    return (np.uint64(((n * H + h) * W + w0) * C), np.uint64(kh * KW * C), np.uint64(KW * C))


def _im2col(x, KH, KW, SH, SW, PT, PL, H_out, W_out, cols):
    """Fill `cols` (N * H_out * W_out, KH * KW * C) with the receptive fields of x (N, H, W, C).

    Output pixel (i, j) sees input rows i * SH - PT + kh and columns j * SW - PL + kw. With
    fewer than RUN_MAX_CHANNELS channels, a kernel row inside the image is copied as one run of
    KW * C values (see `_run_bounds`).
    """
    N, H, W, C = x.shape
    xf = x.reshape(N * H * W * C)
    runs = C < RUN_MAX_CHANNELS
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                row = (n * H_out + i) * W_out + j
                w0 = j * SW - PL
                row_inside = runs and w0 >= 0 and w0 + KW <= W
                for kh in range(KH):
                    h = i * SH - PT + kh
                    if row_inside and 0 <= h < H:
                        first, col, R = run_bounds(n, h, w0, kh, H, W, C, KW)
                        for t in range(R):
                            cols[row, col + t] = xf[first + t]
                        continue
                    for kw in range(KW):
                        w = w0 + kw
                        col = (kh * KW + kw) * C
                        if 0 <= h < H and 0 <= w < W:
                            for c in range(C):
                                cols[row, col + c] = x[n, h, w, c]
                        else:
                            for c in range(C):
                                cols[row, col + c] = 0.0


def _col2im(dcols, KH, KW, SH, SW, PT, PL, H_out, W_out, dx):
    """Scatter-add `dcols` (N * H_out * W_out, KH * KW * C) back into dx (N, H, W, C).

    The adjoint of im2col: every input pixel sums the gradient of each column it was copied to.
    dx is overwritten.
    """
    N, H, W, C = dx.shape
    dxf = dx.reshape(N * H * W * C)
    runs = C < RUN_MAX_CHANNELS
    for n in range(N):
        dx[n] = 0.0
        for i in range(H_out):
            for j in range(W_out):
                row = (n * H_out + i) * W_out + j
                w0 = j * SW - PL
                row_inside = runs and w0 >= 0 and w0 + KW <= W
                for kh in range(KH):
                    h = i * SH - PT + kh
                    if h < 0 or h >= H:
                        continue
                    if row_inside:  # the same additions, in the same order, as one run
                        first, col, R = run_bounds(n, h, w0, kh, H, W, C, KW)
                        for t in range(R):
                            dxf[first + t] += dcols[row, col + t]
                        continue
                    for kw in range(KW):
                        w = w0 + kw
                        if w < 0 or w >= W:
                            continue
                        col = (kh * KW + kw) * C
                        for c in range(C):
                            dx[n, h, w, c] += dcols[row, col + c]


def _im2col_stand_in(x, KH, KW, SH, SW, PT, PL, H_out, W_out, cols):
    cols[...] = im2col_reference(x, KH, KW, SH, SW, PT, PL, H_out, W_out)


def _col2im_stand_in(dcols, KH, KW, SH, SW, PT, PL, H_out, W_out, dx):
    dx[...] = col2im_reference(dcols, dx.shape, KH, KW, SH, SW, PT, PL, H_out, W_out)


run_bounds = njit(cache=True, nogil=True)(_run_bounds)

# While numba compiles in the background on a fresh machine, the NumPy references stand in
# (minicnn/kernels/_stand_in.py).
im2col = Kernel(njit(cache=True, nogil=True)(_im2col), _im2col_stand_in)
col2im = Kernel(njit(cache=True, nogil=True)(_col2im), _col2im_stand_in)


def _padded_window_slices(kh, kw, SH, SW, H_out, W_out):
    return (slice(None), slice(kh, kh + SH * (H_out - 1) + 1, SH),
            slice(kw, kw + SW * (W_out - 1) + 1, SW), slice(None))


def im2col_reference(x, KH, KW, SH, SW, PT, PL, H_out, W_out):
    """Plain NumPy im2col on an explicitly zero-padded copy of x; returns cols."""
    N, H, W, C = x.shape
    PB = max((H_out - 1) * SH + KH - H - PT, 0)
    PR = max((W_out - 1) * SW + KW - W - PL, 0)
    xp = np.pad(x, ((0, 0), (PT, PB), (PL, PR), (0, 0)))
    cols = np.empty((N, H_out, W_out, KH, KW, C), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            cols[:, :, :, kh, kw, :] = xp[_padded_window_slices(kh, kw, SH, SW, H_out, W_out)]
    return cols.reshape(N * H_out * W_out, KH * KW * C)


def col2im_reference(dcols, x_shape, KH, KW, SH, SW, PT, PL, H_out, W_out):
    """Plain NumPy col2im: add each (kh, kw) slab into a padded buffer, then crop; returns dx."""
    N, H, W, C = x_shape
    PB = max((H_out - 1) * SH + KH - H - PT, 0)
    PR = max((W_out - 1) * SW + KW - W - PL, 0)
    dxp = np.zeros((N, H + PT + PB, W + PL + PR, C), dtype=dcols.dtype)
    d = dcols.reshape(N, H_out, W_out, KH, KW, C)
    for kh in range(KH):
        for kw in range(KW):
            dxp[_padded_window_slices(kh, kw, SH, SW, H_out, W_out)] += d[:, :, :, kh, kw, :]
    return dxp[:, PT:PT + H, PL:PL + W, :]
