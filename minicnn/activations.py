"""The activations a layer can end in: `None`/"linear", "relu" and "softmax".

An activation is a stateless pair of functions over arrays of any shape, the function applied
along the last axis. Its backward needs only the output y, so a layer keeps y for it:

    linear:   y = z                           dz = dout
    relu:     y = max(z, 0)                   dz = dout * (y > 0)
    softmax:  y = exp(z) / sum(exp(z))        dz = y * (dout - sum(dout * y))

(The softmax Jacobian is diag(y) - y y^T; the last line is that matrix times dout, per row.)
"""

from __future__ import annotations

import numpy as np


class Activation:
    """y = z. Subclasses override `forward` and `backward`."""

    name = "linear"

    def forward(self, z: np.ndarray) -> np.ndarray:
        """y from the pre-activation z (same shape and dtype)."""
        return z

    def backward(self, dout: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/dz from dout = dL/dy and the forward output y (all the same shape)."""
        return dout

    def __repr__(self) -> str:
        return self.name


class ReLUActivation(Activation):
    name = "relu"

    def forward(self, z):
        return np.maximum(z, 0)

    def backward(self, dout, y):
        return dout * (y > 0)


class SoftmaxActivation(Activation):
    name = "softmax"

    def forward(self, z):
        # Subtracting the row max changes nothing mathematically and keeps exp() finite.
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, dout, y):
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


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
