"""Metrics that compare labels with predictions: `accuracy` and `confusion_matrix`.

Both take labels in either form the engine meets: class indices (N,), or rows (N, K) (one-hot
labels, or the probabilities `model.predict` returns), whose argmax is the class. Bad inputs raise
a ValueError that names the argument.

`ACCURACY_NAMES` are the names `compile(metrics=[...])` accepts for accuracy, as Keras does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ACCURACY_NAMES", "accuracy", "class_labels", "confusion_matrix"]

# Keras's names for accuracy; `fit` logs the metric under the name it was compiled with.
ACCURACY_NAMES = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


def accuracy(y_true, y_pred) -> float:
    """The share of samples whose predicted class is the true class, in [0, 1].

    Args:
        y_true: (N,) class indices, or (N, K) one-hot rows.
        y_pred: (N,) class indices, or (N, K) rows (probabilities; their argmax is the class).

    Returns:
        The fraction of the N samples predicted right, as `evaluate` reports "accuracy".
    """
    true, pred, _ = class_labels(y_true, y_pred)
    if len(true) == 0:
        raise ValueError("Invalid arguments `y_true` and `y_pred`. Expected at least one sample. "
                         "Received none")
    return float(np.mean(true == pred))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: (N,) class indices, or (N, K) one-hot rows.
        y_pred: (N,) class indices, or (N, K) rows (probabilities; their argmax is the class).
        num_classes: K; by default the number of columns of (N, K) inputs, or the largest class
            index + 1.

    Returns:
        (K, K) int64: entry [i, j] counts the samples of true class i predicted as class j, so
        each row sums to the size of a class and the diagonal holds the correct predictions.
    """
    true, pred, K = class_labels(y_true, y_pred)
    if num_classes is not None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < K:
            raise ValueError(f"Invalid value for argument `num_classes`. Expected an integer of "
                             f"at least {K} (the labels and rows given need that many). Received "
                             f"num_classes={num_classes!r}")
        K = int(num_classes)
    # Each pair (i, j) as the single index i * K + j, so one bincount counts them all.
    return np.bincount(true * K + pred, minlength=K * K).reshape(K, K).astype(np.int64)


# -- labels in either form, as class indices ------------------------------------------------------
def _class_indices(y, argument: str) -> tuple[np.ndarray, int | None]:
    """Labels (N,) as int64 class indices, and the number of columns when y was (N, K) rows."""
    y = np.asarray(y)
    columns = None
    if y.ndim == 2:  # one-hot rows or probabilities: the class is the largest entry
        columns = y.shape[1]
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"Invalid value for argument `{argument}`. Expected class indices (N,) "
                         f"or one-hot/probability rows (N, K). Received shape {y.shape}")
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(f"Invalid value for argument `{argument}`. Expected integer class "
                         f"indices. Received dtype {y.dtype} with non-integer values")
    if np.any(y < 0):
        raise ValueError(f"Invalid value for argument `{argument}`. Expected class indices >= 0. "
                         f"Received {int(y.min())}")
    return y.astype(np.int64), columns


def class_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, int]:
    """Both label arrays as class indices (N,), and the smallest number of classes they fit."""
    true, true_columns = _class_indices(y_true, "y_true")
    pred, pred_columns = _class_indices(y_pred, "y_pred")
    if len(true) != len(pred):
        raise ValueError(f"Invalid arguments `y_true` and `y_pred`. Expected one prediction per "
                         f"label. Received {len(true)} labels and {len(pred)} predictions")
    largest = max(int(true.max(initial=-1)), int(pred.max(initial=-1))) + 1
    return true, pred, max(largest, true_columns or 0, pred_columns or 0)
