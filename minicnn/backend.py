"""Keras's `keras.backend` names that a tutorial calls: `clear_session()`, and `Tensor`, the
array `model(x)` and a loss object return."""

from __future__ import annotations

import numpy as np

from minicnn.layers import _names


class Tensor(np.ndarray):
    """A NumPy array that also answers `.numpy()`, as the eager tensors Keras returns from
    `model(x)` and `loss_fn(y_true, y_pred)` do, so tutorial code written for them runs
    unchanged. Everything else about it is NumPy's."""

    def numpy(self) -> np.ndarray:
        """A plain NumPy copy (a 0-d array for a scalar, as TensorFlow's `.numpy()`)."""
        return np.array(self)


def as_tensor(value) -> Tensor:
    return np.asarray(value).view(Tensor)


def clear_session() -> None:
    """Restart automatic layer and model names from zero (conv2d, conv2d_1, ...; functional,
    sequential), as `keras.backend.clear_session()` does. Models already built keep theirs."""
    _names.clear_session()
