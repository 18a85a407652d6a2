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
Ties go to the first maximum in row-major order, as in MaxPooling2D.
"""

import numpy as np
from numba import njit


def _bias_relu_maxpool(z, bias, N, H_c, W_c, PH, PW, out, argmax):
    """Pool relu(z + bias) over PH x PW windows (stride = window) into out and argmax."""
    F = z.shape[1]
    H_p, W_p = H_c // PH, W_c // PW
    for n in range(N):
        for ip in range(H_p):
            for jp in range(W_p):
                for dh in range(PH):
                    for dw in range(PW):
                        i, j = ip * PH + dh, jp * PW + dw
                        row = (n * H_c + i) * W_c + j
                        at = i * W_c + j
                        first = dh == 0 and dw == 0
                        for f in range(F):
                            v = z[row, f] + bias[f]
                            v = v if v > 0.0 else 0.0
                            if first or v > out[n, ip, jp, f]:
                                out[n, ip, jp, f] = v
                                argmax[n, ip, jp, f] = at


def _maxpool_relu_backward(dout, out, argmax, N, H_c, W_c, dz, dbias):
    """dz (N * H_c * W_c, F): dout routed to each window's winner, where the max was > 0.

    dz is overwritten; dbias (F,) receives the column sums of dz.
    """
    F = dz.shape[1]
    H_p, W_p = dout.shape[1], dout.shape[2]
    dz[:] = 0.0
    db = np.zeros(F, dtype=dbias.dtype)  # local: other threads write their dbias next to it
    for n in range(N):
        for ip in range(H_p):
            for jp in range(W_p):
                for f in range(F):
                    if out[n, ip, jp, f] > 0.0:
                        g = dout[n, ip, jp, f]
                        dz[n * H_c * W_c + argmax[n, ip, jp, f], f] = g
                        db[f] += g
    dbias[...] = db


def _conv_relu_maxpool(x, kernel, bias, PH, PW, out, argmax):
    """Direct stride-1 'valid' conv, bias, ReLU and max pool in one pass (tiny fields only).

    x (N, H, W, C), kernel (KH, KW, C, F), out and argmax (N, H_p, W_p, F). The PH conv output
    rows one row of windows reads are computed whole into a small buffer (W_c * F values,
    filters innermost), one kernel tap at a time over the row, then pooled; each output sums
    bias and taps in the same order as `conv_direct`, so the two agree bit for bit.
    """
    N, _, _, C = x.shape
    KH, KW, _, F = kernel.shape
    H_p, W_p = out.shape[1], out.shape[2]
    W_c = W_p * PW
    rows = np.empty((PH, W_c, F), dtype=out.dtype)
    for n in range(N):
        for ip in range(H_p):
            for dh in range(PH):
                i = ip * PH + dh
                row = rows[dh]
                for j in range(W_c):
                    for f in range(F):
                        row[j, f] = bias[f]
                for kh in range(KH):
                    x_row = x[n, i + kh]
                    for kw in range(KW):
                        for c in range(C):
                            tap = kernel[kh, kw, c]
                            for j in range(W_c):
                                a = x_row[j + kw, c]
                                for f in range(F):
                                    row[j, f] += a * tap[f]
            for jp in range(W_p):
                for dh in range(PH):
                    for dw in range(PW):
                        j = jp * PW + dw
                        at = (ip * PH + dh) * W_c + j
                        first = dh == 0 and dw == 0
                        for f in range(F):
                            v = rows[dh, j, f]
                            v = v if v > 0.0 else 0.0
                            # strict > keeps the first maximum on ties, as MaxPooling2D does
                            if first or v > out[n, ip, jp, f]:
                                out[n, ip, jp, f] = v
                                argmax[n, ip, jp, f] = at


def _conv_relu_maxpool_backward(x, dout, out, argmax, PH, PW, dkernel, dbias):
    """dkernel (KH, KW, C, F) and dbias (F,) of `_conv_relu_maxpool`, both overwritten.

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
    for n in range(N):
        for ip in range(H_p):
            for jp in range(W_p):
                for f in range(F):
                    if out[n, ip, jp, f] > 0.0:
                        db[f] += dout[n, ip, jp, f]
                for dh in range(PH):
                    for dw in range(PW):
                        i, j = ip * PH + dh, jp * PW + dw
                        at = i * W_c + j
                        any_chose = False
                        for f in range(F):
                            chose = argmax[n, ip, jp, f] == at and out[n, ip, jp, f] > 0.0
                            g[f] = dout[n, ip, jp, f] if chose else 0.0
                            any_chose = any_chose or chose
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


bias_relu_maxpool = njit(cache=True, nogil=True)(_bias_relu_maxpool)
maxpool_relu_backward = njit(cache=True, nogil=True)(_maxpool_relu_backward)
conv_relu_maxpool = njit(cache=True, nogil=True)(_conv_relu_maxpool)
conv_relu_maxpool_backward = njit(cache=True, nogil=True)(_conv_relu_maxpool_backward)
