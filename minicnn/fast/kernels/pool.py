"""Average pooling over NHWC input, forward and backward in one pass each.

    forward:  y[n, i, j, c] = (sum of x[n, window(i, j), c]) / count(i, j)
    backward: dx[n, h, w, c] = sum over the windows (i, j) holding (h, w) of
                               dout[n, i, j, c] / count(i, j)

Windows are AveragePooling2D's: top-left at (i * SH - PT, j * SW - PL), PH x PW, clipped to the
input, and count(i, j) is the number of input elements inside (Keras divides a 'same' pool's
border windows by that, never averaging padding in as zeros).

Backward gathers rather than scatters: each dx element is written once, from the windows that
hold it in row-major (i, j) order starting from 0, which is the order the reference layer's
`dx[...] += dout / count` adds them in, so the two agree bit for bit, overlapping windows
(stride < pool size) included; inputs no window reads (a 'valid' pool's last odd row) get 0.
Forward sums each window in row-major order, then divides (the layer's `mean` may add in
another order: equal to rounding). Channels are the innermost loop (a
SIMD run of C values); the division is in the arrays' dtype, as NumPy divides a float32 sum by
a Python int. NaN and inf propagate as they do through the reference's sums.

Shapes: x, dx (N, H, W, C); out, dout (N, H_out, W_out, C). Each kernel has a plain NumPy twin
`foo_reference` at the end of the module; tests/test_fast_pool_merge.py compares them.
"""

import numpy as np
from numba import njit


def _avgpool_forward(x, PH, PW, SH, SW, PT, PL, out):
    """Fill out (N, H_out, W_out, C) with the mean of each window of x (N, H, W, C)."""
    N, H, W, C = x.shape
    H_out, W_out = out.shape[1], out.shape[2]
    for n in range(N):
        for i in range(H_out):
            h0, h1 = max(i * SH - PT, 0), min(i * SH - PT + PH, H)
            for j in range(W_out):
                w0, w1 = max(j * SW - PL, 0), min(j * SW - PL + PW, W)
                count = out.dtype.type((h1 - h0) * (w1 - w0))
                for c in range(C):
                    out[n, i, j, c] = x[n, h0, w0, c]
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        if h != h0 or w != w0:
                            for c in range(C):
                                out[n, i, j, c] += x[n, h, w, c]
                for c in range(C):
                    out[n, i, j, c] = out[n, i, j, c] / count


def _avgpool_backward(dout, PH, PW, SH, SW, PT, PL, dx):
    """Fill dx (N, H, W, C) from dout (N, H_out, W_out, C): each input's share of the windows
    that hold it."""
    if SH >= PH and SW >= PW:
        avgpool_backward_disjoint(dout, PH, PW, SH, SW, PT, PL, dx)
        return
    N, H, W, C = dx.shape
    H_out, W_out = dout.shape[1], dout.shape[2]
    zero = dx.dtype.type(0)
    # Which windows hold each row h (i0[h] <= i < i1[h]) and column w, and each window's
    # clipped height and width: worked out once, not per element (an integer division costs
    # more than the element's C-long loop).
    i0, i1, j0, j1 = (np.empty(H, np.int64), np.empty(H, np.int64), np.empty(W, np.int64),
                      np.empty(W, np.int64))
    rows, cols = np.empty(H_out, np.int64), np.empty(W_out, np.int64)
    for h in range(H):  # the windows i with i * SH - PT <= h < i * SH - PT + PH
        i0[h], i1[h] = max((h + PT - PH) // SH + 1, 0), min((h + PT) // SH + 1, H_out)
    for w in range(W):
        j0[w], j1[w] = max((w + PL - PW) // SW + 1, 0), min((w + PL) // SW + 1, W_out)
    for i in range(H_out):
        rows[i] = min(i * SH - PT + PH, H) - max(i * SH - PT, 0)
    for j in range(W_out):
        cols[j] = min(j * SW - PL + PW, W) - max(j * SW - PL, 0)
    for n in range(N):
        for h in range(H):
            for w in range(W):
                for c in range(C):
                    dx[n, h, w, c] = zero
                for i in range(i0[h], i1[h]):
                    for j in range(j0[w], j1[w]):
                        count = dx.dtype.type(rows[i] * cols[j])
                        for c in range(C):
                            dx[n, h, w, c] += dout[n, i, j, c] / count


def _avgpool_backward_disjoint(dout, PH, PW, SH, SW, PT, PL, dx):
    """`_avgpool_backward` for windows that do not overlap (stride >= pool size: the usual 2x2
    pool with stride 2), where each input is in one window or none: dx = 0 + its window's
    dout / count, or 0 (the same bits as adding the one share to zero: -0.0 becomes 0.0).

    A row of dx is W * C values gathered from one row of shares (dout / count, worked out once
    per row of windows rather than once per input) through a column map made once, so the
    loop runs the whole row and not C values at a time (LeNet's 6 channels: 0.24 -> 0.13 ms
    for 32 samples of 28x28)."""
    N, H, W, C = dx.shape
    H_out, W_out = dout.shape[1], dout.shape[2]
    zero = dx.dtype.type(0)
    window_row = np.full(H, -1, np.int64)  # the window row holding input row h, or -1
    for h in range(H):
        i = (h + PT) // SH
        if i < H_out and h < i * SH - PT + PH:
            window_row[h] = i
    source = np.full(W * C, -1, np.int64)  # where (w, c) reads in a row of shares, or -1
    for w in range(W):
        j = (w + PL) // SW
        if j < W_out and w < j * SW - PL + PW:
            for c in range(C):
                source[w * C + c] = j * C + c
    cols = np.empty(W_out, np.int64)
    for j in range(W_out):
        cols[j] = min(j * SW - PL + PW, W) - max(j * SW - PL, 0)
    shares = np.empty(W_out * C, dx.dtype)
    for n in range(N):
        for h in range(H):
            out = dx[n, h].reshape(W * C)
            i = window_row[h]
            if i < 0:
                out[:] = zero
                continue
            rows = min(i * SH - PT + PH, H) - max(i * SH - PT, 0)
            d = dout[n, i].reshape(W_out * C)
            for j in range(W_out):
                count = dx.dtype.type(rows * cols[j])
                for c in range(C):
                    shares[j * C + c] = zero + d[j * C + c] / count
            for t in range(W * C):
                k = source[t]
                out[t] = shares[k] if k >= 0 else zero


avgpool_forward = njit(cache=True, nogil=True)(_avgpool_forward)
avgpool_backward_disjoint = njit(cache=True, nogil=True)(_avgpool_backward_disjoint)
avgpool_backward = njit(cache=True, nogil=True)(_avgpool_backward)


def _windows(H, W, PH, PW, SH, SW, PT, PL, H_out, W_out):
    """(i, j, h0, h1, w0, w1) for every output position, its window clipped to the input."""
    for i in range(H_out):
        h0, h1 = max(i * SH - PT, 0), min(i * SH - PT + PH, H)
        for j in range(W_out):
            yield i, j, h0, h1, max(j * SW - PL, 0), min(j * SW - PL + PW, W)


def avgpool_forward_reference(x, PH, PW, SH, SW, PT, PL, H_out, W_out):
    """Plain NumPy average pooling, one window position at a time, its elements added in
    row-major order; returns out (N, H_out, W_out, C) in x's dtype."""
    N, H, W, C = x.shape
    out = np.empty((N, H_out, W_out, C), dtype=x.dtype)
    for i, j, h0, h1, w0, w1 in _windows(H, W, PH, PW, SH, SW, PT, PL, H_out, W_out):
        total = x[:, h0, w0, :].copy()
        for h in range(h0, h1):
            for w in range(w0, w1):
                if (h, w) != (h0, w0):
                    total += x[:, h, w, :]
        out[:, i, j, :] = total / ((h1 - h0) * (w1 - w0))
    return out


def avgpool_backward_reference(dout, PH, PW, SH, SW, PT, PL, H, W):
    """Plain NumPy: each window's dout / count added to its inputs, windows in row-major order
    (AveragePooling2D.backward's scatter); returns dx (N, H, W, C) in dout's dtype."""
    N, H_out, W_out, C = dout.shape
    dx = np.zeros((N, H, W, C), dtype=dout.dtype)
    for i, j, h0, h1, w0, w1 in _windows(H, W, PH, PW, SH, SW, PT, PL, H_out, W_out):
        dx[:, h0:h1, w0:w1, :] += dout[:, i, j, None, None, :] / ((h1 - h0) * (w1 - w0))
    return dx
