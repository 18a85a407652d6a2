"""Sanity checks before a long run, as CS231n teaches them.

    from minicnn import study
    study.initial_loss(model, x[:512], y[:512])   # the untrained loss beside what it should be
    study.overfit_small(model, x, y, n=50)        # can the model learn 50 samples by heart?

**The loss at initialisation.** An untrained classifier knows nothing, so it should give each
of the K classes about 1/K, and its cross-entropy is then -ln(1/K) = ln(K): 2.303 for 10 classes
(ln 2 = 0.693 for a binary one). Far above that, the initial weights make confident wrong
predictions (too large, or a missing normalisation of the inputs); far below, the labels leak
into the inputs or the loss is wrong. For a regression loss the reference is what the best
constant guess scores, the loss of predicting the mean target everywhere.

**Overfitting a small sample.** A model that cannot drive the loss on 50 samples close to zero,
with enough steps, will not learn the whole set either: a layer is disconnected, the learning
rate is far off, the labels do not match the inputs. The check trains a copy of the model (the
model itself is untouched) on the first n samples, all in one batch, and says whether the loss
fell below `target` of where it started.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from minicnn import losses


@dataclass
class InitialLoss:
    loss: float
    expected: float  # what a model that knows nothing scores
    reason: str  # where `expected` comes from, in words

    @property
    def ratio(self) -> float:
        return self.loss / self.expected if self.expected else math.inf

    @property
    def ok(self) -> bool:
        """Within a factor of 1.5 of what a model that knows nothing scores."""
        return 1 / 1.5 <= self.ratio <= 1.5

    def __str__(self) -> str:
        verdict = "as expected" if self.ok else (
            "too high: the initial weights make confident predictions (initializers, input "
            "scale?)" if self.ratio > 1 else "too low: do the labels leak into the inputs?")
        return (f"Loss at initialisation: {self.loss:.4f}; a model that knows nothing scores "
                f"{self.expected:.4f} ({self.reason}): {verdict}")


def initial_loss(model, x, y, print_fn=print) -> InitialLoss:
    """The compiled model's loss on (x, y) before training, beside ln(K) for a K-class
    cross-entropy (ln 2 for a binary one) or the best constant guess's loss for others."""
    value = model.evaluate(x, y, verbose=0)
    loss_value = float(value[0] if isinstance(value, list) else value)
    loss = model.loss
    out_shape = model.output_shape
    y = np.asarray(y)
    if isinstance(loss, losses.CategoricalCrossentropy) and out_shape[-1] > 1:
        K = out_shape[-1]
        expected, reason = math.log(K), f"ln({K}), each of {K} classes at 1/{K}"
    elif isinstance(loss, losses.BinaryCrossentropy):
        expected, reason = math.log(2), "ln(2), each output at 1/2"
    else:
        guess = np.broadcast_to(y.reshape(len(y), -1).mean(axis=0), y.reshape(len(y), -1).shape)
        expected = float(np.asarray(type(loss)()(y.reshape(len(y), -1), guess)))
        reason = "the mean target everywhere, the best constant guess"
    result = InitialLoss(loss_value, expected, reason)
    if print_fn:
        print_fn(str(result))
    return result


@dataclass
class OverfitReport:
    n: int
    steps: int
    start: float
    end: float
    target: float
    accuracy: float | None  # on the n samples, for a classifier

    @property
    def passed(self) -> bool:
        return self.end <= self.target * self.start

    def __str__(self) -> str:
        accuracy = "" if self.accuracy is None else f", accuracy {self.accuracy:.2%}"
        if self.passed:
            return (f"The model overfits {self.n} samples: loss {self.start:.4f} -> "
                    f"{self.end:.4f} in {self.steps} steps{accuracy}. It can learn.")
        return (f"The model could NOT overfit {self.n} samples: loss {self.start:.4f} -> "
                f"{self.end:.4f} after {self.steps} steps{accuracy} (wanted below "
                f"{self.target:g} of the start). Check the learning rate, that every layer "
                "gets a gradient (model.backward_summary), and that labels match inputs.")


def overfit_small(model, x, y, n: int = 50, steps: int = 300, target: float = 0.05,
                  print_fn=print) -> OverfitReport:
    """Train a copy of the compiled model on the first n samples of (x, y), all in one batch,
    for up to `steps` steps; passed when the loss falls below `target` times its start."""
    if not getattr(model, "compiled", False):
        raise RuntimeError("overfit_small() needs a compiled model: call compile() first")
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"Invalid value for argument `n`. Expected a strictly positive "
                         f"integer. Received n={n!r}")
    twin = copy.deepcopy(model)  # weights, optimizer state and all: the model stays as it was
    twin.learning_check = False
    xs = [a[:n] for a in x] if isinstance(x, (list, tuple)) else x[:n]
    ys = np.asarray(y)[:n]
    start = end = float(np.ravel(twin.evaluate(xs, ys, batch_size=n, verbose=0))[0])
    done = 0
    for done in range(1, steps + 1):
        twin.train_on_batch(xs, ys)
        if done % 10 == 0 or done == steps:
            end = float(np.ravel(twin.evaluate(xs, ys, batch_size=n, verbose=0))[0])
            if end <= target * start:
                break
    accuracy = None
    if isinstance(twin.loss, (losses.CategoricalCrossentropy, losses.BinaryCrossentropy)):
        from minicnn.metrics import get

        metric = get("accuracy", ys, np.zeros((1, *twin.output_shape[1:])))
        out = twin.predict(xs, batch_size=n, verbose=0)
        if isinstance(twin.loss, losses.BinaryCrossentropy) and getattr(
                twin.loss, "from_logits", False):
            out = 1 / (1 + np.exp(-out))
        accuracy = float(metric(ys, out))
    report = OverfitReport(len(ys), done, start, end, target, accuracy)
    if print_fn:
        print_fn(str(report))
    return report
