"""Models: `Sequential`, `load_model` (and its `ModelFileError`), the notebook's `mnist_cnn`."""

from minicnn.models.mnist import mnist_cnn
from minicnn.models.model_file import ModelFileError
from minicnn.models.saving import load_model
from minicnn.models.sequential import Sequential

__all__ = ["ModelFileError", "Sequential", "load_model", "mnist_cnn"]
