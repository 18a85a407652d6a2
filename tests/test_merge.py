"""The merge layers: float64 gradient checks, TensorFlow as the oracle, shapes, errors, configs.

Each check contracts the output with a random upstream gradient, f = sum(y * dout), and compares
every input's gradient from `backward(dout)` with central differences of f
(`gradcheck.check_function`), on shapes hypothesis draws: 2-4 inputs, batch 1-3, 2-D and NHWC
tensors, Concatenate on every non-batch axis, negative ones included. Merges are smooth (no
kinks), so every element is compared. The layers are driven by `build` and `forward`, not by a
call, so that these tests do not depend on how `Layer.__call__` dispatches a list. The
TensorFlow tests skip, each on its own, when TensorFlow is not installed.
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
from tests.strategies import seeds
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
    return name, kwargs, shapes, draw(seeds())


def run(name, kwargs, xs, dout_seed=1):
    """Build the layer for xs, run forward, and backward on a random dout: (layer, y, dout, dxs)."""
    layer = MERGES[name](**kwargs)
    layer.build([(None, *x.shape[1:]) for x in xs])
    y = layer.forward(list(xs))
    dout = np.random.default_rng(dout_seed).standard_normal(y.shape).astype(y.dtype)
    return layer, y, dout, layer.backward(dout)


def merge_check(layer, xs, dout, dxs):
    """Every element of every input: dxs against central differences of sum(y * dout)."""
    def f() -> float:
        return float(np.sum(layer.forward(xs) * dout))

    return check_function([(f"x{i}", x, dx) for i, (x, dx) in enumerate(zip(xs, dxs,
                                                                             strict=True))],
                          f, title=f"{layer.name} ({type(layer).__name__})",
                          tolerance=GRADCHECK_TOL)


# -- float64 gradient checks -----------------------------------------------------------------------
@settings(max_examples=60)
@given(setup=merge_setups())
def test_float64_gradient_check_of_every_input(setup):
    name, kwargs, shapes, seed = setup
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s) for s in shapes]
    layer, y, dout, dxs = run(name, kwargs, xs, dout_seed=seed + 1)
    assert y.dtype == np.float64 and len(dxs) == len(xs)
    assert [dx.shape for dx in dxs] == [x.shape for x in xs]
    report = merge_check(layer, xs, dout, [np.array(dx) for dx in dxs])
    assert report.passed, str(report)


@pytest.mark.parametrize("name", ["Multiply", "Average", "Concatenate"])
def test_the_check_catches_a_wrong_backward(name, monkeypatch):
    """A Multiply that divides y by the wrong input (its neighbour's instead of its own), an
    Average without its 1/n, a Concatenate that hands its slices back in reverse order: each
    fails the same check the right backward passes."""
    wrong = {
        "Multiply": lambda self, dout: [dout * np.prod(self.cache, axis=0) / self.cache[i - 1]
                                        for i in range(len(self.cache))],
        "Average": lambda self, dout: [dout] * self.cache,
        "Concatenate": lambda self, dout: np.split(dout, self.cache[1], axis=self.cache[0])[::-1],
    }[name]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 3, 4, 2)) for _ in range(3)]
    layer, _, dout, dxs = run(name, {}, xs)
    assert merge_check(layer, xs, dout, dxs).passed  # the right backward passes
    monkeypatch.setattr(MERGES[name], "backward", wrong)
    layer, _, dout, dxs = run(name, {}, xs)
    report = merge_check(layer, xs, dout, dxs)
    assert not report.passed and report.max_error > 1e3 * GRADCHECK_TOL, str(report)


def test_multiply_gets_the_gradient_of_a_zero_input():
    """dx_i is the product of the others, not y / x_i: an input of 0 still gets its gradient."""
    x1, x2, x3 = np.array([[0.0, 2.0]]), np.array([[3.0, 0.0]]), np.array([[5.0, 7.0]])
    _, _, dout, (dx1, dx2, dx3) = run("Multiply", {}, [x1, x2, x3])
    np.testing.assert_array_equal(dx1, dout * x2 * x3)
    np.testing.assert_array_equal(dx2, dout * x1 * x3)
    np.testing.assert_array_equal(dx3, dout * x1 * x2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(MERGES))
def test_dtype_is_kept(name, dtype):
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((2, 3)).astype(dtype) for _ in range(2)]
    _, y, _, dxs = run(name, {}, xs)
    assert y.dtype == dtype and [dx.dtype for dx in dxs] == [dtype, dtype]


# -- against TensorFlow ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle():
    """tensorflow, keras and tests/test_oracle_tf.py (its `report`), imported once, outside
    hypothesis's examples; skips the tests that ask for it when TensorFlow is not installed."""
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras

    from tests import test_oracle_tf
    return tf, keras, test_oracle_tf


@settings(max_examples=25)
@given(setup=merge_setups())
def test_agrees_with_tensorflow(oracle, setup):
    """The same float32 inputs give the same y, and the same random dout the same dx_i as
    TensorFlow's GradientTape gives for sum(y * dout). `-s` prints the margins."""
    tf, keras, oracle_tf = oracle
    name, kwargs, shapes, seed = setup
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    _, y, dout, dxs = run(name, kwargs, xs, dout_seed=seed + 1)
    variables = [tf.Variable(x) for x in xs]
    with tf.GradientTape() as tape:
        y_tf = getattr(keras.layers, name)(**kwargs)(variables)
        f = tf.reduce_sum(y_tf * dout)
    grads = tape.gradient(f, variables)
    what = f"{name}{kwargs or ''} on {shapes}"
    oracle_tf.report(f"{what}: y", y, y_tf.numpy(), TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    for i, (dx, g) in enumerate(zip(dxs, grads, strict=True)):
        oracle_tf.report(f"{what}: dx{i}", dx, g.numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)


# -- shapes, errors, configs ----------------------------------------------------------------------
def test_output_shapes_and_functional_names():
    a, b = layers.Input((4, 4, 3)), layers.Input((4, 4, 5))
    assert layers.concatenate([a, b]).shape == (None, 4, 4, 8)
    assert layers.concatenate([a, a], axis=1).shape == (None, 8, 4, 3)
    assert layers.concatenate([a, b], axis=-1, name="joined").shape == (None, 4, 4, 8)
    assert layers.add([a, a]).shape == layers.subtract([a, a]).shape == (None, 4, 4, 3)
    assert layers.multiply([a, a, a]).shape == layers.average([a, a]).shape == (None, 4, 4, 3)
    assert Concatenate(axis=-2).compute_output_shape([(None, 2, 3), (None, 5, 3)]) == (
        None, 7, 3)
    assert Add().compute_output_shape([(None, None, 3), (None, 4, 3)]) == (None, None, 3)


def build(layer, *shapes):
    return lambda: layer.build(list(shapes))


@pytest.mark.parametrize(("call", "message"), [
    (build(Add(name="res"), (None, 4, 4, 3), (None, 5, 5, 3)),
     r"Inputs have incompatible shapes. Layer 'res' \(Add\) received shapes \(4, 4, 3\) "
     r"and \(5, 5, 3\)"),
    (build(Multiply(), (None, 4), (None, 4, 1)), r"incompatible shapes.*\(4,\) and \(4, 1\)"),
    (build(Concatenate(name="cat"), (None, 4, 4, 3), (None, 5, 5, 3)),
     r"A `Concatenate` layer requires inputs with matching shapes except for the concatenation "
     r"axis. Layer 'cat' \(Concatenate\) received: input_shape=\[\(None, 4, 4, 3\), "
     r"\(None, 5, 5, 3\)\]"),
    (build(Add(), (None, 3)), r"A `Add` layer should be called on at least 2 inputs. Layer "
     r"'add\w*' \(Add\) received 1: input_shape=\[\(None, 3\)\]"),
    (build(Subtract(), (None, 3), (None, 3), (None, 3)),
     r"A `Subtract` layer should be called on exactly 2 inputs.*received 3"),
    (lambda: Add().build((None, 4)), r"A merge layer should be called on a list of inputs. "
     r"Layer 'add\w*' \(Add\) received: input_shape=\(None, 4\) \(not a list of shapes\)"),
    (lambda: Average().forward(np.ones((2, 4))),
     r"should be called on a list of inputs.*an array of shape \(2, 4\)"),
    (build(Concatenate(axis=0), (None, 3), (None, 3)),
     r"Expected an axis other than the batch axis 0 of inputs of rank 2: 1 to 1, or -1 to -1. "
     r"Received axis=0"),
    (build(Concatenate(axis=-3), (None, 3), (None, 3)), "Received axis=-3"),
    (lambda: Concatenate(axis=1.5), "Expected an int. Received axis=1.5"),
])
def test_errors_name_the_layer_and_the_shapes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_built_merge_refuses_other_shapes():
    layer = Add()
    layer.build([(None, 3), (None, 3)])
    layer.forward([np.ones((5, 3)), np.ones((5, 3))])  # any batch size
    with pytest.raises(ValueError, match=r"expected shapes \[\(None, 3\), \(None, 3\)\], "
                                         r"received \[\(2, 4\), \(2, 4\)\]"):
        layer.forward([np.ones((2, 4)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"received \[\(2, 3\), \(2, 3\), \(2, 3\)\]"):
        layer.forward([np.ones((2, 3))] * 3)


def test_mixed_or_integer_dtypes_are_refused():
    """numpy would upcast a float32 - float64 and downcast a float32 + float64 in place."""
    for name in sorted(MERGES):
        layer = MERGES[name]()
        layer.build([(None, 3), (None, 3)])
        with pytest.raises(TypeError, match=r"one dtype, received dtypes \['float32', 'float64'"):
            layer.forward([np.ones((2, 3), np.float32), np.ones((2, 3), np.float64)])
        with pytest.raises(TypeError, match="floating-point"):
            layer.forward([np.ones((2, 3), np.int64)] * 2)


def test_config_round_trip():
    """from_config(get_config()) rebuilds an equal layer, before and after a build (whose list
    of input shapes the config does not carry: the calls give it)."""
    for name, cls in MERGES.items():
        made = [cls(axis=2, name=f"m_{name}"), cls(axis=-1, dtype="float64")] if (
            name == "Concatenate") else [cls(name=f"m_{name}"), cls(dtype="float64")]
        built = cls(**({"axis": 1} if name == "Concatenate" else {}))
        built.build([(None, 2, 3), (None, 2, 3)])
        for layer in [*made, built]:
            config = layer.get_config()
            twin = cls.from_config(config)
            assert type(twin) is cls and twin.get_config() == config
            assert twin.name == layer.name and twin.dtype == layer.dtype
            assert "input_shape" not in config and not twin.built
    assert Concatenate(axis=2).get_config()["axis"] == 2
