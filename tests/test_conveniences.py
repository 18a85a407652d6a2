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


def test_keras2_decay_is_inverse_time_decay_with_a_warning_naming_it():
    with pytest.warns(UserWarning, match=r"InverseTimeDecay\(0.0001, decay_steps=1, "
                                         r"decay_rate=1e-06\)") as record:
        optimizer = keras.optimizers.RMSprop(1e-4, decay=1e-6)
    assert record[0].filename == __file__  # points at the caller's line
    for step in (0, 1, 1000):
        optimizer.iterations = step
        assert optimizer.learning_rate == pytest.approx(1e-4 / (1 + 1e-6 * step), rel=1e-12)
    assert optimizer.get_config()["learning_rate"]["class_name"] == "InverseTimeDecay"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert keras.optimizers.SGD(0.1, decay=0.0).learning_rate == 0.1  # Keras 2's default
    with pytest.raises(ValueError, match="Expected a number >= 0"):
        keras.optimizers.Adam(decay=-1)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(ValueError, match="cannot be combined with a learning-rate schedule"):
        keras.optimizers.AdamW(schedule, decay=0.1)


def test_lambda_callback_and_lowercase_regularizers():
    seen = []
    model = functional_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.zeros((8, 6), "float32")
    y = np.zeros(8, int)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append("begin"),
        on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs))),
        on_batch_end=lambda batch, logs: seen.append(batch))])
    assert seen == ["begin", 0, 1, (0, ["loss"]), 0, 1, (1, ["loss"])]
    with pytest.raises(ValueError, match="Expected a function"):
        keras.callbacks.LambdaCallback(on_epoch_end=3)
    assert isinstance(keras.regularizers.l2(1e-4), keras.regularizers.L2)
    assert keras.regularizers.l2(1e-4).l2 == 1e-4


def test_random_layers_called_directly_augment_as_in_keras3():
    """`data_augmentation(images)` augments (Keras 3's default training=True for random
    layers); predict and training=False never do; Dropout stays off when called directly."""
    images = np.random.default_rng(0).random((64, 8, 8, 1)).astype("float32")
    data_augmentation = keras.Sequential([keras.Input((8, 8, 1)),
                                          layers.RandomFlip("horizontal"),
                                          layers.Dropout(0.5)], seed=0)
    augmented = data_augmentation(images)
    flipped = (augmented == images[:, :, ::-1]).all(axis=(1, 2, 3))
    assert flipped.any() and (~flipped).any()  # some flipped, none dropped
    assert ((augmented == images) | (augmented == images[:, :, ::-1])).all()
    np.testing.assert_array_equal(data_augmentation(images, training=False), images)
    np.testing.assert_array_equal(data_augmentation.predict(images, verbose=0), images)
    flip = layers.RandomFlip("horizontal")
    assert not np.array_equal(flip(images), images)
    np.testing.assert_array_equal(flip(images, training=False), images)
    np.testing.assert_array_equal(layers.Dropout(0.5)(images), images)
