"""Cross-entropy losses, with the value Keras reports and the gradient a model backpropagates.

When the model's output is a softmax, Keras computes the loss from the softmax's logits z,
    loss = mean over samples of  logsumexp(z) - sum(y * z)
which stays finite for any z, and the gradient with respect to z fuses to
    dL/dz = (p - y) / N
Without logits it falls back to the clipped probabilities, -sum(y * log(clip(p, 1e-7, 1 - 1e-7))).
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # Keras's backend epsilon, which clips probabilities


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class CategoricalCrossentropy:
    """Cross-entropy between one-hot (or soft) targets y_true (N, K) and probabilities (N, K)."""

    name = "categorical_crossentropy"

    def targets(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """y_true as (N, K) targets in y_pred's dtype, checked against y_pred (N, K)."""
        y_true = np.asarray(y_true)
        if y_true.shape != y_pred.shape:
            hint = (" Labels look like integer classes: one-hot encode them with "
                    "to_categorical(), or use 'sparse_categorical_crossentropy'."
                    if y_true.ndim == 1 or (y_true.ndim == 2 and y_true.shape[1] == 1) else "")
            raise ValueError(
                f"{self.name} expects targets of the model output's shape {y_pred.shape}, "
                f"received {y_true.shape}.{hint}"
            )
        return y_true.astype(y_pred.dtype, copy=False)

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray,
                   logits: np.ndarray | None = None) -> np.ndarray:
        """The loss of each sample, (N,), from logits when the output is a softmax."""
        y = self.targets(y_true, y_pred)
        if logits is not None:
            return -(y * _log_softmax(logits)).sum(axis=-1)
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -(y * np.log(np.clip(p, EPSILON, 1 - EPSILON))).sum(axis=-1)

    def __call__(self, y_true, y_pred, logits=None) -> float:
        """The mean loss over the batch, as Keras reports it."""
        return float(self.per_sample(y_true, y_pred, logits).mean())

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """dL/dy_pred (N, K) of the mean loss, for an output that is not a softmax."""
        y = self.targets(y_true, y_pred)
        return -y / np.clip(y_pred, EPSILON, 1 - EPSILON) / y_pred.shape[0]

    def logits_gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """dL/dz (N, K) for a softmax output p = softmax(z): the fused (p - y) / N."""
        y = self.targets(y_true, y_pred)
        return (y_pred - y) / y_pred.shape[0]


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """The same loss with integer class labels (N,) or (N, 1) for targets."""

    name = "sparse_categorical_crossentropy"

    def targets(self, y_true, y_pred):
        labels = np.asarray(y_true)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        N, K = y_pred.shape
        if labels.shape != (N,):
            raise ValueError(
                f"{self.name} expects integer labels of shape ({N},), received {labels.shape}"
            )
        if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0
                            or labels.max() >= K):
            raise ValueError(
                f"{self.name} expects integer labels in [0, {K}), received values from "
                f"{labels.min()} to {labels.max()}"
            )
        onehot = np.zeros_like(y_pred)
        onehot[np.arange(N), labels.astype(np.intp)] = 1
        return onehot


_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier) -> CategoricalCrossentropy:
    if isinstance(identifier, CategoricalCrossentropy):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(
        f"Invalid value for argument `loss`. Expected one of {sorted(_BY_NAME)} or a loss "
        f"object. Received loss={identifier!r}"
    )
