"""BatchNormalization over the last axis, as Keras: after Dense (N, F) or Conv2D (N, H, W, C).

Statistics are per channel (the last axis) over every other axis; M below is the number of
elements they are taken over (N for Dense, N * H * W for Conv2D).

    training=True:   mu = mean(x),  var = mean((x - mu)**2)   (the batch's, biased)
                     moving_mean     = moving_mean * momentum + mu * (1 - momentum)
                     moving_variance = moving_variance * momentum + var * (1 - momentum)
    training=False:  mu = moving_mean,  var = moving_variance
    xhat = (x - mu) / sigma,  sigma = sqrt(var + epsilon);  y = gamma * xhat + beta

Updating the moving statistics in forward is a state change that is not a gradient step, and it
is where Keras makes it too. It does not break the rule that only an optimizer changes a
*trainable* weight: the moving statistics are non-trainable (no gradient, no optimizer), they are
not read by a training pass, and the gradient checker runs on a copy of the layer.

Backward, from dout = dL/dy (docs/backprop.md, "BatchNormalization", derives it):
    dgamma = sum(dout * xhat);  dbeta = sum(dout);  dxhat = dout * gamma
    training:  dx = (1 / M) / sigma * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    inference: dx = dxhat / sigma   (mu and sigma are constants then)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minicnn.layers.base import Layer


class BatchNormCache(NamedTuple):
    xhat: np.ndarray  # (N, ..., C), the normalized input
    inv_sigma: np.ndarray  # (C,), 1 / sqrt(var + epsilon) of the statistics used
    training: bool  # batch statistics (True) or the moving ones (False)


class BatchNormalization(Layer):
    _config_keys = ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                    "gamma_initializer", "moving_mean_initializer",
                    "moving_variance_initializer")

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", input_shape=None, *,
                 name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape)
        self.axis = axis
        self.momentum = float(momentum)
        if not epsilon > 0:
            raise ValueError("Invalid value for argument `epsilon`. Expected a strictly positive "
                             f"value. Received epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer

    def build(self, input_shape) -> None:
        rank = len(input_shape)
        if self.axis not in (-1, rank - 1) or input_shape[-1] is None:
            raise ValueError(
                f"Layer '{self.name}' (BatchNormalization) normalizes the last (channels) axis "
                f"of a known size: expected axis=-1, received axis={self.axis} for input_shape="
                f"{tuple(input_shape)}")
        self.dtype = self.dtype or np.dtype(np.float32)
        shape = (input_shape[-1],)
        self.gamma = (self.add_weight("gamma", shape, self.gamma_initializer)
                      if self.scale else None)
        self.beta = (self.add_weight("beta", shape, self.beta_initializer)
                     if self.center else None)
        self.moving_mean = self.add_weight("moving_mean", shape,
                                           self.moving_mean_initializer,
                                           trainable=False)
        # A variance is >= 0 (0 is a channel that never varied, after a long run): a file or
        # set_weights with a negative one would normalise by sqrt(negative + epsilon) = NaN.
        self.moving_variance = self.add_weight(
            "moving_variance", shape, self.moving_variance_initializer, trainable=False)
        self.moving_variance.minimum = 0.0
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ..., C) -> y (N, ..., C)."""
        x = self._prepare(x)
        axes = tuple(range(x.ndim - 1))  # every axis but the channels
        # Frozen (trainable=False), it normalises with its moving statistics even inside fit,
        # and leaves them alone: Keras's rule, so that fine-tuning does not wreck them.
        training = bool(training) and self.trainable
        if training:
            mu, var = x.mean(axis=axes), x.var(axis=axes)
            m = self.momentum
            self.moving_mean.value[...] = self.moving_mean.value * m + mu * (1 - m)
            self.moving_variance.value[...] = self.moving_variance.value * m + var * (1 - m)
        else:
            mu, var = self.moving_mean.value, self.moving_variance.value
        inv_sigma = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        xhat = (x - mu) * inv_sigma
        self.cache = BatchNormCache(xhat, inv_sigma, bool(training))
        y = xhat * self.gamma.value if self.gamma is not None else xhat.copy()
        if self.beta is not None:
            y += self.beta.value
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ..., C) -> dx (N, ..., C); fills gamma.grad and beta.grad."""
        xhat, inv_sigma, training = self._cached()
        axes = tuple(range(dout.ndim - 1))
        if self.gamma is not None:
            self.gamma.grad[...] = (dout * xhat).sum(axis=axes)
        if self.beta is not None:
            self.beta.grad[...] = dout.sum(axis=axes)
        dxhat = dout * self.gamma.value if self.gamma is not None else dout
        if not training:
            return dxhat * inv_sigma
        M = dout.size // dout.shape[-1]
        return (inv_sigma / M) * (M * dxhat - dxhat.sum(axis=axes)
                                  - xhat * (dxhat * xhat).sum(axis=axes))
