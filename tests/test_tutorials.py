"""Public tutorials' code, run with only their imports changed.

Each text below is the tutorial's code as published (Keras's functional version of the classic
MNIST notebook; Deep Learning with Python's first convnet, chapter 8; its residual blocks,
chapter 9; TensorFlow's quickstart for beginners, "Basic classification" and "Convolutional
Neural Network (CNN)" tutorials; keras.io's "Simple MNIST convnet"), with `from tensorflow import
keras` and friends as the one thing changed. The tutorials load all of a dataset and train for
epochs; here `load_data` hands them a few hundred generated images of the same shapes and
dtypes, and the sizes and epochs written into the code are scaled down, so the test exercises
their model code in seconds. One line is not Keras's: the quickstart's `tf.nn.softmax`, a
TensorFlow op, becomes Keras's own `tf.keras.activations.softmax`.
"""

from __future__ import annotations

import numpy as np
import pytest

import minicnn

IMPORTS = {
    "import tensorflow as tf\n": "import minicnn as tf\n",
    "from tensorflow.keras import datasets, layers, models\n":
        "from minicnn import datasets, layers, models\n",
    "import keras\n": "import minicnn as keras\n",
    "from keras import layers\n": "from minicnn import layers\n",
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


# The sizes and epochs written into the tutorials, scaled to the generated data (see above).
SCALED = {"60000": "600", "10000": "100", "epochs=10": "epochs=2", "epochs=5": "epochs=1",
          "epochs = 15": "epochs = 1", "tf.nn.softmax(": "tf.keras.activations.softmax("}


def ported(text: str) -> str:
    """The tutorial with only its imports changed (and its data sizes scaled, see above)."""
    text = "".join(IMPORTS.get(line, line) for line in text.splitlines(keepends=True))
    assert "tensorflow" not in text
    for theirs, ours in SCALED.items():
        text = text.replace(theirs, ours)
    return text


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


TF_QUICKSTART = """\
import tensorflow as tf
print("TensorFlow version:", tf.__version__)
mnist = tf.keras.datasets.mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0
model = tf.keras.models.Sequential([
  tf.keras.layers.Flatten(input_shape=(28, 28)),
  tf.keras.layers.Dense(128, activation='relu'),
  tf.keras.layers.Dropout(0.2),
  tf.keras.layers.Dense(10)
])
predictions = model(x_train[:1]).numpy()
predictions
tf.nn.softmax(predictions).numpy()
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
loss_fn(y_train[:1], predictions).numpy()
model.compile(optimizer='adam',
              loss=loss_fn,
              metrics=['accuracy'])
model.fit(x_train, y_train, epochs=5)
model.evaluate(x_test,  y_test, verbose=2)
probability_model = tf.keras.Sequential([
  model,
  tf.keras.layers.Softmax()
])
probability_model(x_test[:5])
"""

TF_BASIC_CLASSIFICATION = """\
import tensorflow as tf

import numpy as np
import matplotlib.pyplot as plt

print(tf.__version__)
fashion_mnist = tf.keras.datasets.fashion_mnist

(train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
class_names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
train_images.shape
len(train_labels)
plt.figure()
plt.imshow(train_images[0])
plt.colorbar()
plt.grid(False)
plt.show()
train_images = train_images / 255.0

test_images = test_images / 255.0
plt.figure(figsize=(10,10))
for i in range(25):
    plt.subplot(5,5,i+1)
    plt.xticks([])
    plt.yticks([])
    plt.grid(False)
    plt.imshow(train_images[i], cmap=plt.cm.binary)
    plt.xlabel(class_names[train_labels[i]])
plt.show()
model = tf.keras.Sequential([
    tf.keras.layers.Flatten(input_shape=(28, 28)),
    tf.keras.layers.Dense(128, activation='relu'),
    tf.keras.layers.Dense(10)
])
model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.fit(train_images, train_labels, epochs=10)
test_loss, test_acc = model.evaluate(test_images,  test_labels, verbose=2)

print('\\nTest accuracy:', test_acc)
probability_model = tf.keras.Sequential([model,
                                         tf.keras.layers.Softmax()])
predictions = probability_model.predict(test_images)
predictions[0]
np.argmax(predictions[0])
img = test_images[1]

print(img.shape)
img = (np.expand_dims(img,0))

print(img.shape)
predictions_single = probability_model.predict(img)

print(predictions_single)
np.argmax(predictions_single[0])
"""

TF_CNN = """\
import tensorflow as tf

from tensorflow.keras import datasets, layers, models
import matplotlib.pyplot as plt
(train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()

# Normalize pixel values to be between 0 and 1
train_images, test_images = train_images / 255.0, test_images / 255.0
class_names = ['airplane', 'automobile', 'bird', 'cat', 'deer',
               'dog', 'frog', 'horse', 'ship', 'truck']

plt.figure(figsize=(10,10))
for i in range(25):
    plt.subplot(5,5,i+1)
    plt.xticks([])
    plt.yticks([])
    plt.grid(False)
    plt.imshow(train_images[i])
    # The CIFAR labels happen to be arrays,
    # which is why you need the extra index
    plt.xlabel(class_names[train_labels[i][0]])
plt.show()
model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.summary()
model.add(layers.Flatten())
model.add(layers.Dense(64, activation='relu'))
model.add(layers.Dense(10))
model.summary()
model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

history = model.fit(train_images, train_labels, epochs=10,
                    validation_data=(test_images, test_labels))
plt.plot(history.history['accuracy'], label='accuracy')
plt.plot(history.history['val_accuracy'], label = 'val_accuracy')
plt.xlabel('Epoch')
plt.ylabel('Accuracy')
plt.ylim([0.5, 1])
plt.legend(loc='lower right')

test_loss, test_acc = model.evaluate(test_images,  test_labels, verbose=2)
print(test_acc)
"""

KERAS_IO_MNIST_CONVNET = """\
import numpy as np
import keras
from keras import layers
# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")


# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)
model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()
batch_size = 128
epochs = 15

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)
score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
"""


@pytest.fixture
def small_datasets(monkeypatch):
    """MNIST, Fashion-MNIST and CIFAR-10's load_data, giving a few hundred generated samples of
    the real shapes and dtypes (CIFAR-10's labels are (N, 1), as Keras gives them)."""
    import matplotlib

    matplotlib.use("Agg")  # the tutorials' plt.show() draws nothing
    rng = np.random.default_rng(0)

    def loader(shape, label_shape=()):
        def load_data(*args, **kwargs):
            images = [rng.integers(0, 256, (n, *shape), dtype=np.uint8) for n in (600, 100)]
            labels = [rng.integers(0, 10, (n, *label_shape)).astype(np.uint8) for n in (600, 100)]
            return (images[0], labels[0]), (images[1], labels[1])
        return load_data

    monkeypatch.setattr(minicnn.datasets.mnist, "load_data", loader((28, 28)))
    monkeypatch.setattr(minicnn.datasets.fashion_mnist, "load_data", loader((28, 28)))
    monkeypatch.setattr(minicnn.datasets.cifar10, "load_data", loader((32, 32, 3), (1,)))


@pytest.mark.parametrize("text", [TF_QUICKSTART, TF_BASIC_CLASSIFICATION, TF_CNN,
                                  KERAS_IO_MNIST_CONVNET],
                         ids=["tf-quickstart", "tf-basic-classification", "tf-cnn",
                              "keras-io-mnist-convnet"])
def test_a_tensorflow_or_keras_io_tutorial_runs_with_only_its_imports_changed(
        text, small_datasets, capsys):
    namespace: dict = {}
    exec(compile(ported(text), "<tutorial>", "exec"), namespace)
    model = namespace["model"]
    assert isinstance(model, minicnn.Model) and model.history.history["loss"]
    assert np.isfinite(model.history.history["loss"][-1])
    if "probability_model" in namespace:  # the logits model wrapped with a Softmax
        p = namespace["probability_model"].predict(np.zeros((2, 28, 28)), verbose=0)
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
