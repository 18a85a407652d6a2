"""minicnn's own callbacks for studying training: LearningCheck (a layer that did not learn)
and BackwardSummaryLogger (the backward summary every epoch)."""

from __future__ import annotations

import warnings

import numpy as np

from minicnn.callbacks.base import Callback


class LearningWarning(UserWarning):
    """A layer did not learn in the first steps of training."""


class LearningCheck(Callback):
    """Did every layer learn? After the first `steps` training steps, warn about each parameter
    tensor that never got a non-zero gradient or never moved.

    The classic from-scratch bug it catches: conv layers silently disconnected from the loss
    (a backward that returns zeros, or gradients written to a copy) while the dense head alone
    learns to ~93% accuracy, so nothing looks wrong. `fit` runs it by default.
    """

    def __init__(self, steps: int = 5):
        super().__init__()
        self.steps = steps
        self.problems: list[str] = []

    def on_train_begin(self, logs=None):
        self.start = [p.value.copy() for p in self.model.params]
        self.got_gradient = [False] * len(self.start)
        self.seen, self.problems = 0, []

    def on_train_batch_end(self, batch, logs=None):
        if self.seen >= self.steps:
            return
        params = self.model.params
        for k, p in enumerate(params):
            self.got_gradient[k] = self.got_gradient[k] or bool(np.any(p.grad))
        self.seen += 1
        if self.seen < self.steps:
            return
        for k, p in enumerate(params):
            if not self.got_gradient[k]:
                self.problems.append(f"{p.name} got an all-zero gradient in each of the first "
                                     f"{self.steps} steps: is the layer connected to the loss?")
            elif np.array_equal(p.value, self.start[k]):
                self.problems.append(f"{p.name} did not change in the first {self.steps} steps "
                                     "although its gradient was not zero")
        for problem in self.problems:
            warnings.warn(f"Layer did not learn: {problem}", LearningWarning, stacklevel=2)


class BackwardSummaryLogger(Callback):
    """model.backward_summary(x, y) at the end of every epoch, kept for plotting.

    `gradient_norms` maps each layer with weights to its |dL/dW| per epoch (the input of
    minicnn.plots.plot_gradient_norms); `summaries` keeps each epoch's whole BackwardSummary.
    """

    def __init__(self, x, y, print_every: int = 0):
        super().__init__()
        self.x, self.y, self.print_every = x, y, print_every
        self.summaries: list = []
        self.gradient_norms: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        summary = self.model.backward_summary(self.x, self.y, print_fn=False)
        self.summaries.append(summary)
        for row in summary.rows:
            if row.grad_norm is not None:
                self.gradient_norms.setdefault(row.name, []).append(row.grad_norm)
        if self.print_every and (epoch + 1) % self.print_every == 0:
            print(summary)
