"""BatchNormStep: a BatchNormalization, and the ReLU or the MaxPooling2D after it if any.

It computes what the layers compute, bit for bit (see `minicnn/fast/kernels/batch_norm.py`: the
sums add in the layer's own order and dtype), seeing the input as rows x (M, C), one per
(n, h, w):
- training forward: the per-channel mean and variance (threads split the channels), then one
  pass to normalise, scale and shift (threads split the batch); the moving statistics move
  exactly as the layer moves them;
- inference forward: one pass with the moving statistics (the layer's formula; folding them into
  one scale and shift per channel rounds differently and measured no faster on this
  memory-bound pass);
- backward: one pass for the four per-channel sums the layer takes, one for dx. It keeps x
  rather than an (M, C) xhat and recomputes xhat in both passes, which costs less than writing
  it forward and reading it back.

An Activation('relu') (or a ReLU layer) right after it (ResNet's conv-BN-ReLU) joins the
step: forward clamps the values as it writes them, backward recomputes the ReLU's mask from x in
both passes (y > 0 exactly where xhat * gamma + beta > 0), so neither the activation's output
nor its gradient is written (batch 128, median ms forward / backward, against BatchNormStep +
the Activation layer: 32x32x16 1.49 / 3.74 against 2.56 / 6.13; 16x16x32 0.61 / 1.26 against
1.28 / 1.93; 8x8x64 0.44 / 0.84 against 0.69 / 0.80).

A non-overlapping 'valid' MaxPooling2D right after the BatchNormalization (the Fashion-MNIST
model's blocks) joins the step: the normalised map is pooled as it is made and never written,
and backward the pooled gradient is routed inside the sums and dx passes, never written out.
"""

from __future__ import annotations

import functools

import numpy as np

from minicnn import activations
from minicnn.fast import parallel
from minicnn.fast.kernels.batch_norm import (
    bn_backward_dx,
    bn_backward_sums,
    bn_maxpool,
    bn_maxpool_backward_dx,
    bn_maxpool_backward_sums,
    bn_mean_var,
    bn_normalize,
)
from minicnn.fast.step import Step, computes_as
from minicnn.layers.activation import Activation, ReLU
from minicnn.layers.base import Layer
from minicnn.layers.batch_norm import BatchNormalization
from minicnn.layers.pool import MaxPooling2D


def is_relu(layer: Layer) -> bool:
    """`layer` is an Activation('relu') or a ReLU layer computing as the reference's."""
    return ((computes_as(layer, Activation) or computes_as(layer, ReLU))
            and layer.activation is activations.relu)


class BatchNormStep(Step):
    def __init__(self, bn: BatchNormalization, after: Layer | None = None,
                 input_gradient: bool = True) -> None:
        """after: the MaxPooling2D or the ReLU that joins the pass, or None."""
        if not self.applies(bn, after):
            raise ValueError(f"BatchNormStep runs a built BatchNormalization, optionally with a "
                             f"non-overlapping 'valid' MaxPooling2D or a ReLU after it; "
                             f"received {bn!r}, {after!r}")
        self.layers = (bn,) if after is None else (bn, after)
        self.bn = bn
        self.relu = after is not None and is_relu(after)
        self.pool = None if after is None or self.relu else after
        self.input_gradient = input_gradient
        self.cache = None

    @staticmethod
    def applies(bn: Layer, after: Layer | None = None) -> bool:
        return (computes_as(bn, BatchNormalization) and bn.built and bn.trainable
                and (after is None or is_relu(after)
                     or (computes_as(after, MaxPooling2D) and after.padding == "valid"
                         and after.strides == after.pool_size)))

    @classmethod
    def takes(cls, layers, k: int) -> int:
        if k + 1 < len(layers) and cls.applies(layers[k], layers[k + 1]):
            return 2
        return int(cls.applies(layers[k]))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> BatchNormStep:
        return cls(layers[0], layers[1] if len(layers) > 1 else None, input_gradient)

    def _chunked(self, kernel, N: int, arrays: tuple, rest: tuple, out=None) -> None:
        """kernel(*[a[chunk] for a in arrays], *rest, *[o[chunk] for o in out]) on the batch's
        fixed chunks; an array of M rows is cut in rows, one of N samples in samples."""
        def chunk(a: int, b: int) -> None:
            cut = [arr[arr.shape[0] // N * a:arr.shape[0] // N * b] for arr in (*arrays, *out)]
            kernel(*cut[:len(arrays)], *rest, *cut[len(arrays):])
        parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(N)])

    @staticmethod
    def _by_channel(kernel, C: int, inputs: tuple, outputs: tuple) -> None:
        """kernel(*inputs, c0, c1, *outputs) over pieces c0:c1 of 16 channels (a cache line of
        float32), or of 8 when there are 16 or fewer, on minicnn's threads: each channel's sum is
        a whole run over the rows in order, so the pieces give the same bits however they are
        spread. Two pieces of 8 let two threads share ResNet's 16-channel BNs: the backward
        sums over 128 x 32 x 32 rows take 1.5 ms for 8 channels against 2.7 for 16 (the mean
        and variance, bound by the rows, 0.93 against 0.96)."""
        width = 16 if C > 16 else 8
        parallel.run([functools.partial(kernel, *inputs, c0, min(c0 + width, C), *outputs)
                      for c0 in range(0, C, width)])

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ..., C) -> y (N, ..., C) (after the ReLU, with one), or the pool's output
        (N, H_p, W_p, C)."""
        bn = self.bn
        x = np.ascontiguousarray(x)
        N, C, dtype = x.shape[0], x.shape[-1], x.dtype
        rows = x.reshape(-1, C)
        gamma = bn.gamma.value if bn.gamma is not None else np.ones(C, dtype)
        beta = bn.beta.value if bn.beta is not None else np.zeros(C, dtype)
        if training:
            mu, var = np.empty(C, dtype), np.empty(C, dtype)
            self._by_channel(bn_mean_var, C, (rows,), (mu, var))
            m = bn.momentum
            bn.moving_mean.value[...] = bn.moving_mean.value * m + mu * (1 - m)
            bn.moving_variance.value[...] = bn.moving_variance.value * m + var * (1 - m)
        else:
            mu = bn.moving_mean.value.copy()  # copies: the next fit moves the layer's
            var = bn.moving_variance.value.copy()
        inv_sigma = 1 / np.sqrt(var + dtype.type(bn.epsilon))
        affine = (mu, inv_sigma, gamma, beta)
        if self.pool is None:
            y = np.empty(x.shape, dtype=dtype)  # handed on: never a reused buffer
            self._chunked(bn_normalize, N, (rows,), (*affine, self.relu),
                          (y.reshape(rows.shape),))
            argmax = None
        else:
            (PH, PW), (_, H, W, _) = self.pool.pool_size, x.shape
            y = np.empty((N, H // PH, W // PW, C), dtype=dtype)
            argmax = np.empty(y.shape, dtype=np.int32)
            self._chunked(bn_maxpool, N, (x,), (*affine, PH, PW), (y, argmax))
        self.cache = (x, mu, inv_sigma, bool(training), argmax)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, ..., C) (the pool's output shape with a pool) -> dx (N, ..., C), or None
        without the input gradient; fills gamma.grad and beta.grad."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x, mu, inv_sigma, training, argmax = self.cache
        bn = self.bn
        N, C, dtype = x.shape[0], x.shape[-1], dout.dtype
        rows = x.reshape(-1, C)
        gamma = bn.gamma.value if bn.gamma is not None else np.ones(C, dtype)
        beta = bn.beta.value if bn.beta is not None else np.zeros(C, dtype)
        sums = np.empty((4, C), dtype)
        dout = np.ascontiguousarray(dout)
        if self.pool is None:
            dout = dout.reshape(rows.shape)
            self._by_channel(bn_backward_sums, C,
                             (dout, rows, mu, inv_sigma, gamma, beta, self.relu), (sums,))
        else:
            self._by_channel(bn_maxpool_backward_sums, C,
                             (dout, argmax, x, mu, inv_sigma, gamma, *self.pool.pool_size),
                             (sums,))
        if bn.gamma is not None:
            bn.gamma.grad[...] = sums[1]
        if bn.beta is not None:
            bn.beta.grad[...] = sums[0]
        if not self.input_gradient:
            return None
        coefficients = (mu, inv_sigma, gamma, inv_sigma / len(rows), sums, training, len(rows))
        dx = np.empty(x.shape, dtype=dtype)  # handed on: never a reused buffer
        if self.pool is None:
            self._chunked(bn_backward_dx, N, (dout, rows),
                          (mu, inv_sigma, gamma, beta, self.relu, *coefficients[3:]),
                          (dx.reshape(rows.shape),))
        else:
            self._chunked(bn_maxpool_backward_dx, N, (dout, argmax, x),
                          (*coefficients, *self.pool.pool_size), (dx,))
        return dx
