"""im2col and col2im for NHWC input, columns ordered (kh, kw, c).

With that column order, a Keras conv kernel of shape (KH, KW, C, F) is a plain reshape away from
the GEMM: `out = cols @ kernel.reshape(KH * KW * C, F)`. Padding is never materialised: positions
that fall outside the input read as zero (im2col) and receive nothing (col2im).

Shapes: x (N, H, W, C); cols (N * H_out * W_out, KH * KW * C), rows ordered (n, i, j).
"""

import numpy as np
from numba import njit

from minicnn.kernels._stand_in import Kernel


def _im2col(x, KH, KW, SH, SW, PT, PL, H_out, W_out, cols):
    """Fill `cols` (N * H_out * W_out, KH * KW * C) with the receptive fields of x (N, H, W, C).

    Output pixel (i, j) sees input rows i * SH - PT + kh and columns j * SW - PL + kw.
    """
    N, H, W, C = x.shape
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                row = (n * H_out + i) * W_out + j
                for kh in range(KH):
                    h = i * SH - PT + kh
                    for kw in range(KW):
                        w = j * SW - PL + kw
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
    for n in range(N):
        dx[n] = 0.0
        for i in range(H_out):
            for j in range(W_out):
                row = (n * H_out + i) * W_out + j
                for kh in range(KH):
                    h = i * SH - PT + kh
                    if h < 0 or h >= H:
                        continue
                    for kw in range(KW):
                        w = j * SW - PL + kw
                        if w < 0 or w >= W:
                            continue
                        col = (kh * KW + kw) * C
                        for c in range(C):
                            dx[n, h, w, c] += dcols[row, col + c]


def _im2col_stand_in(x, KH, KW, SH, SW, PT, PL, H_out, W_out, cols):
    cols[...] = im2col_reference(x, KH, KW, SH, SW, PT, PL, H_out, W_out)


def _col2im_stand_in(dcols, KH, KW, SH, SW, PT, PL, H_out, W_out, dx):
    dx[...] = col2im_reference(dcols, dx.shape, KH, KW, SH, SW, PT, PL, H_out, W_out)


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
