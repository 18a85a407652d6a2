"""Keras conveniences tutorials call (issue 19's first few): set_random_seed, clear_session,
predict_on_batch, test_on_batch, a weight's .shape / .dtype / .numpy()."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers


def functional_model():
    inputs = keras.Input((6,))
    return keras.Model(inputs, layers.Dense(3, activation="softmax")(layers.Dense(4)(inputs)))


def test_set_random_seed_makes_functional_weights_and_model_seeds_repeat():
    keras.utils.set_random_seed(7)
    a = functional_model()
    keras.utils.set_random_seed(7)
    b = functional_model()
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.seed == b.seed
    keras.utils.set_random_seed(8)
    assert not np.array_equal(functional_model().get_weights()[0], a.get_weights()[0])
    keras.initializers.set_global_seed(None)  # fresh entropy again, for the other tests
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="Expected a non-negative integer"):
            keras.utils.set_random_seed(bad)


def test_clear_session_restarts_names():
    keras.backend.clear_session()
    first = layers.Dense(2)
    keras.backend.clear_session()
    assert layers.Dense(2).name == first.name == "dense"


def test_predict_and_test_on_batch_and_a_weights_shape():
    model = functional_model()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    y = np.array([0, 1, 2, 0, 1])
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, verbose=0))
    before = model.get_weights()
    loss, accuracy = model.test_on_batch(x, y)
    assert [loss, accuracy] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-12)
    assert model.test_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    kernel = model.layers[1].kernel
    assert kernel.shape == (6, 4) and kernel.dtype == np.float32
    copy = kernel.numpy()
    copy[...] = 0
    assert kernel.value.any()  # numpy() is a copy
