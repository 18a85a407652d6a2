"""The README's promises: every name its "What exists" list gives is importable, and its
BatchNormalization/Dropout example runs (on a small generated stand-in for Fashion-MNIST, so
the test reads no file and downloads nothing) and prints what the README says it prints."""

import importlib
import re
from pathlib import Path

import numpy as np
import pytest

from minicnn import activations, losses
from minicnn.datasets import fashion_mnist

README = (Path(__file__).parent.parent / "README.md").read_text()


def section(title: str) -> str:
    """The README's text under `## title`, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


# Each module, and the names the README lists from it.
LISTED = {
    "minicnn.layers": [
        "Input", "Conv2D", "Dense", "Flatten", "MaxPooling2D", "AveragePooling2D",
        "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPool2D", "AvgPool2D",
        "GlobalAvgPool2D", "GlobalMaxPool2D", "Dropout", "BatchNormalization", "Activation",
        "ReLU", "LeakyReLU", "Softmax", "Rescaling", "RandomFlip", "Layer"],
    "minicnn.optimizers": ["SGD", "RMSprop", "Adam", "AdamW"],
    "minicnn.optimizers.schedules": ["ExponentialDecay", "InverseTimeDecay",
                                     "PiecewiseConstantDecay", "CosineDecay"],
    "minicnn.regularizers": ["L1", "L2", "L1L2"],
    "minicnn.callbacks": ["EarlyStopping", "ModelCheckpoint", "CSVLogger", "TerminateOnNaN",
                          "ReduceLROnPlateau", "LearningRateScheduler", "ProgbarLogger",
                          "LearningCheck", "BackwardSummaryLogger", "History"],
    "minicnn.datasets": ["mnist", "fashion_mnist", "cifar10", "idx"],
    "minicnn.models": ["mnist_cnn", "fashion_mnist_cnn", "cifar10_cnn"],
    "minicnn.losses": ["CategoricalCrossentropy", "SparseCategoricalCrossentropy",
                       "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "Huber"],
    "minicnn.metrics": ["Accuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
                        "BinaryAccuracy", "TopKCategoricalAccuracy",
                        "SparseTopKCategoricalAccuracy", "MeanSquaredError",
                        "MeanAbsoluteError", "Precision", "Recall", "AUC"],
    "minicnn.utils": ["image_dataset_from_directory"],
}
ACTIVATIONS = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "linear"]
LOSSES = ["mse", "mae"]


def test_every_name_the_readme_lists_exists():
    listed = section("What exists")
    for module_name, names in LISTED.items():
        module = (importlib.import_module("minicnn.optimizers").schedules
                  if module_name == "minicnn.optimizers.schedules"
                  else importlib.import_module(module_name))
        for name in names:
            assert f"`{name}`" in listed, name
            if module_name == "minicnn.datasets":
                importlib.import_module(f"minicnn.datasets.{name}")
            else:
                assert hasattr(module, name), f"{module_name}.{name}"
    for name in ACTIVATIONS:
        assert f'`"{name}"`' in listed and activations.get(name).name == name
    for name in LOSSES:
        assert f'`"{name}"`' in listed and losses.get(name) is not None
    # And every layer class minicnn has is listed.
    from minicnn import layers
    for name in layers.__all__:
        if isinstance(getattr(layers, name), type) and name != "Parameter":
            assert f"`{name}`" in listed, (
                f"minicnn.layers.{name} exists, but the README's 'What exists' does not list it")


def fake_fashion_mnist(path=None):
    """Fashion-MNIST's dtypes and layout, 256 training and 64 test images."""
    rng = np.random.default_rng(0)
    return ((rng.integers(0, 256, (256, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, 256, dtype=np.uint8)),
            (rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, 64, dtype=np.uint8)))


@pytest.mark.slow  # 10 epochs of 2 steps: a few seconds
def test_the_batchnorm_dropout_example_runs(monkeypatch, capsys):
    text = section("A model with BatchNormalization and Dropout")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setattr(fashion_mnist, "load_data", fake_fashion_mnist)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    for line in ("Total params: 225,418 (880.54 KB)", "Trainable params: 225,226 (879.79 KB)",
                 "Non-trainable params: 192 (768.00 B)"):
        assert line in out and f"`{line}`" in text, line
    assert "Epoch 10/10" in out and re.search(r"^\d\.\d{4}$", out.splitlines()[-1], re.M)
    model = namespace["model"]
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 2 and kinds.count("Dropout") == 3
    # The same model as the recipe it writes out.
    from minicnn.models import fashion_mnist_cnn
    assert kinds == [type(layer).__name__ for layer in fashion_mnist_cnn(seed=0).layers]
    # fit moved the moving statistics, which inference then uses.
    bn = model.layers[kinds.index("BatchNormalization")]
    assert not np.all(bn.moving_mean.value == 0) and not np.all(bn.moving_variance.value == 1)
