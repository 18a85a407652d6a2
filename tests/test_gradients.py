"""Every layer's backward pass against float64 central differences, on shapes hypothesis draws.

Inputs keep away from kinks by construction: ReLU biases sit in the middle of the widest gap
between pre-activations, and pooled inputs have distinct values 0.01 apart, so no nudge of
1e-6 can flip a ReLU or a pool's choice. The checker's own kink detector must then find none.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minicnn import activations
from minicnn.gradcheck import check_layer, check_layers
from minicnn.layers import Conv2D, Dense, Flatten, Layer, MaxPooling2D, ReLU, Softmax
from minicnn.losses import CategoricalCrossentropy, SparseCategoricalCrossentropy
from tests.strategies import distinct_values, seeds, window_setups
from tests.tolerances import GRADCHECK_TOL


def assert_passes(report):
    assert report.passed, str(report)
    assert report.tolerance == GRADCHECK_TOL
    assert not any(t.kinks for t in report.tensors), str(report)


def assert_nothing_compared(report):
    """A softmax over one class is the constant 1: every gradient through it is 0, so the
    check compares nothing, and must say so rather than pass."""
    assert not report.passed, str(report)
    assert {t.verdict for t in report.tensors} == {"nothing compared (all 0)"}, str(report)
    assert "Nothing was compared for" in str(report)


def bias_away_from_kinks(layer, x):
    """Set each bias to the middle of the widest gap of that unit's pre-activations.

    Every pre-activation then sits at least half that gap from zero, and the ReLU mask still
    mixes active and dead units whenever the unit sees two or more distinct values.
    """
    layer.bias.value[...] = 0.0
    activation, layer.activation = layer.activation, activations.linear
    z = layer(x, training=False).reshape(-1, layer.bias.value.shape[0])
    layer.activation = activation
    for f in range(z.shape[1]):
        v = np.sort(z[:, f])
        if len(v) < 2 or v[-1] - v[0] < 1e-3:
            layer.bias.value[f] = 1.0 - v[0]  # one value: make it active, 1 away from the kink
            continue
        k = int(np.argmax(np.diff(v)))
        layer.bias.value[f] = -(v[k] + v[k + 1]) / 2


@given(s=window_setups(kind="conv"), filters=st.integers(1, 5),
       activation=st.sampled_from([None, "relu"]), use_bias=st.booleans(), seed=seeds())
def test_conv2d(s, filters, activation, use_bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((s.N, s.H, s.W, s.C))
    layer = Conv2D(filters, (s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding,
                   activation=activation, use_bias=use_bias or activation == "relu",
                   bias_initializer="he_normal" if use_bias else "zeros", dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    if activation == "relu":
        bias_away_from_kinks(layer, x)
    assert_passes(check_layer(layer, x, seed=seed))


@given(s=window_setups(kind="pool"), seed=seeds())
def test_max_pooling2d(s, seed):
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, (s.N, s.H, s.W, s.C), np.float64)
    layer = MaxPooling2D((s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding)
    assert_passes(check_layer(layer, x, seed=seed))


@given(n=st.integers(1, 4), features=st.integers(1, 7), units=st.integers(1, 6),
       activation=st.sampled_from([None, "relu", "softmax"]), seed=seeds())
def test_dense(n, features, units, activation, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    layer = Dense(units, activation=activation, bias_initializer="he_normal", dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    if activation == "relu":
        bias_away_from_kinks(layer, x)
    report = check_layer(layer, x, seed=seed)
    if activation == "softmax" and units == 1:
        assert_nothing_compared(report)
    else:
        assert_passes(report)


@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), seed=seeds())
def test_relu_softmax_flatten(shape, seed):
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(shape)
    away_from_zero = np.sign(n) * (0.1 + np.abs(n))
    away_from_zero.flat[0] = abs(away_from_zero.flat[0])  # all negative: a gradient of only 0s
    assert_passes(check_layer(ReLU(), away_from_zero, seed=seed))
    # Unscaled: a saturated softmax has gradients ~1e-6 of f, below what float64 differences
    # can resolve to 1e-6 of their own size.
    report = check_layer(Softmax(), n, seed=seed)
    if shape[-1] == 1:
        assert_nothing_compared(report)
    else:
        assert_passes(report)
    assert_passes(check_layer(Flatten(), n, seed=seed))


@given(n=st.integers(1, 4), classes=st.integers(2, 6), sparse=st.booleans(), seed=seeds())
@example(n=1, classes=2, sparse=False, seed=551619)  # a 3e-5 gradient once failed on rounding
def test_softmax_cross_entropy_fused_gradient(n, classes, sparse, seed):
    """The fused (p - y) / N through a softmax head equals the numeric gradient of the loss."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    loss = SparseCategoricalCrossentropy() if sparse else CategoricalCrossentropy()
    y = labels if sparse else np.eye(classes)[labels]
    layer = Dense(classes, activation="softmax", bias_initializer="he_normal", dtype="float64")
    layer.rng = rng
    assert_passes(check_layers([layer], 2 * rng.standard_normal((n, 5)), y=y, loss=loss))


@pytest.mark.slow
def test_reference_model_end_to_end():
    """The notebook's whole model, loss included, in float64 on a batch of 2 (sampled elements)."""
    rng = np.random.default_rng(7)
    layers = [Conv2D(32, 3, activation="relu"), MaxPooling2D(2), Conv2D(64, 3, activation="relu"),
              MaxPooling2D(2), Conv2D(64, 3, activation="relu"), Flatten(),
              Dense(64, activation="relu"), Dense(10, activation="softmax")]
    for layer in layers:
        layer.rng = rng
    x = rng.random((2, 28, 28, 1))
    report = check_layers(layers, x, y=np.eye(10)[[3, 7]], loss=CategoricalCrossentropy(),
                          max_checks=25, epsilon=1e-5, seed=7)
    assert report.passed, str(report)
    weights = [t for t in report.tensors if t.name.endswith(("/kernel", "/bias"))]
    assert sum(np.prod(t.shape) for t in weights) == 93_322 and len(weights) == 10
    # Every layer's own dx is checked: the model's input, then each later layer's input.
    assert [t.name for t in report.tensors if t not in weights] == [
        "input", *(f"{layer.name}/input" for layer in layers[1:])]
    # Random inputs may land a ReLU near its kink; the checker must say so, and it must be rare.
    # A pool's input is different: windows of ReLU zeros are exact ties, whatever the point.
    assert sum(len(t.kinks) for t in report.tensors if "pooling" not in t.name) <= 2, str(report)


class Square(Layer):
    """A learner's own parameter-free layer: y = x ** 2."""

    def __init__(self, factor=2.0):
        super().__init__()
        self.factor = factor

    def forward(self, x, training=True):
        self.cache = x if training else None
        return x * x

    def backward(self, dout):
        return self.factor * self.cache * dout


def test_checker_passes_a_correct_custom_layer_and_catches_a_broken_one():
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert_passes(check_layer(Square(), x))
    report = check_layer(Square(factor=1.0), x)  # forgot the 2 of d(x^2)/dx
    assert not report.passed
    assert report["input"].error > 0.1
    assert "FAIL" in str(report) and "FAILED: input" in str(report)


class RowsSwappedDense(Dense):
    """A broken Dense: it pairs each sample's gradient with the wrong sample's input."""

    def backward_from_z(self, dz):
        return super().backward_from_z(dz[::-1])


def test_random_upstream_gradient_catches_what_all_ones_misses():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3))
    layer = RowsSwappedDense(4, dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    ones = np.ones((2, 4))
    assert check_layer(layer, x, dout=ones).passed  # a constant dout cannot see the swap
    report = check_layer(layer, x)
    assert not report.passed
    assert not report[f"{layer.name}/kernel"].passed
    assert report.max_error > 0.01


def test_checker_leaves_the_original_layer_untouched():
    rng = np.random.default_rng(2)
    layer = Conv2D(2, 3)
    x32 = rng.standard_normal((1, 5, 5, 1)).astype(np.float32)
    layer(x32)
    before = layer.get_weights()
    check_layer(layer, x32)
    assert layer.dtype == np.float32
    for a, b in zip(before, layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
