"""Public tutorials' functional-API code, run with only their imports changed.

Each text below is the tutorial's code as published (Keras's functional version of the classic
MNIST notebook; Deep Learning with Python's first convnet, chapter 8; its residual blocks,
chapter 9), with `from tensorflow import keras` and friends as the one thing changed. The
tutorials load all of MNIST and train for epochs; here `mnist.load_data` hands them a few
hundred generated images of the same shapes and dtypes, and the sizes written into the code
(60000, 10000) are scaled to match, so the test exercises their model code in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

import minicnn

IMPORTS = {
    "from tensorflow import keras\n": "import minicnn as keras\n",
    "from tensorflow.keras import layers\n": "from minicnn import layers\n",
    "from tensorflow.keras.datasets import mnist\n": "from minicnn.datasets import mnist\n",
    "from tensorflow.keras.utils import to_categorical\n":
        "from minicnn.utils import to_categorical\n",
}

FUNCTIONAL_NOTEBOOK = """\
from tensorflow import keras
from tensorflow.keras import layers
from tensorflow.keras.datasets import mnist
from tensorflow.keras.utils import to_categorical

(train_images, train_labels), (test_images, test_labels) = mnist.load_data()
train_images = train_images.reshape((60000, 28, 28, 1)).astype("float32") / 255
test_images = test_images.reshape((10000, 28, 28, 1)).astype("float32") / 255
train_labels = to_categorical(train_labels)
test_labels = to_categorical(test_labels)

inputs = keras.Input(shape=(28, 28, 1))
x = layers.Conv2D(32, (3, 3), activation="relu")(inputs)
x = layers.MaxPooling2D((2, 2))(x)
x = layers.Conv2D(64, (3, 3), activation="relu")(x)
x = layers.MaxPooling2D((2, 2))(x)
x = layers.Conv2D(64, (3, 3), activation="relu")(x)
x = layers.Flatten()(x)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs=inputs, outputs=outputs)
model.summary()
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
history = model.fit(train_images, train_labels, epochs=2, batch_size=128,
                    validation_split=0.1, verbose=0)
test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
"""

DLWP_CONVNET = """\
from tensorflow import keras
from tensorflow.keras import layers
inputs = keras.Input(shape=(28, 28, 1))
x = layers.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
x = layers.MaxPooling2D(pool_size=2)(x)
x = layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
x = layers.MaxPooling2D(pool_size=2)(x)
x = layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
x = layers.Flatten()(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs=inputs, outputs=outputs)

from tensorflow.keras.datasets import mnist

(train_images, train_labels), (test_images, test_labels) = mnist.load_data()
train_images = train_images.reshape((60000, 28, 28, 1))
train_images = train_images.astype("float32") / 255
test_images = test_images.reshape((10000, 28, 28, 1))
test_images = test_images.astype("float32") / 255
model.compile(optimizer="rmsprop",
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"])
model.fit(train_images, train_labels, epochs=1, batch_size=64, verbose=0)
test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
"""

DLWP_RESIDUAL = """\
from tensorflow import keras
from tensorflow.keras import layers
inputs = keras.Input(shape=(32, 32, 3))
x = layers.Conv2D(32, 3, activation="relu")(inputs)
residual = x
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
residual = layers.Conv2D(64, 1)(residual)
x = layers.add([x, residual])

inputs = keras.Input(shape=(32, 32, 3))
x = layers.Conv2D(32, 3, activation="relu")(inputs)
residual = x
x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
x = layers.MaxPooling2D(2, padding="same")(x)
residual = layers.Conv2D(64, 1, strides=2)(residual)
x = layers.add([x, residual])

inputs = keras.Input(shape=(32, 32, 3))
x = layers.Rescaling(1./255)(inputs)

def residual_block(x, filters, pooling=False):
    residual = x
    x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
    if pooling:
        x = layers.MaxPooling2D(2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2)(residual)
    elif filters != residual.shape[-1]:
        residual = layers.Conv2D(filters, 1)(residual)
    x = layers.add([x, residual])
    return x

x = residual_block(x, filters=32, pooling=True)
x = residual_block(x, filters=64, pooling=True)
x = residual_block(x, filters=128, pooling=False)

x = layers.GlobalAveragePooling2D()(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs=inputs, outputs=outputs)
model.summary()
"""


def ported(text: str) -> str:
    """The tutorial with only its imports changed (and its data sizes scaled, see above)."""
    for theirs, ours in IMPORTS.items():
        text = text.replace(theirs, ours)
    assert "tensorflow" not in text
    return text.replace("60000", "600").replace("10000", "100")


@pytest.fixture
def small_mnist(monkeypatch):
    rng = np.random.default_rng(0)

    def load_data(*args, **kwargs):
        images = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (600, 100)]
        labels = [rng.integers(0, 10, n).astype(np.uint8) for n in (600, 100)]
        return (images[0], labels[0]), (images[1], labels[1])

    monkeypatch.setattr(minicnn.datasets.mnist, "load_data", load_data)


@pytest.mark.parametrize("text", [FUNCTIONAL_NOTEBOOK, DLWP_CONVNET], ids=["notebook", "dlwp"])
def test_a_functional_mnist_tutorial_runs_with_only_its_imports_changed(text, small_mnist,
                                                                          capsys):
    namespace: dict = {}
    exec(compile(ported(text), "<tutorial>", "exec"), namespace)
    assert isinstance(namespace["model"], minicnn.Model)
    assert 0.0 <= namespace["test_acc"] <= 1.0 and np.isfinite(namespace["test_loss"])


def test_dlwp_residual_blocks_build_with_only_their_imports_changed(capsys):
    namespace: dict = {}
    exec(compile(ported(DLWP_RESIDUAL), "<tutorial>", "exec"), namespace)
    model = namespace["model"]
    assert model.output_shape == (None, 1)
    assert "Connected to" in capsys.readouterr().out
    assert model.count_params() == 297_697  # Keras 3's count for the same code
