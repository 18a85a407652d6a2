"""Keras's Sequential conveniences: get_layer, save_weights / load_weights."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import layers, models


def small_model(seed: int) -> models.Sequential:
    return models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, name="conv"),
                              layers.BatchNormalization(name="bn"), layers.Flatten(),
                              layers.Dense(3, activation="softmax", name="out")], seed=seed)


def test_get_layer_by_name_and_index_with_keras_messages():
    model = small_model(0)
    assert model.get_layer("bn") is model.layers[1]
    assert model.get_layer(index=-1) is model.get_layer("out")
    with pytest.raises(ValueError, match=r"No such layer: nope. Existing layers are: \['conv'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="only has 4 layers"):
        model.get_layer(index=4)
    with pytest.raises(ValueError, match="Provide only a layer name or a layer index"):
        model.get_layer()


def test_save_weights_round_trips_every_weight_moving_statistics_included(tmp_path):
    trained = small_model(0)
    trained.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    trained.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "m.weights.npz"
    trained.save_weights(path)
    fresh = small_model(1)
    fresh.build((None, 6, 6, 1))
    assert not np.array_equal(fresh.get_weights()[0], trained.get_weights()[0])
    fresh.load_weights(path)
    for mine, theirs in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), trained.predict(x, verbose=0))
    # no optimizer state in a weights file: a model loaded from it is not compiled
    assert not models.load_model(path).compiled


def test_save_weights_refuses_other_names_and_unbuilt_models(tmp_path):
    model = small_model(0)
    with pytest.raises(ValueError, match=r"`.weights.h5` or `.npz`.*filepath=.*m.weights"):
        model.save_weights(tmp_path / "m.weights")
    unbuilt = models.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match="not built yet"):
        unbuilt.save_weights(tmp_path / "m.weights.npz")
    assert not list(tmp_path.iterdir())
