"""ConvPoolStep: a Conv2D with ReLU and the MaxPooling2D after it, run as one step.

It computes what the two layers compute in turn (the pooled output and the gradients to float
rounding), with fewer passes over memory and no dead work; see `minicnn/fast/kernels/conv_pool.py`
for how. The batch is cut into chunks that run on minicnn's threads, as in ConvStep.

A pair qualifies when the conv has ReLU, stride 1 and 'valid' padding, and the pool has 'valid'
padding and non-overlapping windows (strides == pool_size), as in the MNIST model's two pairs.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from minicnn import activations
from minicnn.fast import parallel
from minicnn.fast.conv import DIRECT_MAX_FIELD
from minicnn.fast.kernels import (
    bias_relu_maxpool,
    conv_relu_maxpool,
    conv_relu_maxpool_backward,
    maxpool_relu_backward,
)
from minicnn.fast.step import Step
from minicnn.fast.workspace import Workspace
from minicnn.kernels import col2im, im2col
from minicnn.layers.base import Layer
from minicnn.layers.conv import Conv2D
from minicnn.layers.pool import MaxPooling2D


class ConvPoolCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C), the conv's input
    cols: np.ndarray | None  # (N * H_c * W_c, KH * KW * C) over the pooled region, or None
    out: np.ndarray  # (N, H_p, W_p, F), the pooled output
    argmax: np.ndarray  # (N, H_p, W_p, F), flat index i * W_c + j of each window's winner


class ConvPoolStep(Step):
    def __init__(self, conv: Conv2D, pool: MaxPooling2D, input_gradient: bool = True) -> None:
        if not self.applies(conv, pool):
            raise ValueError(f"ConvPoolStep runs a built Conv2D(relu, stride 1, 'valid', with "
                             f"bias) and a non-overlapping 'valid' MaxPooling2D; received "
                             f"{conv!r} and {pool!r}")
        self.layers = (conv, pool)
        self.conv, self.pool = conv, pool
        self.input_gradient = input_gradient
        self.cache: ConvPoolCache | None = None
        self.workspace = Workspace()

    @staticmethod
    def applies(conv: Layer, pool: Layer) -> bool:
        return (type(conv) is Conv2D and type(pool) is MaxPooling2D and conv.built
                and conv.activation is activations.relu and conv.strides == (1, 1)
                and conv.padding == "valid" and conv.use_bias
                and pool.padding == "valid" and pool.strides == pool.pool_size)

    def _regions(self, x: np.ndarray):
        """The sizes of the pass: the conv output is computed only on the pooled region, the
        first H_c = H_p * PH rows and W_c = W_p * PW columns."""
        _, H, W, C = x.shape
        (KH, KW), (PH, PW) = self.conv.kernel_size, self.pool.pool_size
        H_out, W_out, _, _ = self.conv.geometry(H, W)
        H_p, W_p, _, _ = self.pool.geometry(H_out, W_out)
        return KH, KW, C, PH, PW, H_p, W_p, H_p * PH, W_p * PW

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> the pool's output (N, H_p, W_p, F).

        The batch is split into chunks that run on minicnn's threads (minicnn/fast/parallel.py);
        each chunk goes through the whole pass on its own.
        """
        conv = self.conv
        x = np.ascontiguousarray(x)
        N = x.shape[0]
        KH, KW, C, PH, PW, H_p, W_p, H_c, W_c = self._regions(x)
        F, HW = conv.filters, H_c * W_c
        kernel, bias = conv.kernel.value, conv.bias.value
        out = np.empty((N, H_p, W_p, F), dtype=x.dtype)
        argmax = np.empty((N, H_p, W_p, F), dtype=np.int32)
        if KH * KW * C <= DIRECT_MAX_FIELD:
            cols = None

            def chunk(a: int, b: int) -> None:
                conv_relu_maxpool(x[a:b], kernel, bias, PH, PW, out[a:b], argmax[a:b])
        else:
            cols = self.workspace.get("cols", (N * HW, KH * KW * C), x.dtype)
            z = self.workspace.get("z", (N * HW, F), x.dtype)
            kernel_2d = kernel.reshape(-1, F)

            def chunk(a: int, b: int) -> None:
                rows = slice(a * HW, b * HW)
                im2col(x[a:b], KH, KW, 1, 1, 0, 0, H_c, W_c, cols[rows])
                np.matmul(cols[rows], kernel_2d, out=z[rows])
                bias_relu_maxpool(z[rows], bias, b - a, H_c, W_c, PH, PW, out[a:b], argmax[a:b])
        parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(N)])
        self.cache = ConvPoolCache(x, cols, out, argmax)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, H_p, W_p, F) -> dx (N, H, W, C); fills the conv's kernel.grad, bias.grad.

        Each chunk of the batch produces its own partial kernel and bias gradients; they are
        added in chunk order, so the result does not depend on which thread ran which chunk.
        """
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x, cols, out, argmax = self.cache
        conv, work = self.conv, self.workspace
        dout = np.ascontiguousarray(dout)
        N = x.shape[0]
        KH, KW, C, PH, PW, _, _, H_c, W_c = self._regions(x)
        F, HW, KKC = conv.filters, H_c * W_c, KH * KW * C
        pieces = parallel.chunks(N)
        dkernel = work.get("dkernel", (len(pieces), KKC, F), x.dtype)
        dbias = work.get("dbias", (len(pieces), F), x.dtype)
        needs_dx = self.input_gradient
        dx = np.empty(x.shape, dtype=dout.dtype) if needs_dx else None  # handed on: never reused
        if cols is None and not needs_dx:
            def chunk(p: int, a: int, b: int) -> None:
                conv_relu_maxpool_backward(x[a:b], dout[a:b], out[a:b], argmax[a:b], PH, PW,
                                           dkernel[p].reshape(KH, KW, C, F), dbias[p])
        else:
            dz = work.get("dz", (N * HW, F), dout.dtype)
            if cols is None:
                cols = work.get("cols", (N * HW, KKC), x.dtype)
            dcols = work.get("dcols", (N * HW, KKC), dout.dtype) if needs_dx else None
            kernel_t = conv.kernel.value.reshape(KKC, F).T
            direct = self.cache.cols is None

            def chunk(p: int, a: int, b: int) -> None:
                rows = slice(a * HW, b * HW)
                maxpool_relu_backward(dout[a:b], out[a:b], argmax[a:b], b - a, H_c, W_c,
                                      dz[rows], dbias[p])
                if direct:
                    im2col(x[a:b], KH, KW, 1, 1, 0, 0, H_c, W_c, cols[rows])
                np.matmul(cols[rows].T, dz[rows], out=dkernel[p])
                if needs_dx:
                    np.matmul(dz[rows], kernel_t, out=dcols[rows])
                    col2im(dcols[rows], KH, KW, 1, 1, 0, 0, H_c, W_c, dx[a:b])
        parallel.run([functools.partial(chunk, p, a, b) for p, (a, b) in enumerate(pieces)])
        np.sum(dkernel, axis=0, out=conv.kernel.grad.reshape(KKC, F))
        np.sum(dbias, axis=0, out=conv.bias.grad)
        return dx
