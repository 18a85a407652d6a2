"""The merge layers: float64 gradient checks, TensorFlow as the oracle, shapes and errors.

Each check contracts the output with a random upstream gradient, f = sum(y * dout), and compares
every input's gradient from `backward(dout)` with central differences of f
(`gradcheck.check_function`), on shapes hypothesis draws: 2-4 inputs, batch 1-3, 2-D and NHWC
tensors, Concatenate on every non-batch axis, negative ones included. Merges are smooth (no
kinks), so every element is compared.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import layers
from minicnn.gradcheck import check_function
from minicnn.layers import Add, Average, Concatenate, Multiply, Subtract
from tests.tolerances import (
    GRADCHECK_TOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)

MERGES = {"Add": Add, "Subtract": Subtract, "Multiply": Multiply, "Average": Average,
          "Concatenate": Concatenate}


@st.composite
def merge_setups(draw):
    """(layer class name, constructor kwargs, input shapes, seed)."""
    name = draw(st.sampled_from(sorted(MERGES)))
    n = 2 if name == "Subtract" else draw(st.integers(2, 4))
    batch = draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(5,), (3, 4, 2), (2, 3, 4)]))
    kwargs, shapes = {}, [(batch, *shape)] * n
    if name == "Concatenate":
        axis = draw(st.integers(1, len(shape)))
        kwargs["axis"] = draw(st.sampled_from([axis, axis - len(shape) - 1]))
        shapes = [(batch, *shape[:axis - 1], draw(st.integers(1, 3)), *shape[axis:])
                  for _ in range(n)]
    return name, kwargs, shapes, draw(st.integers(0, 2**16))


def run(name, kwargs, xs, dout_seed=1):
    layer = MERGES[name](**kwargs)
    y = layer(list(xs))
    dout = np.random.default_rng(dout_seed).standard_normal(y.shape).astype(y.dtype)
    return layer, y, dout, layer.backward(dout)


def merge_check(layer, xs, dout, dxs):
    def f() -> float:
        return float(np.sum(layer.forward(xs) * dout))

    return check_function([(f"x{i}", x, dx) for i, (x, dx) in enumerate(zip(xs, dxs,
                                                                             strict=True))],
                          f, title=f"{layer.name} ({type(layer).__name__})")


@settings(max_examples=60, deadline=None)
@given(setup=merge_setups())
def test_float64_gradient_check_of_every_input(setup):
    name, kwargs, shapes, seed = setup
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    layer, y, dout, dxs = run(name, kwargs, xs)
    assert y.dtype == np.float64 and len(dxs) == len(xs)
    report = merge_check(layer, xs, dout, [np.array(dx) for dx in dxs])
    assert report.passed and report.max_error <= GRADCHECK_TOL, str(report)


@pytest.mark.parametrize("name", ["Multiply", "Average", "Concatenate"])
def test_the_check_catches_a_wrong_backward(name, monkeypatch):
    """A Multiply that multiplies by the input's own value instead of the others', an Average
    without its 1/n, a Concatenate that hands its slices back in reverse order: each fails the
    same check."""
    wrong = {
        "Multiply": lambda self, dout: [dout * x for x in self.cache],  # not the others'
        "Average": lambda self, dout: [dout] * self.cache,
        "Concatenate": lambda self, dout: np.split(dout, self.cache[1], axis=self.cache[0])[::-1],
    }[name]
    monkeypatch.setattr(MERGES[name], "backward", wrong)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 3, 4, 2)) for _ in range(3)]
    layer, _, dout, dxs = run(name, {}, xs)
    assert not merge_check(layer, xs, dout, dxs).passed


def test_multiply_gets_the_gradient_of_a_zero_input():
    x = np.array([[0.0, 2.0]])
    _, _, dout, (dx1, dx2) = run("Multiply", {}, [x, np.array([[3.0, 5.0]])])
    np.testing.assert_array_equal(dx1, dout * [[3.0, 5.0]])
    np.testing.assert_array_equal(dx2, dout * [[0.0, 2.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(dtype):
    xs = [np.ones((2, 3), dtype), np.ones((2, 3), dtype)]
    for name in MERGES:
        _, y, _, dxs = run(name, {}, xs)
        assert y.dtype == dtype and all(dx.dtype == dtype for dx in dxs), name


# -- against TensorFlow ---------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(setup=merge_setups())
def test_agrees_with_tensorflow(setup):
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    name, kwargs, shapes, seed = setup
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    _, y, dout, dxs = run(name, kwargs, xs, dout_seed=seed + 1)
    theirs = getattr(keras.layers, name)(**kwargs)
    variables = [tf.Variable(x) for x in xs]
    with tf.GradientTape() as tape:
        y_tf = theirs(variables)
        f = tf.reduce_sum(y_tf * dout)
    grads = tape.gradient(f, variables)
    np.testing.assert_allclose(y, y_tf.numpy(), rtol=TF_FORWARD_RTOL, atol=TF_FORWARD_ATOL)
    for dx, g in zip(dxs, grads, strict=True):
        scale = max(float(np.abs(g.numpy()).max()), 1.0)
        assert np.abs(dx - g.numpy()).max() <= TF_GRAD_ATOL + TF_GRAD_RTOL * scale


# -- shapes, errors, configs ----------------------------------------------------------------------
def test_concatenate_output_shape_and_functional_names():
    a, b = layers.Input((4, 4, 3)), layers.Input((4, 4, 5))
    assert layers.concatenate([a, b]).shape == (None, 4, 4, 8)
    assert layers.concatenate([a, a], axis=1).shape == (None, 8, 4, 3)
    assert layers.add([a, a]).shape == layers.subtract([a, a]).shape == (None, 4, 4, 3)
    assert layers.multiply([a, a, a]).shape == layers.average([a, a]).shape == (None, 4, 4, 3)


@pytest.mark.parametrize("call, message", [
    (lambda: Add()([np.ones((2, 4, 4, 3)), np.ones((2, 5, 5, 3))]),
     r"Inputs have incompatible shapes. Layer 'add\w*' \(Add\) received shapes \(4, 4, 3\) "
     r"and \(5, 5, 3\)"),
    (lambda: Concatenate()([np.ones((2, 4, 4, 3)), np.ones((2, 5, 5, 3))]),
     "A `Concatenate` layer requires inputs with matching shapes except for the concatenation "
     "axis"),
    (lambda: Add()([np.ones((2, 3))]), "should be called on at least 2 inputs"),
    (lambda: Subtract()([np.ones((2, 3))] * 3), "should be called on exactly 2 inputs"),
    (lambda: Add().build((None, 4)), "A merge layer should be called on a list of inputs"),
    (lambda: Concatenate(axis=0)([np.ones((2, 3))] * 2), "the batch axis 0 cannot be joined"),
    (lambda: Concatenate(axis=1.5), "Expected an int. Received axis=1.5"),
])
def test_errors_name_the_layer_and_the_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_built_merge_refuses_other_shapes():
    layer = Add()
    layer([np.ones((2, 3)), np.ones((2, 3))])
    with pytest.raises(ValueError, match=r"expected shapes \['\(None, 3\)', '\(None, 3\)'\]"):
        layer([np.ones((2, 4)), np.ones((2, 4))])


def test_config_round_trip():
    for name, cls in MERGES.items():
        layer = cls(axis=2, name=f"m_{name}") if name == "Concatenate" else cls(name=f"m_{name}")
        twin = cls.from_config(layer.get_config())
        assert twin.get_config() == layer.get_config() and twin.name == layer.name
