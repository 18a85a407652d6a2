"""make_plan: which steps run a model's layers, in order.

    Conv2D(relu) + MaxPooling2D that qualify   -> ConvPoolStep (one fused pass)
    any other Conv2D with 'relu' or no activation -> ConvStep (chunked on threads)
    BatchNormalization (+ a non-overlapping 'valid' MaxPooling2D after it)
                                                -> BatchNormStep (the pool joins its pass)
    Dropout                                     -> DropoutStep (mask and output in one pass)
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

from minicnn.fast.batch_norm import BatchNormStep
from minicnn.fast.conv import ConvStep
from minicnn.fast.conv_pool import ConvPoolStep
from minicnn.fast.dropout import DropoutStep
from minicnn.fast.step import LayerStep, Step
from minicnn.layers.base import Layer


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
        if k + 1 < len(layers) and ConvPoolStep.applies(layers[k], layers[k + 1]):
            steps.append(ConvPoolStep(layers[k], layers[k + 1], input_gradient))
            k += 2
        elif ConvStep.applies(layers[k]):
            steps.append(ConvStep(layers[k], input_gradient))
            k += 1
        elif k + 1 < len(layers) and BatchNormStep.applies(layers[k], layers[k + 1]):
            steps.append(BatchNormStep(layers[k], layers[k + 1], input_gradient))
            k += 2
        elif BatchNormStep.applies(layers[k]):
            steps.append(BatchNormStep(layers[k], None, input_gradient))
            k += 1
        elif DropoutStep.applies(layers[k]):
            steps.append(DropoutStep(layers[k]))
            k += 1
        else:
            steps.append(LayerStep(layers[k]))
            k += 1
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
