"""Metrics: Keras's metric objects (what compile(metrics=...) reports), and two plain functions.

The objects keep state over batches, as Keras's: `update_state(y_true, y_pred, sample_weight)`,
`result()`, `reset_state()`. Most are means of a value per sample (`MeanMetricWrapper`):
    result = sum(w * v) / sum(w)   over every sample seen (w = 1 without sample weights)
where v is a sample's accuracy or error, averaged over the positions past the last axis. Precision,
Recall and AUC count true and false positives and negatives (weighted) over the batches instead.

The functions `accuracy` and `confusion_matrix` take labels in either form the engine meets: class
indices (N,), or rows (N, K) (one-hot labels, or the probabilities `model.predict` returns), whose
argmax is the class. Bad inputs raise a ValueError that names the argument.

`ACCURACY_NAMES` are the names `compile(metrics=[...])` accepts for accuracy, as Keras does.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ACCURACY_NAMES",
    "AUC",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "Metric",
    "Precision",
    "Recall",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "accuracy",
    "class_labels",
    "confusion_matrix",
    "get",
]

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


# -- Keras's metric objects -----------------------------------------------------------------------
class Metric:
    """Base of the stateful metrics: `update_state` adds a batch, `result` reads the state."""

    def __init__(self, name: str | None = None, dtype=None) -> None:
        from minicnn.layers._names import _auto_name

        self.name = name or _auto_name(type(self))  # precision, precision_1, ... as Keras
        self.dtype = dtype
        self.reset_state()

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Add the batch, and return the result so far, as Keras's `metric(y_true, y_pred)`."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict) -> Metric:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _sample_weights(sample_weight, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1) if np.ndim(sample_weight) > 1 \
        and np.shape(sample_weight)[1:] == (1,) else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"Invalid value for argument `sample_weight`. Expected one weight per "
                         f"sample, shape ({n},). Received shape {w.shape}")
    return w


def _same_rank(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Keras's squeeze_or_expand_to_same_rank: (N,) labels against (N, 1) outputs and back."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    elif y_pred.ndim == y_true.ndim - 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return y_true, y_pred


class MeanMetricWrapper(Metric):
    """The weighted mean over samples of `fn(y_true, y_pred)`, a value per sample (and
    position): Keras's wrapper of its metric functions."""

    def __init__(self, fn, name: str | None = None, dtype=None, **kwargs) -> None:
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        v = np.asarray(self._fn(y_true, y_pred, **self._fn_kwargs), dtype=np.float64)
        v = v.reshape(len(v), -1).mean(axis=1) if v.ndim > 1 else v
        w = _sample_weights(sample_weight, len(v))
        self.total += float((v * w).sum())
        self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def get_config(self) -> dict:
        return {**super().get_config(), **self._fn_kwargs}


def accuracy_values(y_true, y_pred) -> np.ndarray:
    """Exact equality of labels and predictions, averaged along the last axis (Keras's
    `accuracy`, what the `Accuracy` class reports)."""
    y_true, y_pred = _same_rank(y_true, y_pred)
    return (y_true == y_pred).mean(axis=-1) if y_pred.ndim > 1 else (y_true == y_pred) * 1.0


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where argmax(y_true) == argmax(y_pred), per sample (one-hot targets)."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)) * 1.0


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where the integer label equals argmax(y_pred), per sample."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (y_true == np.argmax(y_pred, axis=-1)) * 1.0


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """The share of positions where (y_pred > threshold) matches the 0/1 target."""
    y_true, y_pred = _same_rank(y_true, y_pred)
    return (y_true == (y_pred > threshold)).mean(axis=-1)


def _in_top_k(labels: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    # TensorFlow's in_top_k: a class tied with the k-th best counts as in the top k.
    target = np.take_along_axis(y_pred, labels[..., None].astype(np.intp), axis=-1)
    return ((y_pred > target).sum(axis=-1) < k) * 1.0


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    return _in_top_k(np.argmax(y_true, axis=-1), np.asarray(y_pred), k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return _in_top_k(y_true, y_pred, k)


def _squared_error(y_true, y_pred) -> np.ndarray:
    y_true, y_pred = _same_rank(y_true, y_pred)
    return np.square(y_pred - y_true).mean(axis=-1)


def _absolute_error(y_true, y_pred) -> np.ndarray:
    y_true, y_pred = _same_rank(y_true, y_pred)
    return np.abs(y_pred - y_true).mean(axis=-1)


class Accuracy(MeanMetricWrapper):
    def __init__(self, name: str = "accuracy", dtype=None) -> None:
        super().__init__(accuracy_values, name=name, dtype=dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_accuracy", dtype=None) -> None:
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "sparse_categorical_accuracy", dtype=None) -> None:
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5) -> None:
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype=None) -> None:
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy",
                 dtype=None) -> None:
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_squared_error", dtype=None) -> None:
        super().__init__(_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_absolute_error", dtype=None) -> None:
        super().__init__(_absolute_error, name=name, dtype=dtype)


class _Confusion(Metric):
    """Weighted counts of true/false positives/negatives at each threshold, over every
    position of y_true and y_pred (a prediction above a threshold is a positive)."""

    def _counts(self, y_true, y_pred, sample_weight, thresholds: np.ndarray):
        y_true, y_pred = _same_rank(y_true, y_pred)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__}: y_true of shape {y_true.shape} does not "
                             f"match y_pred of shape {y_pred.shape}")
        w = np.broadcast_to(_sample_weights(sample_weight, len(y_pred)).reshape(
            (-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape)
        positive = np.asarray(y_true).astype(bool).reshape(-1)
        w, p = w.reshape(-1), y_pred.reshape(-1)
        above = p[None, :] > thresholds[:, None]  # (T, elements)
        tp = (above & positive).astype(float) @ w
        fp = (above & ~positive).astype(float) @ w
        return tp, fp, (w * positive).sum() - tp, (w * ~positive).sum() - fp


def _divide_no_nan(a, b):
    b = np.asarray(b, dtype=np.float64)
    return np.where(b > 0, np.asarray(a, dtype=np.float64) / np.where(b > 0, b, 1), 0.0)


class _PrecisionRecall(_Confusion):
    def __init__(self, thresholds=None, top_k: int | None = None, class_id: int | None = None,
                 name: str | None = None, dtype=None) -> None:
        self.init_thresholds = thresholds
        many = isinstance(thresholds, (list, tuple))
        values = [0.5 if top_k is None else float("-inf")] if thresholds is None else (
            list(thresholds) if many else [thresholds])
        if any(not 0 <= t <= 1 for t in values if not np.isneginf(t)):
            raise ValueError(f"Invalid value for argument `thresholds`. Expected values in "
                             f"[0, 1]. Received: thresholds={thresholds!r}")
        self._thresholds, self._many = np.asarray(values, dtype=np.float64), many
        self.top_k, self.class_id = top_k, class_id
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        n = len(self._thresholds)
        self.tp, self.fp, self.fn = np.zeros(n), np.zeros(n), np.zeros(n)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _same_rank(y_true, y_pred)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if self.top_k is not None:  # only each row's k largest predictions can be positive
            kth = -np.sort(-y_pred, axis=-1)[..., self.top_k - 1:self.top_k]
            y_pred = np.where(y_pred >= kth, y_pred, -np.inf)
        if self.class_id is not None:
            y_true, y_pred = np.asarray(y_true)[..., self.class_id], y_pred[..., self.class_id]
        tp, fp, fn, _ = self._counts(y_true, y_pred, sample_weight, self._thresholds)
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def _value(self):
        return self._result if self._many else float(self._result[0])

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp): the share of predicted positives that are positive."""

    def result(self):
        self._result = _divide_no_nan(self.tp, self.tp + self.fp)
        return self._value()


class Recall(_PrecisionRecall):
    """tp / (tp + fn): the share of positives predicted positive."""

    def result(self):
        self._result = _divide_no_nan(self.tp, self.tp + self.fn)
        return self._value()


class AUC(_Confusion):
    """The area under the ROC (or precision-recall) curve, from counts at `num_thresholds`
    thresholds spread evenly over [0, 1] (plus one just below 0 and one just above 1), summed as
    Keras does: trapezoids ("interpolation"; for "PR", Davis and Goadrich's interpolation),
    or the lower ("minoring") or upper ("majoring") rectangles."""

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str | None = None, dtype=None,
                 thresholds=None, multi_label: bool = False, num_labels=None,
                 label_weights=None, from_logits: bool = False) -> None:
        if curve not in ("ROC", "PR"):
            raise ValueError(f"Invalid value for argument `curve`. Expected 'ROC' or 'PR'. "
                             f"Received: curve={curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"Invalid value for argument `summation_method`. Expected one of "
                             f"'interpolation', 'minoring', 'majoring'. Received: "
                             f"summation_method={summation_method!r}")
        if multi_label or label_weights is not None:
            raise ValueError("AUC(multi_label=True) and label_weights are not supported by "
                             "minicnn: one AUC over every label (multi_label=False) is.")
        if thresholds is None:
            if num_thresholds <= 1:
                raise ValueError(f"Invalid value for argument `num_thresholds`. Expected a "
                                 f"value > 1. Received: num_thresholds={num_thresholds!r}")
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        else:
            inner = sorted(float(t) for t in thresholds)
            num_thresholds = len(inner) + 2
        self._thresholds = np.asarray([-1e-7, *inner, 1 + 1e-7])
        self.num_thresholds, self.curve, self.summation_method = num_thresholds, curve, \
            summation_method
        self.from_logits = from_logits
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        n = self.num_thresholds
        self.tp, self.fp, self.fn, self.tn = (np.zeros(n) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if self.from_logits:
            y_pred = 1 / (1 + np.exp(-y_pred))
        counts = self._counts(y_true, y_pred, sample_weight, self._thresholds)
        for total, c in zip((self.tp, self.fp, self.fn, self.tn), counts, strict=True):
            total += c

    def result(self) -> float:
        n = self.num_thresholds
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:n - 1] - tp[1:]
            p = tp + fp
            slope = _divide_no_nan(dtp, np.maximum(p[:n - 1] - p[1:], 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:n - 1] > 0) & (p[1:] > 0),
                             _divide_no_nan(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
            return float(_divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                                        np.maximum(tp[1:] + fn[1:], 0)).sum())
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:n - 1], y[1:])
        else:
            heights = np.maximum(y[:n - 1], y[1:])
        return float(((x[:n - 1] - x[1:]) * heights).sum())

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "from_logits": self.from_logits}


# Keras's names in compile(metrics=[...]); "accuracy" and "acc" are chosen per model (`get`).
_FUNCTIONS = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "MAE": MeanAbsoluteError,
}
_CLASSES = {cls.__name__: cls for cls in (
    Accuracy, CategoricalAccuracy, SparseCategoricalAccuracy, BinaryAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    Precision, Recall, AUC)}
_LOSS_METRICS = ("categorical_crossentropy", "sparse_categorical_crossentropy",
                 "binary_crossentropy")


def known(identifier) -> bool:
    """Whether `get` can make a metric of `identifier` (checked at compile time)."""
    return isinstance(identifier, Metric) or (isinstance(identifier, dict) and identifier.get(
        "class_name") in _CLASSES) or identifier in (*ACCURACY_NAMES, *_FUNCTIONS, *_CLASSES,
                                                      *_LOSS_METRICS)


def get(identifier, y_true: np.ndarray, y_pred: np.ndarray) -> Metric:
    """The metric compile(metrics=[identifier]) reports, for targets and outputs shaped as
    y_true and y_pred. As Keras: "accuracy" is binary accuracy for a one-unit output, sparse
    categorical for integer labels, categorical otherwise; a name is logged as written."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    if identifier in ("accuracy", "acc"):
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if y_pred.shape[-1] == 1:
            return BinaryAccuracy(name=identifier)
        if y_true.ndim < y_pred.ndim or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    if identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier](name=identifier)
    if identifier in _CLASSES:
        return _CLASSES[identifier]()
    if identifier in _LOSS_METRICS:
        from minicnn import losses

        fn = losses.get(identifier).values
        return MeanMetricWrapper(lambda t, p, fn=fn: fn(t, p), name=identifier)
    raise ValueError(f"Invalid value in argument `metrics`. Expected a metric object or one of "
                     f"{sorted({*ACCURACY_NAMES, 'acc', *_FUNCTIONS, *_CLASSES, *_LOSS_METRICS})}."
                     f" Received {identifier!r}")


def serialize(metric) -> str | dict:
    """A compile() metric as JSON data: a name as it is, an object as {class_name, config}."""
    if isinstance(metric, str):
        return metric
    if type(metric) in _CLASSES.values():
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    raise ValueError(f"Metric {metric!r} ({type(metric).__name__}) cannot be saved: only "
                     f"minicnn's metric classes and names can be.")


def __getattr__(name: str):
    from minicnn._missing import missing

    raise missing(__name__, "metric", name, sorted(_CLASSES),
                  "To write one, subclass `minicnn.metrics.Metric` (update_state, result, "
                  "reset_state), or wrap a function of (y_true, y_pred) returning a value per "
                  "sample in `minicnn.metrics.MeanMetricWrapper(fn, name=...)`.")
