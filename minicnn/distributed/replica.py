"""The worker side of DataParallel: a replica of the model's front, run on a worker's rows.

The front is the run of plan steps at the start of the model that treat every sample on its own
except for their weight gradients: the fused conv steps (ConvStep, ConvPoolStep), whose batch is
cut into `parallel.chunks(N)` and whose partial gradients are added in chunk order, and
per-sample layers without weights (pooling, Flatten, Dropout, RandomFlip, ...). A worker runs
those steps on its rows of each batch, cut on the same boundaries the local step cuts the whole
batch on, and hands back each chunk's partial gradient, not their sum, so that the driver adds
them exactly as the local step does (floating-point addition is not associative: a sum of two
workers' sums would differ in the last bits).
"""

from __future__ import annotations

import numpy as np

from minicnn.fast import backward_pass, make_plan, parallel
from minicnn.fast.step import Step
from minicnn.models.step import step_generator


def front_length(chain: tuple[Step, ...], whole_model: bool = True) -> int:
    """How many steps at the start of `chain` (the plan's front) workers can run; never the
    model's last step, whose output the loss reads on the driver."""
    k, end = 0, len(chain) - 1 if whole_model else len(chain)
    # step.per_sample: a chunked conv step, or per-sample layers without weights, whose rows
    # are independent: a worker may run it on its share of the batch.
    while k < end and chain[k].per_sample:
        k += 1
    return k


def front_params(steps) -> list:
    """The Parameters of the front's chunked steps, in the order workers return partials."""
    return [p for step in steps if step.chunked for p in step.params]


class RowsOf:
    """A generator stand-in for a drawing layer on a worker: each draw is made for the whole
    batch (n rows), as the local step makes it, and only the worker's rows are handed over."""

    def __init__(self, generator: np.random.Generator, n: int, start: int, stop: int) -> None:
        self.generator, self.n, self.start, self.stop = generator, n, start, stop

    def random(self, size=None, dtype=np.float64, out=None):
        """Generator.random's signature: `size` or `out` of shape (rows, ...)."""
        if out is not None:
            shape = out.shape
        else:
            shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        if shape[0] != self.stop - self.start:
            raise RuntimeError(f"a draw of shape {shape} on a worker holding rows "
                               f"{self.start}:{self.stop} of the batch is not one per sample")
        rows = self.generator.random((self.n, *shape[1:]), dtype=dtype)[self.start:self.stop]
        if out is None:
            return rows
        out[...] = rows
        return out


class Replica:
    """One worker: the model's front layers, rebuilt from their configs, and the training data.

    `specs`: (layer class, config, input_shape, weights) of each front layer, in order; `x`:
    every training sample (from the object store, once per fit); `threads`: minicnn's threads.
    """

    def __init__(self, specs, x: np.ndarray, threads: int) -> None:
        parallel.set_num_threads(threads)
        self.layers = []
        for cls, config, input_shape, weights in specs:
            layer = cls.from_config(config)
            layer.rng = np.random.default_rng(0)  # for the initializers; weights come next
            layer.build(input_shape)
            layer.set_weights(weights)
            self.layers.append(layer)
        self.steps = make_plan(self.layers)
        self.params = front_params(self.steps)
        self.x = x
        self.pieces: list[tuple[int, int]] | None = None

    def ready(self) -> bool:
        """True once the worker has started (the driver waits for it, with a timeout)."""
        return True

    def forward(self, weights: list[np.ndarray], idx: np.ndarray, pieces, n: int, start: int,
                seed: int, iterations: int) -> np.ndarray:
        """The front's output for samples x[idx], rows start:start + len(idx) of a batch of n
        cut into `pieces` (relative to start), with the weights of the step after `iterations`
        steps."""
        for p, w in zip(self.params, weights, strict=True):
            p.value[...] = w
        for k, layer in enumerate(self.layers):  # k: the layer's place in the model
            if getattr(layer, "draws_in_training", False):
                layer.rng = RowsOf(step_generator(seed, layer, iterations, k), n, start,
                                   start + len(idx))
        h = self.x[idx]
        self.pieces = pieces
        with parallel.cut_batches(pieces), parallel.single_threaded_blas():
            for step in self.steps:
                h = step.forward(h, training=True)
        return h

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """From dL/d(front output) of this worker's rows: each conv parameter's partial
        gradients, one per piece, (pieces, ...) in `front_params` order."""
        if self.pieces is None:
            raise RuntimeError("Replica.backward() needs a forward() first")
        with parallel.cut_batches(self.pieces), parallel.single_threaded_blas():
            for _ in backward_pass(self.steps, dout):
                pass
        partials = [part for step in self.steps if step.chunked for part in step.partials()]
        return partials
