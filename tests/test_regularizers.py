"""kernel_regularizer: the penalty is part of the reported loss and of the gradient, as in Keras."""

from __future__ import annotations

import os

import numpy as np
import pytest

from minicnn import regularizers
from minicnn.layers import Conv2D, Dense, Flatten
from minicnn.models import Sequential, load_model
from minicnn.optimizers import SGD
from minicnn.regularizers import L1L2, L2
from tests.tolerances import TF_FORWARD_ATOL, TF_FORWARD_RTOL, TF_GRAD_ATOL, TF_GRAD_RTOL


def test_penalties_and_their_gradients_by_hand():
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert regularizers.L2(0.1)(w) == pytest.approx(0.1 * 14)
    assert regularizers.L1(0.5)(w) == pytest.approx(0.5 * 6)
    np.testing.assert_array_equal(regularizers.L2(0.1).gradient(w), 0.2 * w)
    np.testing.assert_array_equal(regularizers.L1(0.5).gradient(w), 0.5 * np.sign(w))
    both = regularizers.L1L2(l1=0.5, l2=0.1)
    assert both(w) == pytest.approx(0.5 * 6 + 0.1 * 14)
    assert regularizers.get("l2").l2 == 0.01 and regularizers.get("l1").l1 == 0.01  # Keras's
    with pytest.raises(ValueError, match="`kernel_regularizer`"):
        Dense(2, kernel_regularizer="l3")
    with pytest.raises(ValueError, match="`l2`"):
        regularizers.L2(-1.0)


def model(seed: int = 0) -> Sequential:
    return Sequential([Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1),
                              kernel_regularizer=regularizers.L1L2(l1=1e-3, l2=1e-2)),
                       Flatten(), Dense(3, activation="softmax",
                                        kernel_regularizer=regularizers.L2(0.05))], seed=seed)


def test_a_regularized_model_saves_and_loads_with_its_penalties(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((8, 6, 6, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    m = model()
    m.compile(SGD(0.1), "categorical_crossentropy")
    m.fit(x, y, verbose=0)
    m.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert repr(loaded.layers[0].kernel_regularizer) == repr(m.layers[0].kernel_regularizer)
    assert loaded.evaluate(x, y, verbose=0) == m.evaluate(x, y, verbose=0)


def test_the_penalty_is_in_the_loss_and_the_step_as_in_keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras", reason="Keras is the oracle")
    rng = np.random.default_rng(1)
    x = rng.random((8, 6, 6, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    ours = model(seed=3)
    ours.compile(SGD(0.1), "categorical_crossentropy")
    theirs = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(3, 3, activation="relu",
                            kernel_regularizer=keras.regularizers.L1L2(l1=1e-3, l2=1e-2)),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax",
                           kernel_regularizer=keras.regularizers.L2(0.05))])
    theirs.set_weights(ours.get_weights())
    theirs.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    ours_eval = ours.evaluate(x, y, verbose=0)
    theirs_eval = float(theirs.evaluate(x, y, verbose=0))
    assert abs(ours_eval - theirs_eval) <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * abs(theirs_eval)
    unregularized = Sequential([Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1)), Flatten(),
                                Dense(3, activation="softmax")])
    unregularized.set_weights(ours.get_weights())
    unregularized.compile(SGD(0.1), "categorical_crossentropy")
    assert ours_eval > unregularized.evaluate(x, y, verbose=0) + 0.01  # the penalty counts
    ours_loss = ours.train_on_batch(x, y)
    theirs_loss = float(theirs.train_on_batch(x, y))
    assert abs(ours_loss - theirs_loss) <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * abs(theirs_loss)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        # one SGD step of lr 0.1: the weights differ by lr times the gradients' difference
        np.testing.assert_allclose(a, b, rtol=0,
                                   atol=TF_GRAD_ATOL + TF_GRAD_RTOL * float(np.abs(b).max()))


def test_separable_conv_penalties_are_in_the_loss_and_the_step_as_in_keras():
    """SeparableConv2D's depthwise and pointwise regularizers each penalise their own kernel:
    the same loss and the same weights after one SGD step as Keras from the same weights."""
    from minicnn.layers import SeparableConv2D

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras", reason="Keras is the oracle")
    rng = np.random.default_rng(2)
    x = rng.random((8, 7, 7, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    ours = Sequential([SeparableConv2D(4, 3, activation="relu", input_shape=(7, 7, 2),
                                       depthwise_regularizer=L2(0.05),
                                       pointwise_regularizer=L1L2(l1=1e-3, l2=1e-2)),
                       Flatten(), Dense(3, activation="softmax")], seed=4)
    ours.compile(SGD(0.1), "categorical_crossentropy")
    theirs = keras.Sequential([
        keras.Input((7, 7, 2)),
        keras.layers.SeparableConv2D(
            4, 3, activation="relu", depthwise_regularizer=keras.regularizers.L2(0.05),
            pointwise_regularizer=keras.regularizers.L1L2(l1=1e-3, l2=1e-2)),
        keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    theirs.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    assert len(ours.layers[0].penalties()) == 2
    ours_loss = ours.train_on_batch(x, y)
    theirs_loss = float(theirs.train_on_batch(x, y))
    assert abs(ours_loss - theirs_loss) <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * abs(theirs_loss)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0,
                                   atol=TF_GRAD_ATOL + TF_GRAD_RTOL * float(np.abs(b).max()))
