"""Models: `Sequential`, `load_model`, and the notebook's MNIST model `mnist_cnn`."""

from minicnn.models.mnist import mnist_cnn
from minicnn.models.saving import load_model
from minicnn.models.sequential import Sequential

__all__ = ["Sequential", "load_model", "mnist_cnn"]
