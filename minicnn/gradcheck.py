"""Gradient checking: every analytic gradient against float64 central differences.

    report = check_layer(layer, x)         # any Layer, your own subclasses included
    print(report)                          # a table: tensor, error, where, verdict
    assert report.passed

How it works: the layer (or stack of layers) is copied and cast to float64, so the original is
untouched. One forward pass with training=True and one backward pass from a *random* upstream
gradient `dout` give the analytic gradients of f = sum(y * dout). Then every element t of the
input and of each parameter (or `max_checks` sampled ones) is nudged both ways:

    numeric = (f(t + eps) - f(t - eps)) / (2 * eps)

A random dout matters: with all ones, a backward that, say, transposes dout still passes.

The error of a tensor is max |analytic - numeric| / max(|analytic|_max, |numeric|_max): relative
to the tensor's scale, so a single wrong element anywhere shows up as an error near 1, while tiny
entries do not blow up as they do in a per-element ratio.

Kinks (a ReLU input or a pool tie within eps of switching) make the central difference meaningless.
They are detected as elements whose one-sided differences disagree, reported, and left out of the
error rather than failing silently or passing silently.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from minicnn.layers.base import Layer
from minicnn.losses import LossHead

TOLERANCE = 1e-6
EPSILON = 1e-6


@dataclass
class TensorCheck:
    """The check of one tensor: how many elements, the error, and where it was worst."""

    name: str
    shape: tuple
    checked: int
    error: float
    worst_index: tuple
    analytic: float  # at worst_index
    numeric: float  # at worst_index
    kinks: list[tuple] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        """Within tolerance, with at least one element away from a kink actually compared."""
        return bool(self.error <= self.tolerance) and (self.checked == 0 or
                                                       len(self.kinks) < self.checked)


@dataclass
class GradCheckReport:
    title: str
    tensors: list[TensorCheck]
    epsilon: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def max_error(self) -> float:
        return max((t.error for t in self.tensors), default=0.0)

    def __getitem__(self, name: str) -> TensorCheck:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"no tensor named {name!r}; have {[t.name for t in self.tensors]}")

    def __str__(self) -> str:
        width = max([24, *(len(t.name) + 2 for t in self.tensors)])
        head = (f"{'tensor':<{width}}{'shape':<18}{'checked':>9}  {'rel. error':>10}  "
                f"{'worst at':<16}{'analytic':>12}{'numeric':>12}{'kinks':>6}  verdict")
        lines = [f"Gradient check of {self.title}: float64, central differences, "
                 f"eps={self.epsilon:g}, tolerance={self.tolerance:g}", head, "-" * len(head)]
        for t in self.tensors:
            size = int(np.prod(t.shape))
            lines.append(
                f"{t.name:<{width}}{t.shape!s:<18}{f'{t.checked}/{size}':>9}  {t.error:>10.2e}  "
                f"{t.worst_index!s:<16}{t.analytic:>12.5g}{t.numeric:>12.5g}"
                f"{len(t.kinks):>6}  {_verdict(t)}")
        kinks = sum(len(t.kinks) for t in self.tensors)
        if kinks:
            lines.append(f"{kinks} checked element(s) sat within eps of a kink (a ReLU input at "
                         "0 or a tie in a pool window), where a difference quotient means "
                         "nothing; they are left out of the error (see .kinks).")
        lines.append("PASSED" if self.passed else
                     "FAILED: " + ", ".join(t.name for t in self.tensors if not t.passed))
        return "\n".join(lines)


def _verdict(t: TensorCheck) -> str:
    if t.passed:
        return "ok"
    return "FAIL" if t.error > t.tolerance else "kinks only"


# One-sided slopes that differ by more than this share of the larger one may mean a kink.
KINK_JUMP = 1e-4
# How far move_kinks nudges the input and weights, as a share of their spread (std).
MOVE = 1e-2


def _at_kink(f, value, index, old, epsilon, f0, f_plus, f_minus) -> bool:
    """Does a ReLU flip or a pool's choice change within eps of this element?

    The one-sided slopes (f(t + eps) - f(t)) / eps and (f(t) - f(t - eps)) / eps differ by
    eps * f'' where f is smooth, an amount that halves with the step, but by the jump in slope
    at a kink inside the step, which does not shrink. So an element is a kink when the slopes
    disagree and the disagreement does not exactly halve when the step is halved.
    """
    right, left = (f_plus - f0) / epsilon, (f0 - f_minus) / epsilon
    jump = abs(right - left)
    # Below this the jump is float64 rounding of f, not a property of f.
    noise = 1e3 * np.finfo(np.float64).eps * max(1.0, abs(f0)) / epsilon
    if jump <= KINK_JUMP * max(abs(right), abs(left)) or jump <= noise:
        return False
    half = epsilon / 2
    value[index] = old + half
    f_plus_half = f()
    value[index] = old - half
    f_minus_half = f()
    value[index] = old
    jump_half = abs((f_plus_half - f0) - (f0 - f_minus_half)) / half
    # Smooth: exactly half, to O(eps^2). One kink or several within the step break that.
    return abs(jump_half - jump / 2) > 0.1 * jump


def _check_tensor(name: str, value: np.ndarray, analytic: np.ndarray, f: Callable[[], float],
                  epsilon: float, tolerance: float, max_checks: int | None,
                  rng: np.random.Generator) -> TensorCheck:
    """Nudge elements of `value` in place (restoring each) and compare with `analytic`."""
    flat_size = value.size
    if max_checks is None or max_checks >= flat_size:
        picks = np.arange(flat_size)
    else:
        picks = np.sort(rng.choice(flat_size, size=max_checks, replace=False))
    f0 = f()
    numeric = np.empty(len(picks))
    kinks = []
    for k, flat in enumerate(picks):
        index = np.unravel_index(flat, value.shape)
        old = value[index]
        value[index] = old + epsilon
        f_plus = f()
        value[index] = old - epsilon
        f_minus = f()
        value[index] = old
        numeric[k] = (f_plus - f_minus) / (2 * epsilon)
        if _at_kink(f, value, index, old, epsilon, f0, f_plus, f_minus):
            kinks.append(tuple(int(i) for i in index))
    exact = analytic.reshape(-1)[picks].astype(np.float64)
    smooth = np.array([tuple(int(i) for i in np.unravel_index(p, value.shape)) not in kinks
                       for p in picks], dtype=bool) if kinks else np.ones(len(picks), bool)
    diff = np.where(smooth, np.abs(exact - numeric), 0.0)
    scale = max(np.abs(exact[smooth]).max(initial=0.0), np.abs(numeric[smooth]).max(initial=0.0))
    error = float(diff.max(initial=0.0) / scale) if scale > 0 else float(diff.max(initial=0.0))
    worst = int(diff.argmax()) if len(picks) else 0
    worst_index = (tuple(int(i) for i in np.unravel_index(picks[worst], value.shape))
                   if len(picks) else ())
    return TensorCheck(name, value.shape, len(picks), error, worst_index,
                       float(exact[worst]) if len(picks) else 0.0,
                       float(numeric[worst]) if len(picks) else 0.0, kinks, tolerance)


def check_layers(layers: Sequence[Layer], x: np.ndarray, *, y=None, loss=None, dout=None,
                 seed: int = 0, epsilon: float = EPSILON, tolerance: float = TOLERANCE,
                 max_checks: int | None = None, check_input: bool = True,
                 title: str | None = None, move_kinks: bool = True,
                 training: bool = True) -> GradCheckReport:
    """Check the gradients of a stack of layers applied in order to x.

    Without `loss`, the scalar checked is sum(output * dout) with a random dout (seeded). With
    `loss` and targets `y`, it is the loss itself, and the backward pass starts where training
    starts it (`losses.LossHead`: the fused (p - y) / N when the last layer ends in a softmax).
    Every pass runs the layers with `training` (as fit does by default; False as predict does).
    `max_checks` samples that many elements per tensor (None checks every element).

    With `move_kinks`, a check that met kinks is run again once at a nearby point: the float64
    copies of the input and of every weight nudged by Gaussian noise of MOVE of their spread
    (a fresh model on an image with an exact-zero background sits *on* the kinks: zero biases
    and zero pixels make conv outputs exactly 0). The report says when it moved.
    """
    rng = np.random.default_rng(seed)
    stack = [copy.deepcopy(layer) for layer in layers]
    x = np.array(x, dtype=np.float64)
    for layer in stack:
        layer.set_dtype(np.float64) if layer.built else setattr(layer, "dtype", np.dtype("f8"))
    if title is None:
        title = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in stack)
    checks = _check_stack(stack, x, y, loss, dout, rng, epsilon, tolerance, max_checks,
                          check_input, training)
    kinks = sum(len(t.kinks) for t in checks)
    if kinks and move_kinks:
        for value in [x, *(p.value for layer in stack for p in layer.params)]:
            value += rng.normal(0.0, MOVE * (float(value.std()) or 1.0), value.shape)
        checks = _check_stack(stack, x, y, loss, dout, rng, epsilon, tolerance, max_checks,
                              check_input, training)
        title += (f" (moved: {kinks} element(s) sat at kinks, so the input and weights were "
                  f"nudged by {MOVE:g} of their spread and checked again)")
    return GradCheckReport(title, checks, epsilon, tolerance)


def _check_stack(stack, x, y, loss, dout, rng, epsilon, tolerance, max_checks,
                 check_input, training) -> list[TensorCheck]:
    def run() -> np.ndarray:
        h = x
        for layer in stack:
            h = layer(h, training=training)
        return h

    out = run()
    if loss is not None:
        head = LossHead(loss, stack[-1])  # the same first backward step as training takes

        def f() -> float:
            o = run()
            return float(head.per_sample(y, o).mean())
        g = head.backward(y, out, stack[-1])
    else:
        if dout is None:
            dout = rng.standard_normal(out.shape)
        dout = np.asarray(dout, dtype=np.float64)

        def f() -> float:
            return float(np.sum(run() * dout))
        g = stack[-1].backward(dout)
    for layer in reversed(stack[:-1]):
        g = layer.backward(g)
    analytic = [(p.name, p.value, p.grad.copy()) for layer in stack for p in layer.params]
    if check_input:
        analytic.insert(0, ("input", x, np.asarray(g).copy()))
    return [_check_tensor(name, value, grad, f, epsilon, tolerance, max_checks, rng)
            for name, value, grad in analytic]


def check_layer(layer: Layer, x: np.ndarray, *, dout=None, seed: int = 0,
                epsilon: float = EPSILON, tolerance: float = TOLERANCE,
                max_checks: int | None = None, check_input: bool = True,
                move_kinks: bool = True, training: bool = True) -> GradCheckReport:
    """Check one layer's backward against central differences; see `check_layers`."""
    return check_layers([layer], x, dout=dout, seed=seed, epsilon=epsilon, tolerance=tolerance,
                        max_checks=max_checks, check_input=check_input,
                        title=f"{layer.name} ({type(layer).__name__})", move_kinks=move_kinks,
                        training=training)
