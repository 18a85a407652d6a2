"""ConvPoolStep: a Conv2D with ReLU (or another increasing activation) and the MaxPooling2D after
it, run as one step.

It computes what the two layers compute in turn (the pooled output and the gradients to float
rounding), with fewer passes over memory and no dead work; see `minicnn/fast/kernels/conv_pool.py`
for how. The batch is cut into chunks that run on minicnn's threads, as in ConvStep.

A pair qualifies when the conv has stride 1, 'valid' padding, a bias and a non-decreasing
activation other than the identity (relu, leaky_relu, elu, sigmoid or tanh; max commutes with
them, so the pooled output's derivative is the winner's), and the pool has 'valid' padding and
non-overlapping windows (strides == pool_size), as in the MNIST model's two pairs. ReLU joins
the pool's pass; the others are applied to the conv outputs the pool reads first, with the
conv steps' epilogue (minicnn/fast/activation.py), and backward multiplies the pooled gradient
by their derivative before routing it. (A conv without activation is left to ConvStep, as
tests/test_plan.py expects.)

The convolution is "direct" (a tiny receptive field: it joins the one pass), "im2col", or
"winograd" or "winograd4" (3x3 kernels), picked for the layer's shape when the plan is built
(`step.algorithm`; the rule is in minicnn/fast/conv_algorithm.py). Im2col and Winograd write
the conv outputs, without bias, on the pooled region only; bias, ReLU and pool follow in one
pass, block by block for Winograd while its outputs are in cache, and backward is the same
routing pass followed by that algorithm's adjoint.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from minicnn.fast import parallel
from minicnn.fast.activation import (
    activation_code,
    activation_gradient,
    bias_activation_in_place,
    scratch,
)
from minicnn.fast.conv import conv_params, conv_partials
from minicnn.fast.conv_algorithm import (
    WINOGRAD,
    choose_algorithm,
    winograd_chunk,
    winograd_chunk_backward,
)
from minicnn.fast.kernels import (
    bias_relu_maxpool,
    conv_direct,
    conv_relu_maxpool,
    conv_relu_maxpool_backward,
    maxpool_relu_backward,
)
from minicnn.fast.kernels.activations import LINEAR, RELU, SOFTMAX
from minicnn.fast.step import Step, computes_as
from minicnn.fast.workspace import Workspace
from minicnn.kernels import col2im, im2col
from minicnn.layers.base import Layer
from minicnn.layers.conv import Conv2D
from minicnn.layers.pool import MaxPooling2D


class ConvPoolCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C), the conv's input
    cols: np.ndarray | None  # (N * H_c * W_c, KH * KW * C) over the pooled region (im2col)
    out: np.ndarray  # (N, H_p, W_p, F), the pooled output
    argmax: np.ndarray  # (N, H_p, W_p, F), flat index i * W_c + j of each window's winner
    U: np.ndarray | None  # (positions, C, F), the Winograd-transformed kernel (winograd)


class ConvPoolStep(Step):
    def __init__(self, conv: Conv2D, pool: MaxPooling2D, input_gradient: bool = True) -> None:
        if not self.applies(conv, pool):
            raise ValueError(f"ConvPoolStep runs a built Conv2D(relu or another increasing "
                             f"activation, stride 1, 'valid', with bias) and a non-overlapping "
                             f"'valid' MaxPooling2D; received {conv!r} and {pool!r}")
        self.layers = (conv, pool)
        self.conv, self.pool = conv, pool
        self.input_gradient = input_gradient
        self.cache: ConvPoolCache | None = None
        self.workspace = Workspace()
        self.code, self.param = activation_code(conv.activation)
        _, H, W, C = conv.input_shape
        H_c = W_c = None  # the pooled region, which the conv computes
        if H is not None and W is not None:
            H_c, W_c = self._regions((None, H, W, C))[-2:]
        self.algorithm = choose_algorithm(conv.kernel_size, conv.strides, H_c, W_c, C,
                                          conv.filters, rows_runs=False)

    @property
    def winograd(self):
        """The Winograd tile size `algorithm` names (minicnn/fast/winograd.py), or None."""
        return WINOGRAD.get(self.algorithm)

    def __repr__(self) -> str:
        return f"ConvPoolStep({self.conv.name}, {self.pool.name}, algorithm={self.algorithm!r})"

    chunked = True

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return 2 if k + 1 < len(layers) and cls.applies(layers[k], layers[k + 1]) else 0

    @classmethod
    def of(cls, layers, input_gradient: bool) -> ConvPoolStep:
        return cls(layers[0], layers[1], input_gradient)

    @property
    def params(self) -> list:
        return conv_params(self.conv)

    def partials(self) -> list[np.ndarray]:
        return conv_partials(self)

    @staticmethod
    def applies(conv: Layer, pool: Layer) -> bool:
        code = activation_code(conv.activation) if computes_as(conv, Conv2D) else None
        return (code is not None and code[0] not in (LINEAR, SOFTMAX)
                and computes_as(pool, MaxPooling2D) and conv.built and conv.strides == (1, 1)
                and conv.padding == "valid" and conv.use_bias
                and pool.padding == "valid" and pool.strides == pool.pool_size)

    def _regions(self, x_shape: tuple):
        """The sizes of the pass: the conv output is computed only on the pooled region, the
        first H_c = H_p * PH rows and W_c = W_p * PW columns."""
        _, H, W, C = x_shape
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
        KH, KW, C, PH, PW, H_p, W_p, H_c, W_c = self._regions(x.shape)
        F, HW = conv.filters, H_c * W_c
        kernel, bias = conv.kernel.value, conv.bias.value
        out = np.empty((N, H_p, W_p, F), dtype=x.dtype)
        argmax = np.empty((N, H_p, W_p, F), dtype=np.int32)
        code, param = self.code, self.param
        relu = code == RELU
        no_bias = np.zeros(F, x.dtype)
        cols = U = None
        if not relu or self.algorithm != "direct":
            z = self.workspace.get("z", (N * HW, F), x.dtype)
            w = scratch(self.workspace, code, z.shape, x.dtype, z)

        def pool(s: int, e: int, bias: np.ndarray) -> None:
            """Samples s..e-1: [the activation, then] the pool of z + bias [with ReLU]."""
            rows = slice(s * HW, e * HW)
            if not relu:
                bias_activation_in_place(z[rows], bias, code, param, w[rows])
                bias = no_bias
            bias_relu_maxpool(z[rows], bias, e - s, H_c, W_c, PH, PW, out[s:e], argmax[s:e],
                              relu)

        if self.algorithm == "direct" and relu:
            def chunk(p: int, a: int, b: int) -> None:
                conv_relu_maxpool(x[a:b], kernel, bias, PH, PW, out[a:b], argmax[a:b])
        elif self.algorithm == "direct":
            def chunk(p: int, a: int, b: int) -> None:
                conv_direct(x[a:b], kernel, bias, 1, 1, 0, 0, False,
                            z[a * HW:b * HW].reshape(b - a, H_c, W_c, F))
                pool(a, b, no_bias)
        elif (wt := self.winograd) is not None:
            U = np.empty((wt.positions, C, F), dtype=x.dtype)
            wt.filter(kernel, U)

            def finish(s: int, e: int) -> None:
                pool(s, e, bias)  # the bias joins the activation and pool pass

            def chunk(p: int, a: int, b: int) -> None:
                winograd_chunk(wt, x, U, no_bias, 0, 0, a, b, z.reshape(N, H_c, W_c, F),
                               self.workspace, p, finish)
        else:
            cols = self.workspace.get("cols", (N * HW, KH * KW * C), x.dtype)
            kernel_2d = kernel.reshape(-1, F)

            def chunk(p: int, a: int, b: int) -> None:
                rows = slice(a * HW, b * HW)
                im2col(x[a:b], KH, KW, 1, 1, 0, 0, H_c, W_c, cols[rows])
                np.matmul(cols[rows], kernel_2d, out=z[rows])
                pool(a, b, bias)
        parallel.run([functools.partial(chunk, p, a, b)
                      for p, (a, b) in enumerate(parallel.chunks(N))])
        self.cache = ConvPoolCache(x, cols, out, argmax, U)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, H_p, W_p, F) -> dx (N, H, W, C); fills the conv's kernel.grad, bias.grad.

        Each chunk of the batch produces its own partial kernel and bias gradients; they are
        added in chunk order, so the result does not depend on which thread ran which chunk.
        """
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x, cols, out, argmax, U = self.cache
        conv, work = self.conv, self.workspace
        dout = np.ascontiguousarray(dout)
        N = x.shape[0]
        KH, KW, C, PH, PW, _, _, H_c, W_c = self._regions(x.shape)
        F, HW, KKC = conv.filters, H_c * W_c, KH * KW * C
        pieces = parallel.chunks(N)
        self.pieces = len(pieces)
        # each chunk's partial gradients, in the kernel's layout whatever the algorithm
        # (minicnn/distributed hands these partials over to be added as here)
        dkernel = work.get("dkernel", (len(pieces), KKC, F), x.dtype)
        dbias = work.get("dbias", (len(pieces), F), x.dtype)
        needs_dx = self.input_gradient
        dx = np.empty(x.shape, dtype=dout.dtype) if needs_dx else None  # handed on: never reused
        code, param = self.code, self.param
        relu = code == RELU
        # For another activation than ReLU, the pooled gradient times act' at the pooled output
        # (the winner's, where the routing sends it); the kernels then route it unmasked.
        g = dout if relu else work.get("g", dout.shape, dout.dtype)
        F_p = dout.shape[1] * dout.shape[2] * F  # one sample's pooled values

        def gradient_at_z(a: int, b: int) -> np.ndarray:
            if not relu:
                activation_gradient(dout[a:b].reshape(-1, F_p), out[a:b].reshape(-1, F_p), code,
                                    param, g[a:b].reshape(-1, F_p))
            return g[a:b]

        wt = self.winograd
        if wt is not None:
            dU = work.get("dU", (len(pieces), wt.positions, C, F), x.dtype)
            dz = work.get("dz", (N * HW, F), dout.dtype)

            def chunk(p: int, a: int, b: int) -> None:
                maxpool_relu_backward(gradient_at_z(a, b), out[a:b], argmax[a:b], b - a, H_c, W_c,
                                      dz[a * HW:b * HW], dbias[p], relu)
                winograd_chunk_backward(wt, x, dz.reshape(N, H_c, W_c, F), U, 0, 0, a, b, dU[p],
                                        dx, work, p)
                wt.filter_backward(dU[p], dkernel[p].reshape(KH, KW, C, F))
        elif cols is None and not needs_dx:
            def chunk(p: int, a: int, b: int) -> None:
                conv_relu_maxpool_backward(x[a:b], gradient_at_z(a, b), out[a:b], argmax[a:b],
                                           PH, PW, dkernel[p].reshape(KH, KW, C, F), dbias[p],
                                           relu)
        else:
            dz = work.get("dz", (N * HW, F), dout.dtype)
            direct = cols is None  # build the matrix the gradients need
            if direct:
                cols = work.get("cols", (N * HW, KKC), x.dtype)
            dcols = work.get("dcols", (N * HW, KKC), dout.dtype) if needs_dx else None
            kernel_t = conv.kernel.value.reshape(KKC, F).T

            def chunk(p: int, a: int, b: int) -> None:
                rows = slice(a * HW, b * HW)
                maxpool_relu_backward(gradient_at_z(a, b), out[a:b], argmax[a:b], b - a, H_c,
                                      W_c, dz[rows], dbias[p], relu)
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
