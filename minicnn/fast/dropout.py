"""DropoutStep: a Dropout whose mask and output are made in one pass.

The uniforms come from the layer's generator through the call the layer makes,
`rng.random(x.shape)` (here into a reused buffer, `rng.random(out=u)`: the same draws), so a fit
with fast=True drops exactly the units a fit with fast=False drops. The step leaves the layer's
own DropoutCache (the scaled mask, x's shape and dtype) in `layer.cache`, as the layer does, and
backward is the layer's `dout * mask`, already one pass. With a `noise_shape` (a mask broadcast
over some axes) or outside training, the step is the layer.
"""

from __future__ import annotations

import numpy as np

from minicnn.fast.kernels.batch_norm import dropout_forward
from minicnn.fast.step import Step, computes_as
from minicnn.fast.workspace import Workspace
from minicnn.layers.base import Layer
from minicnn.layers.dropout import Dropout, DropoutCache


class DropoutStep(Step):
    def __init__(self, layer: Dropout) -> None:
        if not self.applies(layer):
            raise ValueError(f"DropoutStep runs a Dropout; received {layer!r}")
        self.layers = (layer,)
        self.dropout = layer
        self.workspace = Workspace()

    @staticmethod
    def applies(layer: Layer) -> bool:
        return computes_as(layer, Dropout)

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return int(cls.applies(layers[k]))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> DropoutStep:
        return cls(layers[0])

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ...) -> y (N, ...), the same shape and dtype."""
        layer = self.dropout
        if not training or layer.rate == 0 or layer.noise_shape is not None:
            return layer.forward(x, training=training)
        x = np.ascontiguousarray(x)
        if layer.rng is None:  # as the layer: used on its own, without a model or a seed
            layer.rng = np.random.default_rng()
        u = self.workspace.get("u", x.shape, np.float64)  # never leaves the step
        layer.rng.random(out=u)
        scale = np.ones((), x.dtype) / x.dtype.type(1 - layer.rate)  # as the layer rounds it
        mask = np.empty(x.shape, dtype=x.dtype)  # kept in the layer's cache: never reused
        y = np.empty(x.shape, dtype=x.dtype)
        dropout_forward(x.reshape(-1), u.reshape(-1), layer.rate, scale.item(),
                        mask.reshape(-1), y.reshape(-1))
        layer.cache = DropoutCache(mask)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ...) -> dx (N, ...) = dout * mask: the layer's own backward."""
        return self.dropout.backward(dout)
