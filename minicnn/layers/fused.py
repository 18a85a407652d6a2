"""ConvPool: a Conv2D with ReLU and the MaxPooling2D after it, run as one step.

It computes exactly what the two layers compute in turn (the pooled output bit for bit, the
gradients to float rounding), with fewer passes over memory and no dead work; see
`minicnn/kernels/fused.py` for how. The layers themselves stay the reference implementation:
`Sequential` runs a pair through a ConvPool in `fit`, `evaluate` and `predict`, and runs the
layers one by one whenever a pass is recorded or checked.

A pair qualifies when the conv has ReLU, stride 1 and 'valid' padding, and the pool has 'valid'
padding and non-overlapping windows (strides == pool_size), as in the MNIST model's two pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import activations
from minicnn.kernels import col2im, im2col
from minicnn.kernels.fused import (
    bias_relu_maxpool,
    conv_relu_maxpool,
    conv_relu_maxpool_backward,
    maxpool_relu_backward,
)
from minicnn.layers._workspace import Workspace
from minicnn.layers.base import Layer
from minicnn.layers.conv import DIRECT_MAX_FIELD, Conv2D
from minicnn.layers.pool import MaxPooling2D


class ConvPoolCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C), the conv's input
    cols: np.ndarray | None  # (N * H_c * W_c, KH * KW * C) over the pooled region, or None
    out: np.ndarray  # (N, H_p, W_p, F), the pooled output
    argmax: np.ndarray  # (N, H_p, W_p, F), flat index i * W_c + j of each window's winner


class ConvPool:
    def __init__(self, conv: Conv2D, pool: MaxPooling2D):
        self.conv, self.pool = conv, pool
        self.cache: ConvPoolCache | None = None
        self.workspace = Workspace()

    @staticmethod
    def applies(conv: Layer, pool: Layer) -> bool:
        return (type(conv) is Conv2D and type(pool) is MaxPooling2D
                and conv.activation is activations.relu and conv.strides == (1, 1)
                and conv.padding == "valid" and conv.use_bias
                and pool.padding == "valid" and pool.strides == pool.pool_size)

    def _regions(self, x: np.ndarray):
        _, H, W, C = x.shape
        (KH, KW), (PH, PW) = self.conv.kernel_size, self.pool.pool_size
        H_p, W_p = (H - KH + 1) // PH, (W - KW + 1) // PW
        return KH, KW, C, PH, PW, H_p, W_p, H_p * PH, W_p * PW

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """x (N, H, W, C) -> the pool's output (N, H_p, W_p, F)."""
        conv = self.conv
        x = np.ascontiguousarray(conv._prepare(x))
        N = x.shape[0]
        KH, KW, C, PH, PW, H_p, W_p, H_c, W_c = self._regions(x)
        F = conv.filters
        out = np.empty((N, H_p, W_p, F), dtype=x.dtype)
        argmax = np.empty((N, H_p, W_p, F), dtype=np.int32)
        if KH * KW * C <= DIRECT_MAX_FIELD:
            cols = None
            conv_relu_maxpool(x, conv.kernel.value, conv.bias.value, PH, PW, out, argmax)
        else:
            cols = self.workspace.get("cols", (N * H_c * W_c, KH * KW * C), x.dtype)
            im2col(x, KH, KW, 1, 1, 0, 0, H_c, W_c, cols)
            z = np.matmul(cols, conv.kernel.value.reshape(-1, F),
                          out=self.workspace.get("z", (N * H_c * W_c, F), x.dtype))
            bias_relu_maxpool(z, conv.bias.value, N, H_c, W_c, PH, PW, out, argmax)
        self.cache = ConvPoolCache(x, cols, out, argmax) if training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout (N, H_p, W_p, F) -> dx (N, H, W, C); fills the conv's kernel.grad, bias.grad."""
        if self.cache is None:
            raise RuntimeError("ConvPool.backward() needs a forward(x, training=True) first")
        x, cols, out, argmax = self.cache
        conv = self.conv
        dout = np.ascontiguousarray(dout)
        N = x.shape[0]
        KH, KW, C, PH, PW, _, _, H_c, W_c = self._regions(x)
        F = conv.filters
        if cols is None and not conv.needs_input_gradient:
            conv_relu_maxpool_backward(x, dout, out, argmax, PH, PW, conv.kernel.grad,
                                       conv.bias.grad)
            return None
        work = self.workspace
        dz = work.get("dz", (N * H_c * W_c, F), dout.dtype)
        maxpool_relu_backward(dout, out, argmax, N, H_c, W_c, dz, conv.bias.grad)
        if cols is None:
            cols = work.get("cols", (N * H_c * W_c, KH * KW * C), x.dtype)
            im2col(x, KH, KW, 1, 1, 0, 0, H_c, W_c, cols)
        kernel_2d = conv.kernel.value.reshape(-1, F)
        np.matmul(cols.T, dz, out=conv.kernel.grad.reshape(kernel_2d.shape))
        if not conv.needs_input_gradient:
            return None
        dcols = np.matmul(dz, kernel_2d.T, out=work.get("dcols", cols.shape, dz.dtype))
        dx = np.empty(x.shape, dtype=dz.dtype)  # handed on, so never a reused buffer
        col2im(dcols, KH, KW, 1, 1, 0, 0, H_c, W_c, dx)
        return dx
