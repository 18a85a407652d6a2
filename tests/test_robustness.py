"""Training state that must not silently go wrong: reshuffles across fit() calls, scratch memory
that stays bounded, the cross-entropy gradient of an output that is not a softmax, and a
compile() whose default optimizer exists."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from minicnn import optimizers
from minicnn.gradcheck import check_layers
from minicnn.layers import Conv2D, Dense, Flatten, Layer, MaxPooling2D
from minicnn.losses import CategoricalCrossentropy, SparseCategoricalCrossentropy
from minicnn.models import Sequential, load_model
from minicnn.utils import to_categorical
from tests.tolerances import GRADCHECK_TOL, MEMORY_GROWTH_BOUND


def small_model(seed: int = 0) -> Sequential:
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                        MaxPooling2D(2), Conv2D(4, 3, activation="relu"), Flatten(),
                        Dense(3, activation="softmax")], seed=seed)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return model


def data(n: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 10, 10, 1), dtype=np.float32),
            to_categorical(rng.integers(0, 3, n), 3))


# -- shuffles ----------------------------------------------------------------------------------
def test_fit_called_three_times_equals_one_fit_of_three_epochs():
    x, y = data()
    once, thrice = small_model(), small_model()
    once.fit(x, y, batch_size=8, epochs=3, verbose=0)
    for _ in range(3):
        thrice.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert once.epochs_trained == thrice.epochs_trained == 3
    for a, b in zip(once.get_weights(), thrice.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # ...and each call really reshuffled: reusing the first epoch's order lands elsewhere.
    same_order = small_model()
    for _ in range(3):
        same_order.epochs_trained = 0
        same_order.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert any(np.any(a != b) for a, b in zip(once.get_weights(), same_order.get_weights(),
                                              strict=True))


def test_a_resumed_run_continues_the_shuffles(tmp_path):
    x, y = data()
    straight = small_model()
    straight.fit(x, y, batch_size=8, epochs=3, verbose=0)
    first = small_model()
    first.fit(x, y, batch_size=8, epochs=2, verbose=0)
    first.save(tmp_path / "m.npz")
    resumed = load_model(tmp_path / "m.npz")
    assert resumed.epochs_trained == 2
    resumed.fit(x, y, batch_size=8, epochs=1, verbose=0)  # no initial_epoch needed
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# -- memory ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_scratch_memory_stays_bounded_over_300_batch_sizes():
    """One set of scratch arrays per distinct batch size, never freed, grew 148 MB into 7.4 GB.
    Now inference has its own per call and training keeps only the largest."""
    tracemalloc.start()  # numpy reports its arrays to tracemalloc: everything below counts
    try:
        x, y = data(300)
        model = small_model()
        for _ in range(2):  # the largest batch first: what the bound is relative to
            model.predict(x, batch_size=300)
            model(x)
            model.train_on_batch(x, y)
        after_one = tracemalloc.get_traced_memory()[0]
        for n in range(1, 300):
            model.predict(x[:n], batch_size=n)
            model(x[:n])
            model.train_on_batch(x[:n], y[:n])
        after_all = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_all <= MEMORY_GROWTH_BOUND * after_one, (after_one, after_all)


# -- the cross-entropy gradient of an output that is not a softmax ------------------------------
class Exp(Layer):
    """y = exp(x): positive outputs that do not sum to 1, which the loss normalises itself."""

    def forward(self, x, training=False):
        self.cache = np.exp(x)
        return self.cache

    def backward(self, dout):
        return dout * self.cache


class Square(Layer):
    """y = x * x + 0.1: positive, not normalised, and its sums far from 1."""

    def forward(self, x, training=False):
        self.cache = x
        return x * x + 0.1

    def backward(self, dout):
        return 2 * self.cache * dout


@pytest.mark.parametrize("head", [Exp, Square])
@pytest.mark.parametrize("loss", [CategoricalCrossentropy, SparseCategoricalCrossentropy])
def test_cross_entropy_of_an_output_that_is_not_a_softmax_passes_the_gradient_check(head, loss):
    rng = np.random.default_rng(0)
    dense = Dense(4, dtype="float64")
    dense.rng = rng
    x = rng.standard_normal((5, 3))
    labels = rng.integers(0, 4, 5)
    y = labels if loss is SparseCategoricalCrossentropy else np.eye(4)[labels]
    report = check_layers([dense, head()], x, y=y, loss=loss())
    assert report.passed, str(report)
    assert report.max_error < GRADCHECK_TOL


def test_the_gradient_of_clipped_probabilities_is_zero_where_the_clip_holds():
    loss = CategoricalCrossentropy()
    p = np.array([[1e-9, 0.5, 0.5]])  # the true class sits below the 1e-7 clip
    y = np.array([[1.0, 0.0, 0.0]])
    g = loss.gradient(y, p)
    # The loss is the constant -log(1e-7) in the first entry's neighbourhood, and only the
    # normalisation p / sum(p) moves it: finite, and no 1 / 1e-9.
    assert np.isfinite(g).all() and np.abs(g).max() < 100


# -- compile's default optimizer --------------------------------------------------------------
def test_compile_with_only_a_loss_uses_keras_default_rmsprop():
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))], seed=0)
    model.compile(loss="categorical_crossentropy")
    assert isinstance(model.optimizer, optimizers.RMSprop)
    assert model.optimizer.get_config() == {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0,
                                            "epsilon": 1e-7, "centered": False}
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 4), dtype=np.float32), to_categorical(rng.integers(0, 3, 8), 3)
    before = model.get_weights()
    model.fit(x, y, verbose=0)
    assert any(np.any(a != b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize("argument, value", [("rho", 1.0), ("momentum", -0.1),
                                             ("epsilon", -1.0), ("learning_rate", 0)])
def test_rmsprop_refuses_bad_arguments_by_name(argument, value):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{argument}`"):
        optimizers.RMSprop(**{argument: value})
