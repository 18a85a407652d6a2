"""Learning-rate schedules as Keras writes them (keras.optimizers.schedules).

A schedule maps the optimizer's step count to a learning rate. Pass one as `learning_rate=` of
any optimizer: before each update the optimizer calls `schedule(optimizer.iterations)`, the
number of steps already taken (0 for the first), as Keras does. Reached as
`minicnn.optimizers.schedules`. The formulas are Keras's; minicnn evaluates them in float64
where Keras uses float32, so the two rates differ by float32 rounding (~1e-7 relative).
"""

from __future__ import annotations

import math


class LearningRateSchedule:
    """Base class: subclasses define __call__(step) -> float and get_config()."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> LearningRateSchedule:
        return cls(**config)


def _check_decay_steps(decay_steps) -> None:
    if not decay_steps > 0:
        raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={decay_steps}")


class _DecayEverySteps(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: their arguments, and the decay's
    progress p = step / decay_steps, floored when staircase=True."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False, name: str | None = None):
        _check_decay_steps(decay_steps)
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase = decay_rate, staircase
        self.name = type(self).__name__ if name is None else name

    def _progress(self, step: int) -> float:
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_DecayEverySteps):
    """initial_learning_rate * decay_rate ** (step / decay_steps); the exponent is floored
    when staircase=True, so the rate drops every decay_steps steps."""

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate * self.decay_rate**self._progress(step)


class InverseTimeDecay(_DecayEverySteps):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps), floored like
    ExponentialDecay when staircase=True."""

    def __call__(self, step: int) -> float:
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <=
    boundaries[i], values[-1] after the last boundary."""

    def __init__(self, boundaries: list, values: list, name: str = "PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        if any(later <= earlier for earlier, later in
               zip(list(boundaries), list(boundaries)[1:], strict=False)):
            raise ValueError(f"Invalid value for argument `boundaries`. Expected strictly "
                             f"increasing steps. Received boundaries={list(boundaries)}")
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values, strict=False):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Half a cosine from the rate down to alpha * rate over decay_steps, then flat.

    With warmup_target, the rate first rises linearly from initial_learning_rate to
    warmup_target over warmup_steps, and the cosine then starts from warmup_target.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 name: str = "CosineDecay", warmup_target: float | None = None,
                 warmup_steps: int = 0):
        _check_decay_steps(decay_steps)
        self.initial_learning_rate, self.decay_steps, self.alpha = (
            initial_learning_rate, decay_steps, alpha)
        self.name, self.warmup_target, self.warmup_steps = name, warmup_target, warmup_steps

    def _decay(self, step: float, decay_from: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return decay_from * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


_BY_NAME = {cls.__name__: cls for cls in (ExponentialDecay, InverseTimeDecay,
                                          PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """{"class_name": ..., "config": ...}: how a schedule is stored in an optimizer's config."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> LearningRateSchedule:
    known = {**_BY_NAME, **(custom_objects or {})}
    name = config.get("class_name")
    if name not in known:
        raise ValueError(f"unknown learning rate schedule class {name!r}; expected one of "
                         f"{sorted(known)}")
    return known[name].from_config(config["config"])
