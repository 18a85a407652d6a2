"""callbacks.TensorBoard: real event files (tensorboardX), read back with tensorboard's own
event reader: epoch and batch scalars, weight and gradient histograms, the filters image."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import callbacks, layers
from minicnn.callbacks.tensorboard import filter_grid
from minicnn.models import Sequential

pytest.importorskip("tensorboardX", reason="callbacks.TensorBoard writes with tensorboardX")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="tensorboard's event reader checks the files")


def read(path):
    reader = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.HISTOGRAMS: 0,
                                  event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0})
    reader.Reload()
    return reader


def test_scalars_histograms_and_filters_read_back(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, 40)
    model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3)),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    board = callbacks.TensorBoard(tmp_path, histogram_freq=1, update_freq="batch")
    history = model.fit(x, y, batch_size=10, epochs=2, validation_split=0.25, verbose=0,
                        callbacks=[board])
    train, validation = read(tmp_path / "train"), read(tmp_path / "validation")
    tags = train.Tags()
    assert {"epoch_loss", "epoch_accuracy", "batch_loss", "batch_accuracy"} <= set(tags["scalars"])
    losses = [e.value for e in train.Scalars("epoch_loss")]
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in validation.Scalars("epoch_loss")],
                               history.history["val_loss"], rtol=1e-6)
    assert [e.step for e in train.Scalars("batch_loss")] == list(range(1, 7))
    conv = model.layers[0].name
    assert {f"{conv}/kernel", f"{conv}/kernel/gradient", f"{conv}/bias"} <= set(
        tags["histograms"])
    histogram = train.Histograms(f"{conv}/kernel")[-1].histogram_value
    kernel = model.layers[0].kernel.value
    assert histogram.num == kernel.size and histogram.sum == pytest.approx(float(kernel.sum()),
                                                                          rel=1e-5)
    assert "first_layer_filters" in tags["images"]
    image = train.Images("first_layer_filters")[-1]
    assert (image.height, image.width) == filter_grid(kernel).shape[:2]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`histogram_freq`"):
        callbacks.TensorBoard("logs", histogram_freq=-1)
    with pytest.raises(ValueError, match="`update_freq`"):
        callbacks.TensorBoard("logs", update_freq="often")
