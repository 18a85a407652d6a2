"""minicnn's own callbacks for studying training: LearningCheck (a layer that did not learn)
and BackwardSummaryLogger (the backward summary every epoch)."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np

from minicnn.callbacks.base import Callback


def _callers_level() -> int:
    """The stacklevel that points a warning at the first frame outside minicnn (the user's
    `fit` call), not at the callback machinery that raised it."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class LearningWarning(UserWarning):
    """A layer did not learn in the first steps of training."""


# The first layer's update ratio this many times below the last's: vanishing gradients?
VANISHING = 100.0
# BatchNormalization's moving variance this many times above or below the variance of the
# batch it normalises at inference, in some channel: its moving statistics lag.
BN_LAG = 2.0


class LearningCheck(Callback):
    """Did every layer learn? After the first `steps` training steps, warn about each parameter
    tensor that never got a non-zero gradient or never moved, and when the first layer with
    weights moved VANISHING times less (relative to its size) than the last one: a vanishing
    gradient. At the end of each epoch, warn (once per layer) when a BatchNormalization's
    moving variance differs from the variance of the last training batch's input to it, at
    inference, by more than a factor BN_LAG in some channel: inference then normalises
    differently from training.

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
        self._lagging: set[str] = set()

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
            warnings.warn(f"Layer did not learn: {problem}", LearningWarning,
                          stacklevel=_callers_level())
        if not self.problems:  # a layer that did not learn at all says more than a ratio
            self._check_vanishing(params)

    def _check_vanishing(self, params) -> None:
        """The first and the last layer with weights: how far each moved, relative to itself."""
        by_layer: dict[str, list[int]] = {}
        for k, p in enumerate(params):
            by_layer.setdefault(p.name.rsplit("/", 1)[0], []).append(k)
        ratios = []
        for name, ks in by_layer.items():
            moved = np.sqrt(sum(np.sum(np.square(params[k].value - self.start[k],
                                                 dtype=np.float64)) for k in ks))
            size = np.sqrt(sum(np.sum(np.square(self.start[k], dtype=np.float64)) for k in ks))
            if size > 0:
                ratios.append((name, float(moved / size)))
        if len(ratios) >= 2 and ratios[0][1] * VANISHING < ratios[-1][1]:
            (first, a), (last, b) = ratios[0], ratios[-1]
            message = (f"vanishing gradients? In the first {self.steps} steps '{first}' moved "
                       f"{a:.2e} of its size, {b / max(a, 1e-300):.0f}x less than '{last}' "
                       f"({b:.2e}). Saturating activations (sigmoid, tanh) shrink the gradient "
                       "at every layer; try ReLU, BatchNormalization, or a better "
                       "initialisation (callbacks.GradientFlow shows it layer by layer).")
            self.problems.append(message)
            warnings.warn(message, LearningWarning, stacklevel=_callers_level())

    def on_epoch_end(self, epoch, logs=None):
        xs = getattr(self.model._local, "last_batch", None)
        if xs is None or not any(type(layer).__name__ == "BatchNormalization"
                                 for layer in self.model._compute_layers):
            return
        found = []

        def look(layer, x, y):
            if type(layer).__name__ != "BatchNormalization" or layer.name in self._lagging:
                return
            axes = tuple(range(x.ndim - 1))
            batch_mean = x.mean(axis=axes, dtype=np.float64)
            batch_var = x.var(axis=axes, dtype=np.float64)
            moving = layer.moving_variance.value.astype(np.float64)
            ratio = np.maximum(moving, 1e-12) / np.maximum(batch_var, 1e-12)
            c = int(np.argmax(np.maximum(ratio, 1 / ratio)))
            if max(ratio[c], 1 / ratio[c]) > BN_LAG:
                found.append((layer, c, moving[c], batch_var[c],
                              float(layer.moving_mean.value[c]), float(batch_mean[c])))

        with self.model._inference_plan() as plan:
            self.model.training_pass(plan).forward(xs, training=False, hook=look)
        if not found:
            return
        # one warning, the first lagging layer in detail (the others lag the same way)
        layer, c, moving, actual, moving_mean, actual_mean = found[0]
        others = [f"'{f[0].name}'" for f in found[1:]]
        self._lagging.update(f[0].name for f in found)
        message = (f"BatchNormalization '{layer.name}': after epoch {epoch + 1} its moving "
                   f"variance in channel {c} is {moving:.3g}, the last training batch's at "
                   f"inference {actual:.3g} (means {moving_mean:.3g} and {actual_mean:.3g})"
                   + (f"; {', '.join(others)} lag too" if others else "") +
                   f". Inference normalises differently from training, so validation and "
                   f"predict suffer. With momentum={layer.momentum} the moving statistics keep "
                   f"{layer.momentum:.0%} of themselves per step: train longer, or lower the "
                   f"momentum (e.g. 0.9).")
        self.problems.append(message)
        warnings.warn(message, LearningWarning, stacklevel=_callers_level())


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
