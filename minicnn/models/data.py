"""What fit, evaluate and predict accept as data, and the batches they cut from it (Keras's data
adapters).

- NumPy arrays (a list or dict of them for several inputs), with y, `sample_weight` (N,) and
  `class_weight` {class: weight} (turned into per-sample weights, as Keras does: the class is
  the label, a one-hot row's argmax, or a rounded (N, 1) column; a class not in the dict
  weighs 1). Each epoch reshuffles; with `steps_per_epoch` an epoch takes that many batches and
  the next one goes on where it stopped, a new pass (and shuffle) starting when one is used up.
- A Python generator, or any iterable of batches (x, y) or (x, y, sample_weight), a Keras
  `PyDataset`-like object (`__len__` and `__getitem__`, and `on_epoch_end` if it has one)
  included. An epoch runs `steps_per_epoch` batches or, without it, until the data ends; a
  generator that runs out early ends the epoch (and training) with Keras's warning.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterator

import numpy as np

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or "
           "generator can generate at least `steps_per_epoch * epochs` batches.")


def is_batches(x) -> bool:
    """Whether x is a source of batches (a generator, a PyDataset-like object, an iterable of
    batches) rather than arrays."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, np.generic, set,
                                   frozenset)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return isinstance(x, types.GeneratorType) or hasattr(x, "__next__") or hasattr(
        x, "__iter__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


def check_array_like(x, argument: str, method: str) -> None:
    """A clear error for data that is neither arrays nor batches (a set, a string, None)."""
    if isinstance(x, (str, bytes, set)) or x is None:
        raise ValueError(
            f"{method}(): unrecognized data type: {argument}={_short(x)} (of type "
            f"{type(x).__name__}). Expected NumPy arrays (a list or dict of them for a model "
            "with several inputs), a Python generator, or an iterable of (x, y) or "
            "(x, y, sample_weight) batches such as a keras.utils.PyDataset.")


def _short(x) -> str:
    text = repr(x)
    return text if len(text) < 60 else text[:57] + "..."


def sample_weights(y: np.ndarray, sample_weight, class_weight, method: str
                   ) -> np.ndarray | None:
    """Per-sample weights (N,) float64 from sample_weight or class_weight (not both), or None."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{method}(): You cannot `class_weight` and `sample_weight` at the "
                         "same time (Keras's rule); multiply them into one sample_weight.")
    n = len(y)
    if class_weight is not None:
        if not isinstance(class_weight, dict) or not all(
                isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                for k in class_weight):
            raise ValueError(f"Invalid value for argument `class_weight`. Expected a dict "
                             f"{{class index: weight}}. Received class_weight={class_weight!r}")
        y = np.asarray(y)
        if y.ndim > 1 and y.shape[-1] != 1:
            classes = np.argmax(y, axis=-1)
        else:
            classes = y.reshape(n, -1)[:, 0] if y.ndim > 1 else y
        classes = np.round(classes).astype(np.int64)
        table = {int(k): float(v) for k, v in class_weight.items()}
        return np.array([table.get(int(c), 1.0) for c in classes.reshape(n, -1)[:, 0]])
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.dtype.kind not in "iufb" or w.shape != (n,):
        raise ValueError(f"Invalid value for argument `sample_weight`. Expected one number per "
                         f"sample, shape ({n},). Received {w.dtype} of shape {w.shape}")
    return w.astype(np.float64)


class ArrayBatches:
    """Index arrays of the batches of n samples, epoch by epoch (fit's arrays)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, steps_per_epoch: int | None,
                 seed: int) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.per_pass = -(-n // batch_size)
        self.steps = steps_per_epoch or self.per_pass
        self.steps_per_epoch = steps_per_epoch
        self._order: np.ndarray | None = None
        self._next = 0

    def epoch(self, epochs_trained: int) -> Iterator[np.ndarray]:
        # Each pass's order depends only on (seed, epochs trained when it starts), counted over
        # every fit() call and kept in the model file: a resumed run shuffles as a straight one.
        if self._order is None or self.steps_per_epoch is None:
            self._order = (np.random.default_rng((self.seed, epochs_trained)).permutation(self.n)
                           if self.shuffle else np.arange(self.n))
            self._next = 0
        for _ in range(self.steps):
            if self._next >= self.per_pass:
                warnings.warn(RAN_OUT, stacklevel=4)
                break
            start = self._next * self.batch_size
            self._next += 1
            yield self._order[start:start + self.batch_size]
        if self._next >= self.per_pass:
            self._order = None


class IterableBatches:
    """The batches a generator or an iterable yields, epoch by epoch."""

    def __init__(self, source, steps_per_epoch: int | None, method: str) -> None:
        self.source, self.method = source, method
        self.sized = hasattr(source, "__len__") and hasattr(source, "__getitem__")
        # a list of batches or a PyDataset starts again each epoch; a generator cannot
        self.reusable = self.sized or not hasattr(source, "__next__")
        self.steps_per_epoch = steps_per_epoch
        self.steps = steps_per_epoch or (len(source) if self.sized else None)
        self.ran_out = False
        self._iterator = None
        self._used = 0

    def _fresh(self) -> Iterator:
        self._used = 0
        if self.sized:
            return (self.source[i] for i in range(len(self.source)))
        return iter(self.source)

    def epoch(self) -> Iterator[tuple]:
        """Each batch as a tuple (x, y, sample_weight) (y and sample_weight may be None)."""
        if self._iterator is None or self.steps_per_epoch is None:
            self._iterator = self._fresh()
        step = 0
        while self.steps_per_epoch is None or step < self.steps_per_epoch:
            try:
                batch = next(self._iterator)
            except StopIteration:
                if self.reusable and step == 0 and self._used:
                    self._iterator = self._fresh()  # a new pass over a list or a PyDataset
                    continue
                self._iterator = None
                if self.steps_per_epoch is not None or step == 0:
                    self.ran_out = True
                    warnings.warn(RAN_OUT, stacklevel=4)
                break
            self._used += 1
            yield self._unpack(batch, step)
            step += 1
        if self.sized and hasattr(self.source, "on_epoch_end"):
            self.source.on_epoch_end()

    def _unpack(self, batch, step: int) -> tuple:
        # Keras's unpack_x_y_sample_weight: a list is a tuple; anything else is x alone.
        if isinstance(batch, list):
            batch = tuple(batch)
        if not isinstance(batch, tuple):
            return batch, None, None
        if 1 <= len(batch) <= 3:
            return (*batch, *(None,) * (3 - len(batch)))
        raise ValueError(
            f"{self.method}(): batch {step} of the data is a tuple of {len(batch)} items; "
            "expected (x,), (x, y) or (x, y, sample_weight), with x an array or a list/dict of "
            "arrays (put several inputs in a list or a dict inside the tuple).")
