"""Weight initializers with Keras's names and formulas, drawn from an explicit Generator.

Each initializer is called as `init(shape, dtype, rng)`. A seed given to the initializer itself
wins over the generator the layer is built with, so `GlorotUniform(seed=1)` fixes one tensor and
`Sequential(seed=1)` fixes every tensor of a model.
"""

from __future__ import annotations

import math

import numpy as np


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """Keras's fan-in and fan-out; a conv kernel (KH, KW, C_in, C_out) counts its window."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive_field = math.prod(shape[:-2])
    return float(shape[-2] * receptive_field), float(shape[-1] * receptive_field)


# The generator `utils.set_random_seed` sets: what a layer built without a model's generator
# (a functional-API call, a layer on its own) draws from, and where a Model without a seed takes
# its seed. None: fresh entropy every time.
_global: np.random.Generator | None = None


def set_global_seed(seed: int | None) -> None:
    """Draw every weight that has no generator of its own from one generator seeded with
    `seed` (None: from fresh entropy again). `minicnn.utils.set_random_seed` calls it."""
    global _global
    _global = None if seed is None else np.random.default_rng(seed)


def global_generator() -> np.random.Generator:
    """The seeded generator when `set_random_seed` was called, else a fresh one."""
    return _global if _global is not None else np.random.default_rng()


class Initializer:
    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape: tuple[int, ...], dtype, rng: np.random.Generator | None = None):
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = global_generator()
        return self.sample(tuple(shape), np.dtype(dtype), rng)

    def sample(self, shape, dtype, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


class Zeros(Initializer):
    def sample(self, shape, dtype, rng):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def sample(self, shape, dtype, rng):
        return np.ones(shape, dtype=dtype)


class GlorotUniform(Initializer):
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))."""

    def sample(self, shape, dtype, rng):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)


class HeNormal(Initializer):
    """Normal truncated at two standard deviations, stddev sqrt(2 / fan_in), as Keras draws it."""

    def sample(self, shape, dtype, rng):
        fan_in, _ = _fans(shape)
        # 0.8796... is the stddev of a unit normal truncated to [-2, 2]; dividing by it makes the
        # truncated draw have the intended stddev.
        stddev = math.sqrt(2.0 / fan_in) / 0.87962566103423978
        draw = rng.standard_normal(size=shape)
        bad = np.abs(draw) > 2.0
        while bad.any():
            draw[bad] = rng.standard_normal(size=int(bad.sum()))
            bad = np.abs(draw) > 2.0
        return (draw * stddev).astype(dtype)


_BY_NAME = {"zeros": Zeros, "ones": Ones, "glorot_uniform": GlorotUniform,
            "he_normal": HeNormal}


def get(identifier: str | Initializer | dict, argument: str = "initializer") -> Initializer:
    """An initializer from its Keras name, an Initializer, or a saved {"class_name", "seed"}."""
    if isinstance(identifier, Initializer):
        return identifier
    by_class = {cls.__name__: cls for cls in _BY_NAME.values()}
    if isinstance(identifier, dict) and identifier.get("class_name") in by_class:
        return by_class[identifier["class_name"]](seed=identifier.get("seed"))
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(
        f"Invalid value for argument `{argument}`. Expected one of {sorted(_BY_NAME)} or an "
        f"Initializer instance. Received {argument}={identifier!r}"
    )
