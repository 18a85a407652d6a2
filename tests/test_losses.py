"""Loss objects (minicnn/losses.py): float64 gradient checks on hypothesis-drawn shapes, Keras's
values and gradients from the same inputs, the fused heads, names and configs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import gradcheck, layers, losses
from minicnn.models import Sequential
from tests.tolerances import (
    GRADCHECK_TOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)

# (class name, constructor arguments, kind of targets) for every loss and option tested
CASES = [
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "soft"),
    ("CategoricalCrossentropy", {"axis": 1}, "onehot_axis1"),
    ("SparseCategoricalCrossentropy", {}, "labels"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "labels"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 0}, "labels"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"),
    ("MeanSquaredError", {}, "real"),
    ("MeanSquaredError", {"reduction": "sum"}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("Huber", {"delta": 0.5}, "real"),
    ("MeanSquaredError", {"reduction": "mean_with_sample_weight"}, "real"),
]
IDS = [f"{name}{kwargs}" for name, kwargs, _ in CASES]


def make_data(kind: str, kwargs: dict, shape: tuple, rng: np.random.Generator, dtype):
    """(y_true, y_pred) for a loss: predictions away from the clip edges and from MAE's and
    Huber's kinks (|y_pred - y| not near 0 or delta)."""
    K = shape[-1]
    if kind in ("onehot", "onehot_axis1", "soft", "labels"):
        logits = rng.standard_normal(shape)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        pred = logits if kwargs.get("from_logits") else e / e.sum(-1, keepdims=True)
        labels = rng.integers(0, K, shape[:-1])
        if "ignore_class" in kwargs:
            labels.flat[0] = 1  # something left to learn from (the ignored class is 0)
        if kind == "labels":
            return labels, pred.astype(dtype)
        y = np.eye(K)[labels]
        if kind == "soft":
            y = rng.dirichlet(np.ones(K), shape[:-1])
        if kind == "onehot_axis1":
            return np.moveaxis(y, -1, 1).astype(dtype), np.moveaxis(pred, -1, 1).astype(dtype)
        return y.astype(dtype), pred.astype(dtype)
    if kind == "binary":
        z = rng.standard_normal(shape)
        pred = z if kwargs.get("from_logits") else 1 / (1 + np.exp(-z))
        return rng.integers(0, 2, shape).astype(dtype), pred.astype(dtype)
    y = rng.standard_normal(shape)
    gap = rng.uniform(0.1, 0.4, shape) * rng.choice([-1, 1], shape)
    if kwargs.get("delta") is None:
        gap *= 1 + rng.integers(0, 3, shape)  # MAE and MSE: any size away from 0
    else:
        gap = np.where(rng.random(shape) < 0.5, gap, 3 * gap)  # Huber: both sides of delta
    return y.astype(dtype), (y + gap).astype(dtype)


@st.composite
def loss_setups(draw):
    case = draw(st.sampled_from(range(len(CASES))))
    rank = draw(st.sampled_from([2, 2, 4]))
    shape = (*(draw(st.integers(1, 5)) for _ in range(rank - 1)), draw(st.integers(2, 6)))
    return case, shape, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None)
@given(setup=loss_setups())
def test_gradient_matches_central_differences(setup):
    """dL/dy_pred of the weighted, reduced loss against float64 central differences."""
    case, shape, seed = setup
    name, kwargs, kind = CASES[case]
    rng = np.random.default_rng(seed)
    loss = getattr(losses, name)(**kwargs)
    y, pred = make_data(kind, kwargs, shape, rng, np.float64)
    w = rng.uniform(0.2, 2.0, shape[0])
    analytic = loss.gradient(y, pred, w)
    assert analytic.shape == pred.shape and analytic.dtype == np.float64
    report = gradcheck.check_function([("y_pred", pred, analytic)],
                                      lambda: loss(y, pred, w), title=name,
                                      tolerance=GRADCHECK_TOL)
    assert report.passed, str(report)


def test_a_wrong_gradient_is_caught():
    class HalfMSE(losses.MeanSquaredError):
        def _gradient(self, y, y_pred, g):
            return (y_pred - y) * (g[..., None] / y_pred.shape[-1])  # the factor 2 dropped

    rng = np.random.default_rng(0)
    y, pred = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss = HalfMSE()
    report = gradcheck.check_function([("y_pred", pred, loss.gradient(y, pred))],
                                      lambda: loss(y, pred), title="half")
    assert not report.passed


@pytest.fixture(scope="module")
def tf_keras():
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras
    return tf, keras


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_agrees_with_keras(tf_keras, case):
    """The same float32 inputs and sample weights give Keras's loss and, through
    GradientTape, its gradient with respect to y_pred."""
    tf, keras = tf_keras
    name, kwargs, kind = CASES[case]
    rng = np.random.default_rng(case)
    for shape in [(7, 5), (3, 4, 2, 3)]:
        y, pred = make_data(kind, kwargs, shape, rng, np.float32)
        w = rng.uniform(0.2, 2.0, shape[0]).astype(np.float32)
        ours = getattr(losses, name)(**kwargs)
        theirs = getattr(keras.losses, name)(**kwargs)
        variable = tf.Variable(pred)
        # Keras wants weights of the unreduced values' rank; ours broadcasts a weight per sample
        w_keras = w.reshape((-1,) + (1,) * (len(shape) - 2))
        with tf.GradientTape() as tape:
            value = theirs(y, variable, sample_weight=w_keras)
        grad = tape.gradient(value, variable).numpy()
        assert ours(y, pred, w) == pytest.approx(float(value), rel=TF_FORWARD_RTOL,
                                                 abs=TF_FORWARD_ATOL)
        np.testing.assert_allclose(ours.gradient(y, pred, w), grad,
                                   atol=TF_GRAD_ATOL + TF_GRAD_RTOL * np.abs(grad).max())
        unreduced = getattr(losses, name)(**{**kwargs, "reduction": None})
        np.testing.assert_allclose(unreduced(y, pred),
                                   getattr(keras.losses, name)(
                                       **{**kwargs, "reduction": None})(y, pred).numpy(),
                                   rtol=TF_FORWARD_RTOL, atol=TF_FORWARD_ATOL)


def test_configs_equal_keras(tf_keras):
    _, keras = tf_keras
    for name, kwargs, _ in CASES:
        ours = getattr(losses, name)(**kwargs).get_config()
        theirs = getattr(keras.losses, name)(**kwargs).get_config()
        assert {k: ours[k] for k in theirs} == theirs
        assert losses.get(losses.serialize(getattr(losses, name)(**kwargs))).get_config() == ours


@pytest.mark.parametrize("alias, cls", [
    ("mse", losses.MeanSquaredError), ("mae", losses.MeanAbsoluteError),
    ("binary_crossentropy", losses.BinaryCrossentropy), ("huber", losses.Huber),
    ("mean_squared_error", losses.MeanSquaredError),
    ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy)])
def test_names_and_aliases(alias, cls):
    assert type(losses.get(alias)) is cls


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"subclass `minicnn.losses.Loss`"):
        losses.get(lambda y, p: 0.0)
    with pytest.raises(ValueError, match=r"Expected one of .* Received loss='msee'"):
        losses.get("msee")
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=2)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match=r"one weight per sample, shape \(4,\)"):
        losses.MeanSquaredError()(np.zeros((4, 2)), np.ones((4, 2)), np.ones(3))
    with pytest.raises(ValueError, match="integer labels in"):
        losses.SparseCategoricalCrossentropy()(np.array([0, 3]), np.full((2, 3), 1 / 3))


@pytest.mark.parametrize("activation, probs, logits", [
    ("softmax", losses.SparseCategoricalCrossentropy(),
     losses.SparseCategoricalCrossentropy(from_logits=True)),
    ("sigmoid", losses.BinaryCrossentropy(), losses.BinaryCrossentropy(from_logits=True))])
def test_fused_head_equals_the_logits_loss(activation, probs, logits):
    """A softmax (sigmoid) last layer under the cross-entropy of probabilities trains as the
    linear layer under from_logits=True: the same loss, the same weight gradients."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 5))
    units = 4 if activation == "softmax" else 1
    y = rng.integers(0, units if units > 1 else 2, 16)
    w = rng.uniform(0.5, 2, 16)

    def grads(activation, loss):
        model = Sequential([layers.Dense(units, activation=activation, input_shape=(5,))],
                           seed=3).set_dtype(np.float64)
        model.compile("sgd", loss)
        passes = model.training_pass()
        out = passes.forward([x], training=True)
        value = passes.loss(y, out, w)
        passes.backward(y, out, sample_weight=w)
        return value, [p.grad.copy() for p in model.params]

    fused, fused_grads = grads(activation, probs)
    plain, plain_grads = grads(None, logits)
    assert fused == pytest.approx(plain, rel=1e-12)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
