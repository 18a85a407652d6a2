"""ConvStep: a Conv2D with any activation of minicnn.activations, its batch cut into chunks run on
threads.

Each chunk of samples goes through the convolution, bias and activation on its own, on whichever of
minicnn's threads is free (minicnn/fast/parallel.py); backward, each chunk computes its partial
kernel and bias gradients, added in chunk order afterwards. Scratch arrays are reused from step
to step (minicnn/fast/workspace.py). The convolution is one of four algorithms, picked for the
layer's shape when the plan is built (`step.algorithm`; the rule and its measurements are in
minicnn/fast/conv_algorithm.py):
- "im2col": the im2col matrix, one GEMM and the bias + activation epilogue per chunk;
- "direct", for a tiny receptive field KH * KW * C (a first layer on grey images: 9): forward
  convolves without the im2col matrix (and the ReLU, if any); backward builds the matrix it
  needs from the input;
- "rows", for stride 1 with few channels and filters (d2l's LeNet's first layer, 1 -> 6):
  forward, kernel gradient and dx without the im2col matrix, SIMD along output rows
  (minicnn/fast/kernels/conv_along_rows.py), then the same epilogue;
- "winograd" and "winograd4", for 3x3 stride-1 kernels: F(2x2, 3x3) or F(4x4, 3x3)
  (minicnn/fast/winograd.py), block by block, the activation applied to each block's outputs
  while they are in cache.
The activation's epilogue and backward are minicnn/fast/activation.py's (`bias_relu` and
`relu_backward` for ReLU, the kernels' general pair for the others). A sigmoid or softmax conv
that ends its chain stays a LayerStep (`head_may_fuse`).
"""

from __future__ import annotations

import functools

import numpy as np

from minicnn.fast import parallel
from minicnn.fast.activation import (
    activation_code,
    activation_gradient,
    bias_activation_in_place,
    bias_gradient,
    head_may_fuse,
    scratch,
)
from minicnn.fast.conv_algorithm import (
    DIRECT_MAX_FIELD,
    WINOGRAD,
    choose_algorithm,
    winograd_chunk,
    winograd_chunk_backward,
)
from minicnn.fast.kernels import conv_direct, conv_rows, conv_rows_backward
from minicnn.fast.kernels.activations import LINEAR, RELU
from minicnn.fast.step import Step, computes_as
from minicnn.fast.workspace import Workspace
from minicnn.kernels import col2im, im2col
from minicnn.layers.base import Layer
from minicnn.layers.conv import Conv2D

__all__ = ["DIRECT_MAX_FIELD", "ConvStep"]


class ConvStep(Step):
    def __init__(self, conv: Conv2D, input_gradient: bool = True) -> None:
        if not self.applies(conv):
            raise ValueError(f"ConvStep runs a built Conv2D with an activation of "
                             f"minicnn.activations; received {conv!r}")
        self.layers = (conv,)
        self.conv = conv
        self.input_gradient = input_gradient
        self.workspace = Workspace()
        self.cache = None
        self.pieces: int | None = None  # the chunks of the last backward
        self.code, self.param = activation_code(conv.activation)
        _, H_out, W_out, F = conv.output_shape
        self.algorithm = choose_algorithm(conv.kernel_size, conv.strides, H_out, W_out,
                                          conv.input_shape[-1], F)

    chunked = True

    @staticmethod
    def applies(layer: Layer) -> bool:
        return (computes_as(layer, Conv2D) and layer.built
                and activation_code(layer.activation) is not None)

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return int(cls.applies(layers[k]) and not head_may_fuse(layers, k))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> ConvStep:
        return cls(layers[0], input_gradient)

    @property
    def params(self) -> list:
        return conv_params(self.conv)

    def partials(self) -> list[np.ndarray]:
        return conv_partials(self)

    @property
    def winograd(self):
        """The Winograd tile size `algorithm` names (minicnn/fast/winograd.py), or None."""
        return WINOGRAD.get(self.algorithm)

    def __repr__(self) -> str:
        return f"ConvStep({self.conv.name}, algorithm={self.algorithm!r})"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, F)."""
        conv = self.conv
        x = np.ascontiguousarray(x)
        N, H, W, C = x.shape
        (KH, KW), (SH, SW) = conv.kernel_size, conv.strides
        H_out, W_out, PT, PL = conv.geometry(H, W)
        F, HW, KKC = conv.filters, H_out * W_out, KH * KW * C
        kernel = conv.kernel.value
        bias = conv.bias.value if conv.bias is not None else np.zeros(F, x.dtype)
        code, param = self.code, self.param
        relu = code == RELU
        y = np.empty((N, H_out, W_out, F), dtype=x.dtype)  # handed on: never a reused buffer
        z = y.reshape(N * HW, F)
        w = scratch(self.workspace, code, z.shape, x.dtype, z)
        no_bias = np.zeros(F, x.dtype)  # for an epilogue after the bias was added: act alone
        cols = U = None
        if self.algorithm == "direct":
            def chunk(p: int, a: int, b: int) -> None:
                conv_direct(x[a:b], kernel, bias, SH, SW, PT, PL, relu, y[a:b])
                if code not in (LINEAR, RELU):
                    rows = slice(a * HW, b * HW)
                    bias_activation_in_place(z[rows], no_bias, code, param, w[rows])
        elif self.algorithm == "rows":
            def chunk(p: int, a: int, b: int) -> None:
                conv_rows(x[a:b], kernel, bias, PT, PL, y[a:b])
                if code != LINEAR:
                    rows = slice(a * HW, b * HW)
                    bias_activation_in_place(z[rows], no_bias, code, param, w[rows])
        elif (wt := self.winograd) is not None:
            U = np.empty((wt.positions, C, F), dtype=x.dtype)
            wt.filter(kernel, U)

            def finish(s: int, e: int) -> None:
                if code != LINEAR:
                    rows = slice(s * HW, e * HW)
                    bias_activation_in_place(z[rows], no_bias, code, param, w[rows])

            def chunk(p: int, a: int, b: int) -> None:
                winograd_chunk(wt, x, U, bias, PT, PL, a, b, y, self.workspace, p, finish)
        else:
            cols = self.workspace.get("cols", (N * HW, KKC), x.dtype)
            kernel_2d = kernel.reshape(KKC, F)

            def chunk(p: int, a: int, b: int) -> None:
                rows = slice(a * HW, b * HW)
                im2col(x[a:b], KH, KW, SH, SW, PT, PL, H_out, W_out, cols[rows])
                np.matmul(cols[rows], kernel_2d, out=z[rows])
                bias_activation_in_place(z[rows], bias, code, param, w[rows])
        parallel.run([functools.partial(chunk, p, a, b)
                      for p, (a, b) in enumerate(parallel.chunks(N))])
        self.cache = (x, cols, z, U)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, H_out, W_out, F) -> dx (N, H, W, C), or None without the input gradient;
        fills the conv's kernel.grad and bias.grad."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x, cols, y, U = self.cache
        conv, work = self.conv, self.workspace
        N, H, W, C = x.shape
        (KH, KW), (SH, SW) = conv.kernel_size, conv.strides
        H_out, W_out, PT, PL = conv.geometry(H, W)
        F, HW, KKC = conv.filters, H_out * W_out, KH * KW * C
        dout = np.ascontiguousarray(dout).reshape(N * HW, F)
        code, param = self.code, self.param
        dz = work.get("dz", (N * HW, F), dout.dtype) if code != LINEAR else dout
        pieces = parallel.chunks(N)
        self.pieces = len(pieces)
        dbias = work.get("dbias", (len(pieces), F), dout.dtype)
        needs_dx = self.input_gradient
        dx = np.empty(x.shape, dtype=dout.dtype) if needs_dx else None  # handed on: never reused
        # Each chunk's partial kernel gradient, in the kernel's layout whatever the algorithm
        # (minicnn/distributed hands these partials over to be added as here)
        dkernel = work.get("dkernel", (len(pieces), KKC, F), dout.dtype)
        wt, by_rows = self.winograd, self.algorithm == "rows"
        dz_4d = dz.reshape(N, H_out, W_out, F)
        if wt is not None:
            dU = work.get("dU", (len(pieces), wt.positions, C, F), dout.dtype)
        elif by_rows:
            kernel = conv.kernel.value
            no_dx = np.empty((0, 0, 0, 0), dout.dtype)  # one compiled signature, dx or not
        else:
            build_cols = cols is None  # a direct forward: build the matrix the gradients need
            if build_cols:
                cols = work.get("cols", (N * HW, KKC), x.dtype)
            dcols = work.get("dcols", (N * HW, KKC), dout.dtype) if needs_dx else None
            kernel_t = conv.kernel.value.reshape(KKC, F).T

        def chunk(p: int, a: int, b: int) -> None:
            rows = slice(a * HW, b * HW)
            if code != LINEAR:
                activation_gradient(dout[rows], y[rows], code, param, dz[rows])
            if by_rows:  # the kernel sums dbias as it goes
                conv_rows_backward(x[a:b], dz_4d[a:b], kernel, PT, PL,
                                   dkernel[p].reshape(KH, KW, C, F), dbias[p],
                                   dx[a:b] if needs_dx else no_dx, needs_dx)
                return
            bias_gradient(dz[rows], dbias[p])
            if wt is not None:
                winograd_chunk_backward(wt, x, dz_4d, U, PT, PL, a, b, dU[p], dx, work, p)
                wt.filter_backward(dU[p], dkernel[p].reshape(KH, KW, C, F))
                return
            if build_cols:
                im2col(x[a:b], KH, KW, SH, SW, PT, PL, H_out, W_out, cols[rows])
            np.matmul(cols[rows].T, dz[rows], out=dkernel[p])
            if needs_dx:
                np.matmul(dz[rows], kernel_t, out=dcols[rows])
                col2im(dcols[rows], KH, KW, SH, SW, PT, PL, H_out, W_out, dx[a:b])
        parallel.run([functools.partial(chunk, p, a, b) for p, (a, b) in enumerate(pieces)])
        np.sum(dkernel, axis=0, out=conv.kernel.grad.reshape(KKC, F))
        if conv.bias is not None:
            np.sum(dbias, axis=0, out=conv.bias.grad)
        return dx


def conv_params(conv: Conv2D) -> list:
    """A conv's trainable Parameters in the order its steps' partials() hand them over."""
    return [p for p in (conv.kernel, conv.bias) if p is not None] if conv.trainable else []


def conv_partials(step) -> list[np.ndarray]:
    """A conv step's per-chunk partial gradients, copied from its scratch arrays (where its
    backward leaves them before adding them up): the kernel's (chunks, KH*KW*C, F), the
    bias's (chunks, F)."""
    if step.pieces is None:
        raise RuntimeError(f"{step!r}: partials() needs a backward() first")
    conv, P = step.conv, step.pieces
    if not conv.trainable:
        return []  # as `params`: a frozen conv hands nothing over
    *field, F = conv.kernel.value.shape
    dtype = conv.kernel.value.dtype
    parts = [step.workspace.get("dkernel", (P, int(np.prod(field)), F), dtype).copy()]
    if conv.bias is not None:
        parts.append(step.workspace.get("dbias", (P, F), dtype).copy())
    return parts
