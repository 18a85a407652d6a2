"""Clothing with BatchNormalization and Dropout: Fashion-MNIST on minicnn, and on Keras beside it.

The next lesson after the MNIST notebook: the same 28x28 gray pictures, but of clothes (harder:
a shirt and a T-shirt look alike), and a model with the two layers that behave differently in
training and at inference. Run it from the project root:

    python examples/fashion_mnist.py                             # 10 epochs, >= 88%
    python examples/fashion_mnist.py --epochs 1 --limit 3000     # a quick check, >= 30%
    python examples/fashion_mnist.py --compare-tf                # and TensorFlow, side by side

It reads Fashion-MNIST from $MINICNN_FASHION_MNIST_DATA when set (else from, or into, the cache;
see `minicnn.datasets.fashion_mnist`). With --compare-tf, TensorFlow's Keras trains the same
recipe from the same initial weights (`minicnn.models.to_keras`: the layouts are Keras's) on the
same batches in the same order, the two alternating epoch by epoch, and the script prints both test
accuracies, their difference in points and both epoch times. Like examples/mnist_cnn.py it ends
by checking minicnn's test accuracy against the bar for the run (`accuracy_bar`).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

from minicnn import models
from minicnn.datasets import fashion_mnist
from minicnn.models import to_keras
from minicnn.utils import to_categorical

VALIDATION_SPLIT = 0.1  # the last 10% of the training images, never trained on, as the notebook
TF_GAP_POINTS = 0.5  # issue 11: after 10 epochs, within this many points of TensorFlow's accuracy
# ... as a mean over seeds: one run's last-epoch test accuracy moves by about a point either way
# in both frameworks (chaotic training; TensorFlow against itself, same seed: 0.57 points). Seeds
# 0-6, 10 epochs on the full set: minicnn 0.8993, TensorFlow 0.9028 on average (-0.35 points),
# single runs from -1.44 to +1.29 points.


def accuracy_bar(epochs: int, train_images: int, full_data: bool) -> float:
    """The test accuracy a run must reach with `fashion_mnist_cnn` (chance is 0.10).

    Measured here, seed 0, with --compare-tf (TensorFlow from the same weights, on the same
    batches): 10 epochs on all 54,000 training images, test accuracy 0.8969 (TensorFlow 0.8989)
    -> bar 0.88; the validation accuracy after the first of those epochs was 0.73 (TensorFlow
    0.70) -> bar 0.65 for one epoch. 1 epoch on --limit 3000 (2,700 images seen, 22 steps),
    tested on the first 3,000 test images: 0.49-0.52 (seeds 0 and 1; TensorFlow from the same
    weights 0.55) -> bar 0.30. Short runs score low because BatchNormalization's moving
    statistics, which inference uses, are still close to their initial 0 and 1 (momentum 0.99
    keeps 80% of them after 22 steps). Fewer images than that: no bar, the run has to finish.
    """
    seen = epochs * train_images
    if full_data and epochs >= 10:
        return 0.88
    if seen >= 54_000:
        return 0.65
    if seen >= 2_700:
        return 0.30
    return 0.0


def import_keras():
    """Keras, with TensorFlow's start-up logs quiet; only --compare-tf calls it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def train_side_by_side(model, twin, keras, x, y, *, epochs: int, batch_size: int,
                       validation_split: float = 0.0, validation_data=None) -> dict:
    """Train minicnn's `model` and Keras's `twin` on the same batches, alternating epochs.

    minicnn's `fit` holds out the last `validation_split` of x (or validates on
    `validation_data`) and draws epoch k's order of the rest from (model.seed, k), k counting
    every epoch it has trained (`Trainer._fit_epochs`); Keras gets the same training images in
    that same order with shuffle=False, and the same validation images. Prints one line per
    epoch; returns {"minicnn": [(seconds, logs), ...], "TensorFlow": [...]}.
    """
    if validation_data is None:
        split = math.floor(len(x) * (1 - validation_split))
        x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]
    else:
        (x_train, y_train), (x_val, y_val) = (x, y), validation_data
    keras.utils.set_random_seed(model.seed % 2**32)  # Keras's dropout; minicnn's follow its seed
    runs = {"minicnn": [], "TensorFlow": []}
    for epoch in range(epochs):
        order = np.random.default_rng((model.seed, model.epochs_trained)).permutation(
            len(x_train))
        start = time.perf_counter()
        history = model.fit(x, y, epochs=1, batch_size=batch_size,
                            validation_split=validation_split, validation_data=validation_data,
                            verbose=0)
        runs["minicnn"].append((time.perf_counter() - start,
                                {k: v[-1] for k, v in history.history.items()}))
        x_epoch, y_epoch = x_train[order], y_train[order]
        time.sleep(0.25)  # let one engine's idle threads go to sleep before the other's turn
        start = time.perf_counter()
        history = twin.fit(x_epoch, y_epoch, epochs=1, batch_size=batch_size, shuffle=False,
                           validation_data=(x_val, y_val), verbose=0)
        runs["TensorFlow"].append((time.perf_counter() - start,
                                   {k: v[-1] for k, v in history.history.items()}))
        print(f"Epoch {epoch + 1}/{epochs}" + "".join(
            f"  | {name} {seconds:5.1f} s - loss: {logs['loss']:.4f} - accuracy: "
            f"{logs['accuracy']:.4f} - val_accuracy: {logs['val_accuracy']:.4f}"
            for name, (seconds, logs) in ((n, r[-1]) for n, r in runs.items())), flush=True)
    return runs


def print_comparison(test_acc: float, seconds: list[float], twin, x_test, y_test,
                     runs: dict) -> None:
    """TensorFlow's test loss and accuracy, the difference in points, and the epoch times."""
    tf_loss, tf_acc = twin.evaluate(x_test, y_test, batch_size=32, verbose=0)
    tf_seconds = [s for s, _ in runs["TensorFlow"]]
    print(f"TensorFlow test loss: {tf_loss:.4f}")
    print(f"TensorFlow test accuracy: {tf_acc:.4f}")
    print(f"TensorFlow seconds per epoch: {statistics.mean(tf_seconds):.1f}")
    gap = (test_acc - tf_acc) * 100
    print(f"Difference (minicnn - TensorFlow): {gap:+.2f} points "
          f"({'within' if abs(gap) <= TF_GAP_POINTS else 'NOT within'} {TF_GAP_POINTS} points "
          f"in this one run; single runs differ by up to about 1.5 points either way, and the "
          f"mean over seeds 0-6 was -0.35)")
    if len(seconds) > 1:  # TensorFlow's first epoch also traces its graph
        mc, tf = statistics.median(seconds[1:]), statistics.median(tf_seconds[1:])
        print(f"Epoch time after the first, median: minicnn {mc:.1f} s, TensorFlow {tf:.1f} s "
              f"(ratio {mc / tf:.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs to train (default 10)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--limit", type=int,
                        help="use only the first N training images and the first N test images")
    parser.add_argument("--seed", type=int, help="seed for the weights, shuffles and dropout")
    parser.add_argument("--compare-tf", action="store_true",
                        help="also train the same recipe in TensorFlow's Keras, side by side")
    parser.add_argument("--min-accuracy", type=float,
                        help="test accuracy to assert instead of the bar for the run")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, received "
                         f"{value}")

    # -- 1. The data ------------------------------------------------------------------------------
    # 60,000 training and 10,000 test pictures, 28x28 gray, labels 0-9 naming the garment
    # (fashion_mnist.CLASS_NAMES), in exactly MNIST's format.
    try:
        (train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
    except (OSError, ValueError) as e:
        sys.exit(f"Could not load Fashion-MNIST: {e}")
    if args.limit:
        train_images, train_labels = train_images[:args.limit], train_labels[:args.limit]
        test_images, test_labels = test_images[:args.limit], test_labels[:args.limit]
    # As for MNIST: a channels axis, pixels in [0, 1] as float32, one-hot labels.
    x_train = train_images.reshape((-1, 28, 28, 1)).astype("float32") / 255
    x_test = test_images.reshape((-1, 28, 28, 1)).astype("float32") / 255
    y_train, y_test = to_categorical(train_labels, 10), to_categorical(test_labels, 10)
    print(f"Fashion-MNIST: {len(x_train):,} training images ({VALIDATION_SPLIT:.0%} held out "
          f"for validation), {len(x_test):,} test images")

    # -- 2. The model -----------------------------------------------------------------------------
    # models.fashion_mnist_cnn (minicnn/models/recipes.py) is two blocks of
    # Conv2D(relu) -> BatchNormalization -> MaxPooling2D -> Dropout(0.25), then
    # Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax), compiled with Adam.
    # BatchNormalization rescales each channel by its batch's mean and variance in training
    # (and by running averages of them at inference), which keeps every layer's inputs in a
    # well-scaled range and lets Adam take larger useful steps; Dropout zeroes a random part of
    # the activations at each step (none at inference), so no unit can rely on one other.
    model = models.fashion_mnist_cnn(seed=args.seed)
    model.summary()

    # -- 3. Training ------------------------------------------------------------------------------
    if args.compare_tf:
        keras = import_keras()  # only here: without --compare-tf, TensorFlow is never loaded
        # The same layers, minicnn's initial weights, compiled alike (minicnn.models.to_keras)
        twin = to_keras(model, compile=True)
        print(f"Keras {keras.__version__} (TensorFlow) beside it: the same recipe, minicnn's "
              "initial weights, the same batches; the two alternate epoch by epoch")
        runs = train_side_by_side(model, twin, keras, x_train, y_train, epochs=args.epochs,
                                  batch_size=args.batch_size, validation_split=VALIDATION_SPLIT)
        seconds = [s for s, _ in runs["minicnn"]]
    else:
        start = time.perf_counter()
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            validation_split=VALIDATION_SPLIT, verbose=2)
        seconds = [(time.perf_counter() - start) / len(history.epoch)]

    # -- 4. Evaluation ----------------------------------------------------------------------------
    # evaluate runs the model in inference mode: no dropout, BatchNormalization with its moving
    # statistics, so the answer for a picture does not depend on the rest of its batch.
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test loss: {test_loss:.4f}")
    print(f"Test accuracy: {test_acc:.4f}")
    print(f"Seconds per epoch: {statistics.mean(seconds):.1f}")
    if args.compare_tf:
        print_comparison(test_acc, seconds, twin, x_test, y_test, runs)
    predicted = model.predict(x_test[:3]).argmax(axis=1)
    for i in range(3):
        print(f"Test image {i}: predicted {fashion_mnist.CLASS_NAMES[predicted[i]]}, "
              f"label {fashion_mnist.CLASS_NAMES[test_labels[i]]}")

    # -- 5. The check -----------------------------------------------------------------------------
    # As in examples/mnist_cnn.py: an engine that has stopped learning fails here, loudly.
    full_data = args.limit is None or args.limit >= 60_000
    train_count = math.floor(len(x_train) * (1 - VALIDATION_SPLIT))
    bar = (args.min_accuracy if args.min_accuracy is not None
           else accuracy_bar(args.epochs, train_count, full_data))
    if test_acc < bar:
        sys.exit(f"FAILED: test accuracy {test_acc:.4f} is below the bar of {bar:.3f} for "
                 f"{args.epochs} epoch(s) on {train_count} training images")
    print(f"OK: test accuracy {test_acc:.4f} >= {bar:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
