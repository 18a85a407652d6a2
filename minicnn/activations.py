"""The activations a layer can end in: `None`/"linear", "relu" and "softmax".

An activation here is stateless. Its forward adds the layer's bias and applies the function (in
place, on the pre-activation z the layer just computed), and its backward needs only the output y:

    relu:     dz = dout * (y > 0)
    softmax:  dz = y * (dout - sum(dout * y, axis=-1))
    linear:   dz = dout

so a layer caches y, never z. Arrays are (M, F) with the activation along the last axis.
"""

from __future__ import annotations

import numpy as np

from minicnn.kernels import bias_relu, relu_backward


class Activation:
    name = "linear"

    def forward(self, z: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """y (M, F) from the pre-activation z (M, F), which it may overwrite, plus bias (F,)."""
        if bias is not None:
            z += bias
        return z

    def backward(self, dout: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/dz (M, F) from dL/dy and y, both (M, F)."""
        return dout

    def __repr__(self) -> str:
        return self.name


class ReLUActivation(Activation):
    name = "relu"

    def forward(self, z, bias):
        if bias is None:
            return np.maximum(z, 0, out=z)
        bias_relu(z, bias)
        return z

    def backward(self, dout, y):
        dout = np.ascontiguousarray(dout)
        dz = np.empty_like(dout)
        relu_backward(dout, y, dz)
        return dz


class SoftmaxActivation(Activation):
    name = "softmax"

    def forward(self, z, bias):
        if bias is not None:
            z += bias
        # Subtracting the row max keeps exp() finite for logits of any size.
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z

    def backward(self, dout, y):
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


def apply(activation: Activation, z: np.ndarray, bias: np.ndarray | None):
    """(y, logits): the activation of z + bias, and for a softmax a copy of its input z + bias,
    which the cross-entropy needs to report Keras's value and to fuse its gradient."""
    if activation is not softmax:
        return activation.forward(z, bias), None
    if bias is not None:
        z += bias
    logits = z.copy()
    return activation.forward(z, None), logits


linear = Activation()
relu = ReLUActivation()
softmax = SoftmaxActivation()
_BY_NAME = {"linear": linear, "relu": relu, "softmax": softmax}


def get(identifier: str | Activation | None) -> Activation:
    """The activation named `identifier` ("relu", "softmax", "linear" or None)."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    raise ValueError(
        "Invalid value for argument `activation`. Expected one of None, 'linear', 'relu', "
        f"'softmax'. Received activation={identifier!r}"
    )
