"""Models: `Model` (the functional API), `Sequential`, `load_model` (and its `ModelFileError`),
and the built-in recipes."""

from minicnn.models.functional import Model
from minicnn.models.keras_twin import to_keras
from minicnn.models.model_file import ModelFileError
from minicnn.models.recipes import (
    RECIPES,
    cifar10_cnn,
    fashion_mnist_cnn,
    lenet,
    mnist_cnn,
    resnet20,
    resnet_cifar,
)
from minicnn.models.saving import clone_model, load_model, model_from_json
from minicnn.models.sequential import Sequential

__all__ = ["RECIPES", "Model", "ModelFileError", "Sequential", "cifar10_cnn", "clone_model",
           "fashion_mnist_cnn", "lenet", "load_model", "mnist_cnn", "model_from_json", "resnet20",
           "resnet_cifar", "to_keras"]
