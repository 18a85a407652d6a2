"""SeparableConv2D: a depthwise convolution, then a 1x1 convolution mixing the channels.

For x (N, H, W, C), depthwise_kernel (KH, KW, C, M) and pointwise_kernel (1, 1, C * M, F):
    d = depthwise(x, depthwise_kernel)    (N, H_out, W_out, C * M)   DepthwiseConv2D's pass,
                                                                      no bias, no activation
    z = d.reshape(-1, C * M) @ P + b      (N * H_out * W_out, F)      P = pointwise (C * M, F)
    y = activation(z)                     viewed as (N, H_out, W_out, F)
Backward, from dout (N, H_out, W_out, F):
    dz = activation'(dout)                (N * H_out * W_out, F)
    dP = d.T @ dz                         (C * M, F)     db = sum of dz over rows (F,)
    dd = dz @ P.T                         (N * H_out * W_out, C * M)
    dx, ddepthwise_kernel = the depthwise backward of dd (minicnn/layers/depthwise_conv.py)
The pointwise step is a Dense layer applied at every pixel, hence one GEMM each way. Keras puts
the bias after the pointwise step only; its weights are depthwise_kernel, pointwise_kernel,
bias, in that order, as here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn import activations, regularizers
from minicnn.layers._args import check_images, positive_int
from minicnn.layers.depthwise_conv import DepthwiseWindow


class SeparableCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C), the input, contiguous
    d: np.ndarray  # (N * H_out * W_out, C * M), the depthwise output
    y: np.ndarray  # (N * H_out * W_out, F), after the activation


class SeparableConv2D(DepthwiseWindow):
    _config_keys = ("filters", "kernel_size", "strides", "padding", "data_format",
                    "dilation_rate", "depth_multiplier", "activation", "use_bias",
                    "depthwise_initializer", "pointwise_initializer", "bias_initializer",
                    "depthwise_regularizer", "pointwise_regularizer")

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "valid",
                 data_format: str | None = None, dilation_rate=(1, 1), depth_multiplier: int = 1,
                 activation=None, use_bias: bool = True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, pointwise_regularizer=None, input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, input_shape, name, dtype)
        self.filters = positive_int(filters, "filters")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer,
                                                      "depthwise_regularizer")
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer,
                                                      "pointwise_regularizer")

    def penalties(self) -> list:
        """Both kernels' penalties, each by its own regularizer (as Keras adds them)."""
        return [(p, reg) for p, reg in ((getattr(self, "depthwise_kernel", None),
                                         self.depthwise_regularizer),
                                        (getattr(self, "pointwise_kernel", None),
                                         self.pointwise_regularizer))
                if reg is not None and p is not None]

    def build(self, input_shape) -> None:
        check_images(self, input_shape)
        KH, KW = self.kernel_size
        CM = input_shape[-1] * self.depth_multiplier
        self.dtype = self.dtype or np.dtype(np.float32)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", (KH, KW, input_shape[-1], self.depth_multiplier),
            self.depthwise_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, CM, self.filters),
                                                self.pointwise_initializer)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer)
                     if self.use_bias else None)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (None, *self._output_size(input_shape), self.filters)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, F)."""
        x = np.ascontiguousarray(self._prepare(x))
        d4 = self.depthwise(x, self.depthwise_kernel)
        d = d4.reshape(-1, d4.shape[-1])
        z = d @ self.pointwise_kernel.value.reshape(d.shape[1], self.filters)
        if self.bias is not None:
            z += self.bias.value
        y = self.activation.forward(z)
        self.cache = SeparableCache(x, d, y)
        return y.reshape(*d4.shape[:3], self.filters)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, F) -> dx (N, H, W, C); fills every weight's grad."""
        cache = self._cached()
        return self.backward_from_z(self.activation.backward(dout.reshape(cache.y.shape), cache.y))

    def backward_from_z(self, dz: np.ndarray) -> np.ndarray:
        """The backward pass from dz = dL/dz (N * H_out * W_out, F), the gradient before the
        activation -> dx (N, H, W, C)."""
        x, d, _ = self._cached()
        dz = dz.reshape(-1, self.filters)
        pointwise = self.pointwise_kernel.value.reshape(d.shape[1], self.filters)
        self.pointwise_kernel.grad[...] = (d.T @ dz).reshape(self.pointwise_kernel.grad.shape)
        if self.bias is not None:
            self.bias.grad[...] = dz.sum(axis=0)
        return self.depthwise_backward(x, dz @ pointwise.T, self.depthwise_kernel)
