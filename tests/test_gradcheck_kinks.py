"""The gradient checker at the corners of leaky ReLU and ELU.

`gradcheck._at_kink` knows no activation: it calls an element a kink when the one-sided slopes
of f disagree by an amount that does not shrink with the step. So it must find the corner of a
leaky ReLU (slopes a and 1) and of an ELU with alpha != 1 (slopes alpha and 1) at 0, report the
elements placed on or within a step of it as kinks and leave them out of the error; it must
find none in an ELU with alpha = 1, whose slope is continuous; and it must still fail a wrong
backward with such corners about.
"""

import numpy as np
import pytest

from minicnn import activations
from minicnn.gradcheck import EPSILON, check_layer
from minicnn.layers import Activation, Dense, Layer, LeakyReLU
from tests.tolerances import GRADCHECK_TOL

# Exactly at the kink (0, 2), within one step of it on either side (0, 3) and (0, 4), and the
# rest at least 0.05 away from it.
X = np.array([[0.5, -0.7, 0.0, EPSILON / 3, -EPSILON / 2, 1.3],
              [-1.1, 0.8, -0.4, 2.0, -2.5, 0.05]])
AT_THE_KINK = [(0, 2), (0, 3), (0, 4)]
DOUT = np.random.default_rng(1).standard_normal(X.shape)

CORNERED = {
    "LeakyReLU()": lambda: LeakyReLU(),  # Keras's layer default, 0.3
    "LeakyReLU(0.01)": lambda: LeakyReLU(0.01),
    "Activation('leaky_relu')": lambda: Activation("leaky_relu"),  # the function's 0.2
    "ELU(alpha=0.5)": lambda: Activation(activations.ELUActivation(0.5)),
    "ELU(alpha=2)": lambda: Activation(activations.ELUActivation(2.0)),
    # Slopes 0.99995 and 1: too close for the first look (KINK_JUMP of the larger slope), far
    # enough apart to move the central difference by 2.5e-5, 25 times the tolerance.
    "LeakyReLU(0.99995)": lambda: LeakyReLU(0.99995),
    "ELU(alpha=0.99995)": lambda: Activation(activations.ELUActivation(0.99995)),
}


def central_difference(layer: Layer, x: np.ndarray, dout: np.ndarray, index: tuple) -> float:
    """d/dx[index] of sum(layer(x) * dout), by central differences, in float64."""
    def f(t):
        nudged = x.copy()
        nudged[index] = t
        return float(np.sum(layer(nudged) * dout))
    return (f(x[index] + EPSILON) - f(x[index] - EPSILON)) / (2 * EPSILON)


@pytest.mark.parametrize("make", CORNERED.values(), ids=CORNERED.keys())
def test_elements_at_a_corner_are_kinks_not_failures(make):
    layer = make()
    report = check_layer(layer, X, dout=DOUT, move_kinks=False)
    assert report["input"].kinks == AT_THE_KINK, str(report)
    assert report.passed and report["input"].error <= GRADCHECK_TOL, str(report)
    # Left in, the element at 0 would fail: there the central difference averages the two
    # slopes, and the backward gives the left one.
    layer.dtype = np.dtype("float64")
    assert layer(X).dtype == np.float64
    dx = layer.backward(DOUT)
    error = abs(dx[0, 2] - central_difference(layer, X, DOUT, (0, 2))) / np.abs(dx).max()
    assert error > GRADCHECK_TOL
    # Moved off the corner (the default), every element is compared, and none is a kink.
    moved = check_layer(make(), X, dout=DOUT)
    assert moved.passed and "moved" in moved.title and not moved["input"].kinks, str(moved)


def dense_on_its_kinks(activation) -> tuple[Dense, np.ndarray]:
    """A Dense layer whose first unit has z = 0 exactly on the first sample (a zero sample and
    a zero bias) and every other pre-activation at least 0.1 from 0."""
    rng = np.random.default_rng(2)
    layer = Dense(3, activation=activation, dtype="float64")
    layer.build((None, 4))
    layer.kernel.value[...] = rng.standard_normal((4, 3))
    layer.bias.value[...] = [0.0, 0.5, -0.5]
    x = np.vstack([np.zeros(4), rng.standard_normal((2, 4))])
    z = x @ layer.kernel.value + layer.bias.value
    assert z[0, 0] == 0 and np.abs(z.ravel()[1:]).min() > 0.1
    return layer, x


@pytest.mark.parametrize("activation", ["leaky_relu", activations.ELUActivation(0.5)],
                         ids=["leaky_relu", "elu(alpha=0.5)"])
def test_a_dense_layer_on_its_activations_corner(activation):
    """Nudging x[0, i] or the first bias moves z[0, 0] across 0: those are the kinks. The
    kernel's elements only move z[0, 0] by eps * x[0, i] = 0: none of them is one."""
    layer, x = dense_on_its_kinks(activation)
    report = check_layer(layer, x, move_kinks=False)
    assert report["input"].kinks == [(0, i) for i in range(4)], str(report)
    assert report[f"{layer.name}/bias"].kinks == [(0,)], str(report)
    assert not report[f"{layer.name}/kernel"].kinks, str(report)
    assert report.passed and report.max_error <= GRADCHECK_TOL, str(report)


@pytest.mark.parametrize("make", [lambda: Activation("elu"),
                                  lambda: Activation(activations.ELUActivation(1.0))],
                         ids=["'elu'", "ELUActivation(1.0)"])
def test_elu_with_alpha_1_has_no_kink(make):
    """Its slope is 1 from both sides of 0; only the second derivative jumps, so the one-sided
    slopes differ by eps / 2, in proportion to the step: smooth, and compared."""
    report = check_layer(make(), X, dout=DOUT, move_kinks=False)
    assert report["input"].kinks == [] and report.passed, str(report)
    assert report["input"].checked == X.size and report["input"].error <= GRADCHECK_TOL
    layer, x = dense_on_its_kinks("elu")
    report = check_layer(layer, x, move_kinks=False)
    assert sum(len(t.kinks) for t in report.tensors) == 0 and report.passed, str(report)


class WrongLeak(Layer):
    """A learner's leaky ReLU, y = x if x > 0 else 0.2 x, whose backward has a typo'd slope."""

    slope, typo = 0.2, 0.3

    def forward(self, x, training=False):
        self.cache = x > 0
        return np.where(self.cache, x, self.slope * x)

    def backward(self, dout):
        return np.where(self.cache, dout, self.typo * dout)


class SwappedLeak(WrongLeak):
    """The other classic slip: the branches swapped."""

    def backward(self, dout):
        return np.where(self.cache, self.slope * dout, dout)


@pytest.mark.parametrize("layer_class", [WrongLeak, SwappedLeak])
def test_a_wrong_backward_is_caught_with_kinks_about(layer_class):
    """The kinks are left out, and the check still fails on the elements away from them: the
    kink rule reads only f, so no backward, right or wrong, makes an element a kink."""
    report = check_layer(layer_class(), X, dout=DOUT, move_kinks=False)
    assert report["input"].kinks == AT_THE_KINK, str(report)
    assert report["input"].verdict == "FAIL" and not report.passed, str(report)
    assert report["input"].worst_index not in AT_THE_KINK
    assert report["input"].error > 1e3 * GRADCHECK_TOL
    moved = check_layer(layer_class(), X, dout=DOUT)
    assert not moved.passed and "moved" in moved.title, str(moved)
    # The same layer with the typo fixed passes: the failure is the typo's.
    fixed = type("FixedLeak", (WrongLeak,), {"typo": WrongLeak.slope})
    assert check_layer(fixed(), X, dout=DOUT, move_kinks=False).passed


class SlightlyWrongLeak(WrongLeak):
    """Slopes 0.99995 and 1, and a backward that gives the left one for 0.9999: off by 5e-5."""

    slope, typo = 0.99995, 0.9999


def test_a_small_error_next_to_a_slight_corner_is_still_caught():
    """The second look at a failing element (with the tolerance as the bar for a corner) must
    not excuse an error away from the corner."""
    report = check_layer(SlightlyWrongLeak(), X, dout=DOUT, move_kinks=False)
    assert report["input"].kinks == AT_THE_KINK and not report.passed, str(report)
    assert report["input"].worst_index not in AT_THE_KINK


@pytest.mark.parametrize("make, argument", [
    (lambda: activations.LeakyReLUActivation(-0.1), "negative_slope"),
    (lambda: activations.ELUActivation(-1.0), "alpha"),
    (lambda: activations.ELUActivation(float("nan")), "alpha"),
])
def test_a_negative_slope_is_refused_since_backward_reads_the_branch_from_the_output(make,
                                                                                     argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{argument}`"):
        make()
