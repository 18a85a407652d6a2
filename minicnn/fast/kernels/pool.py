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
SIMD run of C values), but where windows do not overlap (backward) or all lie inside the input
(forward): there a whole row of W * C values is one SIMD loop, gathered (`_disjoint`,
`_inside`), the same values in the same order. The division is in the arrays' dtype, as
NumPy divides a float32 sum by a Python int. NaN and inf propagate as they do through the
reference's sums.

Shapes: x, dx (N, H, W, C); out, dout (N, H_out, W_out, C); all C-contiguous. Each kernel has
a plain NumPy twin `foo_reference` at the end of the module; tests/test_fast_pool_merge.py
compares them.
"""

import numpy as np
from numba import njit

# The gathered rows (`_avgpool_forward_inside`, `_avgpool_backward_disjoint`) serve inputs with
# fewer channels than this: from 16 on, the C-long loop is a SIMD vector of its own. Measured per
# chunk of 32 images, one thread, 2x2 pools: 28x28x6 forward 0.135 -> 0.061 ms, backward
# 0.236 -> 0.107; 10x10x16 forward 0.014 -> 0.021, backward 0.019 -> 0.020.
GATHER_MAX_CHANNELS = 16


def _avgpool_forward_inside(x, PH, PW, SH, SW, out):
    """`_avgpool_forward` when every window lies inside x (no padding reached, as in a 'valid'
    pool): all windows hold PH * PW inputs, summed in the same row-major order.

    A row of outputs (W_out * C values) is summed as one SIMD loop per window position (dh, dw),
    gathering its inputs through `src`: a loop over the C = 6 channels of d2l's LeNet's first
    pool, per window element, ran 2.2x slower (GATHER_MAX_CHANNELS).
    """
    N, H, W, C = x.shape
    H_out, W_out = out.shape[1], out.shape[2]
    WC = W_out * C
    src = np.empty((PW, WC), np.uint64)  # unsigned: no wraparound in the gather loop
    for dw in range(PW):
        for j in range(W_out):
            for c in range(C):
                src[dw, j * C + c] = (j * SW + dw) * C + c
    count = out.dtype.type(PH * PW)
    x_flat = x.reshape(N * H * W * C)
    out_flat = out.reshape(N * H_out * WC)
    for n in range(N):
        for i in range(H_out):
            first = np.uint64((n * H_out + i) * WC)
            for dh in range(PH):
                row = np.uint64((n * H + i * SH + dh) * W * C)
                for dw in range(PW):
                    if dh == 0 and dw == 0:
                        for t in range(np.uint64(WC)):
                            out_flat[first + t] = x_flat[row + src[dw, t]]
                    else:
                        for t in range(np.uint64(WC)):
                            out_flat[first + t] += x_flat[row + src[dw, t]]
            for t in range(np.uint64(WC)):
                out_flat[first + t] = out_flat[first + t] / count


def _avgpool_forward(x, PH, PW, SH, SW, PT, PL, out):
    """Fill out (N, H_out, W_out, C) with the mean of each window of x (N, H, W, C)."""
    N, H, W, C = x.shape
    H_out, W_out = out.shape[1], out.shape[2]
    if (PT == 0 and PL == 0 and (H_out - 1) * SH + PH <= H and (W_out - 1) * SW + PW <= W
            and C < GATHER_MAX_CHANNELS):
        avgpool_forward_inside(x, PH, PW, SH, SW, out)
        return
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


def _avgpool_backward_disjoint(dout, PH, PW, SH, SW, PT, PL, dx):
    """`_avgpool_backward` for windows that do not overlap (SH >= PH, SW >= PW): each input is
    in one window at most, so its gradient is 0 + dout / count of that window, or 0.

    The shares of a row of windows are divided once into `share` (W_out * C values, then a
    0 for the inputs no window holds), and a dx row of W * C values is gathered from it
    through `src`, one SIMD loop: a loop over the C = 6 channels of d2l's LeNet's first pool,
    once per input, ran 2.2x slower (0.236 against 0.107 ms for 32 x 28 x 28 x 6).
    """
    N, H, W, C = dx.shape
    H_out, W_out = dout.shape[1], dout.shape[2]
    zero = dx.dtype.type(0)
    window_row = np.full(H, -1, np.int64)  # the window row holding each input row, or -1
    for i in range(H_out):
        for h in range(max(i * SH - PT, 0), min(i * SH - PT + PH, H)):
            window_row[h] = i
    src = np.full(W * C, W_out * C, np.uint64)  # unsigned: no wraparound in the gather loop
    for j in range(W_out):
        for w in range(max(j * SW - PL, 0), min(j * SW - PL + PW, W)):
            for c in range(C):
                src[w * C + c] = j * C + c
    share = np.zeros(W_out * C + 1, dx.dtype)
    dx_flat = dx.reshape(N * H * W * C)
    WC = np.uint64(W * C)
    for n in range(N):
        for h in range(H):
            first = np.uint64((n * H + h) * W * C)
            i = window_row[h]
            if i < 0:
                for t in range(WC):
                    dx_flat[first + t] = zero
                continue
            rows = min(i * SH - PT + PH, H) - max(i * SH - PT, 0)
            for j in range(W_out):
                count = dx.dtype.type(rows * (min(j * SW - PL + PW, W) - max(j * SW - PL, 0)))
                for c in range(C):
                    share[j * C + c] = dout[n, i, j, c] / count
            for t in range(WC):
                dx_flat[first + t] = zero + share[src[t]]


def _avgpool_backward(dout, PH, PW, SH, SW, PT, PL, dx):
    """Fill dx (N, H, W, C) from dout (N, H_out, W_out, C): each input's share of the windows
    that hold it."""
    N, H, W, C = dx.shape
    H_out, W_out = dout.shape[1], dout.shape[2]
    if SH >= PH and SW >= PW and C < GATHER_MAX_CHANNELS:
        avgpool_backward_disjoint(dout, PH, PW, SH, SW, PT, PL, dx)
        return
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


avgpool_forward_inside = njit(cache=True, nogil=True)(_avgpool_forward_inside)
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
