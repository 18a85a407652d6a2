"""A stride-1 convolution with few filters, its SIMD loop along the output rows of one filter.

Shapes: x, dx (N, H, W, C); kernel, dkernel (KH, KW, C, F); bias, dbias (F,); out, dz
(N, H_out, W_out, F). The input is zero-padded by PT rows at the top and PL columns at the left
(and as many as needed at the bottom and right) to Hp x Wp = (H_out + KH - 1) x
(W_out + KW - 1); inputs past that are never read (a 'valid' conv's leftover rows).

d2l's LeNet starts with Conv2D(6, 5x5, 'same') on 28x28x1 images: a receptive field of 25 and 6
filters. Vectorised over the filters (`conv_direct`) the SIMD loop is 6 wide; as im2col and a
GEMM, the matrix is 25x the image and the GEMM's inner dimension 25 by 6 columns, far below
BLAS's speed. Here each image is copied once into zero-padded channel planes (C, Hp, Wp), seen
flat, so that a tap (kh, kw, c) reads the inputs of all outputs of one filter as one contiguous
run starting at offset c * Hp * Wp + kh * Wp + kw:
    acc[m] += kernel[kh, kw, c, f] * planes_flat[offset + m],   m = i * Wp + j,
one long SIMD loop over M = (H_out - 1) * Wp + W_out positions per tap. The positions with
j >= W_out are junk (a window straddling the right edge and the next row) and are never
written out; they cost (KW - 1) / Wp of the work (4 / 32 for LeNet's first layer).

Backward runs the same loops the other way round over dz moved to the same flat layout, g[f, m],
zero at the junk positions: the kernel gradient is a dot product of g[f] with each tap's run
(`row_dot`), and the input gradient adds kernel[kh, kw, c, f] * g[f] into each tap's run of the
padded planes, whose interior is copied out.

Performance rules (measured on LeNet's first layer, 128 images, one thread of a 2-core EPYC,
float32): indices are unsigned (numba then skips its negative-index wraparound, which kept LLVM
from vectorising a loop reading three runs: 1.13 against 1.71 ms for one tap per loop); taps go
three to a loop (one store of acc per three multiply-adds, as `conv_row` does); the dot
product may be reassociated (`row_dot`: fastmath 'reassoc' only, so NaN and inf still
propagate; without it the reduction stays scalar: 14.1 against 1.7 ms).

Each output sums its taps in (c, kh, kw) order, padding included as zeros, as the im2col GEMM
does. Non-finite numbers propagate; a junk position multiplies a value by the zero of g, so a
non-finite x (or kernel) can make more of dkernel (or dx) NaN than the reference does, never
less.
"""

import numpy as np
from numba import njit

from minicnn.kernels import col2im_reference, im2col_reference


def _pad_planes(x_n, PT, PL, planes):
    """planes (C, Hp, Wp) <- x_n (H, W, C) moved to channel planes, zero-padded by PT rows at
    the top and PL columns at the left; inputs past Hp x Wp are left out."""
    C, Hp, Wp = planes.shape
    H, W, _ = x_n.shape
    planes[:] = planes.dtype.type(0)
    for h in range(min(H, Hp - PT)):
        for w in range(min(W, Wp - PL)):
            for c in range(C):
                planes[c, h + PT, w + PL] = x_n[h, w, c]


def _row_dot(a, start, b, M):
    """sum(a[start:start + M] * b[:M]), a and b 1-D; reassociated by LLVM into SIMD lanes."""
    s = b.dtype.type(0)
    for m in range(np.uint64(M)):
        s += a[np.uint64(start) + m] * b[m]
    return s


def _flat_planes(like, C, KH, KW, H_out, W_out):
    """(planes, p, M): scratch padded planes (C, Hp, Wp) in the dtype of the array `like`, the
    same seen flat, and M, the length of a tap's run of positions."""
    Hp, Wp = H_out + KH - 1, W_out + KW - 1
    planes = np.empty((C, Hp, Wp), dtype=like.dtype)
    return planes, planes.reshape(C * Hp * Wp), (H_out - 1) * Wp + W_out


def _conv_rows(x, kernel, bias, PT, PL, out):
    """out (N, H_out, W_out, F) = conv(x, kernel) + bias, stride 1, one filter at a time."""
    N, _, _, C = x.shape
    KH, KW, _, F = kernel.shape
    H_out, W_out = out.shape[1], out.shape[2]
    planes, p, M = flat_planes(x, C, KH, KW, H_out, W_out)
    Hp, Wp = planes.shape[1], planes.shape[2]
    acc = np.empty(M, dtype=out.dtype)
    zero, one, two = out.dtype.type(0), np.uint64(1), np.uint64(2)
    for n in range(N):
        pad_planes(x[n], PT, PL, planes)
        for f in range(F):
            for m in range(M):
                acc[m] = zero
            for c in range(C):
                for kh in range(KH):
                    kw = 0
                    while kw < KW:
                        o0 = np.uint64((c * Hp + kh) * Wp + kw)
                        if kw + 3 <= KW:
                            k0, k1, k2 = (kernel[kh, kw, c, f], kernel[kh, kw + 1, c, f],
                                          kernel[kh, kw + 2, c, f])
                            o1, o2 = o0 + one, o0 + two
                            for m in range(np.uint64(M)):
                                acc[m] = acc[m] + k0 * p[o0 + m] + k1 * p[o1 + m] + k2 * p[o2 + m]
                            kw += 3
                        else:
                            k0 = kernel[kh, kw, c, f]
                            for m in range(np.uint64(M)):
                                acc[m] = acc[m] + k0 * p[o0 + m]
                            kw += 1
            for i in range(H_out):
                for j in range(W_out):
                    out[n, i, j, f] = acc[i * Wp + j] + bias[f]


def _conv_rows_backward(x, dz, kernel, PT, PL, dkernel, dbias, dx, input_gradient):
    """dkernel (KH, KW, C, F) <- dL/dkernel, dbias (F,) <- the sums of dz and, if
    input_gradient, dx (N, H, W, C) <- dL/dx, from dz (N, H_out, W_out, F), the gradient at the
    conv's output. (dbias here, as dz is moved to the flat layout: NumPy's column sums of the
    (N * H_out * W_out, 6) dz took longer than this whole kernel, 0.35 against 0.41 ms for 32
    images.)

    All are overwritten. Without input_gradient dx is not touched: pass any 4-D array of x's
    dtype (an empty one), so that float32 training compiles one signature.
    """
    N, H, W, C = x.shape
    KH, KW, _, F = kernel.shape
    H_out, W_out = dz.shape[1], dz.shape[2]
    planes, p, M = flat_planes(x, C, KH, KW, H_out, W_out)
    dplanes, dp, _ = flat_planes(dz, C, KH, KW, H_out, W_out)
    Hp, Wp = planes.shape[1], planes.shape[2]
    g = np.zeros((F, M), dtype=dz.dtype)  # dz in the flat layout; the junk positions stay 0
    dk = np.zeros((KH, KW, C, F), dtype=dz.dtype)  # local: other chunks' threads write theirs
    db = np.zeros(F, dtype=dz.dtype)
    zero = dz.dtype.type(0)
    for n in range(N):
        pad_planes(x[n], PT, PL, planes)
        for i in range(H_out):
            for j in range(W_out):
                for f in range(F):
                    v = dz[n, i, j, f]
                    g[f, i * Wp + j] = v
                    db[f] += v
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    start = (c * Hp + kh) * Wp + kw
                    for f in range(F):
                        dk[kh, kw, c, f] += row_dot(p, start, g[f], M)
        if not input_gradient:
            continue
        dplanes[:] = zero
        for c in range(C):
            for kh in range(KH):
                for kw in range(KW):
                    o0 = np.uint64((c * Hp + kh) * Wp + kw)
                    for f in range(F):
                        k = kernel[kh, kw, c, f]
                        for m in range(np.uint64(M)):
                            dp[o0 + m] += k * g[f, m]
        for h in range(H):
            for w in range(W):
                inside = h + PT < Hp and w + PL < Wp  # else no output reads it
                for c in range(C):
                    dx[n, h, w, c] = dplanes[c, h + PT, w + PL] if inside else zero
    dkernel[...] = dk
    dbias[...] = db


pad_planes = njit(cache=True, nogil=True)(_pad_planes)
flat_planes = njit(cache=True, nogil=True)(_flat_planes)
# 'reassoc' alone: the sum may be regrouped into SIMD lanes, but no NaN, inf or sign of zero is
# assumed away (fastmath=True would let LLVM drop NaN checks and propagation).
row_dot = njit(cache=True, nogil=True, fastmath={"reassoc"})(_row_dot)
conv_rows = njit(cache=True, nogil=True)(_conv_rows)
conv_rows_backward = njit(cache=True, nogil=True)(_conv_rows_backward)


def conv_rows_reference(x, kernel, bias, PT, PL, H_out, W_out):
    """Plain NumPy: im2col_reference (stride 1) times the reshaped kernel, plus bias; returns
    out (N, H_out, W_out, F) in x's dtype."""
    KH, KW, _, F = kernel.shape
    z = im2col_reference(x, KH, KW, 1, 1, PT, PL, H_out, W_out) @ kernel.reshape(-1, F) + bias
    return z.reshape(x.shape[0], H_out, W_out, F).astype(x.dtype, copy=False)


def conv_rows_backward_reference(x, dz, kernel, PT, PL):
    """Plain NumPy, as Conv2D.backward: dkernel = cols.T @ dz, dbias = the column sums of dz
    and dx = col2im(dz @ kernel.T); returns (dkernel (KH, KW, C, F), dbias (F,),
    dx (N, H, W, C))."""
    _, H_out, W_out, F = dz.shape
    KH, KW, C, _ = kernel.shape
    dz_2d = dz.reshape(-1, F)
    cols = im2col_reference(x, KH, KW, 1, 1, PT, PL, H_out, W_out)
    dkernel = (cols.T @ dz_2d).reshape(KH, KW, C, F).astype(dz.dtype, copy=False)
    dx = col2im_reference(dz_2d @ kernel.reshape(-1, F).T, x.shape, KH, KW, 1, 1, PT, PL,
                          H_out, W_out)
    return dkernel, dz_2d.sum(axis=0), dx.astype(dz.dtype, copy=False)
