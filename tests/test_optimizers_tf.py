"""Optimizers and schedules against Keras's: the same gradients, ten steps, the same weights.

SGD (plain, momentum, Nesterov), Adam and AdamW, each bare, with clipnorm, with clipvalue (and one
with global_clipnorm and one driven by a schedule), fed the same float32 gradients as Keras's
optimizer; the weights are compared after every step. Run with `-s` to see the differences.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
keras = pytest.importorskip("keras", reason="Keras 3 comes with TensorFlow")

from minicnn import optimizers  # noqa: E402
from minicnn.layers import Parameter  # noqa: E402
from tests.test_oracle_tf import report  # noqa: E402
from tests.tolerances import (  # noqa: E402
    OPTIMIZER_STEP_ATOL,
    OPTIMIZER_STEP_RTOL,
    SCHEDULE_RTOL,
)

BASE = [("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
        ("Adam", {}), ("AdamW", {}), ("AdamW", {"weight_decay": 0.1, "learning_rate": 0.01})]
CLIPS = [{}, {"clipnorm": 0.5}, {"clipvalue": 0.05}]
CASES = [(name, {**config, **clip}) for name, config in BASE for clip in CLIPS]
CASES += [("SGD", {"momentum": 0.5, "global_clipnorm": 0.5}),
          ("Adam", {"global_clipnorm": 0.5})]


def run_both(name: str, ours_config: dict, theirs_config: dict, steps: int = 10,
             ours_class: type | None = None) -> None:
    """Feed both optimizers the same gradients, tensors of three shapes and of sizes from 1e-4
    to 1, and compare the weights after each step."""
    rng = np.random.default_rng(13)
    shapes = [(3, 3, 2, 4), (4,), (7, 5)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-4, 1)).astype(np.float32)
              for s in shapes] for _ in range(steps)]
    params = [Parameter(f"w{k}", w.copy()) for k, w in enumerate(start)]
    ours = (ours_class or getattr(optimizers, name))(**ours_config)
    variables = [keras.Variable(w.copy()) for w in start]
    theirs = getattr(keras.optimizers, name)(**theirs_config)
    for step, g in enumerate(grads):
        for p, gk in zip(params, g, strict=True):
            p.grad[...] = gk
        ours.step(params)
        theirs.apply_gradients(zip([tf.constant(gk) for gk in g], variables, strict=True))
        for p, gk in zip(params, g, strict=True):
            assert np.array_equal(p.grad, gk), "the step changed param.grad"
        for p, v in zip(params, variables, strict=True):
            report(f"{name} {ours_config} step {step + 1} {p.name}", p.value, v.numpy(),
                   OPTIMIZER_STEP_RTOL, OPTIMIZER_STEP_ATOL)
    assert ours.iterations == int(theirs.iterations) == steps


@pytest.mark.parametrize("name, config", CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in c.items()) or 'defaults'}"
                              for n, c in CASES])
def test_optimizer_matches_keras_over_ten_steps(name, config):
    run_both(name, config, config)


SCHEDULES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5,
                          "staircase": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 2.0}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 2.0,
                          "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [3, 7], "values": [0.1, 0.05, 0.01]}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 20}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 20, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 20, "warmup_target": 0.1,
                     "warmup_steps": 5}),
]


@pytest.mark.parametrize("name, config", SCHEDULES,
                         ids=[f"{n}-{k}" for k, (n, _) in enumerate(SCHEDULES)])
def test_schedule_matches_keras_over_forty_steps(name, config):
    """Steps 0 to 39 cover each schedule's boundaries, warmup and the flat end of the cosine."""
    ours = getattr(optimizers.schedules, name)(**config)
    theirs = getattr(keras.optimizers.schedules, name)(**config)
    assert ours.get_config() == theirs.get_config()
    steps = range(40)
    report(f"{name} {config}", np.array([ours(s) for s in steps], dtype=np.float32),
           np.array([theirs(s) for s in steps], dtype=np.float32), SCHEDULE_RTOL, 0.0)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optimizer_driven_by_a_schedule_matches_keras(name):
    """The rate of each step is schedule(iterations), as Keras computes it."""
    config = {"initial_learning_rate": 0.05, "decay_steps": 2, "decay_rate": 0.5}
    extra = {"momentum": 0.9} if name == "SGD" else {}
    run_both(name, {"learning_rate": optimizers.schedules.ExponentialDecay(**config), **extra},
             {"learning_rate": keras.optimizers.schedules.ExponentialDecay(**config), **extra})


class DecayAfterAdam(optimizers.AdamW):
    """A planted bug: the weight decay applied after Adam's update instead of before it."""

    def step(self, params):
        lr, weight_decay = self.learning_rate, self.weight_decay
        self.weight_decay = None
        super().step(params)
        self.weight_decay = weight_decay
        for p in params:
            p.value -= p.value * np.float32(weight_decay) * np.float32(lr)


def test_the_comparison_catches_weight_decay_in_the_wrong_order():
    """The two orders differ by lr * weight_decay * (Adam's step) per step: 1e-5 here, which
    the comparison must see (it would not at AdamW's defaults, where it is ~4e-9)."""
    config = {"weight_decay": 0.1, "learning_rate": 0.01}
    with pytest.raises(AssertionError, match=r"max\|diff\| \S+ > atol"):
        run_both("AdamW", config, config, ours_class=DecayAfterAdam)
