"""Scratch arrays reused from one step to the next, bounded by the largest batch seen.

A conv layer's im2col matrix and its gradient are tens of MB at batch 128. Fresh from the
allocator each step, their pages are faulted in and zeroed by the kernel every time (measured:
two 14.7 MB buffers cost 2.6 ms fresh against 0.4 ms reused). Only temporaries that never leave
the step belong here, never an array handed to the caller.

Each name keeps one buffer, as large as the largest array ever asked for under it; a smaller
request (the last, partial batch; a validation batch) is a view of its start. So memory does
not grow with the number of distinct batch sizes a model meets.
"""

from __future__ import annotations

import math

import numpy as np


class Workspace:
    def __init__(self) -> None:
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """An uninitialised C-contiguous array of `shape` and `dtype`, sharing memory with every
        other array asked for under `name` (so never two of them alive at once)."""
        key = (name, np.dtype(dtype))
        size = math.prod(shape)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[key] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)
