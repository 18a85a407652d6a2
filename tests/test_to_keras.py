"""minicnn.models.to_keras: the same model in Keras, the same predictions.

Every recipe and a model with every layer Keras mirrors are rebuilt in Keras with minicnn's
weights copied in, and both predict the same probabilities within the float32 tolerances the
TensorFlow comparisons use; `compile=True` gives Keras the same optimizer (schedule included),
loss and metrics; a layer of your own is refused by name; `import minicnn` never loads
TensorFlow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn import layers, models
from minicnn.models import Sequential, to_keras
from tests.tolerances import TF_FORWARD_ATOL, TF_FORWARD_RTOL

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[1]


def assert_close_to_scale(ours: np.ndarray, theirs: np.ndarray) -> None:
    """|ours - theirs| <= atol + rtol * max|theirs| (tests/tolerances.py, TF_FORWARD_*)."""
    assert ours.shape == theirs.shape
    error = np.max(np.abs(ours - theirs))
    assert error <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * np.max(np.abs(theirs)), error


def every_layer_model() -> Sequential:
    """Every layer class Keras mirrors, in one model that trains and predicts."""
    model = Sequential([
        layers.Input((12, 12, 3)),
        layers.Rescaling(0.5, offset=0.1),
        layers.RandomFlip("horizontal"),
        layers.RandomTranslation(0.1, 0.1),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(8, (3, 3), strides=2, padding="same", use_bias=False),
        layers.ReLU(),
        layers.Conv2D(6, 1),
        layers.LeakyReLU(negative_slope=0.2),
        layers.AveragePooling2D(pool_size=(1, 1)),
        layers.Activation("tanh"),
        layers.Dropout(0.3),
        layers.GlobalMaxPooling2D(),
        layers.Dense(5, kernel_regularizer="l2"),
        layers.Softmax(),
    ], seed=4)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def with_every_branch() -> Sequential:
    """Flatten, GlobalAveragePooling2D and a softmax Dense: the other ways out of a conv stack."""
    return Sequential([layers.Input((6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
                       layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")],
                      seed=1)


@pytest.mark.parametrize("make, shape", [
    (lambda: models.mnist_cnn(seed=0), (28, 28, 1)),
    (lambda: models.fashion_mnist_cnn(seed=1), (28, 28, 1)),
    (lambda: models.cifar10_cnn(seed=2, augment=False), (32, 32, 3)),
    (every_layer_model, (12, 12, 3)),
    (with_every_branch, (6, 6, 2)),
    (lambda: models.lenet(seed=3), (28, 28, 1)),
], ids=["mnist_cnn", "fashion_mnist_cnn", "cifar10_cnn", "every_layer", "global_average",
        "lenet"])
def test_to_keras_predicts_what_minicnn_predicts(make, shape):
    model = make()
    # Non-trivial BatchNormalization statistics, so that copying them is checked too.
    rng = np.random.default_rng(0)
    weights = [w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) if w.ndim == 1 else w
               for w in model.get_weights()]
    model.set_weights(weights)
    twin = to_keras(model)
    assert isinstance(twin, keras.Sequential)
    assert [type(layer).__name__ for layer in twin.layers] == [
        type(layer).__name__ for layer in model.layers]
    for ours, theirs in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    x = rng.random((6, *shape), dtype=np.float32)
    assert_close_to_scale(model.predict(x, verbose=0), twin.predict(x, verbose=0))


def test_the_sigmoid_lenet_trains_as_its_keras_twin():
    """d2l's LeNet (sigmoids, average pools, SGD at 0.9): three steps from the same weights."""
    model = models.lenet(seed=0)
    twin = to_keras(model, compile=True)
    rng = np.random.default_rng(1)
    x = rng.random((3, 16, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, (3, 16))]
    for xb, yb in zip(x, y, strict=True):
        ours = model.train_on_batch(xb, yb, return_dict=True)["loss"]
        theirs = twin.train_on_batch(xb, yb, return_dict=True)["loss"]
        assert ours == pytest.approx(float(theirs), rel=1e-5)
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        assert_close_to_scale(a, b)


def test_to_keras_keeps_every_argument():
    model = every_layer_model()
    twin = to_keras(model)
    conv = twin.layers[6]
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding, conv.use_bias) == (
        8, (3, 3), (2, 2), "same", False)
    assert twin.layers[0].scale == 0.5 and twin.layers[0].offset == 0.1
    assert twin.layers[9].negative_slope == pytest.approx(0.2)
    assert twin.layers[12].rate == 0.3
    assert twin.layers[-2].kernel_regularizer is not None
    assert not twin.compiled


def test_to_keras_compiles_with_the_same_optimizer_loss_and_metrics():
    model = models.cifar10_cnn(seed=0, augment=False)  # RMSprop with an inverse-time decay
    twin = to_keras(model, compile=True)
    assert type(twin.optimizer).__name__ == "RMSprop"
    schedule = twin.optimizer.learning_rate if not hasattr(
        twin.optimizer, "_learning_rate") else twin.optimizer._learning_rate
    assert type(schedule).__name__ == "InverseTimeDecay"
    mnist = to_keras(models.mnist_cnn(seed=0), compile=True)
    assert type(mnist.optimizer).__name__ == "Adam"
    assert type(mnist.loss).__name__ == "CategoricalCrossentropy"
    assert mnist.loss.get_config()["from_logits"] is False
    x = np.random.default_rng(1).random((8, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(8)]
    loss, accuracy = mnist.evaluate(x, y, verbose=0)  # compiled with the metric: it runs
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_to_keras_names_a_layer_keras_cannot_mirror():
    class Square(layers.Layer):
        def forward(self, x, training=False):
            self.cache = x
            return x * x

        def backward(self, dout):
            return 2 * self.cache * dout

    model = Sequential([layers.Input((4,)), layers.Dense(3), Square(name="square")])
    with pytest.raises(ValueError, match=r"layer 'square' of class .*Square.*no twin"):
        to_keras(model)


def test_to_keras_refuses_unbuilt_and_uncompiled_models():
    with pytest.raises(ValueError, match="Expected a built model"):
        to_keras(Sequential([layers.Dense(3)]))
    with pytest.raises(ValueError, match="argument `compile`"):
        to_keras(models.mnist_cnn(seed=0, compile=False), compile=True)


def test_importing_minicnn_does_not_import_tensorflow():
    code = ("import sys, minicnn, minicnn.utils, minicnn.models; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=300)
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]
