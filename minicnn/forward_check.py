"""The checker's forward half: is the output right, before asking whether its gradient is?

A gradient check compares backward with forward, so a wrong forward with a backward that matches
it passes: a Dropout that forgets its 1/(1 - rate) scale, a BatchNormalization that divides by
N - 1. `check_layer(layer, x, ...)` therefore also runs these, on float64 copies:

- **Against a reference** (`reference=` a layer or a function of x): the outputs in inference
  mode and in training mode, `max |y - y_ref| / max |y_ref|` within the tolerance. A reference
  layer gets the checked layer's weights first (`set_weights`), so `reference=layers.Dense(4)`
  checks a Dense of your own from the same weights. A function is called as `f(x, training)`
  when it takes `training`, else as `f(x)` for both modes.
- **The mean of the draws.** For a layer that draws random numbers in training (a Dropout), the
  mean of its training output over DRAWS draws must be its inference output (the reference's,
  when one is given): E[x * mask / (1 - rate)] = x. Each element is tested by its z-score,
  |mean - expected| / (std / sqrt(DRAWS)), against Z_LIMIT: a correct layer stays below it with
  any seed (a z of 6 is a 1e-9 chance per element), an unscaled Dropout of rate 0.5 is off by
  half of x, a z in the tens or hundreds. Random augmentation (RandomFlip, RandomTranslation),
  whose mean is not meant to be its inference output, is left out (`expectation=False` leaves
  out a layer of your own).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DRAWS = 2000  # training passes averaged for the mean of the draws
Z_LIMIT = 6.0  # largest z-score of a mean accepted as the expected value


@dataclass
class ForwardCheck:
    """One comparison of outputs: in which mode, against what, how far, where."""

    mode: str  # "inference" or "training"
    against: str  # "the reference", "the inference output (mean of 2000 draws)"
    error: float  # relative difference, or the largest z-score for a mean of draws
    limit: float
    worst_index: tuple | None
    ours: float
    expected: float

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.limit)  # a NaN error fails

    def line(self) -> str:
        what = "z-score" if "draws" in self.against else "rel. diff"
        where = ("-" if self.worst_index is None else
                 f"at {self.worst_index}: {self.ours:.6g} against {self.expected:.6g}")
        return (f"forward ({self.mode}) vs {self.against}: {what} {self.error:.2e} "
                f"(limit {self.limit:g}), {where}  {'ok' if self.passed else 'FAIL'}")


def _float64_copy(layer, x_shape: tuple, seed: int):
    twin = copy.deepcopy(layer)
    if twin.built:
        twin.set_dtype(np.float64)
    else:
        twin.dtype = np.dtype("f8")
        twin.build((None, *x_shape[1:]))
    if getattr(twin, "rng", None) is None:
        twin.rng = np.random.default_rng(seed)
    return twin


def _reference_call(reference, layer, x: np.ndarray, seed: int
                    ) -> Callable[[np.ndarray, bool], np.ndarray]:
    """reference as a function (x, training) -> y on float64 copies."""
    from minicnn.layers.base import Layer

    if isinstance(reference, Layer):
        twins = {}

        def call(x, training):
            if training not in twins:  # one copy per mode: training may move its state
                twin = _float64_copy(reference, x.shape, seed)
                theirs, ours = twin.get_weights(), layer.get_weights()
                if [w.shape for w in theirs] != [w.shape for w in ours]:
                    raise ValueError(
                        f"Invalid value for argument `reference`: layer '{reference.name}' has "
                        f"weights of shapes {[w.shape for w in theirs]}, the checked layer "
                        f"'{layer.name}' {[w.shape for w in ours]}; the reference runs with the "
                        "checked layer's weights, so they must have the same shapes.")
                twin.set_weights([w.astype(np.float64) for w in ours])
                twins[training] = twin
            return np.asarray(twins[training](x.copy(), training=training), np.float64)
        return call
    if not callable(reference):
        raise ValueError(f"Invalid value for argument `reference`. Expected a layer or a "
                         f"function of x. Received reference={reference!r}")
    takes_training = "training" in inspect.signature(reference).parameters
    return lambda x, training: np.asarray(
        reference(x.copy(), training=training) if takes_training else reference(x.copy()),
        np.float64)


def _relative(ours: np.ndarray, expected: np.ndarray, mode: str, tolerance: float
              ) -> ForwardCheck:
    if ours.shape != expected.shape:
        return ForwardCheck(mode, f"the reference (its output is {expected.shape}, the layer's "
                            f"{ours.shape})", float("inf"), tolerance, None, np.nan, np.nan)
    diff = np.abs(ours - expected)
    scale = max(float(np.abs(expected).max(initial=0.0)), np.finfo(np.float64).tiny)
    worst = np.unravel_index(int(np.nanargmax(diff)) if diff.size else 0, diff.shape)
    error = float(diff.max(initial=0.0)) / scale if not np.isnan(diff).any() else float("nan")
    index = tuple(int(i) for i in worst) if diff.size and diff[worst] > 0 else None
    return ForwardCheck(mode, "the reference", error, tolerance, index,
                        float(ours[worst]) if diff.size else 0.0,
                        float(expected[worst]) if diff.size else 0.0)


def check_forward(layer, x: np.ndarray, *, reference=None, expectation: bool | None = None,
                  seed: int = 0, tolerance: float = 1e-6) -> list[ForwardCheck]:
    """The forward checks of `layer` on x (see the module docstring), on float64 copies."""
    x = np.array(x, dtype=np.float64)
    first = _float64_copy(layer, x.shape, seed)  # built once: both modes get its weights
    ours = {False: first, True: copy.deepcopy(first)}
    theirs = None if reference is None else _reference_call(reference, ours[False], x, seed)
    checks = []
    y = {mode: np.asarray(ours[mode](x.copy(), training=mode), np.float64)
         for mode in (False, True)}

    def draws_in(mode: bool) -> bool:
        again = np.asarray(ours[mode](x.copy(), training=mode), np.float64)
        return y[mode].shape == again.shape and not np.array_equal(y[mode], again,
                                                                    equal_nan=True)

    def mean_and_error(mode: bool) -> tuple[np.ndarray, np.ndarray]:
        samples = np.stack([np.asarray(ours[mode](x.copy(), training=mode), np.float64)
                            for _ in range(DRAWS)])
        return samples.mean(axis=0), samples.std(axis=0) / np.sqrt(DRAWS)

    draws = draws_in(True)
    if expectation is None:
        expectation = not getattr(layer, "training_by_default", False)
    for mode in (False, True):
        name = "training" if mode else "inference"
        if mode and draws:
            if not expectation:
                continue
            expected, expected_error = (theirs(x, False), 0.0) if theirs is not None else (
                # a layer that draws at inference too (CS231n's np.random.rand dropout does):
                # the mean of its inference draws, with their own standard error
                mean_and_error(False) if draws_in(False) else (y[False], 0.0))
            mean, error = mean_and_error(True)
            z = np.abs(mean - expected) / (np.hypot(error, expected_error) + 1e-12 * (
                1 + np.abs(expected)))
            worst = np.unravel_index(int(np.argmax(z)), z.shape)
            checks.append(ForwardCheck(
                name, f"the inference output (mean of {DRAWS} draws)", float(z.max()),
                Z_LIMIT, tuple(int(i) for i in worst), float(mean[worst]),
                float(expected[worst])))
        elif theirs is not None:
            checks.append(_relative(y[mode], theirs(x, mode), name, tolerance))
    return checks
