"""Bias + activation forward and the activation's backward from its output y, few passes each.

Shapes: z, y, w, dout, dz (M, F) with bias (F,); layers pass their outputs flattened to 2-D,
softmax runs along F. An activation is named by an integer code (below) and its one parameter
(leaky_relu's slope, elu's alpha; ignored by the others), so that one compiled kernel serves
them all: each numba kernel costs seconds of compile time on a fresh machine.

- `bias_relu`, `relu_backward`: bias + ReLU in place, and its mask; the steps' ReLU path.
- `bias_activation`, `activation_finish`: z <- act(z + bias), in place, for every activation.
  numba compiles exp, expm1 and tanh to one scalar libm call per element, 10x slower than
  NumPy's SIMD ufuncs (1.2M float32 values: a numba sigmoid loop 10.7 ms, np.exp 0.6 ms), so
  an activation that needs one goes through NumPy's ufunc between the two kernels:
  `activation_forward` runs the sequence (ufunc calls release the GIL, so chunks still run
  on two threads at once). Being the reference's own ufunc on the same arguments, the result
  is the reference's bit for bit (softmax's row sums excepted: NumPy sums pairwise).
- `activation_backward`: dz <- dout * act'(y) for every activation, one pass.

Non-finite numbers propagate as in the NumPy of minicnn/activations.py: every branch tests
`v > 0` or `v >= 0` (false for NaN) and takes the same arithmetic as the reference, so NaN
stays NaN, leaky_relu(-inf) with slope 0 is NaN (-inf * 0), sigmoid(+-inf) is 1 or 0, and a
softmax row holding a NaN or +inf is NaN throughout.
"""

import numpy as np
from numba import njit

from minicnn import activations

# The activation codes. ELU, SIGMOID, TANH and SOFTMAX need a ufunc between the two forward
# kernels (`UFUNCS`); LINEAR, RELU and LEAKY_RELU are done in `bias_activation` alone.
LINEAR, RELU, LEAKY_RELU, ELU, SIGMOID, TANH, SOFTMAX = range(7)
UFUNCS = {ELU: np.expm1, SIGMOID: np.exp, TANH: np.tanh, SOFTMAX: np.exp}
# Where the ufunc runs: on the scratch w (the pre-activation stays in z for the finish), or on z.
UFUNC_ON_W = (ELU, SIGMOID)


def _bias_relu(z, bias):
    """In place: z <- max(z + bias, 0). z (M, F), bias (F,)."""
    M, F = z.shape
    zero = z.dtype.type(0)  # a float64 0.0 would turn every float32 comparison into a float64 one
    for m in range(M):
        for f in range(F):
            v = z[m, f] + bias[f]
            z[m, f] = zero if v <= zero else v


def _relu_backward(dout, y, dz):
    """dz <- dout * (y > 0): dout where the ReLU output y was positive, else 0 (NaN for a
    non-finite dout, as the product gives). All (M, F)."""
    M, F = dout.shape
    zero = dout.dtype.type(0)
    for m in range(M):
        for f in range(F):
            d = dout[m, f]
            dz[m, f] = d if y[m, f] > zero else d * zero


def _bias_activation(z, bias, code, param, w):
    """In place, the first pass of z <- act(z + bias); w (M, F) is another array (scratch).

    v = z + bias. LINEAR, RELU, LEAKY_RELU: z <- act(v), done. ELU: z <- v, w <- min(v, 0);
    SIGMOID: z <- v, w <- -|v|; TANH: z <- v; SOFTMAX: z <- v - max(v) along each row (NaN
    if the row holds one). Then the code's ufunc and `activation_finish` (`activation_forward`).
    Each code has its own loop nest, so that each is a plain SIMD loop. In place, not into a
    second output array: LLVM's SIMD loop checks that its input and output do not overlap and,
    when they are the same array, falls back to the scalar loop (3x slower, measured).
    """
    M, F = z.shape
    zero = z.dtype.type(0)
    a = z.dtype.type(param)
    if code == RELU:
        for m in range(M):
            for f in range(F):
                v = z[m, f] + bias[f]
                z[m, f] = zero if v <= zero else v  # relu(NaN) is NaN
    elif code == LEAKY_RELU:
        for m in range(M):
            for f in range(F):
                v = z[m, f] + bias[f]
                z[m, f] = v if v > zero else v * a
    elif code == ELU:
        for m in range(M):
            for f in range(F):
                v = z[m, f] + bias[f]
                z[m, f] = v
                w[m, f] = zero if v > zero else v  # np.minimum(v, 0) keeps a NaN
    elif code == SIGMOID:
        for m in range(M):
            for f in range(F):
                v = z[m, f] + bias[f]
                z[m, f] = v
                w[m, f] = -abs(v)
    elif code == SOFTMAX:
        for m in range(M):
            top = z[m, 0] + bias[0]
            for f in range(1, F):
                v = z[m, f] + bias[f]
                top = v if (v > top) | (v != v) else top  # a NaN is the max, as np.max says
            for f in range(F):
                z[m, f] = (z[m, f] + bias[f]) - top
    else:  # LINEAR, TANH
        for m in range(M):
            for f in range(F):
                z[m, f] = z[m, f] + bias[f]


def _activation_finish(y, w, code, param):
    """The last pass, after the ufunc: in place, y <- act(v) from y and w.

    ELU: y <- y if y > 0 else a * w (w = expm1(min(v, 0))); SIGMOID: y <- 1 / (1 + w) if
    y >= 0 else w / (1 + w) (w = exp(-|v|)); SOFTMAX: y <- y / sum(y) along each row (y = the
    exponentials); other codes: nothing left to do.
    """
    M, F = y.shape
    zero, one = y.dtype.type(0), y.dtype.type(1)
    a = y.dtype.type(param)
    if code == ELU:
        for m in range(M):
            for f in range(F):
                v = y[m, f]
                y[m, f] = v if v > zero else a * w[m, f]
    elif code == SIGMOID:
        for m in range(M):
            for f in range(F):
                # both quotients, then a select: a branch per element around the divisions
                # ran 10x slower (random signs mispredict, and the loop was not SIMD)
                e = w[m, f]
                d = one + e
                p, q = one / d, e / d
                y[m, f] = p if y[m, f] >= zero else q
    elif code == SOFTMAX:
        for m in range(M):
            s = zero
            for f in range(F):
                s += y[m, f]
            for f in range(F):
                y[m, f] = y[m, f] / s


def _activation_backward(dout, y, code, param, dz):
    """dz <- dL/dz from dout and the forward output y (minicnn/activations.py's table). All (M, F).

    LINEAR: dout; RELU: dout where y > 0 (NaN for a NaN dout); LEAKY_RELU: dout or a * dout;
    ELU: dout or dout * (y + a); SIGMOID: dout * y * (1 - y); TANH: dout * (1 - y^2);
    SOFTMAX: y * (dout - sum(dout * y)) along each row.
    """
    M, F = dout.shape
    zero, one = dout.dtype.type(0), dout.dtype.type(1)
    a = dout.dtype.type(param)
    if code == RELU:
        for m in range(M):
            for f in range(F):
                d = dout[m, f]
                dz[m, f] = d if y[m, f] > zero else d * zero
    elif code == LEAKY_RELU:
        for m in range(M):
            for f in range(F):
                d = dout[m, f]
                dz[m, f] = d if y[m, f] > zero else d * a
    elif code == ELU:
        for m in range(M):
            for f in range(F):
                d, v = dout[m, f], y[m, f]
                dz[m, f] = d if v > zero else d * (v + a)
    elif code == SIGMOID:
        for m in range(M):
            for f in range(F):
                v = y[m, f]
                dz[m, f] = dout[m, f] * v * (one - v)
    elif code == TANH:
        for m in range(M):
            for f in range(F):
                v = y[m, f]
                dz[m, f] = dout[m, f] * (one - v * v)
    elif code == SOFTMAX:
        for m in range(M):
            s = zero
            for f in range(F):
                s += dout[m, f] * y[m, f]
            for f in range(F):
                dz[m, f] = y[m, f] * (dout[m, f] - s)
    else:  # LINEAR
        for m in range(M):
            for f in range(F):
                dz[m, f] = dout[m, f]


bias_relu = njit(cache=True, nogil=True)(_bias_relu)
relu_backward = njit(cache=True, nogil=True)(_relu_backward)
bias_activation = njit(cache=True, nogil=True)(_bias_activation)
activation_finish = njit(cache=True, nogil=True)(_activation_finish)
activation_backward = njit(cache=True, nogil=True)(_activation_backward)


def activation_forward(z, bias, code, param, w):
    """In place, z (M, F) <- act(z + bias): `bias_activation`, the code's ufunc (`UFUNCS`), then
    `activation_finish`. w (M, F) is scratch for ELU and SIGMOID (pass z for the others: it
    goes unused). Not a kernel itself: NumPy's ufuncs cannot be called from numba at their
    own speed."""
    bias_activation(z, bias, code, param, w)
    ufunc = UFUNCS.get(code)
    if ufunc is None:
        return
    if code in UFUNC_ON_W:
        ufunc(w, out=w)
    else:
        ufunc(z, out=z)
    if code != TANH:
        activation_finish(z, w, code, param)


def bias_relu_reference(z, bias):
    """Plain NumPy max(z + bias, 0); z (M, F), bias (F,); returns y (M, F) in z's dtype."""
    return np.maximum(z + bias, 0).astype(z.dtype, copy=False)


def relu_backward_reference(dout, y):
    """Plain NumPy dout * (y > 0), as TensorFlow's ReluGrad; dout, y (M, F); returns dz (M, F)."""
    return (dout * (y > 0)).astype(dout.dtype, copy=False)


def reference_activation(code, param):
    """The activation of minicnn/activations.py that `code` and `param` name: the references
    below are its own NumPy forward and backward."""
    if code == LEAKY_RELU:
        return activations.LeakyReLUActivation(param)
    if code == ELU:
        return activations.ELUActivation(param)
    return (activations.linear, activations.relu, None, None, activations.sigmoid,
            activations.tanh, activations.softmax)[code]


def bias_activation_reference(z, bias, code, param):
    """Plain NumPy act(z + bias), what `activation_forward` computes; z (M, F), bias (F,);
    returns y (M, F) in z's dtype."""
    return reference_activation(code, param).forward(z + bias).astype(z.dtype, copy=False)


def activation_backward_reference(dout, y, code, param):
    """Plain NumPy dL/dz from dout and y (M, F), as minicnn/activations.py; returns dz (M, F)."""
    dz = reference_activation(code, param).backward(dout, y)
    return dz.astype(dout.dtype, copy=False)
