"""Weight penalties added to the loss, as Keras's `kernel_regularizer=regularizers.L2(0.01)`.

    L1(l1):       penalty = l1 * sum(|w|)                  gradient = l1 * sign(w)
    L2(l2):       penalty = l2 * sum(w ** 2)               gradient = 2 * l2 * w
    L1L2(l1, l2): both
A model adds every layer's penalty to the loss it reports (in fit and evaluate) and its gradient
to the weight's .grad after the backward pass, before the optimizer step: the gradient of
loss + penalty, which is what Keras differentiates.
"""

from __future__ import annotations

import numpy as np


class Regularizer:
    def __call__(self, w: np.ndarray) -> float:
        """The penalty of the weight tensor w."""
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        """d penalty / dw, w's shape and dtype."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return dict(vars(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _factor(value, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"Invalid value for argument `{argument}`. Expected a float >= 0. "
                         f"Received {argument}={value!r}")
    return float(value)


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = _factor(l1, "l1"), _factor(l2, "l2")

    def __call__(self, w):
        w = w.astype(np.float64, copy=False)
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def gradient(self, w):
        return (self.l1 * np.sign(w) + (2 * self.l2) * w).astype(w.dtype, copy=False)


class L1(L1L2):
    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}


# Keras's lowercase aliases: `regularizers.l2(1e-4)` is `L2(1e-4)`.
l1, l2, l1_l2 = L1, L2, L1L2

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2}
_BY_CLASS = {cls.__name__: cls for cls in (L1, L2, L1L2)}


def get(identifier, argument: str = "kernel_regularizer") -> Regularizer | None:
    """None, a Regularizer, Keras's names ("l1", "l2", "l1_l2", with Keras's default factors),
    or the {"class_name", "config"} a model file stores."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if (isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS
            and isinstance(identifier.get("config", {}), dict)):
        return _BY_CLASS[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"Invalid value for argument `{argument}`. Expected None, one of "
                     f"{sorted(_BY_NAME)} or a regularizers.Regularizer. Received "
                     f"{argument}={identifier!r}")
