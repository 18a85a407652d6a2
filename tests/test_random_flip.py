"""RandomFlip: mirrors images at random in training only; its backward moves the gradient back."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.gradcheck import check_layer
from minicnn.layers import Conv2D, Dense, Flatten, RandomFlip
from minicnn.models import Sequential, load_model
from tests.strategies import seeds
from tests.tolerances import GRADCHECK_TOL

FLIPS = {"horizontal": [lambda a: a, lambda a: a[:, ::-1]],
         "vertical": [lambda a: a, lambda a: a[::-1]],
         "horizontal_and_vertical": [lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1],
                                     lambda a: a[::-1, ::-1]]}


def assert_each_image_is_a_flip(x, y, mode):
    for xi, yi in zip(x, y, strict=True):
        assert any(np.array_equal(yi, flip(xi)) for flip in FLIPS[mode]), mode


@pytest.mark.parametrize("mode", sorted(FLIPS))
def test_training_flips_each_image_one_of_its_ways_and_inference_does_nothing(mode):
    rng = np.random.default_rng(0)
    x = rng.random((64, 4, 5, 2), dtype=np.float32)
    layer = RandomFlip(mode, seed=1)
    y = layer(x, training=True)
    assert_each_image_is_a_flip(x, y, mode)
    flipped = [not np.array_equal(a, b) for a, b in zip(x, y, strict=True)]
    assert 0 < sum(flipped) < len(x)  # some are, some are not
    np.testing.assert_array_equal(layer(x, training=False), x)


@given(n=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), c=st.integers(1, 3),
       mode=st.sampled_from(sorted(FLIPS)), training=st.booleans(), seed=seeds())
def test_gradient_check_in_both_modes(n, h, w, c, mode, training, seed):
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    report = check_layer(RandomFlip(mode, seed=seed % 1000, dtype="float64"), x,
                         training=training)
    assert report.passed, str(report)
    assert report.max_error < GRADCHECK_TOL


def test_a_seeded_model_flips_the_same_way_every_run_and_saves_its_mode(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 16)]

    def trained():
        model = Sequential([RandomFlip("horizontal", input_shape=(6, 6, 1)),
                            Conv2D(2, 3, activation="relu"), Flatten(),
                            Dense(2, activation="softmax")], seed=4)
        model.compile("adam", "categorical_crossentropy")
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        return model

    a, b = trained(), trained()
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x), a.predict(x))  # no flips at inference
    a.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").layers[0].mode == "horizontal"
    with pytest.raises(ValueError, match="`mode`"):
        RandomFlip("diagonal")


def test_keras_flips_the_same_axes():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras", reason="Keras is the oracle")
    x = np.random.default_rng(0).random((32, 4, 5, 1), dtype=np.float32)
    for mode in ("horizontal", "vertical"):
        theirs = np.asarray(keras.layers.RandomFlip(mode, seed=3)(x, training=True))
        assert_each_image_is_a_flip(x, theirs, mode)
        np.testing.assert_array_equal(
            np.asarray(keras.layers.RandomFlip(mode)(x, training=False)), x)
    assert keras.layers.RandomFlip().mode == RandomFlip().mode  # the same default
