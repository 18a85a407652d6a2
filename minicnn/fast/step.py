"""What every step of a plan is, and the step that simply runs one reference layer."""

from __future__ import annotations

from collections.abc import Sequence

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
    # True for a step that cuts its batch into `parallel.chunks` and adds the chunks' partial
    # weight gradients in chunk order; it then hands those partials over with `partials()`.
    chunked: bool = False

    @classmethod
    def takes(cls, layers: Sequence[Layer], k: int) -> int:
        """How many layers from layers[k] this step runs as one (0: it does not apply). The plan
        asks each step of its registry in turn (minicnn/fast/plan.py)."""
        return 0

    @classmethod
    def of(cls, layers: Sequence[Layer], input_gradient: bool) -> Step:
        """The step over `layers` (what `takes` said it takes); `input_gradient`: whether its
        backward must compute dL/dx (something before it has weights to train)."""
        return cls(*layers)

    @property
    def per_sample(self) -> bool:
        """Each sample's output comes from that sample alone, and nothing but weight gradients
        sums over the batch: a data-parallel worker may run the step on its rows."""
        return self.chunked or all(getattr(layer, "per_sample", False) and not layer.weights
                                   for layer in self.layers)

    @property
    def params(self) -> list:
        """The trainable Parameters this step's backward fills, in `partials()` order."""
        return [p for layer in self.layers for p in layer.params]

    def partials(self) -> list[np.ndarray]:
        """After a backward: each of `params`' per-chunk partial gradients, (chunks, ...), in
        chunk order; their sum over axis 0, in that order, is what the step wrote into .grad."""
        raise NotImplementedError(f"{type(self).__name__} does not sum per-chunk partials")

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(layer.name for layer in self.layers)})"


def computes_as(layer: Layer, base: type) -> bool:
    """`layer` is a `base` whose arithmetic is base's own: its class (base or a subclass)
    overrides neither forward nor backward. A fast step for `base` may then run it; a subclass
    that changes the math keeps its own code (a LayerStep)."""
    cls = type(layer)
    return (isinstance(layer, base) and cls.forward is base.forward
            and cls.backward is base.backward)


class LayerStep(Step):
    """A layer run as it is: its own forward and backward, the reference code."""

    @classmethod
    def takes(cls, layers: Sequence[Layer], k: int) -> int:
        return 1

    def __init__(self, layer: Layer) -> None:
        self.layers = (layer,)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return self.layers[0].forward(x, training=training)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.layers[0].backward(dout)
