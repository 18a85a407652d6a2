"""Models: `Sequential` and `load_model`."""

from minicnn.models.saving import load_model
from minicnn.models.sequential import Sequential

__all__ = ["Sequential", "load_model"]
