"""Models: `Sequential`, `load_model`, and the notebook's reference model `mnist_cnn`."""

from minicnn.models.reference import mnist_cnn
from minicnn.models.saving import load_model
from minicnn.models.sequential import Sequential

__all__ = ["Sequential", "load_model", "mnist_cnn"]
