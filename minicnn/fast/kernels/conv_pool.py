"""Kernels for a Conv2D(relu) followed by a MaxPooling2D, run as one step.

The pair is the backbone of most small CNNs and, taken apart, costs three passes over the
conv output (bias + ReLU, the pool's read, its backward write) plus one for the ReLU mask going
back. Taken together:
- only the conv outputs some pool window reads are computed: a floor-mode pool over an 11x11
  map never reads row or column 10, so 21 of its 121 positions are dead work, forward and back;
- the ReLU and the pool share a pass forward (`bias_relu_maxpool`), and backward the gradient
  is routed and masked in one (`maxpool_relu_backward`): after ReLU and max, a window's
  gradient reaches exactly one conv output, and only if the max was positive;
- for a tiny receptive field (a first layer on grey images), the convolution itself joins the
  pass (`conv_relu_maxpool`), so the full-resolution map is never written at all.

Shapes: the conv outputs are indexed on the pooled region, the first H_c = H_p * PH rows and
W_c = W_p * PW columns, as z (N * H_c * W_c, F) with rows ordered (n, i, j); pooled outputs and
argmax are (N, H_p, W_p, F), argmax holding the flat index i * W_c + j of the winning output.
Ties go to the first maximum in row-major order, as in MaxPooling2D, and NaN propagates as
there: relu(NaN) is NaN, and a NaN is its window's maximum (the first NaN, as np.argmax picks).

For a conv with another non-decreasing activation (leaky_relu, elu, sigmoid, tanh), the step
applies it to the conv outputs first (minicnn/fast/activation.py: NumPy's ufuncs are what make
those fast) and these kernels run with `relu=False`: the pool takes the values as they are, and
backward routes a gradient already multiplied by the activation's derivative at the pooled
output (act' of the window's max is act' at its winner), with no mask. The default, relu=True,
is the ReLU pass.

Each kernel has a plain NumPy twin `foo_reference` at the end of the module, which returns its
results: the same computation as the reference tier's steps taken one after another (im2col
and a GEMM for the conv, np.maximum for bias + ReLU, `maxpool_forward_reference` and
`maxpool_backward_reference` with stride = pool size). tests/test_fast_kernels.py compares each
kernel with its twin.
"""

import numpy as np
from numba import njit

from minicnn.fast.kernels.conv import conv_row, kernel_row_taps
from minicnn.kernels import im2col_reference, maxpool_backward_reference, maxpool_forward_reference


def _bias_relu_pool_row(z, bias, W_c, at0, out, argmax, best, idx, relu):
    """Pool relu(z + bias) (z + bias if not relu) over one row of windows into out and argmax
    (W_p, F) each.

    z (PH * W_c, F) holds the PH conv output rows the windows cover, (dh, j) at row dh * W_c + j;
    at0 is the flat index of its first row, i * W_c. best and idx (2, F) are scratch: the
    running max and argmax go back and forth between their two rows, so that every store in
    the SIMD loop is unconditional. (Written as `a[f] = v if take else a[f]`, LLVM turns it
    into a masked store, which is slow on AMD processors.)
    """
    F = z.shape[1]
    W_p = out.shape[0]
    PH, PW = z.shape[0] // W_c, W_c // W_p
    zero = z.dtype.type(0)
    # Plain 2-D indexing throughout: an array view made per window position (best[k], z[row])
    # costs more than the position's F-long SIMD loop.
    for jp in range(W_p):
        k = 0  # best[k], idx[k] hold the max so far; the next position writes row 1 - k
        for dh in range(PH):
            for dw in range(PW):
                row = dh * W_c + jp * PW + dw
                here = idx.dtype.type(at0 + row)
                if dh == 0 and dw == 0:
                    for f in range(F):
                        v = z[row, f] + bias[f]
                        best[1 - k, f] = zero if (relu and v <= zero) else v  # relu(NaN): NaN
                        idx[1 - k, f] = here
                else:
                    for f in range(F):
                        v = z[row, f] + bias[f]
                        v = zero if (relu and v <= zero) else v
                        b = best[k, f]
                        # strict > keeps the first maximum on ties, as MaxPooling2D does
                        take = (v > b) | ((v != v) & (b == b))
                        m = v if take else b
                        i = here if take else idx[k, f]
                        best[1 - k, f] = m
                        idx[1 - k, f] = i
                k = 1 - k
        for f in range(F):
            out[jp, f] = best[k, f]
            argmax[jp, f] = idx[k, f]


def _bias_relu_maxpool(z, bias, N, H_c, W_c, PH, PW, out, argmax, relu=True):
    """Pool relu(z + bias) (z + bias if not relu) over PH x PW windows (stride = window) into
    out and argmax."""
    F = z.shape[1]
    H_p = H_c // PH
    best = np.empty((2, F), dtype=out.dtype)
    idx = np.empty((2, F), dtype=argmax.dtype)
    for n in range(N):
        for ip in range(H_p):
            first = (n * H_c + ip * PH) * W_c
            bias_relu_pool_row(z[first:first + PH * W_c], bias, W_c, ip * PH * W_c,
                               out[n, ip], argmax[n, ip], best, idx, relu)


def _maxpool_relu_backward(dout, out, argmax, N, H_c, W_c, dz, dbias, relu=True):
    """dz (N * H_c * W_c, F): dout routed to each window's winner, where the max was > 0
    (everywhere if not relu: dout is then already the gradient at the activation's input).

    dz is overwritten; dbias (F,) receives the column sums of dz.
    """
    F = dz.shape[1]
    H_p, W_p = dout.shape[1], dout.shape[2]
    zero = dz.dtype.type(0)
    dz[:] = zero
    db = np.zeros(F, dtype=dbias.dtype)  # local: other threads write their dbias next to it
    for n in range(N):
        for ip in range(H_p):
            for jp in range(W_p):
                for f in range(F):
                    if not relu or out[n, ip, jp, f] > zero:
                        g = dout[n, ip, jp, f]
                        dz[n * H_c * W_c + argmax[n, ip, jp, f], f] = g
                        db[f] += g
    dbias[...] = db


def _conv_relu_maxpool(x, kernel, bias, PH, PW, out, argmax):
    """Direct stride-1 'valid' conv, bias, ReLU and max pool in one pass (tiny fields only).

    x (N, H, W, C), kernel (KH, KW, C, F), out and argmax (N, H_p, W_p, F). The PH conv output
    rows one row of windows reads are summed whole into a small buffer (PH * W_c * F values,
    filters innermost) by `conv_row`, as `conv_direct` sums them, then pooled with the bias
    added; the two agree bit for bit.
    """
    N, _, _, C = x.shape
    KW, F = kernel.shape[1], kernel.shape[3]
    H_p, W_p = out.shape[1], out.shape[2]
    W_c = W_p * PW
    taps_w, taps_c = kernel_row_taps(KW, C)
    rows = np.empty((PH * W_c, F), dtype=out.dtype)
    best = np.empty((2, F), dtype=out.dtype)
    idx = np.empty((2, F), dtype=argmax.dtype)
    zero = out.dtype.type(0)
    for n in range(N):
        for ip in range(H_p):
            rows[:] = zero
            for dh in range(PH):
                conv_row(x[n], kernel, ip * PH + dh, 1, 1, 0, 0, taps_w, taps_c,
                         rows[dh * W_c:(dh + 1) * W_c])
            bias_relu_pool_row(rows, bias, W_c, ip * PH * W_c, out[n, ip], argmax[n, ip], best,
                               idx, True)


def _conv_relu_maxpool_backward(x, dout, out, argmax, PH, PW, dkernel, dbias, relu=True):
    """dkernel (KH, KW, C, F) and dbias (F,) of `_conv_relu_maxpool`, both overwritten (if not
    relu: of the conv whose activated outputs were pooled, dout already multiplied by act').

    Each window sends its gradient to one conv output per filter; the window positions are
    visited in turn with the gradient masked to the filters that chose that position, so the
    inner loop runs over all F filters at once (SIMD) instead of gathering one filter at a time.
    The sums build up in local arrays and are written out once: threads running other chunks
    write their own dkernel next to this one, and sharing cache lines would serialise them.
    """
    N, _, _, C = x.shape
    KH, KW, _, F = dkernel.shape
    H_p, W_p = dout.shape[1], dout.shape[2]
    W_c = W_p * PW
    dk = np.zeros((KH, KW, C, F), dtype=dkernel.dtype)
    db = np.zeros(F, dtype=dbias.dtype)
    g = np.empty(F, dtype=dout.dtype)
    zero = dout.dtype.type(0)
    for n in range(N):
        for ip in range(H_p):
            for jp in range(W_p):
                for f in range(F):
                    if not relu or out[n, ip, jp, f] > zero:
                        db[f] += dout[n, ip, jp, f]
                for dh in range(PH):
                    for dw in range(PW):
                        i, j = ip * PH + dh, jp * PW + dw
                        at = i * W_c + j
                        any_chose = False
                        for f in range(F):
                            chose = (argmax[n, ip, jp, f] == at) & (
                                (not relu) | (out[n, ip, jp, f] > zero))
                            v = dout[n, ip, jp, f] if chose else zero
                            g[f] = v
                            any_chose |= chose
                        if not any_chose:
                            continue
                        for kh in range(KH):
                            for kw in range(KW):
                                for c in range(C):
                                    a = x[n, i + kh, j + kw, c]
                                    for f in range(F):
                                        dk[kh, kw, c, f] += a * g[f]
    dkernel[...] = dk
    dbias[...] = db


bias_relu_pool_row = njit(cache=True, nogil=True)(_bias_relu_pool_row)
bias_relu_maxpool = njit(cache=True, nogil=True)(_bias_relu_maxpool)
maxpool_relu_backward = njit(cache=True, nogil=True)(_maxpool_relu_backward)
conv_relu_maxpool = njit(cache=True, nogil=True)(_conv_relu_maxpool)
conv_relu_maxpool_backward = njit(cache=True, nogil=True)(_conv_relu_maxpool_backward)


def bias_relu_maxpool_reference(z, bias, N, H_c, W_c, PH, PW, relu=True):
    """relu(z + bias) (z + bias if not relu), then a PH x PW max pool (stride = window);
    returns (out, argmax).

    z (N * H_c * W_c, F) with rows ordered (n, i, j), bias (F,); out and argmax (N, H_p, W_p, F)
    with H_p = H_c // PH, W_p = W_c // PW. The map is exactly H_c x W_c, so the pool's flat index
    h * W + w is the kernel's i * W_c + j.
    """
    F = z.shape[1]
    y = (np.maximum(z + bias, 0) if relu else z + bias).astype(z.dtype, copy=False)
    y = y.reshape(N, H_c, W_c, F)
    return maxpool_forward_reference(y, PH, PW, PH, PW, 0, 0, H_c // PH, W_c // PW)


def maxpool_relu_backward_reference(dout, out, argmax, N, H_c, W_c, relu=True):
    """dout masked where the pooled max was > 0 (if relu), routed to each winner; returns
    (dz, dbias).

    dout, out, argmax (N, H_p, W_p, F); dz (N * H_c * W_c, F), rows ordered (n, i, j); dbias (F,).
    The ReLU output at a window's winner is the window's max, so masking dout where out > 0
    before routing it is the ReLU's backward applied after the pool's.
    """
    F = dout.shape[3]
    dout_relu = np.where(out > 0, dout, 0).astype(dout.dtype, copy=False) if relu else dout
    dz = maxpool_backward_reference(dout_relu, argmax, (N, H_c, W_c, F)).reshape(N * H_c * W_c, F)
    return dz, dz.sum(axis=0)


def conv_relu_maxpool_reference(x, kernel, bias, PH, PW):
    """A stride-1 'valid' conv by im2col and GEMM, then `bias_relu_maxpool_reference`.

    x (N, H, W, C), kernel (KH, KW, C, F), bias (F,); returns out and argmax (N, H_p, W_p, F),
    H_p = (H - KH + 1) // PH, W_p = (W - KW + 1) // PW. Only the H_c x W_c conv outputs that
    the pool reads are computed, so the last rows and columns of x may go unread.
    """
    N, H, W, _ = x.shape
    KH, KW, _, F = kernel.shape
    H_c, W_c = (H - KH + 1) // PH * PH, (W - KW + 1) // PW * PW
    z = im2col_reference(x, KH, KW, 1, 1, 0, 0, H_c, W_c) @ kernel.reshape(-1, F)
    return bias_relu_maxpool_reference(z, bias, N, H_c, W_c, PH, PW)


def conv_relu_maxpool_backward_reference(x, dout, out, argmax, PH, PW, KH, KW, relu=True):
    """`maxpool_relu_backward_reference`, then the conv's kernel gradient cols.T @ dz.

    x (N, H, W, C); dout, out, argmax (N, H_p, W_p, F) from the forward pass; returns
    dkernel (KH, KW, C, F) and dbias (F,).
    """
    N, _, _, C = x.shape
    H_p, W_p, F = dout.shape[1:]
    H_c, W_c = H_p * PH, W_p * PW
    dz, dbias = maxpool_relu_backward_reference(dout, out, argmax, N, H_c, W_c, relu)
    cols = im2col_reference(x, KH, KW, 1, 1, 0, 0, H_c, W_c)
    return (cols.T @ dz).reshape(KH, KW, C, F), dbias
