"""Tensor: the array `model(x)`, a loss object and an activation return (`backend.Tensor`)."""

from __future__ import annotations

import numpy as np


class Tensor(np.ndarray):
    """A NumPy array that also answers `.numpy()`, as the eager tensors Keras returns from
    `model(x)` and `loss_fn(y_true, y_pred)` do, so tutorial code written for them runs
    unchanged. Everything else about it is NumPy's."""

    def numpy(self) -> np.ndarray:
        """A plain NumPy copy (a 0-d array for a scalar, as TensorFlow's `.numpy()`)."""
        return np.array(self)


def as_tensor(value) -> Tensor:
    return np.asarray(value).view(Tensor)
