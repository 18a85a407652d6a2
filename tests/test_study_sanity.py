"""minicnn.study: the loss at initialisation beside ln(K), and overfitting a small sample."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minicnn import layers, optimizers, study
from minicnn.models import Sequential


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype(np.float32), rng.integers(0, 10, n)


def model(lr=1e-2, scale=1.0, seed=0):
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                    layers.Flatten(), layers.Dense(10, activation="softmax")], seed=seed)
    m.compile(optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    for p in m.params:
        p.value *= scale
    return m


def test_initial_loss_is_ln_k_for_an_untrained_classifier(capsys):
    x, y = data()
    result = study.initial_loss(model(), x, y)
    assert result.expected == pytest.approx(math.log(10)) and result.ok
    assert "Loss at initialisation" in capsys.readouterr().out
    loud = study.initial_loss(model(scale=30.0), x, y, print_fn=None)
    assert not loud.ok and loud.ratio > 1.5 and "too high" in str(loud)


def test_initial_loss_of_a_regression_is_the_constant_guess():
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 3)), rng.standard_normal((40, 2)) * 3 + 1
    m = Sequential([layers.Dense(2, input_shape=(3,))], seed=0)
    m.compile("sgd", "mse")
    result = study.initial_loss(m, x, y, print_fn=None)
    assert result.expected == pytest.approx(float(np.mean((y - y.mean(axis=0)) ** 2)))


def test_a_model_that_learns_overfits_fifty_samples_and_is_left_untouched():
    x, y = data()
    m = model()
    before = [w.copy() for w in m.get_weights()]
    report = study.overfit_small(m, x, y, n=50, print_fn=None)
    assert report.passed and report.accuracy == 1.0, str(report)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights(), strict=True))


def test_a_model_that_cannot_learn_is_told_so():
    x, y = data()
    report = study.overfit_small(model(lr=1e-9), x, y, n=50, steps=30, print_fn=None)
    assert not report.passed and "could NOT overfit" in str(report)
    with pytest.raises(ValueError, match="`n`"):
        study.overfit_small(model(), x, y, n=0)
