"""The backprop study toolkit: recording a pass, the backward summary, "did every layer
learn?", and the model-level gradient check catching a planted bug."""

import warnings

import numpy as np
import pytest

from minicnn import gradcheck, layers
from minicnn.callbacks import BackwardSummaryLogger, LearningCheck, LearningWarning
from minicnn.layers import Layer
from minicnn.models import Sequential, mnist_cnn
from minicnn.recording import BackwardSummary
from minicnn.utils import to_categorical
from tests.tolerances import (
    FLOAT32_RTOL,
    GRADCHECK_TOL,
    KERNEL_ATOL,
    KERNEL_RTOL,
    UPDATE_RATIO_RTOL,
)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28, 1), dtype=np.float32),
            to_categorical(rng.integers(0, 10, n), 10))


def test_recording_returns_every_array_with_the_right_shape():
    model = mnist_cnn(seed=0)
    x, y = batch()
    with model.record() as rec:
        model.train_on_batch(x, y)
    assert [r.name for r in rec.layers] == [layer.name for layer in model.layers]
    shapes = [(8, 28, 28, 1), (8, 26, 26, 32), (8, 13, 13, 32), (8, 11, 11, 64), (8, 5, 5, 64),
              (8, 3, 3, 64), (8, 576), (8, 64), (8, 10)]
    for k, r in enumerate(rec.layers):
        assert r.input.shape == shapes[k] and r.output.shape == shapes[k + 1], r.name
        assert r.dout.shape == r.output.shape and r.dx.shape == r.input.shape, r.name
        layer = model.layers[k]
        assert {name: g.shape for name, g in r.grads.items()} == {
            p.name: p.value.shape for p in layer.params}
    conv1, conv2, conv3, dense = (model.layers[k].name for k in (0, 2, 4, 6))
    assert rec[conv1].cols_shape == (8 * 26 * 26, 9)
    assert rec[conv2].cols_shape == (8 * 11 * 11, 288)
    assert rec[conv3].cols_shape == (8 * 3 * 3, 576)
    assert rec[dense].cols_shape is None
    assert rec.loss > 0 and rec.batch_size == 8
    # The chain is consistent: what a layer passes back is what the layer before received.
    for before, after in zip(rec.layers, rec.layers[1:], strict=False):
        np.testing.assert_array_equal(after.dx, before.dout)
        np.testing.assert_array_equal(after.input, before.output)
    # Recording copies: a later pass does not change what was recorded.
    kept = rec[conv2].dout.copy()
    model.train_on_batch(*batch(seed=1))
    np.testing.assert_array_equal(rec[conv2].dout, kept)


def test_recording_runs_the_reference_path_and_costs_nothing_after():
    model = mnist_cnn(seed=0)
    x, _ = batch()
    with model.record() as rec:
        probabilities = model.predict(x)
    assert len(rec) == 8 and rec[-1].dout is None  # forward only
    np.testing.assert_allclose(rec[-1].output, probabilities, rtol=KERNEL_RTOL["float32"],
                               atol=KERNEL_ATOL["float32"])
    assert model._recording is None
    assert model.plan[0].input_gradient is False  # outside a recording, the fast plan again


def tiny_model():
    """Dense(3, relu) -> Dense(2, softmax) with weights small enough to follow by hand."""
    model = Sequential([layers.Dense(3, activation="relu", input_shape=(2,)),
                        layers.Dense(2, activation="softmax")], seed=0)
    model.compile("sgd", "categorical_crossentropy")
    model.set_weights([np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0]], np.float32),
                       np.array([0.0, 0.1, -0.2], np.float32),
                       np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 2.0]], np.float32),
                       np.array([0.1, -0.1], np.float32)])
    return model


def test_backward_summary_matches_a_hand_computation():
    model = tiny_model()
    x = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    w1, b1 = (w.astype(np.float64) for w in model.get_weights()[:2])
    model.train_on_batch(x, y)  # one SGD step, lr 0.01, so there is a last update to report
    w1n, b1n, w2n, b2n = (w.astype(np.float64) for w in model.get_weights())
    summary = model.backward_summary(x, y, print_fn=False)

    # By hand, with the weights after the step.
    z1 = x @ w1n + b1n
    h = np.maximum(z1, 0)
    z2 = h @ w2n + b2n
    p = np.exp(z2 - z2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz2 = (p - y) / 2
    dh = dz2 @ w2n.T
    dz1 = dh * (z1 > 0)
    dx = dz1 @ w1n.T
    grad1 = np.sqrt(np.sum((x.T @ dz1) ** 2) + np.sum(dz1.sum(0) ** 2))
    grad2 = np.sqrt(np.sum((h.T @ dz2) ** 2) + np.sum(dz2.sum(0) ** 2))
    first, head = summary.rows
    assert first.dout_norm == pytest.approx(np.linalg.norm(dh), rel=FLOAT32_RTOL)
    assert first.dx_norm == pytest.approx(np.linalg.norm(dx), rel=FLOAT32_RTOL)
    assert first.grad_norm == pytest.approx(grad1, rel=FLOAT32_RTOL)
    assert head.dx_norm == pytest.approx(np.linalg.norm(dh), rel=FLOAT32_RTOL)
    assert head.grad_norm == pytest.approx(grad2, rel=FLOAT32_RTOL)
    # dL/dp of Keras's loss, which normalises p by its sum first: (-y / p + 1) / N.
    assert head.dout_norm == pytest.approx(np.linalg.norm((-y / p + 1) / 2), rel=FLOAT32_RTOL)
    # z1 is about [[2, 3.1, -1.7], [-0.75, 2.1, -1.2]]: half the outputs are 0, but only the
    # third unit is 0 for both samples (dead); the first is 0 for one sample only.
    assert first.relu_zeros == pytest.approx(np.mean(h == 0)) and np.mean(h == 0) == 0.5
    assert first.dead_units == pytest.approx(np.mean((h == 0).all(axis=0)))
    assert first.dead_units == pytest.approx(1 / 3)
    assert head.relu_zeros is None and head.dead_units is None and head.pool_ties is None
    step1 = np.sqrt(np.sum((w1n - w1) ** 2) + np.sum((b1n - b1) ** 2))
    assert first.update_ratio == pytest.approx(
        step1 / np.sqrt(np.sum(w1n ** 2) + np.sum(b1n ** 2)), rel=UPDATE_RATIO_RTOL)
    assert first.dout_shape == (2, 3)
    table = str(summary)
    assert f'Backward pass of "{model.name}"' in table
    assert f"{model.layers[0].name} (Dense)" in table


def test_dead_units_are_conv_channels_zero_for_every_sample_and_position():
    model = Sequential([layers.Conv2D(3, 2, activation="relu", input_shape=(4, 4, 1))], seed=0)
    model.compile("sgd", "categorical_crossentropy")
    kernel = np.ones((2, 2, 1, 3), np.float32)
    model.set_weights([kernel, np.array([-100.0, -3.5, 100.0], np.float32)])
    x = np.random.default_rng(0).random((5, 4, 4, 1), dtype=np.float32)  # window sums in (0, 4)
    x[0, :2, :2, 0] = 1.0  # a window summing to 4: the middle channel is on there at least
    with model.record() as rec:
        model.predict(x)
    y = rec[0].output
    row = BackwardSummary("m", rec, model.optimizer, model.layers).rows[0]
    assert 0.0 < (y[..., 1] > 0).mean() < 1.0  # the middle channel: mostly 0, not dead
    assert row.dead_units == pytest.approx(1 / 3)  # the first channel only
    assert row.relu_zeros == pytest.approx(np.mean(y == 0))


def test_update_ratio_hint_depends_on_the_optimizer():
    x = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    sgd = tiny_model()
    sgd.train_on_batch(x, y)
    table = str(sgd.backward_summary(x, y, print_fn=False))
    assert "SGD: update/|W| = learning_rate (0.01) * |dL/dW| / |W|" in table
    assert "Adam" not in table and "1e-3" not in table
    adam = tiny_model()
    adam.compile("adam", "categorical_crossentropy")
    adam.train_on_batch(x, y)
    table = str(adam.backward_summary(x, y, print_fn=False))
    assert "Adam: ~1e-3 is typical of healthy training" in table and "SGD" not in table
    assert "ReLU zeros" in table and "dead units" in table and "dead ReLU" not in table


def test_pool_ties_are_counted():
    pool = Sequential([layers.MaxPooling2D(2, input_shape=(4, 4, 1)), layers.Flatten(),
                       layers.Dense(2, activation="softmax")])
    pool.compile("adam", "categorical_crossentropy")
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 0, 0] = 1.0  # one window with a single max, three windows of tied zeros
    summary = pool.backward_summary(x, np.array([[1.0, 0.0]]), print_fn=False)
    assert summary.rows[0].pool_ties == pytest.approx(3 / 4)
    assert summary[pool.layers[0].name] is summary.rows[0]


def test_backward_summary_logger_keeps_gradient_norms_per_epoch():
    model = mnist_cnn(seed=0)
    x, y = batch(32)
    logger = BackwardSummaryLogger(x[:8], y[:8])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[logger])
    assert len(logger.summaries) == 2
    assert list(logger.gradient_norms) == [layer.name for layer in model.layers if layer.params]
    assert all(len(v) == 2 and all(n > 0 for n in v) for v in logger.gradient_norms.values())


class Disconnected(Layer):
    """A learner's bug: the layer forgets to pass the gradient back (returns zeros)."""

    def forward(self, x, training=True):
        return x

    def backward(self, dout):
        return np.zeros_like(dout)


def test_learning_check_names_the_layers_that_did_not_learn():
    model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                        Disconnected(), layers.Flatten(), layers.Dense(3, activation="softmax")],
                       seed=0)
    model.compile("adam", "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1), dtype=np.float32), to_categorical(rng.integers(0, 3, 40))
    with pytest.warns(LearningWarning) as w:
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    conv = model.layers[0].name
    assert sorted(str(m.message).split(": ")[1].split(" got")[0] for m in w) == [
        f"{conv}/bias", f"{conv}/kernel"]  # the conv is named; the head, which learned, is not
    assert "all-zero gradient" in str(w[0].message)
    healthy = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                          layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    healthy.compile("adam", "categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LearningWarning)
        healthy.fit(x, y, epochs=1, batch_size=8, verbose=0)
    check = LearningCheck(steps=2)
    healthy.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[check])
    assert check.problems == []


class LeakyBug(Layer):
    """A learner's custom activation with a planted bug in its backward (slope 0.1 forgotten)."""

    def forward(self, x, training=True):
        self.cache = x
        return np.where(x > 0, x, 0.1 * x)

    def backward(self, dout):
        return np.where(self.cache > 0, dout, dout)  # should be 0.1 * dout where x <= 0


def test_model_gradient_check_passes_and_catches_a_planted_bug():
    x, y = batch(2)
    model = mnist_cnn(seed=0)
    report = model.gradient_check(x, y, max_checks=10)
    assert report.passed, str(report)
    assert report.tolerance == GRADCHECK_TOL and "checked" in str(report)
    buggy = Sequential([layers.Conv2D(4, 3, input_shape=(28, 28, 1)), LeakyBug(),
                        layers.Flatten(), layers.Dense(10, activation="softmax")], seed=0)
    buggy.compile("adam", "categorical_crossentropy")
    report = buggy.gradient_check(x, y, max_checks=30)
    assert not report.passed
    failed = [t.name for t in report.tensors if not t.passed]
    # Each layer is checked against the dout it received, so only the buggy layer's own dx
    # fails, not the correct conv layer below it that received the wrong gradient.
    assert failed == [f"{buggy.layers[1].name}/input"], str(report)
    assert report[f"{buggy.layers[0].name}/kernel"].passed and report["input"].passed
    assert f"FAILED: {buggy.layers[1].name}/input" in str(report)


@pytest.mark.slow
def test_a_check_that_sits_on_kinks_says_so_and_moves():
    """A fresh model on a digit with an exact-zero background sits on its ReLU kinks: zero
    biases and zero pixels make conv outputs exactly 0. The checker must notice, move to a
    nearby point and pass there, not fail on (or silently skip) the kinks."""
    x = np.zeros((2, 28, 28, 1), np.float32)
    x[:, 6:22, 12:16, 0] = 1.0  # a "1" on a black background
    y = to_categorical([1, 1], 10)
    model = mnist_cnn(seed=0)
    report = model.gradient_check(x, y, max_checks=15)
    assert "moved:" in report.title and "sat at kinks" in report.title
    assert report.passed, str(report)
    unmoved = gradcheck.check_layers(model.layers, x, y=y, loss=model.loss, max_checks=15,
                                     move_kinks=False)
    assert sum(len(t.kinks) for t in unmoved.tensors) > 0
    assert "left out of the error" in str(unmoved)
    # Every element of the first conv's bias moves hundreds of units across their kink at once:
    # nothing was compared, which the report must say instead of "ok".
    bias = unmoved[f"{model.layers[0].name}/bias"]
    assert len(bias.kinks) == bias.checked and not bias.passed
    assert bias.verdict == "nothing compared (all kinks)" and bias.verdict in str(unmoved)


def test_a_recording_shows_the_dropout_mask_of_a_training_pass():
    from minicnn.layers import Dropout

    model = Sequential([layers.Dense(8, activation="relu", input_shape=(4,)), Dropout(0.5),
                        layers.Dense(2, activation="softmax")], seed=0)
    model.compile("sgd", "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((16, 4), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 16)]
    with model.record() as rec:
        model.train_on_batch(x, y)
    record = rec[model.layers[1].name]
    assert record.mask is not None and set(np.unique(record.mask)) <= {0.0, 2.0}
    np.testing.assert_array_equal(record.output, record.input * record.mask)
    np.testing.assert_array_equal(record.dx, record.dout * record.mask)
    with model.record() as rec:
        model.predict(x)
    assert rec[model.layers[1].name].mask is None  # inference draws nothing
