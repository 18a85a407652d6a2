"""make_plan: which steps run a chain of layers, in order (a graph's chains: graph_plan.py).

    Conv2D(relu, leaky_relu, elu, sigmoid or tanh) + MaxPooling2D that qualify
                                                -> ConvPoolStep (one fused pass)
    any other Conv2D                            -> ConvStep (chunked on threads)
    Conv2DTranspose                             -> ConvTransposeStep (chunked on threads)
    DepthwiseConv2D, SeparableConv2D            -> DepthwiseStep (chunked on threads)
      (each with any activation of minicnn.activations; a sigmoid or softmax one that ends the
      chain, which a loss may fuse with, is a LayerStep)
    BatchNormalization (+ a non-overlapping 'valid' MaxPooling2D, or a ReLU, after it)
                                                -> BatchNormStep (the pool or ReLU joins its
                                                   passes)
    Dropout                                     -> DropoutStep (mask and output in one pass)
    AveragePooling2D                            -> PoolStep (one numba pass each way, chunked)
    Activation, ReLU, LeakyReLU, Softmax        -> ActivationStep (one numba pass, or a ufunc
                                                   between two)
    any other layer (Dense, Flatten, a softmax head, a layer of your own) -> LayerStep (itself)

No step computes an input gradient that nothing would use: the first step with weights to
train skips it (the gradient of the data, or of what augmentation or Rescaling made of it), and
the steps before that one get no backward call at all (a backward pass stops at the first step
that returns None: `backward_pass`).
With fast=False every layer is a LayerStep: the reference code, one layer at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from minicnn.fast.activation import ActivationStep
from minicnn.fast.batch_norm import BatchNormStep
from minicnn.fast.conv import ConvStep
from minicnn.fast.conv_pool import ConvPoolStep
from minicnn.fast.conv_transpose import ConvTransposeStep
from minicnn.fast.depthwise import DepthwiseStep
from minicnn.fast.dropout import DropoutStep
from minicnn.fast.pool import PoolStep
from minicnn.fast.step import LayerStep, Step
from minicnn.layers.base import Layer

# The steps the plan may use, asked in this order whether they take the layers at position k
# (`Step.takes`); the first that does runs them, and a LayerStep runs any other layer as it is.
# A step matches a layer by what it computes, not by its exact class: a subclass of Conv2D that
# overrides neither forward nor backward keeps the fast path (`step.computes_as`).
REGISTRY: tuple[type[Step], ...] = (ConvPoolStep, ConvStep, ConvTransposeStep, BatchNormStep,
                                    DropoutStep, DepthwiseStep, ActivationStep, PoolStep)


def make_plan(layers: Sequence[Layer], fast: bool = True,
              upstream_params: bool = False) -> tuple[Step, ...]:
    """The steps that run `layers` (all built) forward in order, and backward in reverse.
    `upstream_params`: something before the first layer has weights to train, so even the
    first step must compute its input gradient (a chain inside a graph)."""
    if not fast:
        return tuple(LayerStep(layer) for layer in layers)
    steps: list[Step] = []
    k = 0
    while k < len(layers):
        input_gradient = upstream_params or any(layer.params for layer in layers[:k])
        step_class, n = next(((cls, n) for cls in REGISTRY if (n := cls.takes(layers, k))),
                             (LayerStep, 1))
        steps.append(step_class.of(layers[k:k + n], input_gradient))
        k += n
    return tuple(steps)


def backward_pass(steps: Sequence[Step], dout: np.ndarray | None
                  ) -> Iterator[tuple[Step, np.ndarray, np.ndarray | None]]:
    """Run `steps` backward from dout, last first, yielding (step, its dout, its dx) for each.

    It stops after a step returns None: the plan made it skip its input gradient because
    nothing before it has weights to train, so the steps before it need no backward call.
    """
    for step in reversed(steps):
        if dout is None:
            return
        dx = step.backward(dout)
        yield step, dout, dx
        dout = dx
