"""Which datasets the command line knows, and how to load each for a model.

    DATASETS["cifar10"].load(data)   # (x_train, y_train), (x_test, y_test): float32 in [0, 1]
    recorded_dataset("runs/cifar10/model.npz")   # the set `minicnn train` wrote beside a model

Each `Dataset` names its module in `minicnn.datasets` (its `load_data` and `CLASS_NAMES`), the
shape of one image as the models take it, and the built-in recipe trained on it by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """What the commands need to know of a set in `minicnn.datasets`.

    name: the `--dataset` value, also its module's name; title: its name in messages;
    input_shape: one image as the models take it, (H, W, C); recipe: the `--model` trained on
    it by default; noun: what `predict` calls a class ("digit" for MNIST).
    """

    name: str
    title: str
    input_shape: tuple[int, int, int]
    recipe: str
    noun: str

    @property
    def module(self):
        """`minicnn.datasets.<name>`: its `load_data` and `CLASS_NAMES`."""
        from minicnn import datasets

        return getattr(datasets, self.name)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.module.CLASS_NAMES

    def load(self, data: str | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The set as the models take it.

        Args:
            data: the directory (or, for CIFAR-10, the archive) holding its files; None for the
                loader's own environment variable, else its download cache (see each
                `minicnn.datasets.<name>.load_data`).

        Returns:
            `(x_train, y_train), (x_test, y_test)`: images (N, *input_shape) float32 in [0, 1]
            and labels (N,) uint8 (class indices, not one-hot).

        Raises:
            OSError or ValueError: missing files, a failed download, a malformed file.
        """
        (x_train, y_train), (x_test, y_test) = self.module.load_data(path=data)
        return tuple((scale(x, self.input_shape), y.reshape(-1))
                     for x, y in ((x_train, y_train), (x_test, y_test)))


DATASETS = {d.name: d for d in (
    Dataset("mnist", "MNIST", (28, 28, 1), "mnist_cnn", "digit"),
    Dataset("fashion_mnist", "Fashion-MNIST", (28, 28, 1), "fashion_mnist_cnn", "class"),
    Dataset("cifar10", "CIFAR-10", (32, 32, 3), "cifar10_cnn", "class"),
)}
DATASET_FILE = "dataset.txt"  # `minicnn train` writes the set's name here, beside model.npz


def scale(images: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, *input_shape) in [0, 1], channels-last."""
    return images.reshape(-1, *input_shape) / np.float32(255)  # uint8 / float32 -> float32


def recorded_dataset(model_path: str | os.PathLike) -> Dataset:
    """The set `minicnn train` recorded in DATASET_FILE beside the model, else MNIST.

    Raises:
        ValueError: the file cannot be read, or names no known set.
    """
    recorded = os.path.join(os.path.dirname(os.path.abspath(model_path)), DATASET_FILE)
    try:
        with open(recorded, encoding="utf-8") as f:
            name = f.read(100).strip()  # a name is short; read no more of a stray big file
    except FileNotFoundError:
        return DATASETS["mnist"]
    except (OSError, ValueError) as e:  # unreadable, or not text
        raise ValueError(f"cannot read the dataset name in '{recorded}': {e}") from e
    if name not in DATASETS:
        raise ValueError(f"'{recorded}' names the dataset {name!r}; expected one of "
                         f"{', '.join(DATASETS)} (or pass --dataset)")
    return DATASETS[name]
