"""Models: `Model` (the functional API), `Sequential`, `load_model` (and its `ModelFileError`),
and the built-in recipes."""

from minicnn.models.functional import Model
from minicnn.models.model_file import ModelFileError
from minicnn.models.recipes import RECIPES, cifar10_cnn, fashion_mnist_cnn, mnist_cnn
from minicnn.models.saving import load_model
from minicnn.models.sequential import Sequential

__all__ = ["RECIPES", "Model", "ModelFileError", "Sequential", "cifar10_cnn", "fashion_mnist_cnn",
           "load_model", "mnist_cnn"]
