"""MergeStep: an Add or an Average, and the ReLU after it if any, in one pass each way.

ResNet's blocks end in Add -> ReLU. The reference Add copies its first input and adds the
others into the copy (two passes), and the ReLU after it reads that sum and writes another
array, then its backward writes the masked gradient. Here the batch is cut into chunks
(`parallel.chunks`) run on minicnn's threads, and each chunk's sum is added, averaged and
clamped while it is in cache (`bias_relu` with a zero bias), written once; backward the
ReLU's mask is applied in one pass (`relu_backward`, from the output y as the ReLU layer
does). Every operation is the reference's own NumPy operation or the same comparison, in the
same order and dtype, so the output and every gradient are the layers' bit for bit, NaN and
infinities included.

As the Add layer hands one array back to all its inputs (dx_i = dout), so does the step: one
array for every input. With a ReLU or an Average that array is new, made by this backward and
held by nothing else (`new_dx`), so the graph plan may add a fan-out gradient into it in place
once its other readers are done (minicnn/fast/graph_plan.py).

The other merge layers stay LayerSteps: Concatenate and Subtract already make their output in
one NumPy pass and their gradients as views (Concatenate) or one pass (Subtract), and Multiply
is rare.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from minicnn.fast import parallel
from minicnn.fast.batch_norm import is_relu
from minicnn.fast.kernels.activations import bias_relu, relu_backward
from minicnn.fast.step import Step, computes_as
from minicnn.layers.base import Layer
from minicnn.layers.merge import Add, Average


class MergeStep(Step):
    def __init__(self, merge: Add | Average, relu: Layer | None = None) -> None:
        """relu: the Activation('relu') or ReLU layer after the merge that joins it, or None."""
        if not self.applies(merge, relu):
            raise ValueError(f"MergeStep runs an Add or an Average, optionally with a ReLU "
                             f"after it; received {merge!r}, {relu!r}")
        self.layers = (merge,) if relu is None else (merge, relu)
        self.merge = merge
        self.relu = relu is not None
        self.average = computes_as(merge, Average)
        self.cache = None

    @staticmethod
    def applies(merge: Layer, relu: Layer | None = None) -> bool:
        return ((computes_as(merge, Add) or computes_as(merge, Average))
                and (relu is None or is_relu(relu)))

    @classmethod
    def takes(cls, layers: Sequence[Layer], k: int) -> int:
        if k + 1 < len(layers) and cls.applies(layers[k], layers[k + 1]):
            return 2
        return int(cls.applies(layers[k]))

    @classmethod
    def of(cls, layers: Sequence[Layer], input_gradient: bool) -> MergeStep:
        return cls(*layers)

    @property
    def new_dx(self) -> bool:
        """Whether backward returns an array it made (else it hands back its dout, as Add)."""
        return self.relu or self.average

    def forward(self, inputs, training: bool = False) -> np.ndarray:
        """[x_1 (N, ...), ..., x_n] -> y (N, ...): their sum (or mean), after the ReLU if any."""
        xs = [np.ascontiguousarray(x) for x in self.merge._inputs(inputs)]
        n = xs[0].dtype.type(len(xs))  # as the Average layer divides: in the inputs' dtype
        y = np.empty(xs[0].shape, dtype=xs[0].dtype)  # handed on: never a reused buffer
        width = y.shape[-1]
        no_bias = np.zeros(width, dtype=y.dtype)

        def chunk(a: int, b: int) -> None:
            out = y[a:b]
            np.add(xs[0][a:b], xs[1][a:b], out=out)
            for x in xs[2:]:
                np.add(out, x[a:b], out=out)
            if self.average:
                np.divide(out, n, out=out)
            if self.relu:
                # max(v + 0, 0), NaN kept: the ReLU's np.maximum(v, 0), 2.5x faster (measured
                # 0.34 against 0.86 ms on 128x32x32x16: np.maximum's NaN check is no SIMD max)
                bias_relu(out.reshape(-1, width), no_bias)

        parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(len(y))])
        self.cache = (len(xs), y if self.relu else None)
        return y

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """dout (N, ...) -> [dx_1, ..., dx_n], one array n times: dout, masked by the ReLU,
        divided by n for an Average."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        count, y = self.cache
        if not self.new_dx:
            return [dout] * count
        dout = np.ascontiguousarray(dout)
        n = dout.dtype.type(count)
        dx = np.empty(dout.shape, dtype=dout.dtype)  # handed on: never a reused buffer

        width = dout.shape[-1]

        def chunk(a: int, b: int) -> None:
            if self.relu:
                relu_backward(dout[a:b].reshape(-1, width), y[a:b].reshape(-1, width),
                              dx[a:b].reshape(-1, width))
            if self.average:
                np.divide(dx[a:b] if self.relu else dout[a:b], n, out=dx[a:b])

        parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(len(dx))])
        return [dx] * count
