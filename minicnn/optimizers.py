"""Optimizers (SGD, RMSprop, Adam, AdamW): the only code in minicnn that changes a weight.

`optimizer.step(params)` applies one update to each Parameter from its `.grad`, using Keras's
update rules exactly, so the same gradients move the same weights to the same place.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from minicnn import schedules
from minicnn.kernels import adam_update
from minicnn.layers.base import Parameter


class Optimizer:
    """What every optimizer shares, in Keras's order for one step:

    1. clip the gradients (clipnorm: each tensor to that L2 norm; global_clipnorm: all tensors
       together; clipvalue: each element to [-clipvalue, clipvalue]; at most one of the three);
    2. decoupled weight decay, w <- w - w * weight_decay * lr (AdamW's; any optimizer takes it);
    3. the optimizer's own update, `_update(params, grads, lr)`.

    Clipping works on copies: `param.grad` keeps the gradient backward computed, which is what
    the study tools (record, backward_summary, LearningCheck) read; the step uses the clipped one.
    `learning_rate` is a float or a schedule (minicnn.optimizers.schedules); with a schedule the
    rate of each step is schedule(iterations), and setting the rate is refused, as in Keras.
    """

    def __init__(self, learning_rate, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, decay: float | None = None):
        self._learning_rate: float | schedules.LearningRateSchedule = 0.0
        learning_rate = _keras2_decay(learning_rate, decay)
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._learning_rate = learning_rate
        else:
            self.learning_rate = learning_rate
        for argument, value in (("weight_decay", weight_decay), ("clipnorm", clipnorm),
                                ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"Invalid value for argument `{argument}`. Expected a number "
                                 f">= 0 or None. Received {argument}={value!r}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        self.weight_decay, self.clipnorm = weight_decay, clipnorm
        self.clipvalue, self.global_clipnorm = clipvalue, global_clipnorm
        self.iterations = 0  # steps taken; Adam's t is iterations + 1
        self._slots: dict[Parameter, tuple[np.ndarray, ...]] = {}
        # ||w_new - w_old|| of each parameter in the last step, for the backward summary.
        self.update_norms: dict[Parameter, float] = {}

    @property
    def learning_rate(self) -> float:
        """The rate the next step uses."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: float) -> None:
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not "
                "settable. If you need the learning rate to be settable, you should "
                "instantiate the optimizer with a float `learning_rate` argument.")
        if not (isinstance(learning_rate, (int, float, np.floating))
                and not isinstance(learning_rate, bool) and learning_rate > 0):
            raise ValueError(
                "Invalid value for argument `learning_rate`. Expected a positive number or a "
                f"LearningRateSchedule. Received learning_rate={learning_rate!r}"
            )
        self._learning_rate = float(learning_rate)

    def _slot(self, p: Parameter, count: int) -> tuple[np.ndarray, ...]:
        slots = self._slots.get(p)
        if slots is None or slots[0].dtype != p.value.dtype:
            slots = tuple(np.zeros_like(p.value) for _ in range(count))
            self._slots[p] = slots
        return slots

    def _clipped_gradients(self, params: list[Parameter]) -> list[np.ndarray]:
        grads = [p.grad for p in params]
        if self.clipnorm:  # tf.clip_by_norm: g * c / max(||g||, c), in g's dtype
            out = []
            for g in grads:
                c = g.dtype.type(self.clipnorm)
                out.append(g * c / np.maximum(np.sqrt(np.sum(g * g)), c))
            return out
        if self.global_clipnorm:
            norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
            scale = self.global_clipnorm * min(1.0 / norm if norm else math.inf,
                                               1.0 / self.global_clipnorm)
            return [g * g.dtype.type(scale) for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def step(self, params: list[Parameter]) -> None:
        """One update of every parameter from its `.grad` (which is left unchanged)."""
        grads = self._clipped_gradients(params)
        lr = self.learning_rate
        before = None
        if self.weight_decay:
            before = [p.value.copy() for p in params]
            for p in params:
                dtype = p.value.dtype.type
                p.value -= p.value * dtype(self.weight_decay) * dtype(lr)
        self._update(params, grads, lr)
        if before is not None:  # the step's size includes the decay
            for p, w in zip(params, before, strict=True):
                self.update_norms[p] = float(np.linalg.norm(p.value - w))
        self.iterations += 1

    def _update(self, params: list[Parameter], grads: list[np.ndarray], lr: float) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor's arguments; the clipping and weight-decay ones only when set, a
        schedule as {"class_name", "config"} (load_model rebuilds it)."""
        lr = self._learning_rate
        config = {"learning_rate": schedules.serialize(lr)
                  if isinstance(lr, schedules.LearningRateSchedule) else lr}
        for key in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    def slots(self, params: list[Parameter]) -> list[tuple[np.ndarray, ...]]:
        """The state kept for each of `params` (empty tuples before the first step)."""
        return [self._slots.get(p, ()) for p in params]

    def slot_names(self) -> tuple[str, ...]:
        """The arrays this optimizer keeps per weight, in `slots` order (none by default)."""
        return ()

    # Slots that are running averages of squares: never negative.
    NON_NEGATIVE_SLOTS: tuple[str, ...] = ()

    def set_slots(self, params: list[Parameter], slots, iterations: int) -> None:
        """Restore state saved with `slots(params)` and the step count, e.g. to resume
        training. The state is checked first, as a model file is untrusted input: per weight
        either no arrays (before its first step) or exactly `slot_names()`, each of the weight's
        shape and finite, the running averages of squares >= 0, and iterations a count >= 0."""
        if not isinstance(iterations, (int, np.integer)) or isinstance(iterations, bool) or (
                iterations < 0):
            raise ValueError(f"optimizer iterations should be a count >= 0, not {iterations!r}")
        names = self.slot_names()
        for p, s in zip(params, slots, strict=True):
            if len(s) not in (0, len(names)):
                raise ValueError(
                    f"optimizer state for {p.name} has {len(s)} arrays; {type(self).__name__} "
                    f"with these settings keeps {len(names)} per weight {list(names)}")
            for name, a in zip(names, s, strict=False):
                a = np.asarray(a)
                if a.shape != p.value.shape:
                    raise ValueError(f"optimizer state {name} for {p.name} has shape {a.shape}, "
                                     f"the weight {p.value.shape}")
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"optimizer state {name} for {p.name} holds values that are "
                                     "not finite")
                if name in self.NON_NEGATIVE_SLOTS and np.any(a < 0):
                    raise ValueError(f"optimizer state {name} for {p.name} is a mean of squares "
                                     f"but holds {float(a.min()):.6g} < 0")
        self._slots = {p: tuple(s) for p, s in zip(params, slots, strict=True) if len(s)}
        self.iterations = int(iterations)


def _outside_this_module() -> int:
    """The stacklevel that points a warning at the first caller outside this file (an
    optimizer's constructor may be a subclass's calling its parents')."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


def _keras2_decay(learning_rate, decay):
    """Keras 2's `decay=` (everywhere in Keras 2 code: `RMSprop(1e-4, decay=1e-6)`) meant the
    rate lr / (1 + decay * iterations), which Keras 3 writes as InverseTimeDecay(lr, 1, decay).
    Accepted as that, with a warning saying so; decay=0 (Keras 2's default) changes nothing."""
    if decay is None or decay == 0:
        return learning_rate
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or decay < 0:
        raise ValueError(f"Invalid value for argument `decay`. Expected a number >= 0 (Keras "
                         f"2's inverse-time decay). Received decay={decay!r}")
    if isinstance(learning_rate, schedules.LearningRateSchedule):
        raise ValueError("Argument `decay` (Keras 2's) cannot be combined with a learning-rate "
                         "schedule: give one or the other.")
    warnings.warn(
        f"`decay={decay}` is Keras 2's argument, which Keras 3 removed. minicnn applies it as "
        f"Keras 2 did, learning_rate / (1 + decay * iterations): "
        f"learning_rate=optimizers.schedules.InverseTimeDecay({learning_rate}, decay_steps=1, "
        f"decay_rate={decay}). Write that instead to silence this warning.", UserWarning,
        stacklevel=_outside_this_module())
    return schedules.InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=float(decay))


class SGD(Optimizer):
    """w -= lr * g; with momentum, velocity = momentum * velocity - lr * g and w += velocity;
    nesterov=True moves w by momentum * velocity - lr * g instead (Keras 3's form)."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not (isinstance(momentum, (int, float)) and 0.0 <= momentum <= 1.0):
            raise ValueError(
                "Invalid value for argument `momentum`. Expected a value in [0, 1]. "
                f"Received momentum={momentum!r}"
            )
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def slot_names(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def _update(self, params: list[Parameter], grads: list[np.ndarray], lr: float) -> None:
        for p, g in zip(params, grads, strict=True):
            if self.momentum == 0.0:
                update = -lr * g
            else:
                (velocity,) = self._slot(p, 1)
                velocity *= self.momentum
                velocity -= lr * g
                update = (self.momentum * velocity - lr * g) if self.nesterov else velocity
            p.value += update
            self.update_norms[p] = float(np.linalg.norm(update))


class Adam(Optimizer):
    """Adam as Keras writes it; minicnn/kernels/adam.py shows the update and where epsilon goes."""

    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        for argument, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(
                    f"Invalid value for argument `{argument}`. Expected a value in [0, 1). "
                    f"Received {argument}={value!r}"
                )
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def get_config(self) -> dict:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}

    NON_NEGATIVE_SLOTS = ("v",)

    def slot_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def _update(self, params: list[Parameter], grads: list[np.ndarray], lr: float) -> None:
        t = self.iterations + 1
        # The bias corrections of m and v, folded into one step size.
        alpha = lr * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for p, g in zip(params, grads, strict=True):
            m, v = self._slot(p, 2)
            step_sq = adam_update(p.value.reshape(-1), np.ascontiguousarray(g).reshape(-1),
                                  m.reshape(-1), v.reshape(-1), alpha, self.beta_1, self.beta_2,
                                  self.epsilon)
            self.update_norms[p] = math.sqrt(step_sq)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as Keras's AdamW: before Adam's
    update, w <- w - w * weight_decay * lr, so the decay is not scaled by Adam's 1/sqrt(v)."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay,
                         **kwargs)


class RMSprop(Optimizer):
    """RMSprop as Keras writes it (Keras's default optimizer), in the weights' dtype:

        v <- rho * v + (1 - rho) * g**2
        w <- w - lr * g / sqrt(v + epsilon)
    centered=True subtracts the square of a running mean of g, a <- rho * a + (1 - rho) * g,
    under the root (sqrt(v - a**2 + epsilon)); momentum > 0 keeps a velocity of the steps,
    m <- momentum * m + step, and moves w by m.
    """

    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
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
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}

    NON_NEGATIVE_SLOTS = ("v",)

    def slot_names(self) -> tuple[str, ...]:
        return ("v", *(("m",) if self.momentum > 0 else ()), *(("a",) if self.centered else ()))

    def _update(self, params: list[Parameter], grads: list[np.ndarray], lr: float) -> None:
        rho = self.rho
        count = 1 + (self.momentum > 0) + self.centered
        for p, g in zip(params, grads, strict=True):
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


_BY_NAME = {"adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "sgd": SGD}


def get(identifier) -> Optimizer:
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Invalid value for argument `optimizer`. Expected one of {sorted(_BY_NAME)} or an "
        f"Optimizer instance. Received optimizer={identifier!r}"
    )


def __getattr__(name: str):
    from minicnn._missing import missing

    raise missing(__name__, "optimizer", name, ["SGD", "Adam", "AdamW", "RMSprop"],
                  "To write one, subclass `minicnn.optimizers.Optimizer` (see "
                  "minicnn/optimizers.py: an optimizer's step is the only place weights change).")
