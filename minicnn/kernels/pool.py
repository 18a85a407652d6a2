"""Max pooling over NHWC input, forward with recorded argmax and backward by routing.

The forward pass records, for every output element, the flat spatial index `h * W + w` of the
input element that won, so the backward pass needs no comparison: it adds each `dout` element to
the one input position it came from. Ties go to the first maximum in row-major window order, as in
TensorFlow. Positions outside the input (padding "same") never win. A NaN in a window is its
maximum (the first NaN, as np.argmax picks), so NaN propagates as in the NumPy reference.

Shapes: x (N, H, W, C); out, argmax, dout (N, H_out, W_out, C); argmax is int32.
"""

import numpy as np
from numba import njit

from minicnn.kernels._stand_in import Kernel


def _maxpool_forward(x, PH, PW, SH, SW, PT, PL, out, argmax):
    """Fill out and argmax (N, H_out, W_out, C) with each window's max and where it was.

    Channels are the innermost loop, so each comparison runs over C contiguous values (SIMD)
    rather than striding through the window once per channel.
    """
    N, H, W, C = x.shape
    H_out, W_out = out.shape[1], out.shape[2]
    for n in range(N):
        for i in range(H_out):
            h0 = max(i * SH - PT, 0)
            h1 = min(i * SH - PT + PH, H)
            for j in range(W_out):
                w0 = max(j * SW - PL, 0)
                w1 = min(j * SW - PL + PW, W)
                for c in range(C):
                    out[n, i, j, c] = x[n, h0, w0, c]
                    argmax[n, i, j, c] = h0 * W + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        at = h * W + w
                        for c in range(C):
                            # strict > keeps the first maximum on ties; a NaN wins
                            # over any number and then stays (np.argmax's first NaN)
                            v, best = x[n, h, w, c], out[n, i, j, c]
                            if v > best or (v != v and best == best):
                                out[n, i, j, c] = v
                                argmax[n, i, j, c] = at


def _maxpool_backward(dout, argmax, dx):
    """Route dout (N, H_out, W_out, C) to the recorded argmax positions of dx (N, H, W, C).

    dx is overwritten. It accumulates, so overlapping windows (stride < pool size) are right.
    """
    N, H, W, C = dx.shape
    H_out, W_out = dout.shape[1], dout.shape[2]
    dx_flat = dx.reshape((N, H * W, C))  # the argmax is a flat index h * W + w
    dx_flat[:] = 0.0
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                for c in range(C):
                    dx_flat[n, argmax[n, i, j, c], c] += dout[n, i, j, c]


def _maxpool_forward_stand_in(x, PH, PW, SH, SW, PT, PL, out, argmax):
    out[...], argmax[...] = maxpool_forward_reference(x, PH, PW, SH, SW, PT, PL, out.shape[1],
                                                      out.shape[2])


def _maxpool_backward_stand_in(dout, argmax, dx):
    dx[...] = maxpool_backward_reference(dout, argmax, dx.shape)


# While numba compiles in the background on a fresh machine, the NumPy references stand in
# (minicnn/kernels/_stand_in.py).
maxpool_forward = Kernel(njit(cache=True, nogil=True)(_maxpool_forward), _maxpool_forward_stand_in)
maxpool_backward = Kernel(njit(cache=True, nogil=True)(_maxpool_backward),
                          _maxpool_backward_stand_in)


def maxpool_forward_reference(x, PH, PW, SH, SW, PT, PL, H_out, W_out):
    """Plain NumPy max pooling, one window position at a time; returns (out, argmax)."""
    N, H, W, C = x.shape
    out = np.empty((N, H_out, W_out, C), dtype=x.dtype)
    argmax = np.empty((N, H_out, W_out, C), dtype=np.int32)
    for i in range(H_out):
        h0, h1 = max(i * SH - PT, 0), min(i * SH - PT + PH, H)
        for j in range(W_out):
            w0, w1 = max(j * SW - PL, 0), min(j * SW - PL + PW, W)
            window = x[:, h0:h1, w0:w1, :].reshape(N, -1, C)
            k = window.argmax(axis=1)  # first maximum on ties
            out[:, i, j, :] = np.take_along_axis(window, k[:, None, :], axis=1)[:, 0, :]
            argmax[:, i, j, :] = (h0 + k // (w1 - w0)) * W + (w0 + k % (w1 - w0))
    return out, argmax


def maxpool_backward_reference(dout, argmax, x_shape):
    """Plain NumPy routing of dout through argmax with an unbuffered add; returns dx."""
    N, H, W, C = x_shape
    dx = np.zeros((N, H * W, C), dtype=dout.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(dx, (np.broadcast_to(n, argmax.shape), argmax, np.broadcast_to(c, argmax.shape)),
              dout)
    return dx.reshape(N, H, W, C)
