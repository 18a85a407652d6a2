"""callbacks.GradientFlow (per-layer gradient norms, update ratios and activation statistics over
steps), LearningCheck's vanishing-gradient and BatchNormalization-lag warnings, and
examples/vanishing_gradients.py."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import minicnn as keras
from minicnn import callbacks, layers
from minicnn.callbacks import LearningWarning
from minicnn.recording import relu_zero_share

ROOT = Path(__file__).resolve().parents[1]


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10, 1)).astype(np.float32), rng.integers(0, 4, n)


def small(seed=0, activation="relu"):
    m = keras.Sequential([layers.Conv2D(4, 3, activation=activation, input_shape=(10, 10, 1)),
                          layers.MaxPooling2D(), layers.Flatten(),
                          layers.Dense(4, activation="softmax")], seed=seed)
    m.compile("sgd", "sparse_categorical_crossentropy")
    return m


def test_records_every_kth_step_in_model_order_and_writes_the_csv(tmp_path):
    x, y = data()
    flow = callbacks.GradientFlow(every=2, path=tmp_path / "flow.csv")
    small().fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[flow])
    steps = sorted({r["step"] for r in flow.rows})
    assert steps == list(range(0, 12, 2))
    first = [r["layer"] for r in flow.rows if r["step"] == 0]
    assert [name.rstrip("_0123456789") for name in first] == [
        "conv2d", "max_pooling2d", "flatten", "dense"]
    with open(tmp_path / "flow.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(flow.rows) and float(table[0]["grad_norm"]) == pytest.approx(
        flow.rows[0]["grad_norm"])
    flow.plot(tmp_path / "flow.png")
    assert (tmp_path / "flow.png").read_bytes().startswith(b"\x89PNG")


def test_the_values_are_the_steps_own_and_training_is_unchanged():
    """grad_norm is |dL/dW| of the step, update_ratio |dW|/|W|, zeros the ReLU's zero share on
    the first samples (the fused conv's output computed again); the weights after training are
    bit-identical with and without the callback."""
    x, y = data(16)
    plain, watched = small(seed=3), small(seed=3)
    before = [w.copy() for w in watched.get_weights()]
    flow = callbacks.GradientFlow(every=1)
    watched.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[flow], shuffle=False)
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(plain.get_weights(), watched.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    conv = watched.layers[0]
    row = next(r for r in flow.rows if r["layer"] == conv.name)
    grads = [p.grad for p in conv.params]
    assert row["grad_norm"] == pytest.approx(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2)
                                                         for g in grads)))
    moved = np.sqrt(sum(np.sum((a - b).astype(np.float64) ** 2)
                        for a, b in zip(watched.get_weights()[:2], before[:2], strict=True)))
    size = np.sqrt(sum(np.sum(b.astype(np.float64) ** 2) for b in before[:2]))
    assert row["update_ratio"] == pytest.approx(moved / size, rel=1e-6)
    assert 0.0 <= row["zeros"] <= 1.0 and row["saturated"] is None


def test_zero_share_matches_the_reference_conv_output():
    x, y = data(16)
    model = small(seed=5)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # move off the initial weights
    flow = callbacks.GradientFlow(every=1)
    weights = [w.copy() for w in model.get_weights()]
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[flow], shuffle=False)
    reference = small(seed=5)
    reference.set_weights(weights)
    conv = reference.layers[0]
    y_conv = conv(x[:16], training=True)
    row = next(r for r in flow.rows if r["layer"] == model.layers[0].name)
    assert row["zeros"] == pytest.approx(relu_zero_share(conv, np.asarray(y_conv)))


def fit_warnings(model, x, y, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LearningWarning)
        model.fit(x, y, verbose=0, **kwargs)
    return [str(w.message) for w in caught if issubclass(w.category, LearningWarning)]


def deep(activation, seed=0):
    stack = [layers.Conv2D(6, 3, padding="same", activation=activation,
                           input_shape=(10, 10, 1))]
    stack += [layers.Conv2D(6, 3, padding="same", activation=activation) for _ in range(5)]
    m = keras.Sequential([*stack, layers.Flatten(), layers.Dense(4, activation="softmax")],
                         seed=seed)
    m.compile("sgd", "sparse_categorical_crossentropy")
    return m


def test_learning_check_says_vanishing_gradients_for_sigmoid_not_relu():
    x, y = data()
    said = fit_warnings(deep("sigmoid"), x, y, batch_size=16)
    assert any(s.startswith("vanishing gradients?") for s in said), said
    assert not any("vanishing" in s for s in fit_warnings(deep("relu"), x, y, batch_size=16))


def bn_model(momentum):
    m = keras.Sequential([layers.Conv2D(4, 3, input_shape=(10, 10, 1)),
                          layers.BatchNormalization(momentum=momentum), layers.Activation("relu"),
                          layers.Flatten(), layers.Dense(4, activation="softmax")], seed=0)
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def test_learning_check_says_when_batchnorm_moving_statistics_lag():
    x, y = data(256)
    x = x * 50 + 3  # far from BatchNormalization's initial moving statistics (0 and 1)
    said = fit_warnings(bn_model(0.99), x, y, batch_size=32)
    assert any("moving variance" in s and "momentum=0.99" in s for s in said), said
    assert not any("moving variance" in s
                   for s in fit_warnings(bn_model(0.0), x, y, batch_size=32))


@pytest.mark.skipif(not os.path.isdir(os.environ.get("MINICNN_DATA", "")),
                    reason="needs MNIST: set MINICNN_DATA")
def test_the_vanishing_gradients_example_teaches_its_lesson(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "vanishing_gradients.py"),
                           "--limit", "1000", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "vanishing gradients?" in proc.stdout
    assert (tmp_path / "gradient_flow_sigmoid.png").exists()


def test_learning_warnings_point_at_the_users_fit_line():
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LearningWarning)
        deep("sigmoid").fit(x, y, batch_size=16, verbose=0)  # this line
    said = [w for w in caught if issubclass(w.category, LearningWarning)]
    assert said and all(w.filename == __file__ for w in said), [w.filename for w in said]
