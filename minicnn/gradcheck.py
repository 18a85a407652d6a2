"""Gradient checking: every analytic gradient against float64 central differences.

    report = check_layer(layer, x)         # any Layer, your own subclasses included
    print(report)                          # a table: tensor, error, where, verdict
    assert report.passed

How it works: the layer (or stack of layers) is copied and cast to float64, so the original is
untouched. One forward pass and one backward pass, both with the same `training` flag, give the
analytic gradients. Then each layer is checked on its own: with x_k the input it received and
dout_k the gradient its backward received (for the last layer a random dout, or the loss itself
when `loss` is given), every element t of x_k and of each parameter (or `max_checks` sampled
ones) is nudged both ways in f = sum(layer(x_k) * dout_k):

    numeric = (f(t + eps) - f(t - eps)) / (2 * eps)

So a wrong backward fails in its own layer's rows ('<layer>/input' is that layer's dx), not in
the rows of the correct layers below it that received its wrong gradient. A random dout
matters: with all ones, a backward that, say, transposes dout still passes.

The error of a tensor is max |analytic - numeric| / max(|analytic|_max, |numeric|_max) over
the elements compared: relative to the tensor's largest gradient, so tiny entries do not blow up
as they do in a per-element ratio. A wrong element scores its own error divided by that largest
gradient: near 1 only when that error is as large as the largest gradient; 2.5e-3 for an
element off by 1 next to gradients of 400 (still far above the tolerance: read `analytic` and
`numeric` at `worst at`).

Kinks (a ReLU, leaky ReLU or ELU input, or a pool tie, within eps of switching) make the
central difference meaningless. They are detected, from f alone, as elements whose one-sided
differences disagree by an amount that does not shrink with the step, reported, and left out of
the error rather than failing silently or passing silently. A tensor with nothing
left to compare (every checked element a kink, or both gradients 0 at every one) is reported as
"nothing compared", never as ok.

What the checker asks of a backward, and reports in plain words when it is not so: it returns
dx with the shape of x (not None); it *sets* each `param.grad` (backward runs twice on the same
dout, and a second call that gives other gradients, as `grad += ...` does, is reported); it may
change `dout` in place (it receives a copy).

`check_layer` also checks the forward pass (minicnn/forward_check.py): against a `reference`
layer or function in both modes, and, for a layer that draws random numbers, the mean of its
training outputs against its inference output; a backward that matches a wrong forward passes
the gradient check, so this is what catches the wrong forward.

Layers that draw random numbers (a Dropout) are checked with their draws held fixed. Draw from
a numpy Generator the layer holds, by convention `self.rng`: Keras-like, take a `seed=None`
argument and set `self.rng = np.random.default_rng(seed)` in `__init__`, or leave `self.rng`
None and a Sequential model gives the layer its own generator (the checker gives a layer whose
`rng` is None a seeded one). Just before a layer's first checked forward pass the checker records
the state of every Generator held in one of its attributes, and of numpy's global generator
(`np.random.rand`), and restores them before every later forward pass of that layer: each pass
draws the same numbers (for a Dropout: the same mask), and the check is of the layer for those
draws. A layer whose output still changes between two identical calls (a new `default_rng()`
made inside forward) is reported as "draws random numbers on every call", not checked.
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
    worst_index: tuple | None  # None when no compared element differs at all
    analytic: float  # at worst_index
    numeric: float  # at worst_index
    kinks: list[tuple] = field(default_factory=list)
    tolerance: float = TOLERANCE
    # Both gradients below float64 resolution at every compared element: nothing was compared.
    all_zero: bool = False

    @property
    def compared(self) -> int:
        """Checked elements away from kinks, whose difference quotient means something."""
        return self.checked - len(self.kinks)

    @property
    def verdict(self) -> str:
        if self.error > self.tolerance:
            return "FAIL"
        if self.compared == 0:
            return "nothing compared (all kinks)" if self.checked else "nothing compared"
        return "nothing compared (all 0)" if self.all_zero else "ok"

    @property
    def passed(self) -> bool:
        """Within tolerance, with at least one non-zero element away from a kink compared."""
        return self.verdict == "ok"


@dataclass
class Problem:
    """Something wrong with a layer that is not a gradient value: what and which layer."""

    layer: str  # "name (Class)"
    what: str  # a few words, for the FAILED line
    message: str  # the whole explanation


@dataclass
class GradCheckReport:
    title: str
    tensors: list[TensorCheck]
    epsilon: float
    tolerance: float
    problems: list[Problem] = field(default_factory=list)
    per_layer: bool = False  # a stack, each layer checked on its own input
    forward: list = field(default_factory=list)  # forward_check.ForwardCheck, check_layer's

    @property
    def passed(self) -> bool:
        return (not self.problems and all(t.passed for t in self.tensors)
                and all(c.passed for c in self.forward))

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
                 f"eps={self.epsilon:g}, tolerance={self.tolerance:g}"]
        if self.per_layer:
            lines.append("Each layer is checked on the input it received and the dout its "
                         "backward received (the last layer against the loss, if one is given);"
                         " '<layer>/input' is the dx that layer returned.")
        lines += [head, "-" * len(head)]
        for t in self.tensors:
            size = int(np.prod(t.shape))
            where = ("-", "-", "-") if t.worst_index is None else (
                str(t.worst_index), f"{t.analytic:.5g}", f"{t.numeric:.5g}")
            lines.append(
                f"{t.name:<{width}}{t.shape!s:<18}{f'{t.checked}/{size}':>9}  {t.error:>10.2e}  "
                f"{where[0]:<16}{where[1]:>12}{where[2]:>12}{len(t.kinks):>6}  {t.verdict}")
        lines += [c.line() for c in self.forward]
        kinks = sum(len(t.kinks) for t in self.tensors)
        if kinks:
            lines.append(f"{kinks} checked element(s) sat within eps of a kink (a ReLU input at "
                         "0 or a tie in a pool window), where a difference quotient means "
                         "nothing; they are left out of the error (see .kinks).")
        zeros = [t.name for t in self.tensors if t.verdict == "nothing compared (all 0)"]
        if zeros:
            lines.append(f"Nothing was compared for {', '.join(zeros)}: both gradients were 0 "
                         "at every checked element, as they would be for a backward that "
                         "returns zeros. Check at a point where this gradient is not 0, or "
                         "more elements (max_checks).")
        if any(t.verdict == "nothing compared (all kinks)" for t in self.tensors):
            lines.append("A tensor whose every checked element sat at a kink was not compared "
                         "at all: move the input or the weights off the kinks.")
        lines += [p.message for p in self.problems]
        failed = [t.name for t in self.tensors if not t.passed] + [
            f"{p.layer} ({p.what})" for p in self.problems] + [
            f"forward ({c.mode})" for c in self.forward if not c.passed]
        lines.append("PASSED" if self.passed else "FAILED: " + ", ".join(failed))
        return "\n".join(lines)


# One-sided slopes that differ by more than this share of the larger one may mean a kink.
KINK_JUMP = 1e-4
# How far move_kinks nudges the input and weights, as a share of their spread (std).
MOVE = 1e-2
# Differences of f below ROUNDING float64 epsilons of max(1, |f|) are rounding, not f.
ROUNDING = 1e3
# A central difference carries the rounding of its two values of f, each a sum of many terms:
# up to about QUOTIENT_NOISE float64 epsilons of max(1, |f|), over 2 epsilon. That much of
# |analytic - numeric| says nothing about the gradient. (Seen: a Dense + softmax
# cross-entropy input gradient of 3e-5, right, failed at 2e-6 relative error on 6.5e-11 of
# such noise.)
QUOTIENT_NOISE = 10


def _rounding_floor(f0: float, epsilon: float, epsilons: float = ROUNDING) -> float:
    """The smallest slope a difference quotient with step `epsilon` resolves at f = f0, when
    `epsilons` float64 epsilons of max(1, |f0|) are rounding."""
    return epsilons * np.finfo(np.float64).eps * max(1.0, abs(f0)) / epsilon


class _Unrepeatable(Exception):
    """f gave two different values at the same point."""


def _at_kink(f, value, index, old, epsilon, f0, f_plus, f_minus, bar=None) -> bool:
    """Does a ReLU flip or a pool's choice change within eps of this element?

    The one-sided slopes (f(t + eps) - f(t)) / eps and (f(t) - f(t - eps)) / eps differ by
    eps * f'' where f is smooth, an amount proportional to the step, but by a share of the jump
    in slope at a kink inside the step, which does not shrink with it. So an element is a kink
    when the slopes disagree (by more than `bar`: KINK_JUMP of the larger slope unless given)
    and the disagreement does not halve, then halve again (each within 10% of the first
    disagreement), as the step is halved twice. One halving is not enough: a kink at eps/3
    from t makes the disagreement at eps/2 exactly half the one at eps.
    """
    right, left = (f_plus - f0) / epsilon, (f0 - f_minus) / epsilon
    jump = abs(right - left)
    if bar is None:
        bar = KINK_JUMP * max(abs(right), abs(left))
    if jump <= bar or jump <= _rounding_floor(f0, epsilon):
        return False
    for step in (epsilon / 2, epsilon / 4):
        value[index] = old + step
        f_plus_step = f()
        value[index] = old - step
        f_minus_step = f()
        value[index] = old
        jump_step = abs((f_plus_step - f0) - (f0 - f_minus_step)) / step
        # Smooth: jump * step / epsilon, to O(eps^2). A kink inside the steps breaks that.
        if abs(jump_step - jump * step / epsilon) > 0.1 * jump:
            return True
    return False


def _pick(analytic: np.ndarray, max_checks: int | None, rng: np.random.Generator) -> np.ndarray:
    """Which flat elements to check: all, or max_checks of them, half (where there are enough)
    among those whose analytic gradient is not 0, so that a sparse gradient (a pool's input,
    a ReLU's) is compared somewhere, and the rest among the others, so that a gradient missing
    where it should not be is seen too."""
    size = analytic.size
    if max_checks is None or max_checks >= size:
        return np.arange(size)
    nonzero = np.flatnonzero(analytic)
    some = rng.choice(nonzero, size=min(len(nonzero), (max_checks + 1) // 2), replace=False)
    others = np.setdiff1d(np.arange(size), some, assume_unique=True)
    rest = rng.choice(others, size=max_checks - len(some), replace=False)
    return np.sort(np.concatenate([some, rest]))


def _differences(exact: np.ndarray, numeric: np.ndarray, smooth: np.ndarray,
                 noise: float) -> tuple[np.ndarray, float]:
    """|analytic - numeric| beyond the quotient's rounding `noise`, per element (0 at kinks),
    and the scale: the largest of either gradient."""
    diff = np.where(smooth, np.maximum(np.abs(exact - numeric) - noise, 0.0), 0.0)
    scale = max(np.abs(exact[smooth]).max(initial=0.0), np.abs(numeric[smooth]).max(initial=0.0))
    return diff, scale


def _check_tensor(name: str, value: np.ndarray, analytic: np.ndarray, f: Callable[[], float],
                  epsilon: float, tolerance: float, max_checks: int | None,
                  rng: np.random.Generator) -> TensorCheck:
    """Nudge elements of `value` in place (restoring each) and compare with `analytic`."""
    picks = _pick(analytic, max_checks, rng)
    f0 = f()
    again = f()
    if abs(again - f0) > _rounding_floor(f0, epsilon) * epsilon:
        raise _Unrepeatable(f"f = {f0:.6g}, then {again:.6g}")
    numeric = np.empty(len(picks))
    sides = np.empty((len(picks), 2))  # f(t + eps), f(t - eps)
    smooth = np.ones(len(picks), bool)
    indices = [np.unravel_index(flat, value.shape) for flat in picks]
    for k, index in enumerate(indices):
        old = value[index]
        value[index] = old + epsilon
        sides[k, 0] = f()
        value[index] = old - epsilon
        sides[k, 1] = f()
        value[index] = old
        numeric[k] = (sides[k, 0] - sides[k, 1]) / (2 * epsilon)
        smooth[k] = not _at_kink(f, value, index, old, epsilon, f0, *sides[k])
    exact = analytic.reshape(-1)[picks].astype(np.float64)
    noise = _rounding_floor(f0, epsilon, QUOTIENT_NOISE)
    diff, scale = _differences(exact, numeric, smooth, noise)
    # A corner whose slopes differ by less than KINK_JUMP of the larger one (a leaky ReLU of
    # slope 0.99995) is no candidate, yet moves the central difference by up to half that
    # difference, which can be above the tolerance. So each element that would fail gets a
    # second look, a disagreement that could explain its error as the bar; the halvings still
    # decide, from f alone, so an error away from a corner stays an error.
    looked = set()
    while True:
        suspects = [k for k in np.flatnonzero(diff > tolerance * scale) if k not in looked]
        looked.update(suspects)
        found = [k for k in suspects
                 if _at_kink(f, value, indices[k], value[indices[k]], epsilon, f0, *sides[k],
                             bar=tolerance * scale)]
        if not found:
            break
        smooth[found] = False
        diff, scale = _differences(exact, numeric, smooth, noise)
    kinks = [tuple(int(i) for i in indices[k]) for k in np.flatnonzero(~smooth)]
    # Both gradients within float64 rounding of 0: the quotient cannot tell them apart.
    all_zero = bool(scale <= _rounding_floor(f0, epsilon))
    error = 0.0 if all_zero else float(diff.max(initial=0.0) / scale)
    # The worst element is one that differs (kinks have no difference): none when nothing does,
    # rather than an arbitrary element, or a kink, shown beside "ok".
    worst = int(diff.argmax()) if len(picks) else 0
    differs = len(picks) and diff[worst] > 0 and not all_zero
    worst_index = (tuple(int(i) for i in np.unravel_index(picks[worst], value.shape))
                   if differs else None)
    return TensorCheck(name, value.shape, len(picks), error, worst_index,
                       float(exact[worst]) if differs else 0.0,
                       float(numeric[worst]) if differs else 0.0, kinks, tolerance, all_zero)


# numpy's global generator: minicnn never draws from it, but a learner's layer may (CS231n's
# dropout is `np.random.rand(*x.shape) < p`), so the checker replays it too.
def _global_state():
    return np.random.get_state()  # noqa: NPY002


def _set_global_state(state) -> None:
    np.random.set_state(state)  # noqa: NPY002


class _Draws:
    """A layer's random draws held fixed: the state of every numpy Generator among its
    attributes, and of numpy's global generator, recorded before a forward pass and restored
    before each later one (only those the pass drew from: restoring costs ~0.1 ms)."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.generators: list[tuple[np.random.Generator, dict]] = []
        self.global_state = None

    def record(self) -> None:
        self.generators = [(g, copy.deepcopy(g.bit_generator.state))
                           for g in vars(self.layer).values()
                           if isinstance(g, np.random.Generator)]
        self.global_state = _global_state()

    def keep_used(self) -> None:
        """After the recorded pass: forget the generators it did not draw from."""
        self.generators = [(g, state) for g, state in self.generators
                           if not _same_state(g.bit_generator.state, state)]
        if _same_state(_global_state(), self.global_state):
            self.global_state = None

    def restore(self) -> None:
        for g, state in self.generators:
            g.bit_generator.state = copy.deepcopy(state)
        if self.global_state is not None:
            _set_global_state(self.global_state)


def _same_state(a, b) -> bool:
    """Equal generator states (dicts, tuples, arrays and numbers, nested)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same_state(u, v) for u, v in zip(a, b, strict=True))
    return bool(np.array_equal(a, b))


def _label(layer: Layer) -> str:
    return f"'{layer.name}' ({type(layer).__name__})"


def _random_draws(layer: Layer, detail: str) -> Problem:
    return Problem(_label(layer), "draws random numbers on every call",
                   f"{_label(layer)}: this layer draws random numbers on every call: two forward "
                   f"passes on the same input, with its generators restored, gave different "
                   f"results ({detail}), so differences of f mean nothing and its gradients were"
                   " not checked. Draw from a numpy Generator the layer keeps, self.rng (made "
                   "once, e.g. np.random.default_rng(seed) in __init__): the checker replays its "
                   "draws, so every pass uses the same ones.")


def check_layers(layers: Sequence[Layer], x: np.ndarray, *, y=None, loss=None, dout=None,
                 seed: int = 0, epsilon: float = EPSILON, tolerance: float = TOLERANCE,
                 max_checks: int | None = None, check_input: bool = True,
                 title: str | None = None, move_kinks: bool = True,
                 training: bool = True) -> GradCheckReport:
    """Check the gradients of a stack of layers applied in order to x.

    Without `loss`, the last layer is checked on f = sum(output * dout) with a random dout
    (seeded) unless `dout` is given. With `loss` and targets `y`, it is checked on the loss
    itself, and the backward pass starts where training starts it (`losses.LossHead`: the fused
    (p - y) / N when the last layer ends in a softmax). Every other layer is checked on its own,
    against the input and dout it received (see the module docstring). Every pass, analytic and
    numeric, runs the layers with `training` (True as fit does, by default; False as predict
    does). `max_checks` samples that many elements per tensor (None checks every element);
    `check_input=False` skips the gradient of x itself.

    With `move_kinks`, a check that met kinks is run again once at a nearby point: the float64
    copies of the input and of every weight nudged by Gaussian noise of MOVE of their spread
    (a fresh model on an image with an exact-zero background sits *on* the kinks: zero biases
    and zero pixels make conv outputs exactly 0). The report says when it moved.
    """
    rng = np.random.default_rng(seed)
    stack = [copy.deepcopy(layer) for layer in layers]
    x = np.array(x, dtype=np.float64)
    for k, layer in enumerate(stack):
        layer.set_dtype(np.float64) if layer.built else setattr(layer, "dtype", np.dtype("f8"))
        if layer.rng is None:
            layer.rng = np.random.default_rng((seed, k))
    if title is None:
        title = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in stack)
    global_state = _global_state()  # the check leaves numpy's global generator as it was
    try:
        checks, problems = _check_stack(stack, x, y, loss, dout, rng, epsilon, tolerance,
                                        max_checks, check_input, training)
        kinks = sum(len(t.kinks) for t in checks)
        if kinks and move_kinks:
            for value in [x, *(p.value for layer in stack for p in layer.params)]:
                value += rng.normal(0.0, MOVE * (float(value.std()) or 1.0), value.shape)
            checks, problems = _check_stack(stack, x, y, loss, dout, rng, epsilon, tolerance,
                                            max_checks, check_input, training)
            title += (f" (moved: {kinks} element(s) sat at kinks, so the input and weights "
                      f"were nudged by {MOVE:g} of their spread and checked again)")
    finally:
        _set_global_state(global_state)
    return GradCheckReport(title, checks, epsilon, tolerance, problems, len(stack) > 1)


def check_function(tensors: Sequence[tuple[str, np.ndarray, np.ndarray]],
                   f: Callable[[], float], *, title: str, seed: int = 0,
                   epsilon: float = EPSILON, tolerance: float = TOLERANCE,
                   max_checks: int | None = None) -> GradCheckReport:
    """Check the analytic gradients of a scalar function of several arrays: for each
    (name, value, analytic) in `tensors`, elements of `value` (float64, nudged in place and
    restored) against the central differences of `f()`. This is how a whole graph model is
    checked (`model.gradient_check` on a functional model): f runs its forward pass and loss."""
    rng = np.random.default_rng(seed)
    global_state = _global_state()
    try:
        checks = [_check_tensor(name, value, analytic, f, epsilon, tolerance, max_checks, rng)
                  for name, value, analytic in tensors]
    except _Unrepeatable as e:
        return GradCheckReport(title, [], epsilon, tolerance, [Problem(
            title, "f is not repeatable", f"Two runs of the same pass gave different losses "
            f"({e}): something draws random numbers the check cannot replay.")])
    finally:
        _set_global_state(global_state)
    return GradCheckReport(title, checks, epsilon, tolerance)


def _check_stack(stack, x, y, loss, dout, rng, epsilon, tolerance, max_checks,
                 check_input, training) -> tuple[list[TensorCheck], list[Problem]]:
    """One forward pass keeping each layer's input, then, from the top, each layer's backward
    (twice) and its own checks. Returns the checks in forward order and the problems found."""
    draws = [_Draws(layer) for layer in stack]
    inputs, problems, unrepeatable = [], [], set()
    h = x
    for k, layer in enumerate(stack):
        if not layer.built:
            layer.build((None, *h.shape[1:]))
        inputs.append(h)
        draws[k].record()
        out = np.asarray(layer(h.copy(), training=training))
        draws[k].keep_used()
        draws[k].restore()
        h = np.asarray(layer(h.copy(), training=training))  # the cache backward reads is this one
        if out.shape != h.shape:
            problems.append(_random_draws(layer, f"outputs of shapes {out.shape}, {h.shape}"))
            unrepeatable.add(k)
        elif not np.array_equal(out, h, equal_nan=True):
            gap = float(np.nanmax(np.abs(out - h)))
            problems.append(_random_draws(layer, f"outputs differing by up to {gap:.3g}"))
            unrepeatable.add(k)

    if loss is not None:
        head = LossHead(loss, stack[-1])
        top = h
    else:
        dout = rng.standard_normal(h.shape) if dout is None else np.asarray(dout, np.float64)
        if dout.shape != h.shape:
            raise ValueError(f"Invalid value for argument `dout`: expected the output's shape "
                             f"{h.shape}, received shape {dout.shape}")

    checks: list[list[TensorCheck]] = [[] for _ in stack]
    g = dout
    for k in reversed(range(len(stack))):
        layer, x_k = stack[k], inputs[k]
        if k == len(stack) - 1 and loss is not None:
            def backward(layer=layer):
                return head.backward(y, top, layer)

            def f(layer=layer, k=k, x_k=x_k) -> float:
                draws[k].restore()
                return head.value(y, layer(x_k.copy(), training=training))
        else:
            def backward(layer=layer, g=g):
                return layer.backward(g.copy())  # a copy: a layer may change dout in place

            def f(layer=layer, k=k, x_k=x_k, g=g) -> float:
                draws[k].restore()
                return float(np.sum(layer(x_k.copy(), training=training) * g))
        dx, grads, found = _run_backward(layer, x_k, backward)
        problems += found
        tensors = [(p.name, p.value, grad) for p, grad in zip(layer.params, grads, strict=True)
                   if grad is not None]
        if dx is not None and (k > 0 or check_input):
            tensors.insert(0, ("input" if k == 0 else f"{layer.name}/input", x_k, dx))
        if k not in unrepeatable:
            try:
                checks[k] = [_check_tensor(name, value, grad, f, epsilon, tolerance, max_checks,
                                           rng) for name, value, grad in tensors]
            except _Unrepeatable as e:
                problems.append(_random_draws(layer, str(e)))
        if dx is None:
            if k > 0:
                problems.append(Problem(_label(layer), "no dx for the layers below",
                                        f"The layers below {_label(layer)} were not checked: "
                                        "no gradient reached them."))
            break
        g = dx
    labels = [_label(layer) for layer in stack]
    problems.sort(key=lambda p: labels.index(p.layer))  # forward order, as the table
    return [t for layer_checks in checks for t in layer_checks], problems


def _run_backward(layer: Layer, x: np.ndarray, backward: Callable[[], np.ndarray]):
    """Run `backward` twice from zeroed gradients; return (dx or None, the parameter
    gradients of the first call (None where unusable), problems found)."""
    problems = []
    for p in layer.params:  # in place: a layer may hold on to its gradient arrays
        if isinstance(p.grad, np.ndarray) and p.grad.shape == p.value.shape:
            p.grad[...] = 0
        else:
            p.grad = np.zeros_like(p.value)
    dx = backward()
    grads = [None if p.grad is None else np.array(p.grad, dtype=np.float64) for p in layer.params]
    dx_again = backward()
    name = _label(layer)
    if dx is None:
        problems.append(Problem(name, "backward returned None",
                                f"backward of {name} returned None: it must return dx, the "
                                f"gradient with respect to its input, of shape {x.shape} (a "
                                "missing `return`?)."))
    elif np.shape(dx) != x.shape:
        problems.append(Problem(name, "dx has the wrong shape",
                                f"backward of {name} returned dx of shape {np.shape(dx)} for an "
                                f"input of shape {x.shape}: dx must have the shape of x."))
        dx = None
    else:
        dx = np.array(dx, dtype=np.float64)
        if dx_again is None or not np.array_equal(dx, dx_again, equal_nan=True):
            problems.append(Problem(name, "dx changes from call to call",
                                    f"backward of {name} returned another dx when called again "
                                    "on the same dout: it changes what forward kept (or other "
                                    "state); backward must only read it."))
    for i, p in enumerate(layer.params):
        if grads[i] is None or grads[i].shape != p.value.shape:
            problems.append(Problem(name, f"{p.name}.grad has the wrong shape",
                                    f"backward of {name} left {p.name}.grad with shape "
                                    f"{np.shape(grads[i])} for a weight of shape "
                                    f"{p.value.shape}: they must be equal."))
            grads[i] = None
        elif not np.array_equal(grads[i], p.grad, equal_nan=True):
            twice = np.allclose(p.grad, 2 * grads[i], rtol=1e-9, atol=0.0)
            problems.append(Problem(
                name, f"{p.name}.grad accumulates" if twice else f"{p.name}.grad changes",
                f"backward of {name} gave {p.name}.grad "
                + ("twice its first value when called again on the same dout: it adds to the "
                   "gradient (`grad += ...`) instead of setting it. minicnn does not zero "
                   "gradients between steps: write `p.grad[...] = ...`." if twice else
                   "another value when called again on the same dout: it must set the gradient "
                   "from dout and what forward kept, nothing else.")))
    return dx, grads, problems


def check_layer(layer: Layer, x: np.ndarray, *, dout=None, seed: int = 0,
                epsilon: float = EPSILON, tolerance: float = TOLERANCE,
                max_checks: int | None = None, check_input: bool = True,
                move_kinks: bool = True, training: bool = True, reference=None,
                expectation: bool | None = None) -> GradCheckReport:
    """Check one layer's backward against central differences (see `check_layers`), and its
    forward: against `reference` (a layer, given this layer's weights, or a function of x) in
    both modes, and, for a layer that draws random numbers, the mean of its training output
    against its inference output (minicnn/forward_check.py; `expectation=False` skips that)."""
    from minicnn.forward_check import check_forward

    report = check_layers([layer], x, dout=dout, seed=seed, epsilon=epsilon,
                          tolerance=tolerance, max_checks=max_checks, check_input=check_input,
                          title=f"{layer.name} ({type(layer).__name__})",
                          move_kinks=move_kinks, training=training)
    global_state = _global_state()
    try:
        report.forward = check_forward(layer, x, reference=reference, expectation=expectation,
                                       seed=seed, tolerance=tolerance)
    finally:
        _set_global_state(global_state)
    return report
