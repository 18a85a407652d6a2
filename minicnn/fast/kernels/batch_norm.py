"""BatchNormalization and Dropout in few passes over memory.

Shapes: BatchNormalization's input is seen as rows x (M, C), one row per (n, h, w) with the
channels contiguous, or as the map x (N, H, W, C) when a max pool joins the pass; every
per-channel array (mu, var, inv_sigma, gamma, beta, k) is (C,).

The reductions add in the reference layer's own order and dtype: NumPy's `x.sum(axis=(0, 1, 2))`
over a C-contiguous array adds the rows one after another into a per-channel accumulator of x's
dtype, and these kernels do the same, so the step's statistics and gradients are the layer's,
bit for bit when there are two channels or more (with one, NumPy adds pairwise). Float64 sums
would be more accurate, but the layer is the reference, and the difference is not small: on the
Fashion-MNIST model (batch 16) they moved a channel's float32 variance by 5e-5 of itself, the
first conv's kernel gradient by 1e-3 (its largest element is 5.6) and the weights after one Adam
step by up to 9e-4, where the fast plan and the layers must agree to 1e-5. The order fixes each
channel's sum, so the work is split across threads by channel (`c0:c1`), never by rows: the
same bits on any number of threads. Elementwise kernels follow the layer's expressions in its
order, `(x - mu) * inv_sigma`, times gamma, plus beta; backward they recompute xhat from x
rather than keep an (M, C) xhat from the forward pass.

With `relu` the kernels compute the BatchNormalization and the Activation('relu') after it:
forward clamps as it writes, backward recomputes y = xhat * gamma + beta in each pass and takes
the ReLU's gradient dout * (y > 0) (dout * 0 where y <= 0 or NaN, so a NaN dout stays NaN, as
the layers' product) in place of dout.

Dropout: `dropout_forward` makes the scaled mask and the output in one pass from the uniform
draws u, which the step takes from the layer's generator exactly as the layer does.
"""

import numpy as np
from numba import njit

from minicnn.kernels import maxpool_backward_reference, maxpool_forward_reference


def _bn_mean_var(x, c0, c1, mu, var):
    """mu, var (C,) <- channels c0:c1 of x (M, C)'s mean and biased variance, as NumPy's
    x.mean(axis=0) and x.var(axis=0) compute them: rows added in order in x's dtype, the
    variance as the mean of (x - mu)**2 (two passes). The loops run over a row's slice with a
    counter from 0, which numba compiles to SIMD (indexing x[m, c] or x[m, c0 + j] does not).
    Four rows go into each pass over the accumulator, still added one after the other: the
    passes are as short as a row of 8 or 16 channels, so their setup, not memory, bound the
    sums (128 x 32 x 32 rows of 16 channels: 0.93 ms one row a pass, 0.53 four)."""
    M, n = x.shape[0], c1 - c0
    count = np.zeros(1, dtype=x.dtype)
    count[0] = M
    s = np.zeros(n, dtype=x.dtype)
    M4 = M - M % 4
    for m in range(0, M4, 4):
        r0, r1, r2, r3 = x[m, c0:c1], x[m + 1, c0:c1], x[m + 2, c0:c1], x[m + 3, c0:c1]
        for j in range(n):
            s[j] = (((s[j] + r0[j]) + r1[j]) + r2[j]) + r3[j]
    for m in range(M4, M):
        row = x[m, c0:c1]
        for j in range(n):
            s[j] += row[j]
    mean = mu[c0:c1]
    for j in range(n):
        mean[j] = s[j] / count[0]
        s[j] = 0.0
    for m in range(0, M4, 4):
        r0, r1, r2, r3 = x[m, c0:c1], x[m + 1, c0:c1], x[m + 2, c0:c1], x[m + 3, c0:c1]
        for j in range(n):
            d0, d1, d2, d3 = r0[j] - mean[j], r1[j] - mean[j], r2[j] - mean[j], r3[j] - mean[j]
            s[j] = (((s[j] + d0 * d0) + d1 * d1) + d2 * d2) + d3 * d3
    for m in range(M4, M):
        row = x[m, c0:c1]
        for j in range(n):
            d = row[j] - mean[j]
            s[j] += d * d
    for j in range(n):
        var[c0 + j] = s[j] / count[0]


def _bn_normalize(x, mu, inv_sigma, gamma, beta, relu, y):
    """y (M, C) <- (x - mu) * inv_sigma * gamma + beta, in the reference layer's order, and
    then max(., 0) if relu (an Activation('relu') after the layer; a NaN stays NaN, as
    np.maximum keeps it)."""
    M, C = x.shape
    zero = y.dtype.type(0)
    for m in range(M):
        for c in range(C):
            xhat = (x[m, c] - mu[c]) * inv_sigma[c]
            v = xhat * gamma[c] + beta[c]
            y[m, c] = zero if (relu and v <= zero) else v


def _bn_backward_sums(dout, x, mu, inv_sigma, gamma, beta, relu, c0, c1, sums):
    """sums (4, C) <- channels c0:c1 of [sum(g), sum(g * xhat), sum(dxhat),
    sum(dxhat * xhat)], dxhat = g * gamma, over the rows of dout, x (M, C), added in order in
    x's dtype as the reference layer's NumPy sums add them; xhat = (x - mu) * inv_sigma is
    recomputed as the forward pass computed it. g is dout, or with relu the ReLU's gradient
    dout * (y > 0), y = xhat * gamma + beta recomputed too. One loop per sum: a loop storing to
    one array compiles to SIMD, one storing to four did not (numba cannot prove they do not
    overlap)."""
    n = c1 - c0
    zero = dout.dtype.type(0)
    s0, s1 = np.zeros(n, dtype=sums.dtype), np.zeros(n, dtype=sums.dtype)
    s2, s3 = np.zeros(n, dtype=sums.dtype), np.zeros(n, dtype=sums.dtype)
    xhat, g = np.empty(n, dtype=x.dtype), np.empty(n, dtype=dout.dtype)
    mu, inv_sigma, gamma, beta = mu[c0:c1], inv_sigma[c0:c1], gamma[c0:c1], beta[c0:c1]
    for m in range(x.shape[0]):
        d, row = dout[m, c0:c1], x[m, c0:c1]
        for j in range(n):
            xhat[j] = (row[j] - mu[j]) * inv_sigma[j]
        for j in range(n):  # a select, not a copy: numba made `g[j] = d[j]` a memcpy call
            g[j] = d[j] * zero if relu and not xhat[j] * gamma[j] + beta[j] > zero else d[j]
        for j in range(n):
            s0[j] += g[j]
        for j in range(n):
            s1[j] += g[j] * xhat[j]
        for j in range(n):
            s2[j] += g[j] * gamma[j]
        for j in range(n):
            s3[j] += (g[j] * gamma[j]) * xhat[j]
    sums[0, c0:c1], sums[1, c0:c1], sums[2, c0:c1], sums[3, c0:c1] = s0, s1, s2, s3


def _bn_backward_dx(dout, x, mu, inv_sigma, gamma, beta, relu, k, sums, training, M, dx):
    """dx (M_chunk, C) from dout, x (M_chunk, C), in the reference layer's expressions and order.

    Training: dx = k * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat)), k = inv_sigma / M,
    the sums rows 2 and 3 of `_bn_backward_sums`, M the rows of the whole batch (x may be a
    chunk of it); inference: dx = dxhat * inv_sigma (the statistics are constants then).
    dxhat = g * gamma, g as in `_bn_backward_sums` (dout, or the ReLU's gradient with relu).
    """
    count = np.zeros(1, dtype=dx.dtype)
    count[0] = M
    zero = dout.dtype.type(0)
    Mc, C = x.shape
    for m in range(Mc):
        for c in range(C):
            xhat = (x[m, c] - mu[c]) * inv_sigma[c]
            d = dout[m, c]
            g = d * zero if relu and not xhat * gamma[c] + beta[c] > zero else d
            if training:
                dx[m, c] = k[c] * (count[0] * (g * gamma[c]) - sums[2, c] - xhat * sums[3, c])
            else:
                dx[m, c] = (g * gamma[c]) * inv_sigma[c]


def _bn_maxpool(x, mu, inv_sigma, gamma, beta, PH, PW, out, argmax):
    """Normalise x (N, H, W, C) as `_bn_normalize` does and max-pool it over PH x PW windows
    (stride = window, 'valid') into out and argmax (N, H_p, W_p, C), without writing the
    normalised map. argmax is the flat index h * W + w of each window's winner, as
    MaxPooling2D's; ties go to the first in row-major order, and a NaN wins as there. The
    comparison is a select, not a branch, so the channel loop runs in SIMD.
    """
    N, _, W, C = x.shape
    H_p, W_p = out.shape[1], out.shape[2]
    # The running max and argmax go back and forth between the two rows of best and idx, so
    # every store in the channel loop is unconditional (`a[c] = v if take else a[c]` becomes a
    # masked store, slow on AMD processors), and all indexing is plain: a view per position
    # costs more than its loop.
    best = np.empty((2, C), dtype=out.dtype)
    idx = np.empty((2, C), dtype=argmax.dtype)
    for n in range(N):
        for ip in range(H_p):
            for jp in range(W_p):
                k = 0
                for dh in range(PH):
                    for dw in range(PW):
                        h, w = ip * PH + dh, jp * PW + dw
                        here = idx.dtype.type(h * W + w)
                        first = dh == 0 and dw == 0
                        for c in range(C):
                            v = (x[n, h, w, c] - mu[c]) * inv_sigma[c] * gamma[c] + beta[c]
                            b = best[k, c]
                            take = first | (v > b) | ((v != v) & (b == b))
                            m = v if take else b
                            i = here if take else idx[k, c]
                            best[1 - k, c] = m
                            idx[1 - k, c] = i
                        k = 1 - k
                for c in range(C):
                    out[n, ip, jp, c] = best[k, c]
                    argmax[n, ip, jp, c] = idx[k, c]


def _bn_maxpool_backward_sums(dout, argmax, x, mu, inv_sigma, gamma, PH, PW, c0, c1, sums):
    """`_bn_backward_sums` for the pool's gradient routed to x (N, H, W, C) from dout and argmax
    (N, H_p, W_p, C), without writing it: the positions are visited in row order, each taking
    its window's dout where it won the window and an exact 0 elsewhere, as in the reference's
    sum over the routed map."""
    N, H, W, _ = x.shape
    H_p, W_p, n = dout.shape[1], dout.shape[2], c1 - c0
    s0, s1 = np.zeros(n, dtype=sums.dtype), np.zeros(n, dtype=sums.dtype)
    s2, s3 = np.zeros(n, dtype=sums.dtype), np.zeros(n, dtype=sums.dtype)
    g = np.zeros(n, dtype=dout.dtype)
    zero = dout.dtype.type(0)
    xhat = np.empty(n, dtype=x.dtype)
    mu, inv_sigma, gamma = mu[c0:c1], inv_sigma[c0:c1], gamma[c0:c1]
    for i in range(N):
        for h in range(H):
            ip = h // PH
            for w in range(W):
                jp = w // PW
                if ip < H_p and jp < W_p:
                    d, a, here = dout[i, ip, jp, c0:c1], argmax[i, ip, jp, c0:c1], h * W + w
                    for j in range(n):
                        v = d[j] if a[j] == here else zero
                        g[j] = v
                else:
                    g[:] = zero
                row = x[i, h, w, c0:c1]
                for j in range(n):
                    xhat[j] = (row[j] - mu[j]) * inv_sigma[j]
                for j in range(n):
                    s0[j] += g[j]
                for j in range(n):
                    s1[j] += g[j] * xhat[j]
                for j in range(n):
                    s2[j] += g[j] * gamma[j]
                for j in range(n):
                    s3[j] += (g[j] * gamma[j]) * xhat[j]
    sums[0, c0:c1], sums[1, c0:c1], sums[2, c0:c1], sums[3, c0:c1] = s0, s1, s2, s3


def _bn_maxpool_backward_dx(dout, argmax, x, mu, inv_sigma, gamma, k, sums, training, M, PH,
                            PW, dx):
    """`_bn_backward_dx` for the pool's gradient routed to x (N, H, W, C), written nowhere; M the
    positions of the whole batch (x may be a chunk of it)."""
    N, H, W, C = x.shape
    H_p, W_p = dout.shape[1], dout.shape[2]
    g = np.zeros(C, dtype=dout.dtype)
    zero = dout.dtype.type(0)
    count = np.zeros(1, dtype=dx.dtype)
    count[0] = M
    s2, s3 = sums[2], sums[3]
    for i in range(N):
        for h in range(H):
            ip = h // PH
            for w in range(W):
                jp = w // PW
                if ip < H_p and jp < W_p:
                    here = h * W + w
                    for c in range(C):
                        d = dout[i, ip, jp, c]
                        g[c] = d if argmax[i, ip, jp, c] == here else zero
                else:
                    g[:] = zero
                row, out = x[i, h, w], dx[i, h, w]
                if training:
                    for c in range(C):
                        xhat = (row[c] - mu[c]) * inv_sigma[c]
                        out[c] = k[c] * (count[0] * (g[c] * gamma[c]) - s2[c] - xhat * s3[c])
                else:
                    for c in range(C):
                        out[c] = (g[c] * gamma[c]) * inv_sigma[c]


def _dropout_forward(x, u, rate, scale, mask, y):
    """mask <- scale where u >= rate else 0, y <- x * mask; all flat (size,) arrays.

    u holds the float64 uniform draws; scale = 1 / (1 - rate) in x's dtype, so mask and y are
    exactly the reference layer's `(u >= rate).astype(dtype) / (1 - rate)` and `x * mask`.
    """
    zero = mask.dtype.type(0)
    for i in range(x.shape[0]):
        mask[i] = scale if u[i] >= rate else zero
        y[i] = x[i] * mask[i]


bn_mean_var = njit(cache=True, nogil=True)(_bn_mean_var)
bn_normalize = njit(cache=True, nogil=True)(_bn_normalize)
bn_backward_sums = njit(cache=True, nogil=True)(_bn_backward_sums)
bn_backward_dx = njit(cache=True, nogil=True)(_bn_backward_dx)
bn_maxpool = njit(cache=True, nogil=True)(_bn_maxpool)
bn_maxpool_backward_sums = njit(cache=True, nogil=True)(_bn_maxpool_backward_sums)
bn_maxpool_backward_dx = njit(cache=True, nogil=True)(_bn_maxpool_backward_dx)
dropout_forward = njit(cache=True, nogil=True)(_dropout_forward)


def bn_mean_var_reference(x):
    """NumPy's own: x (M, C) -> (x.mean(axis=0), x.var(axis=0)), as the layer computes them."""
    return x.mean(axis=0), x.var(axis=0)


def bn_normalize_reference(x, mu, inv_sigma, gamma, beta, relu=False):
    """The reference layer's formula, then Activation('relu')'s np.maximum(y, 0) if relu;
    x (M, C), the rest (C,); returns y (M, C)."""
    y = ((x - mu) * inv_sigma) * gamma + beta
    return np.maximum(y, 0).astype(x.dtype, copy=False) if relu else y


def _relu_gradient_reference(dout, x, mu, inv_sigma, gamma, beta, relu):
    """What reaches the BatchNormalization: dout, or through the ReLU after it dout * (y > 0)."""
    if not relu:
        return dout
    y = bn_normalize_reference(x, mu, inv_sigma, gamma, beta, relu=True)
    return (dout * (y > 0)).astype(dout.dtype, copy=False)


def bn_backward_sums_reference(dout, x, mu, inv_sigma, gamma, beta=None, relu=False):
    """The reference layers' NumPy sums; dout, x (M, C); returns (4, C): sum(g),
    sum(g * xhat), sum(dxhat), sum(dxhat * xhat), dxhat = g * gamma, g = dout (through the
    ReLU's gradient first with relu)."""
    g = _relu_gradient_reference(dout, x, mu, inv_sigma, gamma, beta, relu)
    xhat = (x - mu) * inv_sigma
    dxhat = g * gamma
    return np.stack([g.sum(axis=0), (g * xhat).sum(axis=0), dxhat.sum(axis=0),
                     (dxhat * xhat).sum(axis=0)])


def bn_backward_dx_reference(dout, x, mu, inv_sigma, gamma, sums, training, beta=None,
                             relu=False):
    """The reference layers' dx expressions; dout, x (M, C); returns dx (M, C)."""
    M = x.shape[0]
    dxhat = _relu_gradient_reference(dout, x, mu, inv_sigma, gamma, beta, relu) * gamma
    if not training:
        return dxhat * inv_sigma
    xhat = (x - mu) * inv_sigma
    return (inv_sigma / M) * (M * dxhat - sums[2] - xhat * sums[3])


def bn_maxpool_reference(x, mu, inv_sigma, gamma, beta, PH, PW):
    """`bn_normalize_reference`, then MaxPooling2D's reference (stride = window, 'valid');
    x (N, H, W, C); returns out and argmax (N, H // PH, W // PW, C)."""
    _, H, W, C = x.shape
    y = bn_normalize_reference(x.reshape(-1, C), mu, inv_sigma, gamma, beta).reshape(x.shape)
    return maxpool_forward_reference(y, PH, PW, PH, PW, 0, 0, H // PH, W // PW)


def bn_maxpool_backward_sums_reference(dout, argmax, x, mu, inv_sigma, gamma):
    """MaxPooling2D's backward (dout routed through argmax), then `bn_backward_sums_reference`
    over the full map; returns (4, C)."""
    C = x.shape[-1]
    g = maxpool_backward_reference(dout, argmax, x.shape)
    return bn_backward_sums_reference(g.reshape(-1, C), x.reshape(-1, C), mu, inv_sigma, gamma)


def bn_maxpool_backward_dx_reference(dout, argmax, x, mu, inv_sigma, gamma, sums, training):
    """MaxPooling2D's backward, then `bn_backward_dx_reference`; returns dx (N, H, W, C)."""
    C = x.shape[-1]
    g = maxpool_backward_reference(dout, argmax, x.shape)
    return bn_backward_dx_reference(g.reshape(-1, C), x.reshape(-1, C), mu, inv_sigma, gamma,
                                    sums, training).reshape(x.shape)


def dropout_forward_reference(x, u, rate, scale):
    """The reference layer's two lines; x, u (size,); returns (mask, y) in x's dtype."""
    mask = (u >= rate).astype(x.dtype) * scale
    return mask, x * mask
