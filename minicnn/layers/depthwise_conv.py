"""DepthwiseConv2D: each input channel convolved with its own depth_multiplier filters.

For x (N, H, W, C) and kernel (KH, KW, C, M) (M = depth_multiplier, Keras's layout), output
channel c * M + m sees input channel c only (TensorFlow's order). With (h, w) the input pixel
tap (kh, kw) of output pixel (i, j) reads, h = i*SH - PT + kh and w = j*SW - PL + kw:
    z[n, i, j, c*M + m] = sum_{kh, kw} x[n, h, w, c] * kernel[kh, kw, c, m]   (0 off the input)
    z += b                                    b (C * M,)
    y = activation(z)                         (N, H_out, W_out, C * M)
z is linear in x and in the kernel, so with dz = activation'(dout) (N, H_out, W_out, C * M):
    dkernel[kh, kw, c, m] = sum_{n, i, j} x[n, h, w, c] * dz[n, i, j, c*M + m]     (KH, KW, C, M)
    dx[n, h, w, c]        = sum over the (i, j, kh, kw) that read (h, w) and every m of
                            dz[n, i, j, c*M + m] * kernel[kh, kw, c, m]            (N, H, W, C)
    db                    = sum of dz over (n, i, j)                               (C * M,)
Unlike Conv2D there is no GEMM: each channel has its own KH * KW weights, so the three sums
are loops (minicnn/kernels/depthwise.py). Geometry and "same" padding are Conv2D's
(`window_geometry`: the odd extra row and column at the bottom and right, as TensorFlow).

`DepthwiseWindow` is what SeparableConv2D shares with this layer: the window arguments, the
geometry and the depthwise pass with its backward (minicnn/layers/separable_conv.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import activations, regularizers
from minicnn.kernels.depthwise import (
    depthwise_backward_input,
    depthwise_backward_kernel,
    depthwise_forward,
)
from minicnn.layers._args import (
    check_images,
    conv_geometry,
    padding_mode,
    positive_int,
    positive_pair,
)
from minicnn.layers.base import Layer, Parameter


class DepthwiseWindow(Layer):
    """The arguments, geometry and depthwise pass DepthwiseConv2D and SeparableConv2D share."""

    def __init__(self, kernel_size, strides, padding: str, depth_multiplier: int,
                 data_format: str | None, dilation_rate, input_shape, name, dtype):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.kernel_size = positive_pair(kernel_size, "kernel_size")
        self.strides = positive_pair(strides, "strides")
        self.padding = padding_mode(padding)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier")
        if data_format not in (None, "channels_last"):
            raise ValueError("Invalid value for argument `data_format`. Expected "
                             f"'channels_last' (minicnn is NHWC). Received data_format="
                             f"{data_format!r}")
        self.data_format = "channels_last"
        if positive_pair(dilation_rate, "dilation_rate") != (1, 1):
            raise ValueError(f"Invalid value for argument `dilation_rate`. Expected 1 (minicnn's "
                             f"{type(self).__name__} has no dilation). Received dilation_rate="
                             f"{dilation_rate!r}")
        self.dilation_rate = (1, 1)

    def geometry(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(H_out, W_out, PT, PL): the output size and the padding at the top and left."""
        return conv_geometry(self, H, W)

    def _output_size(self, input_shape) -> tuple:
        _, H, W, _ = input_shape
        return self.geometry(H, W)[:2] if None not in (H, W) else (None, None)

    def depthwise(self, x: np.ndarray, kernel: Parameter) -> np.ndarray:
        """x (N, H, W, C), contiguous -> the depthwise convolution (N, H_out, W_out, C * M)."""
        N, H, W, C = x.shape
        H_out, W_out, PT, PL = self.geometry(H, W)
        z = np.empty((N, H_out, W_out, C * self.depth_multiplier), dtype=x.dtype)
        depthwise_forward(x, kernel.value, *self.strides, PT, PL, z)
        return z

    def depthwise_backward(self, x: np.ndarray, dz: np.ndarray, kernel: Parameter) -> np.ndarray:
        """dz (N, H_out, W_out, C * M) -> dx (N, H, W, C); fills kernel.grad."""
        H_out, W_out, PT, PL = self.geometry(*x.shape[1:3])
        dz = np.ascontiguousarray(dz).reshape(x.shape[0], H_out, W_out, -1)
        depthwise_backward_kernel(x, dz, *self.strides, PT, PL, kernel.grad)
        dx = np.empty(x.shape, dtype=dz.dtype)
        depthwise_backward_input(dz, kernel.value, *self.strides, PT, PL, dx)
        return dx


class DepthwiseCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C), the input, contiguous
    z: np.ndarray  # (N * H_out * W_out, C * M), before the activation
    y: np.ndarray  # (N * H_out * W_out, C * M), after it


class DepthwiseConv2D(DepthwiseWindow):
    _config_keys = ("kernel_size", "strides", "padding", "depth_multiplier", "data_format",
                    "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                    "bias_initializer", "depthwise_regularizer")

    def __init__(self, kernel_size, strides=(1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, data_format: str | None = None, dilation_rate=(1, 1),
                 activation=None, use_bias: bool = True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, input_shape, name, dtype)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        # Keras 3 names this layer's weight `kernel`; under `kernel_regularizer` its penalty is
        # the one fit adds for every layer's kernel (minicnn/models/step.py).
        self.kernel_regularizer = self.depthwise_regularizer

    def build(self, input_shape) -> None:
        check_images(self, input_shape)
        KH, KW = self.kernel_size
        C, M = input_shape[-1], self.depth_multiplier
        self.dtype = self.dtype or np.dtype(np.float32)
        self.kernel = self.add_weight("kernel", (KH, KW, C, M), self.depthwise_initializer)
        self.bias = (self.add_weight("bias", (C * M,), self.bias_initializer)
                     if self.use_bias else None)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (None, *self._output_size(input_shape), input_shape[-1] * self.depth_multiplier)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, C * M)."""
        x = np.ascontiguousarray(self._prepare(x))
        z4 = self.depthwise(x, self.kernel)
        z = z4.reshape(-1, z4.shape[-1])
        if self.bias is not None:
            z += self.bias.value
        y = self.activation.forward(z)
        self.cache = DepthwiseCache(x, z, y)
        return y.reshape(z4.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, C * M) -> dx (N, H, W, C); fills kernel.grad and bias.grad."""
        cache = self._cached()
        return self.backward_from_z(self.activation.backward(dout.reshape(cache.y.shape), cache.y))

    def backward_from_z(self, dz: np.ndarray) -> np.ndarray:
        """The backward pass from dz = dL/dz (N * H_out * W_out, C * M), the gradient before
        the activation -> dx (N, H, W, C)."""
        x = self._cached().x
        if self.bias is not None:
            self.bias.grad[...] = dz.reshape(-1, self.bias.grad.shape[0]).sum(axis=0)
        return self.depthwise_backward(x, dz, self.kernel)
