"""Keras's `keras.backend` names that a tutorial calls: `clear_session()`, and `Tensor`, the
array `model(x)` and a loss object return."""

from __future__ import annotations

from minicnn._tensor import Tensor, as_tensor  # noqa: F401  (Keras's backend names them)
from minicnn.layers import _names


def clear_session() -> None:
    """Restart automatic layer and model names from zero (conv2d, conv2d_1, ...; functional,
    sequential), as `keras.backend.clear_session()` does. Models already built keep theirs."""
    _names.clear_session()
