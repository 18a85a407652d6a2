"""Residual networks: He et al.'s ResNet-20 on CIFAR-10, built with the functional API.

The model is `models.resnet_cifar(depth=20)` (minicnn/models/recipes.py), written out below as
a tutorial writes it: Input, a 3x3 conv, three stages of residual blocks whose input is added
back to their output (`layers.add`), global average pooling and a softmax. 274,442 weights.
Run it from the project root:

    python examples/resnet_cifar10.py                          # 10 epochs on CIFAR-10
    python examples/resnet_cifar10.py --epochs 1 --limit 2000  # a quick check
    python examples/resnet_cifar10.py --synthetic              # on generated pictures instead
    python examples/resnet_cifar10.py --compare-plain          # gradients with and without skips

CIFAR-10 comes from `minicnn.datasets.cifar10.load_data()` (see examples/cifar10_cnn.py, whose
loader and generated stand-in this script shares). --compare-plain prints, for each 3x3 conv
at initialisation, the gradient norms of ResNet-20 and of the same network without its skip
connections ("plain-20"), the table of docs/backprop.md's "Why skip connections help".
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import numpy as np

import minicnn as keras  # Keras's names: keras.Input, keras.Model, keras.layers, ...
from minicnn import layers, models, regularizers
from minicnn.utils import to_categorical


def resnet_block(x, filters: int, strides: int, make):
    """conv3x3-BN-ReLU-conv3x3-BN, added to the block's input, then ReLU. The input is sent
    through a 1x1 conv of the same stride when the block changes the shape."""
    y = make(layers.Conv2D(filters, 3, strides=strides, padding="same",
                           kernel_initializer="he_normal",
                           kernel_regularizer=regularizers.L2(1e-4)))(x)
    y = layers.Activation("relu")(make(layers.BatchNormalization())(y))
    y = make(layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal",
                           kernel_regularizer=regularizers.L2(1e-4)))(y)
    y = make(layers.BatchNormalization())(y)
    if strides > 1:  # the shortcut must match y's shape to be added
        x = make(layers.Conv2D(filters, 1, strides=strides, padding="same",
                               kernel_initializer="he_normal",
                               kernel_regularizer=regularizers.L2(1e-4)))(x)
    return layers.Activation("relu")(layers.add([x, y]))  # the skip connection


def build(seed: int | None) -> keras.Model:
    """ResNet-20 written out: the same graph as models.resnet20(seed) (a test checks it)."""
    rng = np.random.default_rng(seed)

    def make(layer):  # every weight drawn from the seed, in order
        layer.rng = rng
        return layer

    inputs = keras.Input(shape=(32, 32, 3))
    x = make(layers.RandomFlip("horizontal"))(inputs)
    x = make(layers.RandomTranslation(0.125, 0.125, fill_mode="constant",
                                      interpolation="nearest"))(x)
    x = make(layers.Conv2D(16, 3, padding="same", kernel_initializer="he_normal",
                           kernel_regularizer=regularizers.L2(1e-4)))(x)
    x = layers.Activation("relu")(make(layers.BatchNormalization())(x))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):  # (20 - 2) / 6 blocks per stage
            x = resnet_block(x, filters, 2 if stage > 0 and block == 0 else 1, make)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = make(layers.Dense(10, activation="softmax", kernel_initializer="he_normal"))(x)
    model = keras.Model(inputs, outputs, name="resnet20", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def compare_plain(batch: int = 128) -> None:
    """Gradient norms per 3x3 conv at initialisation, plain-20 against ResNet-20."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch)]
    norms = {}
    for shortcuts in (False, True):
        model = models.resnet_cifar(20, seed=0, augment=False, shortcuts=shortcuts)
        summary = model.backward_summary(x, y, print_fn=False)
        norms[shortcuts] = [(r.grad_norm, r.dout_norm) for r in summary.rows
                            if r.class_name == "Conv2D"
                            and model.get_layer(r.name).kernel_size == (3, 3)]
        print(f"{model.name}: loss at initialisation {summary.loss:.2f}")
    print(f"{'conv':>4}  {'plain |dL/dW|':>13}  {'plain |dL/dy|':>13}  {'res |dL/dW|':>11}  "
          f"{'res |dL/dy|':>11}")
    for k, ((g0, d0), (g1, d1)) in enumerate(zip(norms[False], norms[True], strict=True), 1):
        print(f"{k:>4}  {g0:13.3f}  {d0:13.4f}  {g1:11.3f}  {d1:11.4f}")
    for name, rows in (("plain-20", norms[False]), ("ResNet-20", norms[True])):
        g = [r[0] for r in rows]
        print(f"{name}: weight-gradient norms span {max(g) / min(g):.1f}x; first/last "
              f"{g[0] / g[-1]:.1f}x")


def cifar10_example():
    """examples/cifar10_cnn.py, beside this file: its loader and accuracy bar."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10_cnn.py")
    spec = importlib.util.spec_from_file_location("cifar10_cnn_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs to train (default 10)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--limit", type=int,
                        help="use only the first N training images and the first N test images")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and shuffles")
    parser.add_argument("--synthetic", action="store_true",
                        help="train on generated pictures, without looking for CIFAR-10")
    parser.add_argument("--compare-plain", action="store_true",
                        help="print the gradients of plain-20 and ResNet-20 at initialisation")
    parser.add_argument("--min-accuracy", type=float,
                        help="test accuracy to assert instead of the bar for the run")
    args = parser.parse_args(argv)
    if args.compare_plain:
        compare_plain()
        return 0
    for name in ("epochs", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, received "
                         f"{value}")
    example = cifar10_example()
    ((train_images, train_labels), (test_images, test_labels)), synthetic = example.load(
        args.limit, args.synthetic)
    x_train, x_test = train_images.astype("float32") / 255, test_images.astype("float32") / 255
    y_train, y_test = to_categorical(train_labels, 10), to_categorical(test_labels, 10)

    model = build(args.seed)
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), verbose=2)
    print(f"Seconds per epoch: {(time.perf_counter() - start) / args.epochs:.1f}")
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test loss: {test_loss:.4f}\nTest accuracy: {test_acc:.4f}"
          + (" (generated data)" if synthetic else ""))
    bar = (args.min_accuracy if args.min_accuracy is not None
           else example.accuracy_bar(args.epochs, len(x_train), synthetic))
    if test_acc < bar:
        sys.exit(f"FAILED: test accuracy {test_acc:.4f} is below the bar of {bar:.3f}")
    print(f"OK: test accuracy {test_acc:.4f} >= {bar:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
