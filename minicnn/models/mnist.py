"""The Keras MNIST notebook's CNN, in one place for the CLI, the benchmarks and the tests."""

from __future__ import annotations

from minicnn import layers
from minicnn.models.sequential import Sequential


def mnist_cnn(seed: int | None = None, compile: bool = True) -> Sequential:
    """Conv2D(32) -> MaxPool -> Conv2D(64) -> MaxPool -> Conv2D(64) -> Dense(64) -> Dense(10).

    93,322 parameters, for (28, 28, 1) inputs; compiled with Adam and categorical
    cross-entropy, reporting accuracy, exactly as the Keras notebook does.
    """
    model = Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], seed=seed)
    if compile:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model
