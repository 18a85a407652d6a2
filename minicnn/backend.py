"""Keras's `keras.backend` names that a tutorial calls: `clear_session()`."""

from __future__ import annotations

from minicnn.layers import _names


def clear_session() -> None:
    """Restart automatic layer and model names from zero (conv2d, conv2d_1, ...; functional,
    sequential), as `keras.backend.clear_session()` does. Models already built keep theirs."""
    _names.clear_session()
