"""Conv2DTranspose: the adjoint of a Conv2D, run forward, with Keras's arguments and layout.

A Conv2D with kernel (KH, KW, F, C) maps an image of F channels and size L_h x L_w to one of C
channels and size H x W; write it as the linear map  conv(u) = im2col(u) @ K2  with
K2 = kernel.reshape(KH * KW * F, C). Conv2DTranspose(filters=F) with the same kernel maps the
other way, (N, H, W, C) -> (N, L_h, L_w, F), by that map's transpose, which is exactly what a
Conv2D's backward computes for its input gradient: `dx = col2im(dz @ K2.T)`. Hence Keras's
layout (KH, KW, filters, C_in): output channels before input channels.

Forward, for x (N, H, W, C), with xs = x.reshape(N * H * W, C):
    cols = xs @ K2.T                     (N * H * W, KH * KW * F)   each input pixel's stamp
    z    = col2im(cols) + b              (N * L_h * L_w, F)         stamps added up, S apart
    y    = activation(z)                 viewed as (N, L_h, L_w, F)
Backward, from dout (N, L_h, L_w, F):
    dz      = activation'(dout)          (N * L_h * L_w, F)
    dcols   = im2col(dz)                 (N * H * W, KH * KW * F)   col2im's adjoint: a gather
    dx      = dcols @ K2                 (N * H * W, C)             a Conv2D forward of dz
    dkernel = dcols.T @ xs               (KH * KW * F, C)           Conv2D's weight gradient,
    db      = sum of dz over rows        (F,)                       x and dz in swapped roles
So no new kernel is needed: im2col and col2im from minicnn/kernels/conv.py, and GEMMs.

Output size (Keras's, from its TensorFlow backend), per axis, for input size H:
    "valid": L = (H - 1) * S + K + output_padding   (output_padding None: max(K, S) - K)
    "same":  L = H * S                   (output_padding None)
             L = (H - 1) * S + K % 2 + output_padding
and the padding is the Conv2D's that maps L back to H with the same `padding` (TensorFlow's
conv2d_transpose is that conv's input gradient). With an even kernel, "same" and
output_padding=0 no conv maps L back to H: TensorFlow fails inside its kernel; here a ValueError.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import activations, regularizers
from minicnn.kernels import col2im, im2col
from minicnn.layers._args import (
    check_images,
    padding_mode,
    positive_int,
    positive_pair,
    window_geometry,
)
from minicnn.layers.base import Layer


def transpose_geometry(H: int, K: int, S: int, padding: str,
                       output_padding: int | None) -> tuple[int, int]:
    """(L, P): the output size along one axis and the padding before it of the Conv2D that
    maps L back to H; ValueError when there is none (even kernel, "same", output_padding 0)."""
    if padding == "valid":
        L = (H - 1) * S + K + (max(K, S) - K if output_padding is None else output_padding)
    else:
        L = H * S if output_padding is None else (H - 1) * S + K % 2 + output_padding
    back, P = window_geometry(L, K, S, padding) if L > 0 else (0, 0)
    if back != H:
        raise ValueError(
            f"Conv2DTranspose: with kernel size {K}, stride {S}, padding={padding!r} and "
            f"output_padding={output_padding}, an input of size {H} gives an output of size "
            f"{L}, which no convolution maps back to {H} (TensorFlow fails on it too). "
            "Use an odd kernel size, or output_padding >= 1.")
    return L, P


class ConvTransposeCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C), the input, contiguous
    z: np.ndarray  # (N * L_h * L_w, F), before the activation
    y: np.ndarray  # (N * L_h * L_w, F), after it


class Conv2DTranspose(Layer):
    _config_keys = ("filters", "kernel_size", "strides", "padding", "output_padding",
                    "data_format", "dilation_rate", "activation", "use_bias",
                    "kernel_initializer", "bias_initializer", "kernel_regularizer")

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 output_padding=None, data_format: str | None = None, dilation_rate=(1, 1),
                 activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.strides = positive_pair(strides, "strides")
        self.padding = padding_mode(padding)
        self.output_padding = None if output_padding is None else _output_padding(output_padding)
        for i, (op, s) in enumerate(zip(self.output_padding or (), self.strides, strict=False)):
            if op >= s:  # Keras's own message
                raise ValueError(
                    "`output_padding` must be strictly less than `strides` for all dimensions. "
                    f"At dimension {i}, `output_padding` is {op} but `strides` is {s}. "
                    f"Received: output_padding={self.output_padding}, strides={self.strides}")
        if data_format not in (None, "channels_last"):
            raise ValueError("Invalid value for argument `data_format`. Expected "
                             f"'channels_last' (minicnn is NHWC). Received data_format="
                             f"{data_format!r}")
        self.data_format = "channels_last"
        if positive_pair(dilation_rate, "dilation_rate") != (1, 1):
            raise ValueError("Invalid value for argument `dilation_rate`. Expected 1 (minicnn's "
                             f"Conv2DTranspose has no dilation). Received dilation_rate="
                             f"{dilation_rate!r}")
        self.dilation_rate = (1, 1)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def geometry(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(L_h, L_w, PT, PL): the output size, and the padding at the top and left of the
        Conv2D this layer is the transpose of."""
        (KH, KW), (SH, SW) = self.kernel_size, self.strides
        OH, OW = self.output_padding or (None, None)
        L_h, PT = transpose_geometry(H, KH, SH, self.padding, OH)
        L_w, PL = transpose_geometry(W, KW, SW, self.padding, OW)
        return L_h, L_w, PT, PL

    def build(self, input_shape) -> None:
        check_images(self, input_shape, "Conv2DTranspose")
        KH, KW = self.kernel_size
        self.dtype = self.dtype or np.dtype(np.float32)
        self.kernel = self.add_weight("kernel", (KH, KW, self.filters, input_shape[-1]),
                                      self.kernel_initializer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer)
                     if self.use_bias else None)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        _, H, W, _ = input_shape
        L_h, L_w = self.geometry(H, W)[:2] if None not in (H, W) else (None, None)
        return (None, L_h, L_w, self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, L_h, L_w, F)."""
        x = np.ascontiguousarray(self._prepare(x))
        N, H, W, C = x.shape
        (KH, KW), (SH, SW), F = self.kernel_size, self.strides, self.filters
        L_h, L_w, PT, PL = self.geometry(H, W)
        cols = x.reshape(N * H * W, C) @ self.kernel.value.reshape(KH * KW * F, C).T
        z = np.empty((N, L_h, L_w, F), dtype=x.dtype)
        col2im(cols, KH, KW, SH, SW, PT, PL, H, W, z)
        z = z.reshape(N * L_h * L_w, F)
        if self.bias is not None:
            z += self.bias.value
        y = self.activation.forward(z)
        self.cache = ConvTransposeCache(x, z, y)
        return y.reshape(N, L_h, L_w, F)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, L_h, L_w, F) -> dx (N, H, W, C); fills kernel.grad and bias.grad."""
        cache = self._cached()
        return self.backward_from_z(self.activation.backward(dout.reshape(cache.y.shape), cache.y))

    def backward_from_z(self, dz: np.ndarray) -> np.ndarray:
        """The backward pass from dz = dL/dz (N * L_h * L_w, F), the gradient before the
        activation (what a loss fused with a sigmoid hands over) -> dx (N, H, W, C)."""
        x = self._cached().x
        N, H, W, C = x.shape
        (KH, KW), (SH, SW), F = self.kernel_size, self.strides, self.filters
        L_h, L_w, PT, PL = self.geometry(H, W)
        dz = np.ascontiguousarray(dz).reshape(N, L_h, L_w, F)
        dcols = np.empty((N * H * W, KH * KW * F), dtype=dz.dtype)
        im2col(dz, KH, KW, SH, SW, PT, PL, H, W, dcols)
        xs = x.reshape(N * H * W, C)
        self.kernel.grad[...] = (dcols.T @ xs).reshape(self.kernel.grad.shape)
        if self.bias is not None:
            self.bias.grad[...] = dz.reshape(-1, F).sum(axis=0)
        return (dcols @ self.kernel.value.reshape(KH * KW * F, C)).reshape(N, H, W, C)


def _output_padding(value) -> tuple[int, int]:
    """An int or a pair of ints, each >= 0 (0 is allowed, unlike strides)."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(
        value, (tuple, list)) else None
    if (pair is None or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in pair)):
        raise ValueError(
            "Invalid value for argument `output_padding`. Expected None, a non-negative int or "
            f"a tuple of 2 non-negative ints. Received output_padding={value!r}")
    return pair
