"""The built-in recipes: the models the CLI, the examples, the benchmarks and the tests share.

Each is a function `recipe(seed=None, compile=True) -> Sequential` taking inputs scaled to [0, 1]
(the examples divide the uint8 pixels by 255, as the tutorials do), and `RECIPES` names them for
`minicnn train --model NAME`.
"""

from __future__ import annotations

from collections.abc import Callable

from minicnn import layers, optimizers
from minicnn.models.sequential import Sequential
from minicnn.schedules import InverseTimeDecay


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


def fashion_mnist_cnn(seed: int | None = None, compile: bool = True) -> Sequential:
    """Two Conv2D+BatchNormalization+MaxPool+Dropout(0.25) blocks, Dense(128)+Dropout(0.5).

    The usual next step after the MNIST notebook, for (28, 28, 1) inputs: BatchNormalization after
    each convolution's ReLU and Dropout after each block, as the Fashion-MNIST tutorials place
    them; Adam and categorical cross-entropy. 225,418 parameters (192 of them non-trainable: the
    moving statistics).
    """
    model = Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], seed=seed)
    if compile:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def cifar10_cnn(seed: int | None = None, compile: bool = True, augment: bool = True) -> Sequential:
    """Keras's classic `cifar10_cnn` example, for (32, 32, 3) inputs.

    Two blocks of Conv2D(32 or 64, 'same') -> Conv2D -> MaxPool -> Dropout(0.25), then
    Dense(512) -> Dropout(0.5) -> Dense(10); RMSprop(1e-4) with the old `decay=1e-6`, which is
    lr / (1 + 1e-6 * step), an InverseTimeDecay. The original wrote each ReLU and the softmax as
    separate Activation layers; `activation=` inside the layer computes the same thing and lets
    the fast plan fuse it. The random flips and shifts (up to 10% of the size, edges filled with
    the nearest pixel) of its ImageDataGenerator are layers at the front, active in training
    only, when `augment` is true. 1,250,858 parameters.
    """
    augmentation = [layers.RandomFlip("horizontal"),
                    layers.RandomTranslation(0.1, 0.1, fill_mode="nearest")] if augment else []
    model = Sequential([
        layers.Input((32, 32, 3)),
        *augmentation,
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], seed=seed)
    if compile:
        schedule = InverseTimeDecay(1e-4, decay_steps=1, decay_rate=1e-6)
        model.compile(optimizer=optimizers.RMSprop(learning_rate=schedule),
                      loss="categorical_crossentropy", metrics=["accuracy"])
    return model


RECIPES: dict[str, Callable[..., Sequential]] = {
    "mnist_cnn": mnist_cnn,
    "fashion_mnist_cnn": fashion_mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
}
