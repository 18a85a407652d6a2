"""Cross-entropy losses, with the value Keras reports and the gradient a model backpropagates.

For probabilities p (N, K) and one-hot (or soft) targets y (N, K), Keras's loss is the mean over
samples of  -sum(y * log(clip(p / sum(p), 1e-7, 1 - 1e-7))).

When p is a softmax of logits z, Keras computes the same loss from z instead,
    loss = mean over samples of  logsumexp(z) - sum(y * z)
which stays finite for any z, and the gradient with respect to z fuses to
    dL/dz = (p - y) / N
`LossHead` decides which of the two applies to a model's last layer; it is the one place where
a backward pass starts, for training, the gradient checker and the study tools alike.
"""

from __future__ import annotations

import numpy as np

from minicnn import activations

EPSILON = 1e-7  # Keras's backend epsilon, which clips probabilities


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log(softmax(z)) along the last axis, (N, K), computed without overflow."""
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

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The loss of each sample, (N,), from probabilities y_pred (N, K)."""
        y = self.targets(y_true, y_pred)
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -(y * np.log(np.clip(p, EPSILON, 1 - EPSILON))).sum(axis=-1)

    def per_sample_from_logits(self, y_true: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The loss of each sample, (N,), from the logits z (N, K) of a softmax output."""
        return -(self.targets(y_true, z) * log_softmax(z)).sum(axis=-1)

    def __call__(self, y_true, y_pred) -> float:
        """The mean loss over the batch, as Keras reports it for probabilities y_pred."""
        return float(self.per_sample(y_true, y_pred).mean())

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """dL/dy_pred (N, K) of the mean of `per_sample`, for an output that is not a softmax.

        With s = sum(y_pred) per row and p = y_pred / s, dL/dp = -y / p / N where the clip is not
        active (0 where it is), and the normalisation's Jacobian (I - p 1^T) / s carries it back:
        dL/dy_pred = (dL/dp - sum(dL/dp * p)) / s.
        """
        y = self.targets(y_true, y_pred)
        s = y_pred.sum(axis=-1, keepdims=True)
        p = y_pred / s
        inside = (p > EPSILON) & (p < 1 - EPSILON)
        dp = np.where(inside, -y / np.where(inside, p, 1), 0) / y_pred.shape[0]
        return ((dp - (dp * p).sum(axis=-1, keepdims=True)) / s).astype(y_pred.dtype, copy=False)

    def logits_gradient(self, y_true: np.ndarray, p: np.ndarray) -> np.ndarray:
        """dL/dz (N, K) for a softmax output p = softmax(z): the fused (p - y) / N."""
        return (p - self.targets(y_true, p)) / p.shape[0]


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


class LossHead:
    """The loss on top of a model's last layer: its value per sample, and the backward pass's
    first step.

    When the last layer ends in a softmax (`Dense(10, activation="softmax")`, a `Softmax` layer)
    the head reads that layer's logits z from its cache, reports Keras's loss from z, and starts
    backward with the fused dL/dz = (p - y) / N through `layer.backward_from_z`. Otherwise it
    hands dL/dy_pred to the last step's `backward`, whatever the layer is.
    """

    def __init__(self, loss: CategoricalCrossentropy, last_layer) -> None:
        self.loss = loss
        self.layer = last_layer
        self.from_logits = getattr(last_layer, "activation", None) is activations.softmax

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The loss of each sample (N,) for the model output y_pred of the last forward pass."""
        if self.from_logits:
            return self.loss.per_sample_from_logits(y_true, self._logits(y_pred))
        return self.loss.per_sample(y_true, y_pred)

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """The mean loss over the batch, as Keras reports it."""
        return float(self.per_sample(y_true, y_pred).mean())

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray, last_step) -> np.ndarray | None:
        """Run the last step's backward pass from the loss; returns its dx.

        `last_step` is the layer itself or the plan step covering it (anything with
        `backward(dout)`); with a softmax head the fused gradient goes to the layer directly.
        """
        if self.from_logits:
            self._logits(y_pred)
            dz = self.loss.logits_gradient(y_true, y_pred)
            return self.layer.backward_from_z(dz.reshape(y_pred.shape))
        return last_step.backward(self.loss.gradient(y_true, y_pred))

    def _logits(self, y_pred: np.ndarray) -> np.ndarray:
        cache = self.layer.cache
        if cache is None:
            raise RuntimeError(f"The loss needs the logits of layer '{self.layer.name}', which "
                               "has not run forward.")
        return cache.z.reshape(y_pred.shape)


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
