"""What every step of a plan is, and the step that simply runs one reference layer."""

from __future__ import annotations

import numpy as np

from minicnn.layers.base import Layer


class Step:
    """One step of a plan: a forward and a backward pass over the layers in `layers`.

    `forward(x, training)` keeps what `backward` needs, like a layer; `backward(dout)` fills the
    `.grad` of every parameter of `layers` and returns dL/dx, or None when the plan made the step
    skip the input gradient (the first step: nothing uses the gradient of the data).
    A step computes what its layers compute one after the other, to float rounding, and leaves
    their weights alone.
    """

    layers: tuple[Layer, ...] = ()

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(layer.name for layer in self.layers)})"


class LayerStep(Step):
    """A layer run as it is: its own forward and backward, the reference code."""

    def __init__(self, layer: Layer) -> None:
        self.layers = (layer,)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.layers[0].forward(x, training=training)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.layers[0].backward(dout)
