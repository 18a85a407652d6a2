"""DepthwiseStep: a DepthwiseConv2D or SeparableConv2D with any activation, chunked over the batch.

The arithmetic is the layers' (minicnn/layers/depthwise_conv.py, separable_conv.py), with the
batch cut into chunks run on minicnn's threads (minicnn/fast/parallel.py), as ConvStep does.
Per chunk, forward: the depthwise kernel; for a SeparableConv2D, the pointwise GEMM; then bias
and activation (`bias_activation_in_place`, one pass for ReLU). Backward: the activation's
derivative from y (`activation_gradient`); for a SeparableConv2D, the chunk's partial
pointwise gradient d.T @ dz and dd = dz @ P.T; the depthwise kernel's partial gradient and,
when something before the step trains, dx. The
partial gradients are added in chunk order afterwards; the depthwise output d of a
SeparableConv2D and the temporaries are scratch arrays reused from step to step.
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
from minicnn.kernels.depthwise import (
    depthwise_backward_input,
    depthwise_backward_kernel,
    depthwise_forward,
)
from minicnn.layers.base import Layer
from minicnn.layers.depthwise_conv import DepthwiseConv2D
from minicnn.layers.separable_conv import SeparableConv2D

__all__ = ["DepthwiseStep"]


class DepthwiseStep(Step):
    chunked = True

    def __init__(self, layer: DepthwiseConv2D | SeparableConv2D,
                 input_gradient: bool = True) -> None:
        if not self.applies(layer):
            raise ValueError("DepthwiseStep runs a built DepthwiseConv2D or SeparableConv2D with "
                             f"an activation of minicnn.activations; received {layer!r}")
        self.layers = (layer,)
        self.layer = layer
        self.separable = isinstance(layer, SeparableConv2D)
        self.input_gradient = input_gradient
        self.workspace = Workspace()
        self.cache = None
        self.pieces: int | None = None  # the chunks of the last backward
        self.code, self.param = activation_code(layer.activation)

    @staticmethod
    def applies(layer: Layer) -> bool:
        return ((computes_as(layer, DepthwiseConv2D) or computes_as(layer, SeparableConv2D))
                and layer.built and activation_code(layer.activation) is not None)

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return int(cls.applies(layers[k]) and not head_may_fuse(layers, k))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> DepthwiseStep:
        return cls(layers[0], input_gradient)

    def _weights(self) -> list:
        """depthwise kernel, [pointwise kernel,] [bias]: the layer's weights in Keras order."""
        layer = self.layer
        kernels = ([layer.depthwise_kernel, layer.pointwise_kernel] if self.separable
                   else [layer.kernel])
        return kernels + ([layer.bias] if layer.bias is not None else [])

    @property
    def params(self) -> list:
        return self._weights() if self.layer.trainable else []

    def partials(self) -> list[np.ndarray]:
        """The per-chunk partial gradients of the last backward, (chunks, *weight shape) each,
        in `params` order; their sums over axis 0 are the .grads."""
        if self.pieces is None:
            raise RuntimeError(f"{self!r}: partials() needs a backward() first")
        if not self.layer.trainable:
            return []
        names = ("ddepthwise", "dpointwise", "dbias") if self.separable else ("ddepthwise", "dbias")
        # zip stops at the weights: no bias, no "dbias"
        return [self.workspace.get(name, (self.pieces, *p.shape), p.dtype).copy()
                for name, p in zip(names, self._weights(), strict=False)]

    def _depthwise_kernel(self) -> np.ndarray:
        layer = self.layer
        return (layer.depthwise_kernel if self.separable else layer.kernel).value

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, F) (F = C * M for a DepthwiseConv2D)."""
        layer, (SH, SW) = self.layer, self.layer.strides
        x = np.ascontiguousarray(x)
        N, H, W, C = x.shape
        H_out, W_out, PT, PL = layer.geometry(H, W)
        HW, CM = H_out * W_out, C * layer.depth_multiplier
        F = layer.filters if self.separable else CM
        kernel = self._depthwise_kernel()
        bias = layer.bias.value if layer.bias is not None else np.zeros(F, x.dtype)
        code, param = self.code, self.param
        y = np.empty((N, H_out, W_out, F), dtype=x.dtype)  # handed on: never a reused buffer
        z = y.reshape(N * HW, F)
        w = scratch(self.workspace, code, z.shape, x.dtype, z)
        d = self.workspace.get("d", (N, H_out, W_out, CM), x.dtype) if self.separable else y
        pointwise = layer.pointwise_kernel.value.reshape(CM, F) if self.separable else None

        def chunk(a: int, b: int) -> None:
            rows = slice(a * HW, b * HW)
            depthwise_forward(x[a:b], kernel, SH, SW, PT, PL, d[a:b])
            if self.separable:
                np.matmul(d[a:b].reshape(-1, CM), pointwise, out=z[rows])
            bias_activation_in_place(z[rows], bias, code, param, w[rows])
        parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(N)])
        self.cache = (x, d, z)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, H_out, W_out, F) -> dx (N, H, W, C), or None without the input gradient;
        fills the layer's weight gradients."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x, d, y = self.cache
        layer, work, (SH, SW) = self.layer, self.workspace, self.layer.strides
        N, H, W, C = x.shape
        H_out, W_out, PT, PL = layer.geometry(H, W)
        HW, F = H_out * W_out, y.shape[1]
        CM = C * layer.depth_multiplier
        dout = np.ascontiguousarray(dout).reshape(N * HW, F)
        code, param = self.code, self.param
        dz = work.get("dz", (N * HW, F), dout.dtype) if code != LINEAR else dout
        pieces = parallel.chunks(N)
        self.pieces = P = len(pieces)
        kernel = self._depthwise_kernel()
        ddepthwise = work.get("ddepthwise", (P, *kernel.shape), dout.dtype)
        dbias = work.get("dbias", (P, F), dout.dtype)
        if self.separable:
            pointwise_t = layer.pointwise_kernel.value.reshape(CM, F).T
            dpointwise = work.get("dpointwise", (P, 1, 1, CM, F), dout.dtype)
            dd = work.get("dd", (N, H_out, W_out, CM), dout.dtype)
        else:
            dd = dz.reshape(N, H_out, W_out, CM)
        dx = np.empty(x.shape, dtype=dout.dtype) if self.input_gradient else None  # handed on

        def chunk(p: int, a: int, b: int) -> None:
            rows = slice(a * HW, b * HW)
            if code != LINEAR:
                activation_gradient(dout[rows], y[rows], code, param, dz[rows])
            bias_gradient(dz[rows], dbias[p])
            if self.separable:
                np.matmul(d[a:b].reshape(-1, CM).T, dz[rows], out=dpointwise[p, 0, 0])
                np.matmul(dz[rows], pointwise_t, out=dd[a:b].reshape(-1, CM))
            depthwise_backward_kernel(x[a:b], dd[a:b], SH, SW, PT, PL, ddepthwise[p])
            if dx is not None:
                depthwise_backward_input(dd[a:b], kernel, SH, SW, PT, PL, dx[a:b])
        parallel.run([functools.partial(chunk, p, a, b) for p, (a, b) in enumerate(pieces)])
        weights = self._weights()
        np.sum(ddepthwise, axis=0, out=weights[0].grad)
        if self.separable:
            np.sum(dpointwise, axis=0, out=weights[1].grad)
        if layer.bias is not None:
            np.sum(dbias, axis=0, out=layer.bias.grad)
        return dx
