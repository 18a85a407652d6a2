"""ConvTransposeStep: a Conv2DTranspose with any activation, chunked over the batch.

The arithmetic is the layer's (minicnn/layers/conv_transpose.py): forward one GEMM and a col2im
per chunk, then the bias and activation epilogue (`bias_activation_in_place`, one pass for
ReLU); backward the activation's derivative from y (`activation_gradient`), an im2col of dz,
and two GEMMs, the chunk's partial kernel gradient dcols.T @ xs and, when something before the
step trains, its dx = dcols @ K2. Chunks run on minicnn's threads (minicnn/fast/parallel.py)
and the partial kernel and bias gradients are added in chunk order afterwards, as ConvStep does;
the stamp matrix and dz are scratch arrays reused from step to step (minicnn/fast/workspace.py).
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
from minicnn.fast.kernels.activations import LINEAR
from minicnn.fast.step import Step, computes_as
from minicnn.fast.workspace import Workspace
from minicnn.kernels import col2im, im2col
from minicnn.layers.base import Layer
from minicnn.layers.conv_transpose import Conv2DTranspose

__all__ = ["ConvTransposeStep"]


class ConvTransposeStep(Step):
    chunked = True

    def __init__(self, layer: Conv2DTranspose, input_gradient: bool = True) -> None:
        if not self.applies(layer):
            raise ValueError("ConvTransposeStep runs a built Conv2DTranspose with an activation "
                             f"of minicnn.activations; received {layer!r}")
        self.layers = (layer,)
        self.layer = layer
        self.input_gradient = input_gradient
        self.workspace = Workspace()
        self.cache = None
        self.pieces: int | None = None  # the chunks of the last backward
        self.code, self.param = activation_code(layer.activation)

    @staticmethod
    def applies(layer: Layer) -> bool:
        return (computes_as(layer, Conv2DTranspose) and layer.built
                and activation_code(layer.activation) is not None)

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return int(cls.applies(layers[k]) and not head_may_fuse(layers, k))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> ConvTransposeStep:
        return cls(layers[0], input_gradient)

    @property
    def params(self) -> list:
        layer = self.layer
        return [p for p in (layer.kernel, layer.bias) if p is not None] if layer.trainable else []

    def partials(self) -> list[np.ndarray]:
        """The per-chunk partial gradients of the last backward: the kernel's
        (chunks, KH*KW*F, C), the bias's (chunks, F); their sums over axis 0 are the .grads."""
        if self.pieces is None:
            raise RuntimeError(f"{self!r}: partials() needs a backward() first")
        layer, P = self.layer, self.pieces
        if not layer.trainable:
            return []
        KH, KW, F, C = layer.kernel.value.shape
        dtype = layer.kernel.value.dtype
        parts = [self.workspace.get("dkernel", (P, KH * KW * F, C), dtype).copy()]
        if layer.bias is not None:
            parts.append(self.workspace.get("dbias", (P, F), dtype).copy())
        return parts

    def _shapes(self, x_shape: tuple) -> tuple:
        layer = self.layer
        N, H, W, C = x_shape
        (KH, KW), (SH, SW), F = layer.kernel_size, layer.strides, layer.filters
        L_h, L_w, PT, PL = layer.geometry(H, W)
        return N, H, W, C, KH, KW, SH, SW, F, L_h, L_w, PT, PL

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, L_h, L_w, F)."""
        layer = self.layer
        x = np.ascontiguousarray(x)
        N, H, W, C, KH, KW, SH, SW, F, L_h, L_w, PT, PL = self._shapes(x.shape)
        HW, LL, KKF = H * W, L_h * L_w, KH * KW * F
        xs = x.reshape(N * HW, C)
        # a contiguous copy (C x KKF, small): the chunks' GEMMs read it faster than a .T view
        kernel_t = np.ascontiguousarray(layer.kernel.value.reshape(KKF, C).T)
        bias = layer.bias.value if layer.bias is not None else np.zeros(F, x.dtype)
        code, param = self.code, self.param
        y = np.empty((N, L_h, L_w, F), dtype=x.dtype)  # handed on: never a reused buffer
        z = y.reshape(N * LL, F)
        w = scratch(self.workspace, code, z.shape, x.dtype, z)
        cols = self.workspace.get("cols", (N * HW, KKF), x.dtype)

        def chunk(a: int, b: int) -> None:
            rows = slice(a * HW, b * HW)
            np.matmul(xs[rows], kernel_t, out=cols[rows])
            col2im(cols[rows], KH, KW, SH, SW, PT, PL, H, W, y[a:b])
            out_rows = slice(a * LL, b * LL)
            bias_activation_in_place(z[out_rows], bias, code, param, w[out_rows])
        parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(N)])
        self.cache = (x, z)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, L_h, L_w, F) -> dx (N, H, W, C), or None without the input gradient;
        fills the layer's kernel.grad and bias.grad."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x, y = self.cache
        layer, work = self.layer, self.workspace
        N, H, W, C, KH, KW, SH, SW, F, L_h, L_w, PT, PL = self._shapes(x.shape)
        HW, LL, KKF = H * W, L_h * L_w, KH * KW * F
        dout = np.ascontiguousarray(dout).reshape(N * LL, F)
        code, param = self.code, self.param
        dz = work.get("dz", (N * LL, F), dout.dtype) if code != LINEAR else dout
        dz_4d = dz.reshape(N, L_h, L_w, F)
        pieces = parallel.chunks(N)
        self.pieces = len(pieces)
        dbias = work.get("dbias", (len(pieces), F), dout.dtype)
        dkernel = work.get("dkernel", (len(pieces), KKF, C), dout.dtype)
        dcols = work.get("dcols", (N * HW, KKF), dout.dtype)
        xs = x.reshape(N * HW, C)
        kernel_2d = layer.kernel.value.reshape(KKF, C)
        dx = np.empty(x.shape, dtype=dout.dtype) if self.input_gradient else None  # handed on
        dxs = None if dx is None else dx.reshape(N * HW, C)

        def chunk(p: int, a: int, b: int) -> None:
            rows, out_rows = slice(a * HW, b * HW), slice(a * LL, b * LL)
            if code != LINEAR:
                activation_gradient(dout[out_rows], y[out_rows], code, param, dz[out_rows])
            bias_gradient(dz[out_rows], dbias[p])
            im2col(dz_4d[a:b], KH, KW, SH, SW, PT, PL, H, W, dcols[rows])
            np.matmul(dcols[rows].T, xs[rows], out=dkernel[p])
            if dxs is not None:
                np.matmul(dcols[rows], kernel_2d, out=dxs[rows])
        parallel.run([functools.partial(chunk, p, a, b) for p, (a, b) in enumerate(pieces)])
        np.sum(dkernel, axis=0, out=layer.kernel.grad.reshape(KKF, C))
        if layer.bias is not None:
            np.sum(dbias, axis=0, out=layer.bias.grad)
        return dx
