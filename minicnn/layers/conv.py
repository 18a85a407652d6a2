"""Conv2D: a 2-D convolution as an im2col matrix times the kernel, with Keras's arguments.

Forward, for x (N, H, W, C) and kernel (KH, KW, C, F):
    cols = im2col(x)                         (N * H_out * W_out, KH * KW * C)
    z    = cols @ kernel.reshape(-1, F) + b  (N * H_out * W_out, F)
    y    = activation(z)                     viewed as (N, H_out, W_out, F)
Backward, from dout = dL/dy:
    dz      = activation'(dout)
    dkernel = cols.T @ dz      db = sum of dz over rows
    dx      = col2im(dz @ kernel.reshape(-1, F).T)
This is the reference: `minicnn/fast/` runs the same arithmetic faster (see docs/backprop.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import activations, regularizers
from minicnn.kernels import col2im, im2col
from minicnn.layers._args import (
    check_images,
    conv_geometry,
    padding_mode,
    positive_int,
    positive_pair,
)
from minicnn.layers.base import Layer


class ConvCache(NamedTuple):
    x_shape: tuple  # (N, H, W, C)
    cols: np.ndarray  # (N * H_out * W_out, KH * KW * C), the im2col matrix
    z: np.ndarray  # (N * H_out * W_out, F), before the activation
    y: np.ndarray  # (N * H_out * W_out, F), after it


class Conv2D(Layer):
    _config_keys = ("filters", "kernel_size", "strides", "padding", "activation", "use_bias",
                    "kernel_initializer", "bias_initializer", "kernel_regularizer")

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.strides = positive_pair(strides, "strides")
        self.padding = padding_mode(padding)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def geometry(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(H_out, W_out, PT, PL): the output size and the padding at the top and left."""
        return conv_geometry(self, H, W, "Conv2D")

    def build(self, input_shape) -> None:
        check_images(self, input_shape, "Conv2D")
        KH, KW = self.kernel_size
        self.dtype = self.dtype or np.dtype(np.float32)
        self.kernel = self.add_weight("kernel", (KH, KW, input_shape[-1], self.filters),
                                      self.kernel_initializer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer)
                     if self.use_bias else None)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        _, H, W, _ = input_shape
        H_out, W_out = self.geometry(H, W)[:2] if None not in (H, W) else (None, None)
        return (None, H_out, W_out, self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, F)."""
        x = self._prepare(x)
        N, H, W, C = x.shape
        (KH, KW), (SH, SW) = self.kernel_size, self.strides
        H_out, W_out, PT, PL = self.geometry(H, W)
        cols = np.empty((N * H_out * W_out, KH * KW * C), dtype=x.dtype)
        im2col(np.ascontiguousarray(x), KH, KW, SH, SW, PT, PL, H_out, W_out, cols)
        z = cols @ self.kernel.value.reshape(KH * KW * C, self.filters)
        if self.bias is not None:
            z += self.bias.value
        y = self.activation.forward(z)
        self.cache = ConvCache(x.shape, cols, z, y)
        return y.reshape(N, H_out, W_out, self.filters)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, F) -> dx (N, H, W, C); fills kernel.grad and bias.grad."""
        cache = self._cached()
        return self.backward_from_z(self.activation.backward(dout.reshape(cache.y.shape), cache.y))

    def backward_from_z(self, dz: np.ndarray) -> np.ndarray:
        """The backward pass from dz = dL/dz (N * H_out * W_out, F), the gradient before the
        activation (what a loss fused with the activation hands over) -> dx (N, H, W, C)."""
        x_shape, cols, _, _ = self._cached()
        _, H, W, C = x_shape
        (KH, KW), (SH, SW) = self.kernel_size, self.strides
        H_out, W_out, PT, PL = self.geometry(H, W)
        kernel_2d = self.kernel.value.reshape(KH * KW * C, self.filters)
        dz = dz.reshape(-1, self.filters)
        self.kernel.grad[...] = (cols.T @ dz).reshape(self.kernel.grad.shape)
        if self.bias is not None:
            self.bias.grad[...] = dz.sum(axis=0)
        dcols = dz @ kernel_2d.T
        dx = np.empty(x_shape, dtype=dz.dtype)
        col2im(np.ascontiguousarray(dcols), KH, KW, SH, SW, PT, PL, H_out, W_out, dx)
        return dx
