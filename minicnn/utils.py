"""Small helpers around the engine, named as in Keras."""

from __future__ import annotations

import operator

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

# Keras's keras.utils.image_dataset_from_directory (its rules: minicnn/datasets/directory.py)
from minicnn.datasets.directory import image_dataset_from_directory

__all__ = ["image_dataset_from_directory", "set_random_seed", "to_categorical"]


def to_categorical(
    y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float32"
) -> np.ndarray:
    """One-hot encode integer class labels, as `keras.utils.to_categorical` does.

    Args:
        y: class labels in [0, num_classes), any shape S. Integer, bool, or float with whole
            values. A trailing dim of size 1, as in (N, 1), is dropped first, like Keras does.
        num_classes: number of classes C; default max(y) + 1.
        dtype: dtype of the result.

    Returns:
        Array of shape S + (C,) (S without its trailing 1), with a 1 at each label's index and 0
        elsewhere.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"Invalid dtype for argument `y`. Expected integer class labels. "
            f"Received y with dtype={y.dtype}."
        )
    if y.dtype.kind == "f":
        # Keras casts to int, which would silently turn 1.5 into 1; only whole values are labels.
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(
                f"Invalid value for argument `y`. Expected integer class labels. "
                f"Received the non-integer label {y[bad].flat[0]}."
            )
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    labels = y.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"Invalid value for argument `y`. Expected labels >= 0. "
            f"Received the negative label {labels.min()}."
        )
    if num_classes is None:
        if labels.size == 0:
            raise ValueError(
                "Invalid value for argument `y`. Expected at least one label to infer "
                f"num_classes from, or an explicit num_classes. Received y with shape {y.shape}."
            )
        num_classes = int(labels.max()) + 1
    else:
        received = num_classes
        try:
            num_classes = operator.index(num_classes)
        except TypeError:
            num_classes = 0  # not an integer: reported below with the value received
        if num_classes < 1:
            raise ValueError(
                f"Invalid value for argument `num_classes`. Expected a positive integer. "
                f"Received num_classes={received!r}."
            )
        if labels.size and labels.max() >= num_classes:
            raise ValueError(
                f"Invalid value for argument `y`. Expected labels below num_classes={num_classes}. "
                f"Received the label {int(labels.max())}."
            )
    one_hot = np.zeros((labels.size, num_classes), dtype=dtype)
    one_hot[np.arange(labels.size), labels.astype(np.intp)] = 1
    return one_hot.reshape((*shape, num_classes))


def set_random_seed(seed: int) -> None:
    """Seed every random choice minicnn makes without a seed of its own, as
    `keras.utils.set_random_seed` does: the weights of layers built outside a seeded model
    (the functional API), the seed a `Model` or `Sequential` takes when given none (its shuffles
    and Dropout masks), and Python's and NumPy's global generators (a layer of your own may use
    them). Call it first, before building the model."""
    import random

    from minicnn import initializers

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Invalid value for argument `seed`. Expected a non-negative integer. "
                         f"Received seed={seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 (the global generator, as Keras seeds it)
    initializers.set_global_seed(int(seed))

