"""The built-in recipes: the models the CLI, the examples, the benchmarks and the tests share.

Each is a function `recipe(seed=None, compile=True) -> Model` (a Sequential but for the ResNet)
taking inputs scaled to [0, 1]
(the examples divide the uint8 pixels by 255, as the tutorials do), and `RECIPES` names them for
`minicnn train --model NAME`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minicnn import layers, optimizers, regularizers
from minicnn.models.functional import Model
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


def resnet_cifar(depth: int = 20, seed: int | None = None, compile: bool = True,
                 augment: bool = True, shortcuts: bool = True) -> Model:
    """He et al. (2016)'s CIFAR-10 ResNet (v1), as keras.io's `cifar10_resnet` builds it, for
    (32, 32, 3) inputs: depth = 6n + 2 (20, 32, 44, 56, 110).

    A 3x3 conv of 16 filters, then three stages of n residual blocks with 16, 32 and 64 filters
    (the first block of stages 2 and 3 halves the size with stride 2); each block is
    conv3x3-BN-ReLU-conv3x3-BN, added to its input (through a 1x1 conv of stride 2 where the
    shape changes), then a ReLU; global average pooling and Dense(10, softmax). Every conv is
    He-normal initialised with an L2(1e-4) penalty; Adam(1e-3). With `augment`, random flips
    and shifts of up to 4 pixels (1/8), as the paper's padding and cropping. ResNet-20 has
    274,442 parameters (1,376 of them BatchNormalization's moving statistics).
    `shortcuts=False` gives the paper's "plain" network of the same depth: the same layers
    without the additions (nor the 1x1 projections), for comparing their gradients.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"Invalid value for argument `depth`. Expected 6n + 2 (20, 32, 44, 56, "
                         f"110). Received depth={depth!r}")
    rng = np.random.default_rng(seed)

    def made(layer):
        layer.rng = rng  # every weight drawn from the recipe's seed, in order
        return layer

    def conv(filters, kernel_size=3, strides=1):
        return made(layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                                  kernel_initializer="he_normal",
                                  kernel_regularizer=regularizers.L2(1e-4)))

    inputs = layers.Input((32, 32, 3))
    x = inputs
    if augment:
        x = made(layers.RandomFlip("horizontal"))(x)
        x = made(layers.RandomTranslation(0.125, 0.125, fill_mode="constant",
                                          interpolation="nearest"))(x)
    x = layers.Activation("relu")(made(layers.BatchNormalization())(conv(16)(x)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range((depth - 2) // 6):
            strides = 2 if stage > 0 and block == 0 else 1
            y = conv(filters, strides=strides)(x)
            y = layers.Activation("relu")(made(layers.BatchNormalization())(y))
            y = made(layers.BatchNormalization())(conv(filters)(y))
            if shortcuts:
                shortcut = conv(filters, 1, strides)(x) if strides > 1 else x
                y = layers.add([shortcut, y])
            x = layers.Activation("relu")(y)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = made(layers.Dense(10, activation="softmax", kernel_initializer="he_normal"))(x)
    model = Model(inputs, outputs, name=f"resnet{depth}" if shortcuts else f"plain{depth}",
                  seed=seed)
    if compile:
        model.compile(optimizer=optimizers.Adam(1e-3), loss="categorical_crossentropy",
                      metrics=["accuracy"])
    return model


def resnet20(seed: int | None = None, compile: bool = True, augment: bool = True) -> Model:
    """`resnet_cifar(depth=20)`: the recipe `minicnn train --dataset cifar10 --model resnet20`
    trains."""
    return resnet_cifar(20, seed=seed, compile=compile, augment=augment)

def lenet(seed: int | None = None, compile: bool = True) -> Sequential:
    """LeNet-5 as *Dive into Deep Learning* (d2l.ai, section 7.6) builds it, for (28, 28, 1)
    inputs: Conv2D(6, 5x5, 'same') -> AvgPool -> Conv2D(16, 5x5) -> AvgPool -> Dense(120) ->
    Dense(84) -> Dense(10), every hidden layer a sigmoid; SGD with d2l's learning rate 0.9 and
    cross-entropy (d2l trains it on Fashion-MNIST at batch 256). d2l's last layer gives logits
    to a from-logits loss; here it is a softmax, which the loss fuses into the same gradient,
    so that predict() gives probabilities as the other recipes do. 61,706 parameters.
    """
    model = Sequential([
        layers.Conv2D(6, 5, padding="same", activation="sigmoid", input_shape=(28, 28, 1)),
        layers.AveragePooling2D(2, strides=2),
        layers.Conv2D(16, 5, activation="sigmoid"),
        layers.AveragePooling2D(2, strides=2),
        layers.Flatten(),
        layers.Dense(120, activation="sigmoid"),
        layers.Dense(84, activation="sigmoid"),
        layers.Dense(10, activation="softmax"),
    ], seed=seed)
    if compile:
        model.compile(optimizer=optimizers.SGD(learning_rate=0.9),
                      loss="categorical_crossentropy", metrics=["accuracy"])
    return model


RECIPES: dict[str, Callable[..., Model]] = {
    "mnist_cnn": mnist_cnn,
    "fashion_mnist_cnn": fashion_mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "resnet20": resnet20,
    "lenet": lenet,
}
