"""The activations a layer can end in, by name: `None`/"linear", "relu", "leaky_relu", "elu",
"sigmoid", "tanh" and "softmax" (Keras's names and defaults).

An activation is a stateless pair of functions over arrays of any shape (softmax along the last
axis). Its backward needs only the output y, so a layer keeps y for it:

    linear:      y = z                               dz = dout
    relu:        y = max(z, 0)                       dz = dout * (y > 0)
    leaky_relu:  y = z if z > 0 else a * z (a=0.2)   dz = dout * (1 if y > 0 else a)
    elu:         y = z if z > 0 else a * (e^z - 1)   dz = dout * (1 if y > 0 else y + a)
    sigmoid:     y = 1 / (1 + e^-z)                  dz = dout * y * (1 - y)
    tanh:        y = tanh(z)                         dz = dout * (1 - y^2)
    softmax:     y = exp(z) / sum(exp(z))            dz = y * (dout - sum(dout * y))

For relu, leaky_relu and elu (a > 0), y > 0 exactly where z > 0, so y tells the branch; elu's
negative branch has derivative a * e^z = y + a. At z = 0 each takes the z <= 0 branch, as
TensorFlow's gradients do.
(The softmax Jacobian is diag(y) - y y^T; its line is that matrix times dout, per row.)
`losses.LossHead` fuses only softmax with the cross-entropy; every other activation is
differentiated through its backward here.
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

    def __call__(self, x) -> np.ndarray:
        """Keras's `keras.activations.relu(x)`: the function itself, on any array (a
        `backend.Tensor`, which answers `.numpy()` as Keras's tensors do)."""
        from minicnn._tensor import as_tensor

        return as_tensor(self.forward(np.asarray(x)))

    def __repr__(self) -> str:
        return self.name

    def __reduce_ex__(self, protocol):
        # A copied or pickled layer (a deep copy for a gradient check, a Ray replica) keeps
        # the module's own activation object: the fast plan and the fused loss head recognise
        # an activation by identity (`is activations.relu`).
        if _BY_NAME.get(self.name) is self:
            return (_shared, (self.name,))
        return super().__reduce_ex__(protocol)


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


class LeakyReLUActivation(Activation):
    """Keras's `activations.leaky_relu(x, negative_slope=0.2)`; the LeakyReLU layer uses 0.3."""

    def __init__(self, negative_slope: float = 0.2):
        self.negative_slope = float(negative_slope)
        if not self.negative_slope >= 0:  # backward reads the branch from y's sign
            raise ValueError(f"Invalid value for argument `negative_slope`. Expected a value "
                             f">= 0. Received negative_slope={negative_slope}")
        # Saved by name: only the default may take the plain one, so that another slope saved
        # in a Dense is refused at load rather than silently read back as 0.2.
        self.name = "leaky_relu" if self.negative_slope == 0.2 else (
            f"leaky_relu(negative_slope={self.negative_slope})")

    def forward(self, z):
        return np.where(z > 0, z, z * z.dtype.type(self.negative_slope))

    def backward(self, dout, y):
        # y > 0 exactly where z > 0, since the slope is positive.
        return np.where(y > 0, dout, dout * dout.dtype.type(self.negative_slope))


class ELUActivation(Activation):
    def __init__(self, alpha: float = 1.0):
        self.alpha = float(alpha)
        if not self.alpha >= 0:  # backward reads the branch from y's sign
            raise ValueError(f"Invalid value for argument `alpha`. Expected a value >= 0. "
                             f"Received alpha={alpha}")
        self.name = "elu" if self.alpha == 1.0 else f"elu(alpha={self.alpha})"  # as leaky_relu

    def forward(self, z):
        a = z.dtype.type(self.alpha)
        # expm1 of min(z, 0): exact near 0 and never overflows on the branch np.where discards.
        return np.where(z > 0, z, a * np.expm1(np.minimum(z, 0)))

    def backward(self, dout, y):
        # z <= 0 gives y = a * (e^z - 1) <= 0, whose derivative a * e^z is y + a.
        return np.where(y > 0, dout, dout * (y + y.dtype.type(self.alpha)))


class SigmoidActivation(Activation):
    name = "sigmoid"

    def forward(self, z):
        # 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below: neither exp can overflow.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)

    def backward(self, dout, y):
        return dout * y * (1 - y)


class TanhActivation(Activation):
    name = "tanh"

    def forward(self, z):
        return np.tanh(z)

    def backward(self, dout, y):
        return dout * (1 - y * y)


linear = Activation()
relu = ReLUActivation()
leaky_relu = LeakyReLUActivation()
elu = ELUActivation()
sigmoid = SigmoidActivation()
tanh = TanhActivation()
softmax = SoftmaxActivation()
_BY_NAME = {a.name: a for a in (linear, relu, leaky_relu, elu, sigmoid, tanh, softmax)}


def _shared(name: str) -> Activation:
    """The module's activation named `name` (what a copied layer's activation becomes)."""
    return _BY_NAME[name]


def get(identifier: str | Activation | None) -> Activation:
    """The activation named `identifier` (a key of `_BY_NAME`, or None for linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    raise ValueError(
        "Invalid value for argument `activation`. Expected None or one of "
        f"{', '.join(repr(k) for k in _BY_NAME)}. Received activation={identifier!r}"
    )
