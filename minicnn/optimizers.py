"""Optimizers (SGD, RMSprop, Adam): the only code in minicnn that changes a weight.

`optimizer.step(params)` applies one update to each Parameter from its `.grad`, using Keras's
update rules exactly, so the same gradients move the same weights to the same place.
"""

from __future__ import annotations

import math

import numpy as np

from minicnn.kernels import adam_update
from minicnn.layers.base import Parameter


class Optimizer:
    def __init__(self, learning_rate: float):
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise ValueError(
                "Invalid value for argument `learning_rate`. Expected a positive number. "
                f"Received learning_rate={learning_rate!r}"
            )
        self.learning_rate = float(learning_rate)
        self.iterations = 0  # steps taken; Adam's t is iterations + 1
        self._slots: dict[Parameter, tuple[np.ndarray, ...]] = {}
        # ||w_new - w_old|| of each parameter in the last step, for the backward summary.
        self.update_norms: dict[Parameter, float] = {}

    def _slot(self, p: Parameter, count: int) -> tuple[np.ndarray, ...]:
        slots = self._slots.get(p)
        if slots is None or slots[0].dtype != p.value.dtype:
            slots = tuple(np.zeros_like(p.value) for _ in range(count))
            self._slots[p] = slots
        return slots

    def step(self, params: list[Parameter]) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate}

    def slots(self, params: list[Parameter]) -> list[tuple[np.ndarray, ...]]:
        """The state kept for each of `params` (empty tuples before the first step)."""
        return [self._slots.get(p, ()) for p in params]

    def set_slots(self, params: list[Parameter], slots, iterations: int) -> None:
        """Restore state saved with `slots(params)` and the step count, e.g. to resume training."""
        self._slots = {p: tuple(s) for p, s in zip(params, slots, strict=True) if len(s)}
        self.iterations = int(iterations)


class SGD(Optimizer):
    """w -= lr * g; with momentum, velocity = momentum * velocity - lr * g and w += velocity."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False):
        super().__init__(learning_rate)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(
                "Invalid value for argument `momentum`. Expected a value in [0, 1]. "
                f"Received momentum={momentum!r}"
            )
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "momentum": self.momentum,
                "nesterov": self.nesterov}

    def step(self, params: list[Parameter]) -> None:
        lr = self.learning_rate
        for p in params:
            if self.momentum == 0.0:
                update = -lr * p.grad
            else:
                (velocity,) = self._slot(p, 1)
                velocity *= self.momentum
                velocity -= lr * p.grad
                update = (self.momentum * velocity - lr * p.grad) if self.nesterov else velocity
            p.value += update
            self.update_norms[p] = float(np.linalg.norm(update))
        self.iterations += 1


class Adam(Optimizer):
    """Adam as Keras writes it; minicnn/kernels/adam.py shows the update and where epsilon goes."""

    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        super().__init__(learning_rate)
        for argument, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"Invalid value for argument `{argument}`. Expected a value in [0, 1). "
                    f"Received {argument}={value!r}"
                )
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}

    def step(self, params: list[Parameter]) -> None:
        t = self.iterations + 1
        # The bias corrections of m and v, folded into one step size.
        alpha = self.learning_rate * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for p in params:
            m, v = self._slot(p, 2)
            step_sq = adam_update(p.value.reshape(-1), p.grad.reshape(-1), m.reshape(-1),
                                  v.reshape(-1), alpha, self.beta_1, self.beta_2, self.epsilon)
            self.update_norms[p] = math.sqrt(step_sq)
        self.iterations += 1


class RMSprop(Optimizer):
    """RMSprop as Keras writes it (Keras's default optimizer), in the weights' dtype:

        v <- rho * v + (1 - rho) * g**2
        w <- w - lr * g / sqrt(v + epsilon)
    centered=True subtracts the square of a running mean of g, a <- rho * a + (1 - rho) * g,
    under the root (sqrt(v - a**2 + epsilon)); momentum > 0 keeps a velocity of the steps,
    m <- momentum * m + step, and moves w by m.
    """

    name = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False):
        super().__init__(learning_rate)
        for argument, value in (("rho", rho), ("momentum", momentum)):
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(
                    f"Invalid value for argument `{argument}`. Expected a value in [0, 1). "
                    f"Received {argument}={value!r}"
                )
        if not (isinstance(epsilon, (int, float)) and epsilon >= 0):
            raise ValueError("Invalid value for argument `epsilon`. Expected a value >= 0. "
                             f"Received epsilon={epsilon!r}")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate, "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}

    def step(self, params: list[Parameter]) -> None:
        rho, lr = self.rho, self.learning_rate
        count = 1 + (self.momentum > 0) + self.centered
        for p in params:
            g = p.grad
            slots = self._slot(p, count)  # (v, [m], [a]): Keras's order
            v = slots[0]
            v *= rho
            v += (1 - rho) * (g * g)
            if self.centered:
                a = slots[-1]
                a *= rho
                a += (1 - rho) * g
                denominator = v - a * a + self.epsilon
            else:
                denominator = v + self.epsilon
            step = (lr * g) / np.sqrt(denominator)
            if self.momentum > 0:
                m = slots[1]
                m *= self.momentum
                m += step
                step = m
            p.value -= step
            self.update_norms[p] = float(np.linalg.norm(step))
        self.iterations += 1


_BY_NAME = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Invalid value for argument `optimizer`. Expected one of {sorted(_BY_NAME)} or an "
        f"Optimizer instance. Received optimizer={identifier!r}"
    )
