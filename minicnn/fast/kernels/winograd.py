"""Winograd F(2x2, 3x3) transforms (Lavin & Gray 2015), forward and adjoint, for NHWC data.

A 3x3 stride-1 convolution computes each 2x2 block of outputs from a 4x4 tile d of the padded
input; tiles start every 2 rows and columns, so neighbours overlap by 2. With

    B^T = [[1,  0, -1,  0],     G = [[  1,    0,   0],     A^T = [[1, 1,  1,  0],
           [0,  1,  1,  0],          [1/2,  1/2, 1/2],            [0, 1, -1, -1]]
           [0, -1,  1,  0],          [1/2, -1/2, 1/2],
           [0,  1,  0, -1]]          [  0,    0,   1]]

a tile's outputs are Y = A^T [(G g G^T) * (B^T d B)] A, summed over input channels, where * is
elementwise over the 4x4 positions. The transforms here are the three matrix products, each
applied to every channel (or filter) at once, and their adjoints for the backward pass:

    winograd_input_transform            V  = B^T d B   per tile and channel
    winograd_filter_transform           U  = G g G^T   per channel and filter
    winograd_output_transform           Y  = A^T M A   per tile and filter (+ bias), cropped
    winograd_output_transform_backward  dM = A dY A^T  (dY zero beyond the output's edge)
    winograd_filter_transform_backward  dg = G^T dU G
    winograd_input_transform_backward   dd = B dV B^T, scatter-added onto the overlapping tiles

Shapes, with T = N * TH * TW tiles ordered (n, ti, tj) and the 16 positions ordered (row, col):
x, dx (N, H, W, C); V, dV (16, T, C); kernel, dkernel (3, 3, C, F); U, dU (16, C, F);
M, dM (16, T, F); y, dout (N, H_out, W_out, F). Position-major, so each of the 16 GEMMs reads
and writes contiguous matrices (tiles-major, (T, 16, C), made BLAS stride over rows 16 * C apart
and ran the GEMMs 2.4x slower). Tile (ti, tj) reads input rows 2 * ti - PT + r and columns
2 * tj - PL + s for r, s in 0..3; positions outside x read as zero (the padding, never
materialised) and receive nothing going back. Output rows and columns beyond H_out, W_out
(a tile grid rounded up to even sizes) are dropped forward and read as zero backward.

Only the nonzero entries of the matrices appear in the kernels, so a NaN reaches exactly the
values that depend on it (a product 0 * NaN is never formed), as in a direct convolution; the
one place a NaN reaches more is the kernel gradient (tests/test_winograd.py says why). Each
kernel has a plain NumPy twin `foo_reference` at the end of the module that multiplies by the
matrices above; tests/test_winograd.py compares them.
"""

from typing import NamedTuple

import numpy as np
from numba import njit


def _winograd_input_transform(x, PT, PL, TH, TW, V):
    """Fill V (16, N * TH * TW, C) with B^T d B for every 4x4 tile d of x (N, H, W, C).

    The tiles of a tile row overlap by 2 columns, and B^T d mixes rows only: it is taken once
    for the whole padded tile row (into t, whose padding columns stay zero), and each tile
    applies B to its 4 columns of t. Every loop nest indexes the arrays directly, (w, c) or
    (tj, c) inner, and writes one array: with a 1-D view taken per pixel or per tile instead,
    the view's setup cost more than its 16-channel loop (3x slower at C = 16, 2x at 64).
    """
    N, H, W, C = x.shape
    zero_row = np.zeros((W, C), dtype=V.dtype)  # a row of the padding
    t = np.zeros((4, 2 * TW + 2, C), dtype=V.dtype)
    W_in = min(W, 2 * TW + 2 - PL)  # the columns of x the tile grid reads
    for n in range(N):
        for ti in range(TH):
            h = 2 * ti - PT
            d0 = x[n, h] if 0 <= h < H else zero_row
            d1 = x[n, h + 1] if 0 <= h + 1 < H else zero_row
            d2 = x[n, h + 2] if 0 <= h + 2 < H else zero_row
            d3 = x[n, h + 3] if 0 <= h + 3 < H else zero_row
            for w in range(W_in):  # t = B^T d, down every column of the tile row
                for c in range(C):
                    t[0, PL + w, c] = d0[w, c] - d2[w, c]
            for w in range(W_in):
                for c in range(C):
                    t[1, PL + w, c] = d1[w, c] + d2[w, c]
            for w in range(W_in):
                for c in range(C):
                    t[2, PL + w, c] = d2[w, c] - d1[w, c]
            for w in range(W_in):
                for c in range(C):
                    t[3, PL + w, c] = d1[w, c] - d3[w, c]
            tile = (n * TH + ti) * TW
            for r in range(4):  # V = t B, along each tile's 4 columns
                for tj in range(TW):
                    for c in range(C):
                        V[4 * r, tile + tj, c] = t[r, 2 * tj, c] - t[r, 2 * tj + 2, c]
                for tj in range(TW):
                    for c in range(C):
                        V[4 * r + 1, tile + tj, c] = t[r, 2 * tj + 1, c] + t[r, 2 * tj + 2, c]
                for tj in range(TW):
                    for c in range(C):
                        V[4 * r + 2, tile + tj, c] = t[r, 2 * tj + 2, c] - t[r, 2 * tj + 1, c]
                for tj in range(TW):
                    for c in range(C):
                        V[4 * r + 3, tile + tj, c] = t[r, 2 * tj + 1, c] - t[r, 2 * tj + 3, c]


def _winograd_input_transform_backward(dV, PT, PL, TH, TW, dx):
    """dx (N, H, W, C) <- the sum over tiles of B dV B^T, each on the input pixels its tile
    read; dV (16, N * TH * TW, C). dx is overwritten.

    The forward's passes in reverse: each tile adds dV B^T into its 4 columns of a tile row's
    buffer t (a column gets at most two terms, from neighbouring tiles, added to 0 in either
    order alike), then B t goes down each column onto the 4 input rows it came from. Loop
    nests index directly, as in `_winograd_input_transform`.
    """
    N, H, W, C = dx.shape
    t = np.empty((4, 2 * TW + 2, C), dtype=dx.dtype)
    W_in = min(W, 2 * TW + 2 - PL)
    for n in range(N):
        dx[n] = 0.0
        for ti in range(TH):
            t[:] = 0.0
            tile = (n * TH + ti) * TW
            for r in range(4):  # t += dV B^T, along each tile's 4 columns
                for tj in range(TW):
                    for c in range(C):
                        t[r, 2 * tj, c] += dV[4 * r, tile + tj, c]
                for tj in range(TW):
                    for c in range(C):
                        t[r, 2 * tj + 1, c] += (dV[4 * r + 1, tile + tj, c]
                                                - dV[4 * r + 2, tile + tj, c]
                                                + dV[4 * r + 3, tile + tj, c])
                for tj in range(TW):
                    for c in range(C):
                        t[r, 2 * tj + 2, c] += (dV[4 * r + 1, tile + tj, c]
                                                + dV[4 * r + 2, tile + tj, c]
                                                - dV[4 * r, tile + tj, c])
                for tj in range(TW):
                    for c in range(C):
                        t[r, 2 * tj + 3, c] -= dV[4 * r + 3, tile + tj, c]
            h = 2 * ti - PT  # dd = B t, down each column, onto the rows of x
            if 0 <= h < H:
                d = dx[n, h]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += t[0, PL + w, c]
            if 0 <= h + 1 < H:
                d = dx[n, h + 1]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += t[1, PL + w, c] - t[2, PL + w, c] + t[3, PL + w, c]
            if 0 <= h + 2 < H:
                d = dx[n, h + 2]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += t[1, PL + w, c] + t[2, PL + w, c] - t[0, PL + w, c]
            if 0 <= h + 3 < H:
                d = dx[n, h + 3]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] -= t[3, PL + w, c]


def _winograd_filter_transform(kernel, U):
    """Fill U (16, C, F) with G g G^T for every 3x3 filter g of kernel (3, 3, C, F)."""
    _, _, C, F = kernel.shape
    t = np.empty((4, 3, F), dtype=U.dtype)
    for c in range(C):
        for s in range(3):  # t = G g, down the columns
            for f in range(F):
                g0, g1, g2 = kernel[0, s, c, f], kernel[1, s, c, f], kernel[2, s, c, f]
                t[0, s, f] = g0
                t[1, s, f] = 0.5 * (g0 + g1 + g2)
                t[2, s, f] = 0.5 * (g0 - g1 + g2)
                t[3, s, f] = g2
        for r in range(4):  # U = t G^T, along the rows
            for f in range(F):
                g0, g1, g2 = t[r, 0, f], t[r, 1, f], t[r, 2, f]
                U[4 * r, c, f] = g0
                U[4 * r + 1, c, f] = 0.5 * (g0 + g1 + g2)
                U[4 * r + 2, c, f] = 0.5 * (g0 - g1 + g2)
                U[4 * r + 3, c, f] = g2


def _winograd_filter_transform_backward(dU, dkernel):
    """dkernel (3, 3, C, F) <- G^T dU G for every channel and filter of dU (16, C, F)."""
    _, _, C, F = dkernel.shape
    t = np.empty((3, 4, F), dtype=dkernel.dtype)
    for c in range(C):
        for s in range(4):  # t = G^T dU, down the columns
            for f in range(F):
                u0, u1, u2, u3 = dU[s, c, f], dU[4 + s, c, f], dU[8 + s, c, f], dU[12 + s, c, f]
                t[0, s, f] = u0 + 0.5 * (u1 + u2)
                t[1, s, f] = 0.5 * (u1 - u2)
                t[2, s, f] = 0.5 * (u1 + u2) + u3
        for r in range(3):  # dg = t G, along the rows
            for f in range(F):
                u0, u1, u2, u3 = t[r, 0, f], t[r, 1, f], t[r, 2, f], t[r, 3, f]
                dkernel[r, 0, c, f] = u0 + 0.5 * (u1 + u2)
                dkernel[r, 1, c, f] = 0.5 * (u1 - u2)
                dkernel[r, 2, c, f] = 0.5 * (u1 + u2) + u3


def _winograd_output_transform(M, bias, TH, TW, y):
    """y (N, H_out, W_out, F) <- A^T m A + bias for every tile m of M (16, N * TH * TW, F),
    keeping the 2x2 outputs that fall inside y. A tile row at a time: t = A^T m for all its
    tiles, then t A onto its two output rows; loop nests index directly, (tj, f) inner."""
    N, H_out, W_out, F = y.shape
    t = np.empty((2, 4, TW, F), dtype=y.dtype)
    W_odd = W_out // 2  # the tiles whose second output column is inside y
    for n in range(N):
        for ti in range(TH):
            tile = (n * TH + ti) * TW
            for s in range(4):  # t = A^T m, down the columns
                for tj in range(TW):
                    for f in range(F):
                        t[0, s, tj, f] = (M[s, tile + tj, f] + M[4 + s, tile + tj, f]
                                          + M[8 + s, tile + tj, f])
                for tj in range(TW):
                    for f in range(F):
                        t[1, s, tj, f] = (M[4 + s, tile + tj, f] - M[8 + s, tile + tj, f]
                                          - M[12 + s, tile + tj, f])
            for r in range(2):  # y = t A + bias, along the rows
                if 2 * ti + r >= H_out:
                    continue
                out = y[n, 2 * ti + r]
                for tj in range(TW):
                    for f in range(F):
                        out[2 * tj, f] = t[r, 0, tj, f] + t[r, 1, tj, f] + t[r, 2, tj, f] + bias[f]
                for tj in range(W_odd):
                    for f in range(F):
                        out[2 * tj + 1, f] = (t[r, 1, tj, f] - t[r, 2, tj, f] - t[r, 3, tj, f]
                                              + bias[f])


def _winograd_output_transform_backward(dout, TH, TW, dM):
    """dM (16, N * TH * TW, F) <- A dy A^T for every 2x2 block dy of dout (N, H_out, W_out, F),
    zero beyond its edge. dM is overwritten. A tile row at a time: t = A dy down the columns of
    its two output rows (columns beyond W_out stay zero), then t A^T per tile."""
    N, H_out, W_out, F = dout.shape
    zero_row = np.zeros((W_out, F), dtype=dM.dtype)  # dy beyond the output's bottom edge
    t = np.zeros((4, 2 * TW, F), dtype=dM.dtype)
    for n in range(N):
        for ti in range(TH):
            i = 2 * ti
            dy0 = dout[n, i]
            dy1 = dout[n, i + 1] if i + 1 < H_out else zero_row
            for w in range(W_out):  # t = A dy, down the columns
                for f in range(F):
                    t[0, w, f] = dy0[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[1, w, f] = dy0[w, f] + dy1[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[2, w, f] = dy0[w, f] - dy1[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[3, w, f] = -dy1[w, f]
            tile = (n * TH + ti) * TW
            for r in range(4):  # dM = t A^T, along the rows
                for tj in range(TW):
                    for f in range(F):
                        dM[4 * r, tile + tj, f] = t[r, 2 * tj, f]
                for tj in range(TW):
                    for f in range(F):
                        dM[4 * r + 1, tile + tj, f] = t[r, 2 * tj, f] + t[r, 2 * tj + 1, f]
                for tj in range(TW):
                    for f in range(F):
                        dM[4 * r + 2, tile + tj, f] = t[r, 2 * tj, f] - t[r, 2 * tj + 1, f]
                for tj in range(TW):
                    for f in range(F):
                        dM[4 * r + 3, tile + tj, f] = -t[r, 2 * tj + 1, f]


winograd_input_transform = njit(cache=True, nogil=True)(_winograd_input_transform)
winograd_input_transform_backward = njit(cache=True, nogil=True)(
    _winograd_input_transform_backward)
winograd_filter_transform = njit(cache=True, nogil=True)(_winograd_filter_transform)
winograd_filter_transform_backward = njit(cache=True, nogil=True)(
    _winograd_filter_transform_backward)
winograd_output_transform = njit(cache=True, nogil=True)(_winograd_output_transform)
winograd_output_transform_backward = njit(cache=True, nogil=True)(
    _winograd_output_transform_backward)

WINOGRAD_KERNELS = (winograd_input_transform, winograd_input_transform_backward,
                    winograd_filter_transform, winograd_filter_transform_backward,
                    winograd_output_transform, winograd_output_transform_backward)


# -- plain NumPy twins: the matrices written out -------------------------------------------------
class WinogradMatrices(NamedTuple):
    """F(m x m, 3x3)'s transforms: B_T (alpha, alpha), G (alpha, 3), A_T (m, alpha), where
    alpha = m + 2."""

    B_T: np.ndarray
    G: np.ndarray
    A_T: np.ndarray

    @property
    def m(self) -> int:  # outputs per tile side, the tiles' stride
        return self.A_T.shape[0]

    @property
    def alpha(self) -> int:  # input tile side
        return self.B_T.shape[0]


F2X2_MATRICES = WinogradMatrices(
    B_T=np.array([[1, 0, -1, 0],
                  [0, 1, 1, 0],
                  [0, -1, 1, 0],
                  [0, 1, 0, -1]], dtype=np.float64),
    G=np.array([[1, 0, 0],
                [0.5, 0.5, 0.5],
                [0.5, -0.5, 0.5],
                [0, 0, 1]], dtype=np.float64),
    A_T=np.array([[1, 1, 1, 0],
                  [0, 1, -1, -1]], dtype=np.float64))
# minicnn/fast/kernels/winograd4.py's, from the points 0, 1, -1, 2, -2 and infinity
F4X4_MATRICES = WinogradMatrices(
    B_T=np.array([[4, 0, -5, 0, 1, 0],
                  [0, -4, -4, 1, 1, 0],
                  [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0],
                  [0, 2, -1, -2, 1, 0],
                  [0, 4, 0, -5, 0, 1]], dtype=np.float64),
    G=np.array([[1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1]], dtype=np.float64),
    A_T=np.array([[1, 1, 1, 1, 1, 0],
                  [0, 1, -1, 2, -2, 0],
                  [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], dtype=np.float64))


def _padded_size(TH, TW, m=2):
    """The padded input the tile grid covers: m * TH + 2 rows, m * TW + 2 columns."""
    return m * TH + 2, m * TW + 2


def winograd_input_transform_reference(x, PT, PL, TH, TW, matrices=F2X2_MATRICES):
    """Pad x (N, H, W, C) explicitly, cut its alpha x alpha tiles (stride m), return
    V (alpha^2, N * TH * TW, C)."""
    N, H, W, C = x.shape
    B_T, m, a = matrices.B_T.astype(x.dtype), matrices.m, matrices.alpha
    HP, WP = _padded_size(TH, TW, m)
    xp = np.zeros((N, HP, WP, C), dtype=x.dtype)
    xp[:, PT:PT + H, PL:PL + W] = x
    d = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(1, 2))[:, ::m, ::m]
    V = B_T @ d @ B_T.T  # (N, TH, TW, C, a, a)
    return np.ascontiguousarray(V.transpose(4, 5, 0, 1, 2, 3)).reshape(a * a, N * TH * TW, C)


def winograd_input_transform_backward_reference(dV, x_shape, PT, PL, TH, TW,
                                                matrices=F2X2_MATRICES):
    """B dV B^T per tile, added onto an explicitly padded buffer, cropped; returns dx."""
    N, H, W, C = x_shape
    B_T, m, a = matrices.B_T.astype(dV.dtype), matrices.m, matrices.alpha
    dv = dV.reshape(a, a, N, TH, TW, C).transpose(2, 3, 4, 5, 0, 1)
    dd = B_T.T @ dv @ B_T  # (N, TH, TW, C, a, a)
    dxp = np.zeros((N, *_padded_size(TH, TW, m), C), dtype=dV.dtype)
    for ti in range(TH):
        for tj in range(TW):
            dxp[:, m * ti:m * ti + a, m * tj:m * tj + a] += dd[:, ti, tj].transpose(0, 2, 3, 1)
    return dxp[:, PT:PT + H, PL:PL + W]


def winograd_filter_transform_reference(kernel, matrices=F2X2_MATRICES):
    """G g G^T for every filter of kernel (3, 3, C, F); returns U (alpha^2, C, F)."""
    _, _, C, F = kernel.shape
    G, a = matrices.G.astype(kernel.dtype), matrices.alpha
    g = kernel.transpose(2, 3, 0, 1)  # (C, F, 3, 3)
    U = G @ g @ G.T  # (C, F, a, a)
    return np.ascontiguousarray(U.transpose(2, 3, 0, 1)).reshape(a * a, C, F)


def winograd_filter_transform_backward_reference(dU, matrices=F2X2_MATRICES):
    """G^T dU G for every channel and filter of dU (alpha^2, C, F); returns dkernel
    (3, 3, C, F)."""
    _, C, F = dU.shape
    G, a = matrices.G.astype(dU.dtype), matrices.alpha
    du = dU.reshape(a, a, C, F).transpose(2, 3, 0, 1)  # (C, F, a, a)
    dg = G.T @ du @ G  # (C, F, 3, 3)
    return np.ascontiguousarray(dg.transpose(2, 3, 0, 1))


def winograd_output_transform_reference(M, bias, N, TH, TW, H_out, W_out,
                                        matrices=F2X2_MATRICES):
    """A^T m A + bias per tile of M (alpha^2, N * TH * TW, F), laid out and cropped to y."""
    F = M.shape[-1]
    A_T, m, a = matrices.A_T.astype(M.dtype), matrices.m, matrices.alpha
    mt = M.reshape(a, a, N, TH, TW, F).transpose(2, 3, 4, 5, 0, 1)
    Y = A_T @ mt @ A_T.T  # (N, TH, TW, F, m, m)
    y = Y.transpose(0, 1, 4, 2, 5, 3).reshape(N, m * TH, m * TW, F)
    return np.ascontiguousarray(y[:, :H_out, :W_out] + bias)


def winograd_output_transform_backward_reference(dout, TH, TW, matrices=F2X2_MATRICES):
    """dout (N, H_out, W_out, F) zero-padded to the tile grid, A dy A^T per m x m block;
    returns dM (alpha^2, N * TH * TW, F)."""
    N, H_out, W_out, F = dout.shape
    A_T, m, a = matrices.A_T.astype(dout.dtype), matrices.m, matrices.alpha
    dy = np.zeros((N, m * TH, m * TW, F), dtype=dout.dtype)
    dy[:, :H_out, :W_out] = dout
    dy = dy.reshape(N, TH, m, TW, m, F).transpose(0, 1, 3, 5, 2, 4)  # (N, TH, TW, F, m, m)
    dM = A_T.T @ dy @ A_T  # (N, TH, TW, F, a, a)
    return np.ascontiguousarray(dM.transpose(4, 5, 0, 1, 2, 3)).reshape(a * a, N * TH * TW, F)
