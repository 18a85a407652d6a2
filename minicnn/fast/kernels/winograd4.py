"""Winograd F(4x4, 3x3) transforms (Lavin & Gray 2015), forward and adjoint, for NHWC data.

The larger tile of minicnn/fast/kernels/winograd.py's F(2x2, 3x3): each 4x4 block of outputs
comes from a 6x6 tile d of the padded input, tiles start every 4 rows and columns (neighbours
overlap by 2), and a tile's 36 positions cost 36 multiplications per (channel, filter) in the
GEMMs against 16 * 9 = 144 directly: 4x fewer, 1.78x fewer than F(2x2)'s 16 per 2x2 block. Per
output, V and M hold 36 / 16 = 2.25 values against F(2x2)'s 4, so the transforms move less
memory too. The matrices, from the interpolation points 0, 1, -1, 2, -2 and infinity (those of
Lavin & Gray, NNPACK and cuDNN; they keep every entry of B^T and A^T a small integer):

    B^T = [[4,  0, -5,  0, 1, 0],    G = [[ 1/4,     0,    0],    A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],         [-1/6,  -1/6, -1/6],           [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],         [-1/6,   1/6, -1/6],           [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],         [1/24,  1/12,  1/6],           [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],         [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]         [   0,     0,    1]]

Y = A^T [(G g G^T) * (B^T d B)] A, summed over channels, as for F(2x2); the kernels have the
same names with a 4, the same arguments, and shapes with 36 positions (ordered (row, col)) and
T = N * TH * TW tiles, TH = ceil(H_out / 4), TW = ceil(W_out / 4): V, dV (36, T, C);
U, dU (36, C, F); M, dM (36, T, F). Tile (ti, tj) reads input rows 4 * ti - PT + r and columns
4 * tj - PL + s, r, s in 0..5; outside x reads zero; outputs beyond H_out, W_out are dropped
forward and read as zero backward. Each kernel's NumPy twin is the F(2x2) module's reference,
given these matrices (F4X4_MATRICES there).

Numerics. Entries up to 5 (B^T) and 8 (A^T) make the intermediates larger against the result
than F(2x2)'s, so float32 rounding is ~10x larger (measured in tests/test_winograd4.py, -s).
NaN: only nonzero matrix entries appear, so a NaN never vanishes in a 0 * NaN product; but
unlike F(2x2), whose matrices happen to route each input only to the outputs that read it,
here a NaN (or an inf, as inf - inf) in a tile's input reaches all of the tile's outputs that
mix its row or column, some of which a direct convolution would leave finite: never fewer,
sometimes more, within one 4x4 block. Constants are float32 (`np.float32(4)`), exact in either
dtype, so float32 data is computed in float32 rather than promoted to float64.
"""

import numpy as np
from numba import njit


def _winograd4_input_transform(x, PT, PL, TH, TW, V):
    """Fill V (36, N * TH * TW, C) with B^T d B for every 6x6 tile d of x (N, H, W, C).

    As F(2x2)'s: B^T d is taken once per padded tile row into t (its padding columns stay
    zero), then each tile applies B to its 6 columns of t; every loop nest writes one array.
    """
    N, H, W, C = x.shape
    two, four, five = np.float32(2), np.float32(4), np.float32(5)
    zero_row = np.zeros((W, C), dtype=V.dtype)
    t = np.zeros((6, 4 * TW + 2, C), dtype=V.dtype)
    W_in = min(W, 4 * TW + 2 - PL)
    for n in range(N):
        for ti in range(TH):
            h = 4 * ti - PT
            d0 = x[n, h] if 0 <= h < H else zero_row
            d1 = x[n, h + 1] if 0 <= h + 1 < H else zero_row
            d2 = x[n, h + 2] if 0 <= h + 2 < H else zero_row
            d3 = x[n, h + 3] if 0 <= h + 3 < H else zero_row
            d4 = x[n, h + 4] if 0 <= h + 4 < H else zero_row
            d5 = x[n, h + 5] if 0 <= h + 5 < H else zero_row
            for w in range(W_in):  # t = B^T d, down every column of the tile row
                for c in range(C):
                    t[0, PL + w, c] = four * d0[w, c] - five * d2[w, c] + d4[w, c]
            for w in range(W_in):
                for c in range(C):
                    t[1, PL + w, c] = d3[w, c] + d4[w, c] - four * (d1[w, c] + d2[w, c])
            for w in range(W_in):
                for c in range(C):
                    t[2, PL + w, c] = d4[w, c] - d3[w, c] + four * (d1[w, c] - d2[w, c])
            for w in range(W_in):
                for c in range(C):
                    t[3, PL + w, c] = d4[w, c] - d2[w, c] + two * (d3[w, c] - d1[w, c])
            for w in range(W_in):
                for c in range(C):
                    t[4, PL + w, c] = d4[w, c] - d2[w, c] - two * (d3[w, c] - d1[w, c])
            for w in range(W_in):
                for c in range(C):
                    t[5, PL + w, c] = four * d1[w, c] - five * d3[w, c] + d5[w, c]
            tile = (n * TH + ti) * TW
            for r in range(6):  # V = t B, along each tile's 6 columns
                for tj in range(TW):
                    k = 4 * tj
                    for c in range(C):
                        V[6 * r, tile + tj, c] = (four * t[r, k, c] - five * t[r, k + 2, c]
                                                  + t[r, k + 4, c])
                for tj in range(TW):
                    k = 4 * tj
                    for c in range(C):
                        V[6 * r + 1, tile + tj, c] = (t[r, k + 3, c] + t[r, k + 4, c]
                                                      - four * (t[r, k + 1, c] + t[r, k + 2, c]))
                for tj in range(TW):
                    k = 4 * tj
                    for c in range(C):
                        V[6 * r + 2, tile + tj, c] = (t[r, k + 4, c] - t[r, k + 3, c]
                                                      + four * (t[r, k + 1, c] - t[r, k + 2, c]))
                for tj in range(TW):
                    k = 4 * tj
                    for c in range(C):
                        V[6 * r + 3, tile + tj, c] = (t[r, k + 4, c] - t[r, k + 2, c]
                                                      + two * (t[r, k + 3, c] - t[r, k + 1, c]))
                for tj in range(TW):
                    k = 4 * tj
                    for c in range(C):
                        V[6 * r + 4, tile + tj, c] = (t[r, k + 4, c] - t[r, k + 2, c]
                                                      - two * (t[r, k + 3, c] - t[r, k + 1, c]))
                for tj in range(TW):
                    k = 4 * tj
                    for c in range(C):
                        V[6 * r + 5, tile + tj, c] = (four * t[r, k + 1, c]
                                                      - five * t[r, k + 3, c] + t[r, k + 5, c])


def _winograd4_input_transform_backward(dV, PT, PL, TH, TW, dx):
    """dx (N, H, W, C) <- the sum over tiles of B dV B^T, each on the input pixels its tile
    read; dV (36, N * TH * TW, C). dx is overwritten. The forward's passes in reverse: dV B^T
    added into each tile's 6 columns of the tile row's buffer t (neighbours share 2), then
    B t down each column onto the 6 input rows it came from."""
    N, H, W, C = dx.shape
    two, four, five = np.float32(2), np.float32(4), np.float32(5)
    t = np.empty((6, 4 * TW + 2, C), dtype=dx.dtype)
    W_in = min(W, 4 * TW + 2 - PL)
    for n in range(N):
        dx[n] = 0.0
        for ti in range(TH):
            t[:] = 0.0
            tile = (n * TH + ti) * TW
            for r in range(6):  # t += dV B^T, along each tile's 6 columns
                p = 6 * r
                for tj in range(TW):
                    for c in range(C):
                        t[r, 4 * tj, c] += four * dV[p, tile + tj, c]
                for tj in range(TW):
                    for c in range(C):
                        t[r, 4 * tj + 1, c] += (four * (dV[p + 2, tile + tj, c]
                                                        - dV[p + 1, tile + tj, c]
                                                        + dV[p + 5, tile + tj, c])
                                                + two * (dV[p + 4, tile + tj, c]
                                                         - dV[p + 3, tile + tj, c]))
                for tj in range(TW):
                    for c in range(C):
                        t[r, 4 * tj + 2, c] -= (five * dV[p, tile + tj, c]
                                                + four * (dV[p + 1, tile + tj, c]
                                                          + dV[p + 2, tile + tj, c])
                                                + dV[p + 3, tile + tj, c]
                                                + dV[p + 4, tile + tj, c])
                for tj in range(TW):
                    for c in range(C):
                        t[r, 4 * tj + 3, c] += (dV[p + 1, tile + tj, c] - dV[p + 2, tile + tj, c]
                                                + two * (dV[p + 3, tile + tj, c]
                                                         - dV[p + 4, tile + tj, c])
                                                - five * dV[p + 5, tile + tj, c])
                for tj in range(TW):
                    for c in range(C):
                        t[r, 4 * tj + 4, c] += (dV[p, tile + tj, c] + dV[p + 1, tile + tj, c]
                                                + dV[p + 2, tile + tj, c]
                                                + dV[p + 3, tile + tj, c]
                                                + dV[p + 4, tile + tj, c])
                for tj in range(TW):
                    for c in range(C):
                        t[r, 4 * tj + 5, c] += dV[p + 5, tile + tj, c]
            h = 4 * ti - PT  # dd = B t, down each column, onto the rows of x
            if 0 <= h < H:
                d = dx[n, h]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += four * t[0, PL + w, c]
            if 0 <= h + 1 < H:
                d = dx[n, h + 1]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += (four * (t[2, PL + w, c] - t[1, PL + w, c] + t[5, PL + w, c])
                                    + two * (t[4, PL + w, c] - t[3, PL + w, c]))
            if 0 <= h + 2 < H:
                d = dx[n, h + 2]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] -= (five * t[0, PL + w, c]
                                    + four * (t[1, PL + w, c] + t[2, PL + w, c])
                                    + t[3, PL + w, c] + t[4, PL + w, c])
            if 0 <= h + 3 < H:
                d = dx[n, h + 3]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += (t[1, PL + w, c] - t[2, PL + w, c]
                                    + two * (t[3, PL + w, c] - t[4, PL + w, c])
                                    - five * t[5, PL + w, c])
            if 0 <= h + 4 < H:
                d = dx[n, h + 4]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += (t[0, PL + w, c] + t[1, PL + w, c] + t[2, PL + w, c]
                                    + t[3, PL + w, c] + t[4, PL + w, c])
            if 0 <= h + 5 < H:
                d = dx[n, h + 5]
                for w in range(W_in):
                    for c in range(C):
                        d[w, c] += t[5, PL + w, c]


def _winograd4_filter_transform(kernel, U):
    """Fill U (36, C, F) with G g G^T for every 3x3 filter g of kernel (3, 3, C, F).

    G's rows written out (1/6 and 1/24 are not exact in float32, so t is float64 and U is
    rounded once), filters innermost: with G as a (6, 3) array looped over per filter, this
    took ~1 ms a chunk at C = F = 64, more than the 8x8 layer's transforms."""
    _, _, C, F = kernel.shape
    t = np.empty((6, 3, F), dtype=np.float64)
    for c in range(C):
        for s in range(3):  # t = G g, down the columns
            for f in range(F):
                g0, g1, g2 = kernel[0, s, c, f], kernel[1, s, c, f], kernel[2, s, c, f]
                t[0, s, f] = g0 / 4.0
                t[1, s, f] = -(g0 + g1 + g2) / 6.0
                t[2, s, f] = -(g0 - g1 + g2) / 6.0
                t[3, s, f] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0
                t[4, s, f] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0
                t[5, s, f] = g2
        for r in range(6):  # U = t G^T, along the rows
            for f in range(F):
                g0, g1, g2 = t[r, 0, f], t[r, 1, f], t[r, 2, f]
                U[6 * r, c, f] = g0 / 4.0
                U[6 * r + 1, c, f] = -(g0 + g1 + g2) / 6.0
                U[6 * r + 2, c, f] = -(g0 - g1 + g2) / 6.0
                U[6 * r + 3, c, f] = g0 / 24.0 + g1 / 12.0 + g2 / 6.0
                U[6 * r + 4, c, f] = g0 / 24.0 - g1 / 12.0 + g2 / 6.0
                U[6 * r + 5, c, f] = g2


def _winograd4_filter_transform_backward(dU, dkernel):
    """dkernel (3, 3, C, F) <- G^T dU G for every channel and filter of dU (36, C, F), in
    float64 as `_winograd4_filter_transform`."""
    _, _, C, F = dkernel.shape
    t = np.empty((3, 6, F), dtype=np.float64)
    for c in range(C):
        for s in range(6):  # t = G^T dU, down the columns
            for f in range(F):
                u0, u1, u2 = dU[s, c, f], dU[6 + s, c, f], dU[12 + s, c, f]
                u3, u4, u5 = dU[18 + s, c, f], dU[24 + s, c, f], dU[30 + s, c, f]
                t[0, s, f] = u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0
                t[1, s, f] = (u2 - u1) / 6.0 + (u3 - u4) / 12.0
                t[2, s, f] = (u3 + u4 - u1 - u2) / 6.0 + u5
        for r in range(3):  # dg = t G, along the rows
            for f in range(F):
                u0, u1, u2 = t[r, 0, f], t[r, 1, f], t[r, 2, f]
                u3, u4, u5 = t[r, 3, f], t[r, 4, f], t[r, 5, f]
                dkernel[r, 0, c, f] = u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0
                dkernel[r, 1, c, f] = (u2 - u1) / 6.0 + (u3 - u4) / 12.0
                dkernel[r, 2, c, f] = (u3 + u4 - u1 - u2) / 6.0 + u5


def _winograd4_output_transform(M, bias, TH, TW, y):
    """y (N, H_out, W_out, F) <- A^T m A + bias for every tile m of M (36, N * TH * TW, F),
    keeping the 4x4 outputs that fall inside y. A tile row at a time: t = A^T m for all its
    tiles, then t A onto its (up to) four output rows."""
    N, H_out, W_out, F = y.shape
    two, four, eight = np.float32(2), np.float32(4), np.float32(8)
    t = np.empty((4, 6, TW, F), dtype=y.dtype)
    for n in range(N):
        for ti in range(TH):
            tile = (n * TH + ti) * TW
            for s in range(6):  # t = A^T m, down the columns
                for tj in range(TW):
                    for f in range(F):
                        t[0, s, tj, f] = (M[s, tile + tj, f] + M[6 + s, tile + tj, f]
                                          + M[12 + s, tile + tj, f] + M[18 + s, tile + tj, f]
                                          + M[24 + s, tile + tj, f])
                for tj in range(TW):
                    for f in range(F):
                        t[1, s, tj, f] = (M[6 + s, tile + tj, f] - M[12 + s, tile + tj, f]
                                          + two * (M[18 + s, tile + tj, f]
                                                   - M[24 + s, tile + tj, f]))
                for tj in range(TW):
                    for f in range(F):
                        t[2, s, tj, f] = (M[6 + s, tile + tj, f] + M[12 + s, tile + tj, f]
                                          + four * (M[18 + s, tile + tj, f]
                                                    + M[24 + s, tile + tj, f]))
                for tj in range(TW):
                    for f in range(F):
                        t[3, s, tj, f] = (M[6 + s, tile + tj, f] - M[12 + s, tile + tj, f]
                                          + eight * (M[18 + s, tile + tj, f]
                                                     - M[24 + s, tile + tj, f])
                                          + M[30 + s, tile + tj, f])
            for r in range(4):  # y = t A + bias, along the rows
                if 4 * ti + r >= H_out:
                    continue
                out = y[n, 4 * ti + r]
                for tj in range((W_out + 3) // 4):  # the tiles whose column 0 is inside y
                    for f in range(F):
                        out[4 * tj, f] = (t[r, 0, tj, f] + t[r, 1, tj, f] + t[r, 2, tj, f]
                                          + t[r, 3, tj, f] + t[r, 4, tj, f] + bias[f])
                for tj in range((W_out + 2) // 4):
                    for f in range(F):
                        out[4 * tj + 1, f] = (t[r, 1, tj, f] - t[r, 2, tj, f]
                                              + two * (t[r, 3, tj, f] - t[r, 4, tj, f])
                                              + bias[f])
                for tj in range((W_out + 1) // 4):
                    for f in range(F):
                        out[4 * tj + 2, f] = (t[r, 1, tj, f] + t[r, 2, tj, f]
                                              + four * (t[r, 3, tj, f] + t[r, 4, tj, f])
                                              + bias[f])
                for tj in range(W_out // 4):
                    for f in range(F):
                        out[4 * tj + 3, f] = (t[r, 1, tj, f] - t[r, 2, tj, f]
                                              + eight * (t[r, 3, tj, f] - t[r, 4, tj, f])
                                              + t[r, 5, tj, f] + bias[f])


def _winograd4_output_transform_backward(dout, TH, TW, dM):
    """dM (36, N * TH * TW, F) <- A dy A^T for every 4x4 block dy of dout (N, H_out, W_out, F),
    zero beyond its edge. dM is overwritten. A tile row at a time: t = A dy down the columns of
    its four output rows (columns beyond W_out stay zero), then t A^T per tile."""
    N, H_out, W_out, F = dout.shape
    two, four, eight = np.float32(2), np.float32(4), np.float32(8)
    zero_row = np.zeros((W_out, F), dtype=dM.dtype)  # dy beyond the output's bottom edge
    t = np.zeros((6, 4 * TW, F), dtype=dM.dtype)
    for n in range(N):
        for ti in range(TH):
            i = 4 * ti
            dy0 = dout[n, i]
            dy1 = dout[n, i + 1] if i + 1 < H_out else zero_row
            dy2 = dout[n, i + 2] if i + 2 < H_out else zero_row
            dy3 = dout[n, i + 3] if i + 3 < H_out else zero_row
            for w in range(W_out):  # t = A dy, down the columns
                for f in range(F):
                    t[0, w, f] = dy0[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[1, w, f] = dy0[w, f] + dy1[w, f] + dy2[w, f] + dy3[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[2, w, f] = dy0[w, f] - dy1[w, f] + dy2[w, f] - dy3[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[3, w, f] = dy0[w, f] + two * dy1[w, f] + four * dy2[w, f] + eight * dy3[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[4, w, f] = dy0[w, f] - two * dy1[w, f] + four * dy2[w, f] - eight * dy3[w, f]
            for w in range(W_out):
                for f in range(F):
                    t[5, w, f] = dy3[w, f]
            tile = (n * TH + ti) * TW
            for r in range(6):  # dM = t A^T, along the rows
                for tj in range(TW):
                    k = 4 * tj
                    for f in range(F):
                        dM[6 * r, tile + tj, f] = t[r, k, f]
                for tj in range(TW):
                    k = 4 * tj
                    for f in range(F):
                        dM[6 * r + 1, tile + tj, f] = (t[r, k, f] + t[r, k + 1, f]
                                                       + t[r, k + 2, f] + t[r, k + 3, f])
                for tj in range(TW):
                    k = 4 * tj
                    for f in range(F):
                        dM[6 * r + 2, tile + tj, f] = (t[r, k, f] - t[r, k + 1, f]
                                                       + t[r, k + 2, f] - t[r, k + 3, f])
                for tj in range(TW):
                    k = 4 * tj
                    for f in range(F):
                        dM[6 * r + 3, tile + tj, f] = (t[r, k, f] + two * t[r, k + 1, f]
                                                       + four * t[r, k + 2, f]
                                                       + eight * t[r, k + 3, f])
                for tj in range(TW):
                    k = 4 * tj
                    for f in range(F):
                        dM[6 * r + 4, tile + tj, f] = (t[r, k, f] - two * t[r, k + 1, f]
                                                       + four * t[r, k + 2, f]
                                                       - eight * t[r, k + 3, f])
                for tj in range(TW):
                    for f in range(F):
                        dM[6 * r + 5, tile + tj, f] = t[r, 4 * tj + 3, f]


winograd4_input_transform = njit(cache=True, nogil=True)(_winograd4_input_transform)
winograd4_input_transform_backward = njit(cache=True, nogil=True)(
    _winograd4_input_transform_backward)
winograd4_filter_transform = njit(cache=True, nogil=True)(_winograd4_filter_transform)
winograd4_filter_transform_backward = njit(cache=True, nogil=True)(
    _winograd4_filter_transform_backward)
winograd4_output_transform = njit(cache=True, nogil=True)(_winograd4_output_transform)
winograd4_output_transform_backward = njit(cache=True, nogil=True)(
    _winograd4_output_transform_backward)

WINOGRAD4_KERNELS = (winograd4_input_transform, winograd4_input_transform_backward,
                     winograd4_filter_transform, winograd4_filter_transform_backward,
                     winograd4_output_transform, winograd4_output_transform_backward)
