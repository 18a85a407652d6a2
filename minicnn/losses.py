"""Losses as Keras's objects: the value Keras reports, and the gradient a model backpropagates.

Every loss gives Keras's unreduced values, one per sample and position, of shape
y_pred.shape[:-1] (the last axis is reduced by the loss itself; MSE of an image (N, H, W, C) is
(N, H, W)), and `reduction` makes the batch's number from them, with per-sample weights w:
    "sum_over_batch_size" (Keras's default, alias "mean"): sum(w * values) / values.size
    "sum": sum(w * values);  "mean_with_sample_weight": sum(w * values) / sum(w) (w per sample)
    None or "none": the values themselves (a loss called by hand; compile needs a number)
The gradient with respect to y_pred is that of the reduced loss: each value's gradient, times
its weight g = w / divisor. `_gradient(y, y_pred, g)` is the one place each loss writes it down.

Cross-entropy of probabilities p and targets y (one-hot, soft or smoothed), along `axis`:
    values = -sum(y * log(clip(p / sum(p), 1e-7, 1 - 1e-7)))
When p is the softmax of logits z (a softmax last layer, or from_logits=True), from z instead:
    values = logsumexp(z) - sum(y * z),   d values / dz = p * sum(y) - y  (= p - y for one-hot y)
which stays finite for any z: `LossHead` fuses a softmax last layer with the cross-entropy this
way, and a sigmoid last layer with the binary cross-entropy, whose elementwise loss from z is
    max(z, 0) - z * y + log(1 + exp(-|z|)),   d / dz = sigmoid(z) - y.
The derivations of the others are beside their `_gradient`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minicnn import activations

EPSILON = 1e-7  # Keras's backend epsilon, which clips probabilities
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log(softmax(z)) along the last axis, computed without overflow."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only, so no overflow for any z
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class Loss:
    """Base of the losses: `reduction` and the sample weights, over a subclass's `_values` and
    `_gradient` along the last axis. Subclass it for a loss of your own: write both."""

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size",
                 dtype=None) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                             f"{list(REDUCTIONS)}. Received: reduction={reduction!r}")
        self.name = name or type(self).__name__
        self.reduction = reduction
        self.dtype = dtype

    # -- what a loss writes -------------------------------------------------------------------
    def _values(self, y: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Keras's unreduced loss, y_pred.shape[:-1], for targets y of y_pred's shape."""
        raise NotImplementedError

    def _gradient(self, y: np.ndarray, y_pred: np.ndarray, g: np.ndarray) -> np.ndarray:
        """d sum(g * values) / d y_pred, y_pred's shape, for weights g of the values' shape."""
        raise NotImplementedError

    def targets(self, y_true, y_pred: np.ndarray) -> np.ndarray:
        """y_true as targets of y_pred's shape in its dtype; (N,) labels against an (N, 1)
        output are taken as a column, as Keras does."""
        y = np.asarray(y_true)
        if y.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y = y[..., None]
        if y.shape != y_pred.shape:
            raise ValueError(f"{self.name} expects targets of the model output's shape "
                             f"{y_pred.shape}, received {y.shape}.{self._hint(y)}")
        return y.astype(y_pred.dtype, copy=False)

    def _hint(self, y: np.ndarray) -> str:
        return ""

    # -- Keras's surface ----------------------------------------------------------------------
    def values(self, y_true, y_pred) -> np.ndarray:
        """The unreduced loss, y_pred.shape[:-1]."""
        y_pred = np.asarray(y_pred)
        return self._values(self.targets(y_true, y_pred), y_pred)

    def per_sample(self, y_true, y_pred) -> np.ndarray:
        """Each sample's mean loss (N,): what a sample adds to the batch's mean."""
        v = self.values(y_true, y_pred)
        return v.reshape(len(v), -1).mean(axis=1)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss reduced as `reduction` says (a 0-d array; the values for "none"), as a
        `backend.Tensor`: `loss_fn(y, p).numpy()` works as on Keras's tensors."""
        from minicnn._tensor import as_tensor

        y_pred = np.asarray(y_pred)
        v = self.values(y_true, y_pred)
        if self.reduction in (None, "none"):
            return as_tensor(v if sample_weight is None else v * _broadcast(sample_weight, v))
        g = self.weights(sample_weight, v.shape, self._mask(self.targets(y_true, y_pred)))
        return as_tensor((g * v).sum(dtype=np.float64))

    def _mask(self, y: np.ndarray) -> np.ndarray | None:
        """Which values count (None: all); Keras's mask, e.g. an ignored class's positions."""
        return None

    def weights(self, sample_weight, values_shape: tuple, mask=None) -> np.ndarray:
        """The weight g of each value in the reduced loss, so that loss = sum(g * values).
        Masked-out values weigh 0 and, under "sum_over_batch_size", are not counted."""
        w = _broadcast(sample_weight, np.empty(values_shape))
        if mask is not None:
            w = w * mask
            values_shape = (int(mask.sum()),)
        if self.reduction in (None, "none"):
            raise ValueError(f"Loss '{self.name}' has reduction={self.reduction!r}, which gives "
                             "one value per sample; training needs a number: use "
                             "'sum_over_batch_size' (Keras's default) or 'sum'.")
        if self.reduction == "sum":
            return w
        if self.reduction == "mean_with_sample_weight" and sample_weight is not None:
            # Keras divides by the weights as given, one per sample, not by their broadcast
            total = float(np.sum(sample_weight))
            return w / (total if total else 1.0)  # divide_no_nan: all-zero weights give 0
        return w / float(max(int(np.prod(values_shape)), 1))

    def gradient(self, y_true, y_pred: np.ndarray, sample_weight=None) -> np.ndarray:
        """dL/dy_pred of the reduced (weighted) loss, y_pred's shape and dtype."""
        y = self.targets(y_true, y_pred)
        g = self.weights(sample_weight, y_pred.shape[:-1], self._mask(y))
        return self._gradient(y, y_pred, g).astype(y_pred.dtype, copy=False)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _broadcast(sample_weight, values: np.ndarray) -> np.ndarray:
    """Per-sample weights (N,) (or of the values' shape) spread over the values."""
    if sample_weight is None:
        return np.ones(values.shape)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == values.ndim + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.shape[:1] != values.shape[:1] or w.ndim > values.ndim:
        raise ValueError(f"Invalid value for argument `sample_weight`. Expected one weight per "
                         f"sample, shape ({values.shape[0]},). Received shape {w.shape}")
    return np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - w.ndim)), values.shape)


class _AlongAxis(Loss):
    """A loss reduced along `axis` (any axis past the batch's): moved to the last one."""

    def __init__(self, axis: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"Invalid value for argument `axis`. Expected an integer. "
                             f"Received: axis={axis!r}")
        self.axis = int(axis)

    def _moved(self, a: np.ndarray) -> np.ndarray:
        if self.axis in (-1, a.ndim - 1):
            return a
        if not -a.ndim < self.axis < a.ndim or self.axis % a.ndim == 0:
            raise ValueError(f"{self.name}: axis={self.axis} is not an axis past the batch "
                             f"axis of the output, shape {a.shape}")
        return np.moveaxis(a, self.axis, -1)

    def values(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y = self.targets(y_true, y_pred)
        return self._values(self._moved(y), self._moved(y_pred))

    def gradient(self, y_true, y_pred, sample_weight=None):
        y = self.targets(y_true, y_pred)
        y_m, p_m = self._moved(y), self._moved(y_pred)
        g = self.weights(sample_weight, p_m.shape[:-1], self._mask(y_m))
        d = self._gradient(y_m, p_m, g)
        if p_m is not y_pred:
            d = np.moveaxis(d, -1, self.axis)
        return d.astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class _CrossEntropy(_AlongAxis):
    """What the categorical and the binary cross-entropy share: from_logits and label_smoothing
    (each subclass smooths towards its own uniform target)."""

    def __init__(self, from_logits: bool, label_smoothing: float, axis: int, reduction,
                 name: str, dtype) -> None:
        super().__init__(axis=axis, name=name, reduction=reduction, dtype=dtype)
        if not 0 <= label_smoothing <= 1:
            raise ValueError(f"Invalid value for argument `label_smoothing`. Expected a value "
                             f"in [0, 1]. Received: label_smoothing={label_smoothing!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_CrossEntropy):
    """Cross-entropy between one-hot (or soft) targets (N, K) and probabilities, or logits with
    from_logits=True; label_smoothing spreads that share of each target over the K classes."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size",
                 name: str = "categorical_crossentropy", dtype=None) -> None:
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def _hint(self, y):
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            return (" Labels look like integer classes: one-hot encode them with "
                    "to_categorical(), or use 'sparse_categorical_crossentropy'.")
        return ""

    def _smoothed(self, y: np.ndarray) -> np.ndarray:
        s = self.label_smoothing
        return y if not s else y * (1 - s) + s / y.shape[-1]

    def _values(self, y, y_pred):
        y = self._smoothed(y)
        if self.from_logits:
            return self.values_from_logits(y, y_pred, smoothed=True)
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -(y * np.log(np.clip(p, EPSILON, 1 - EPSILON))).sum(axis=-1)

    def values_from_logits(self, y, z, smoothed: bool = False):
        """The values from logits z (the fused softmax head's and from_logits=True's)."""
        y = y if smoothed else self._smoothed(y)
        return -(y * log_softmax(z)).sum(axis=-1)

    def _gradient(self, y, y_pred, g):
        y = self._smoothed(y)
        if self.from_logits:
            return self.logits_gradient_of(y, _softmax(y_pred), g, smoothed=True)
        # With s = sum(y_pred) and p = y_pred / s: dL/dp = -g y / p where the clip is not active
        # (0 where it is), and the normalisation's Jacobian (I - p 1^T) / s carries it back.
        s = y_pred.sum(axis=-1, keepdims=True)
        p = y_pred / s
        inside = (p > EPSILON) & (p < 1 - EPSILON)
        dp = np.where(inside, -y / np.where(inside, p, 1), 0) * g[..., None]
        return (dp - (dp * p).sum(axis=-1, keepdims=True)) / s

    def logits_gradient_of(self, y, p, g, smoothed: bool = False):
        """d sum(g * values) / dz for p = softmax(z): g (p sum(y) - y)."""
        y = y if smoothed else self._smoothed(y)
        return g[..., None] * (p * y.sum(axis=-1, keepdims=True) - y)

    def per_sample_from_logits(self, y_true, z: np.ndarray) -> np.ndarray:
        """Each sample's loss (N,) from the logits z (N, K) of a softmax output."""
        return self.values_from_logits(self.targets(y_true, z), z)

    def logits_gradient(self, y_true, p: np.ndarray) -> np.ndarray:
        """dL/dz (N, K) of the batch's loss for a softmax output p = softmax(z): the fused
        (p - y) / N for one-hot targets."""
        y = self.targets(y_true, p)
        g = self.weights(None, p.shape[:-1], self._mask(y))
        return self.logits_gradient_of(y, p, g).astype(p.dtype, copy=False)



class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """The same loss with integer class labels (N,) or (N, 1) for targets; `ignore_class`
    labels add nothing (weight 0), as Keras's."""

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str | None = "sum_over_batch_size",
                 name: str = "sparse_categorical_crossentropy", dtype=None) -> None:
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.ignore_class = ignore_class

    def targets(self, y_true, y_pred):
        labels = np.asarray(y_true)
        if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
            labels = labels[..., 0]
        K = y_pred.shape[-1]
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(f"{self.name} expects integer labels of shape "
                             f"{y_pred.shape[:-1]}, received {labels.shape}")
        valid = labels if self.ignore_class is None else labels[labels != self.ignore_class]
        if valid.size and (np.any(valid != np.round(valid)) or valid.min() < 0
                           or valid.max() >= K):
            raise ValueError(f"{self.name} expects integer labels in [0, {K}), received values "
                             f"from {valid.min()} to {valid.max()}")
        onehot = np.zeros_like(y_pred)
        keep = np.ones(labels.shape, bool) if self.ignore_class is None else (
            labels != self.ignore_class)
        index = np.nonzero(keep)
        onehot[(*index, labels[keep].astype(np.intp))] = 1
        return onehot

    def _mask(self, y):
        # ignored labels are rows of zeros in the one-hot targets
        return None if self.ignore_class is None else y.sum(axis=-1) > 0

    def get_config(self):
        config = {k: v for k, v in super().get_config().items()
                  if k not in ("label_smoothing", "axis")}
        return {**config, "ignore_class": self.ignore_class}


class BinaryCrossentropy(_CrossEntropy):
    """Elementwise cross-entropy of independent probabilities (or logits with
    from_logits=True), averaged along the last axis; label_smoothing pulls targets toward 0.5."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str | None = "sum_over_batch_size",
                 name: str = "binary_crossentropy", dtype=None) -> None:
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def _smoothed(self, y):
        s = self.label_smoothing
        return y if not s else y * (1 - s) + 0.5 * s

    def _values(self, y, y_pred):
        y = self._smoothed(y)
        if self.from_logits:
            return self.values_from_logits(y, y_pred, smoothed=True)
        p = np.clip(y_pred, EPSILON, 1 - EPSILON)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=-1)

    def values_from_logits(self, y, z, smoothed: bool = False):
        y = y if smoothed else self._smoothed(y)
        return (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).mean(axis=-1)

    def _gradient(self, y, y_pred, g):
        y = self._smoothed(y)
        K = y_pred.shape[-1]
        if self.from_logits:
            return self.logits_gradient_of(y, _sigmoid(y_pred), g, smoothed=True)
        # d/dp of -(y log p + (1 - y) log(1 - p)) = (p - y) / (p (1 - p)), 0 where clipped
        inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
        p = np.where(inside, y_pred, 0.5)
        return np.where(inside, (p - y) / (p * (1 - p)), 0) * (g[..., None] / K)

    def logits_gradient_of(self, y, p, g, smoothed: bool = False):
        """d sum(g * values) / dz for p = sigmoid(z): g (p - y) / K."""
        y = y if smoothed else self._smoothed(y)
        return (p - y) * (g[..., None] / p.shape[-1])



class MeanSquaredError(Loss):
    """mean((y_pred - y)^2) along the last axis; d/dy_pred = 2 (y_pred - y) / K."""

    def __init__(self, reduction: str | None = "sum_over_batch_size",
                 name: str = "mean_squared_error", dtype=None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _values(self, y, y_pred):
        return np.square(y_pred - y).mean(axis=-1)

    def _gradient(self, y, y_pred, g):
        return 2 * (y_pred - y) * (g[..., None] / y_pred.shape[-1])


class MeanAbsoluteError(Loss):
    """mean(|y_pred - y|) along the last axis; d/dy_pred = sign(y_pred - y) / K (0 at a tie, as
    TensorFlow's gradient of abs)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size",
                 name: str = "mean_absolute_error", dtype=None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _values(self, y, y_pred):
        return np.abs(y_pred - y).mean(axis=-1)

    def _gradient(self, y, y_pred, g):
        return np.sign(y_pred - y) * (g[..., None] / y_pred.shape[-1])


class Huber(Loss):
    """Quadratic near the target, linear beyond delta: e = y_pred - y,
        h(e) = e^2 / 2 where |e| <= delta, else delta (|e| - delta / 2)
    averaged along the last axis; h'(e) = e clipped to [-delta, delta]."""

    def __init__(self, delta: float = 1.0, reduction: str | None = "sum_over_batch_size",
                 name: str = "huber_loss", dtype=None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not delta > 0:
            raise ValueError(f"Invalid value for argument `delta`. Expected a strictly positive "
                             f"value. Received: delta={delta!r}")
        self.delta = float(delta)

    def _values(self, y, y_pred):
        e = np.abs(y_pred - y)
        d = self.delta
        return np.where(e <= d, 0.5 * e * e, d * e - 0.5 * d * d).mean(axis=-1)

    def _gradient(self, y, y_pred, g):
        return np.clip(y_pred - y, -self.delta, self.delta) * (g[..., None] / y_pred.shape[-1])

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LossHead:
    """The loss on top of a model's last layer: the batch's loss, and the backward pass's first
    step.

    When the last layer ends in a softmax (`Dense(10, activation="softmax")`, a `Softmax`
    layer) under a (sparse) categorical cross-entropy, or in a sigmoid under a binary one, both
    of probabilities, the head reads that layer's logits z from its cache, reports Keras's loss
    from z, and starts backward with the fused dL/dz through `layer.backward_from_z`. Otherwise
    it hands dL/dy_pred to the last step's `backward`, whatever the layer is.
    """

    def __init__(self, loss: Loss, last_layer) -> None:
        self.loss = loss
        self.layer = last_layer
        activation = getattr(last_layer, "activation", None)
        from_logits = getattr(loss, "from_logits", True)
        self.from_logits = not from_logits and (
            (activation is activations.softmax and isinstance(loss, CategoricalCrossentropy)
             and loss.axis == -1)
            or (activation is activations.sigmoid and isinstance(loss, BinaryCrossentropy)
                and loss.axis == -1))

    def per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Each sample's loss (N,) for the model output y_pred of the last forward pass."""
        if self.from_logits:
            v = self.loss.values_from_logits(self.loss.targets(y_true, y_pred),
                                             self._logits(y_pred))
            return v.reshape(len(v), -1).mean(axis=1)
        return self.loss.per_sample(y_true, y_pred)

    def value(self, y_true, y_pred, sample_weight=None) -> float:
        """The batch's loss as the loss's reduction makes it (what the gradient is of)."""
        if not self.from_logits:
            return float(self.loss(y_true, y_pred, sample_weight))
        y = self.loss.targets(y_true, y_pred)
        v = self.loss.values_from_logits(y, self._logits(y_pred))
        g = self.loss.weights(sample_weight, v.shape, self.loss._mask(y))
        return float((g * v).sum(dtype=np.float64))

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return self.value(y_true, y_pred)

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray, last_step,
                 sample_weight=None) -> np.ndarray | None:
        """Run the last step's backward pass from the loss; returns its dx.

        `last_step` is the layer itself or the plan step covering it (anything with
        `backward(dout)`); with a fused head the gradient at z goes to the layer directly.
        """
        if self.from_logits:
            self._logits(y_pred)
            y = self.loss.targets(y_true, y_pred)
            g = self.loss.weights(sample_weight, y_pred.shape[:-1], self.loss._mask(y))
            dz = self.loss.logits_gradient_of(y, y_pred, g).astype(y_pred.dtype, copy=False)
            return self.layer.backward_from_z(dz.reshape(y_pred.shape))
        return last_step.backward(self.loss.gradient(y_true, y_pred, sample_weight))

    def _logits(self, y_pred: np.ndarray) -> np.ndarray:
        cache = self.layer.cache
        if cache is None:
            raise RuntimeError(f"The loss needs the logits of layer '{self.layer.name}', which "
                               "has not run forward.")
        return cache.z.reshape(y_pred.shape)


# Keras's names for its losses, and the aliases it accepts in compile(loss=...).
_BY_NAME: dict[str, type[Loss]] = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
}
_CLASSES = {cls.__name__: cls for cls in (
    CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
    MeanSquaredError, MeanAbsoluteError, Huber)}


def serialize(loss: Loss) -> dict:
    """{"class_name", "config"}: what a model file keeps of a loss."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def get(identifier) -> Loss:
    """A loss object from a loss object, a Keras name ("mse", "binary_crossentropy",
    "SparseCategoricalCrossentropy") or a serialized {"class_name", "config"} dict."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, str) and identifier in _CLASSES:
        return _CLASSES[identifier]()
    if callable(identifier):
        raise ValueError(
            f"Invalid value for argument `loss`: the function {identifier!r}. minicnn runs "
            "hand-written gradients, so a loss must say how to differentiate it: subclass "
            "`minicnn.losses.Loss` and write `_values(y, y_pred)` and `_gradient(y, y_pred, g)` "
            "(see minicnn/losses.py), or use one of "
            f"{sorted(set(_BY_NAME) | set(_CLASSES))}.")
    raise ValueError(f"Invalid value for argument `loss`. Expected one of "
                     f"{sorted(set(_BY_NAME) | set(_CLASSES))} or a loss object. "
                     f"Received loss={identifier!r}")


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    """Keras's function: the unreduced loss (one value per sample)."""
    return CategoricalCrossentropy(from_logits, label_smoothing, axis).values(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    return SparseCategoricalCrossentropy(from_logits).values(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False,
                        label_smoothing: float = 0.0, axis: int = -1) -> np.ndarray:
    return BinaryCrossentropy(from_logits, label_smoothing, axis).values(y_true, y_pred)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    return MeanSquaredError().values(y_true, y_pred)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    return MeanAbsoluteError().values(y_true, y_pred)


def huber(y_true, y_pred, delta: float = 1.0) -> np.ndarray:
    return Huber(delta).values(y_true, y_pred)


def __getattr__(name: str):
    from minicnn._missing import missing

    raise missing(__name__, "loss", name, sorted(_CLASSES),
                  "To write one, subclass `minicnn.losses.Loss` with `_values(y, y_pred)` and "
                  "`_gradient(y, y_pred, g)` (see minicnn/losses.py) and check its gradient with "
                  "`minicnn.gradcheck.check_function`.")
