"""PoolStep: an AveragePooling2D, its batch cut into chunks run on threads.

The reference AveragePooling2D loops over window positions in Python, one NumPy call over the
whole batch each (d2l's LeNet, batch 256, 28x28x6, 2x2: 12.4 ms forward and 4.9 ms backward,
two threads). Here each chunk of samples (`parallel.chunks`) runs one numba pass forward and
one backward (minicnn/fast/kernels/pool.py) on whichever of minicnn's threads is free, for
every pool size, stride and padding the layer takes: 0.7 ms and 1.1 ms on that shape, and
about half that since the kernels gather whole rows for few channels (GATHER_MAX_CHANNELS). dx is
the layer's bit for bit, the output to rounding (the layer's mean adds a window's elements in
NumPy's order, the kernel in row-major order).
"""

from __future__ import annotations

import functools

import numpy as np

from minicnn.fast import parallel
from minicnn.fast.kernels.pool import avgpool_backward, avgpool_forward
from minicnn.fast.step import Step, computes_as
from minicnn.layers.avg_pool import AveragePooling2D
from minicnn.layers.base import Layer


def _chunked(kernel, inputs: tuple, rest: tuple, outputs: tuple) -> None:
    """kernel(*[a[chunk] for a in inputs], *rest, *[o[chunk] for o in outputs]) for the batch's
    chunks, on minicnn's threads."""
    def chunk(a: int, b: int) -> None:
        kernel(*[arr[a:b] for arr in inputs], *rest, *[arr[a:b] for arr in outputs])
    parallel.run([functools.partial(chunk, a, b) for a, b in parallel.chunks(len(inputs[0]))])


class PoolStep(Step):
    def __init__(self, pool: AveragePooling2D) -> None:
        if not self.applies(pool):
            raise ValueError(f"PoolStep runs an AveragePooling2D; received {pool!r}")
        self.layers = (pool,)
        self.pool = pool
        self.cache = None

    @staticmethod
    def applies(layer: Layer) -> bool:
        return computes_as(layer, AveragePooling2D)

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return int(cls.applies(layers[k]))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> PoolStep:
        return cls(layers[0])

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, H, W, C) -> y (N, H_out, W_out, C)."""
        pool = self.pool
        x = np.ascontiguousarray(pool._prepare(x))
        N, H, W, C = x.shape
        H_out, W_out, PT, PL = pool.geometry(H, W)
        window = (*pool.pool_size, *pool.strides, PT, PL)
        y = np.empty((N, H_out, W_out, C), dtype=x.dtype)  # handed on: never a reused buffer
        _chunked(avgpool_forward, (x,), window, (y,))
        self.cache = (x.shape, window)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, H_out, W_out, C) -> dx (N, H, W, C)."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        x_shape, window = self.cache
        dx = np.empty(x_shape, dtype=dout.dtype)  # handed on: never a reused buffer
        _chunked(avgpool_backward, (np.ascontiguousarray(dout),), window, (dx,))
        return dx
