"""minicnn and Keras side by side: the notebook's model, the same start, the same batches.

Run it from the project root (it needs TensorFlow):

    MINICNN_DATA=/path/to/mnist python examples/keras_parity.py    # one epoch, 422 steps
    python examples/keras_parity.py --steps 5                      # a quick look
    python examples/keras_parity.py --match-adam-scalars           # without the main difference

Both engines get the notebook's model with minicnn's initial weights (copied into Keras with
`set_weights`, unchanged: the layouts are the same), Adam with Keras's defaults, categorical
cross-entropy, and the same batches in the same order: the first 54,000 MNIST training images
(the part the notebook's `validation_split=0.1` trains on), unshuffled, batch 128, the last batch
of 112. Without $MINICNN_DATA the images are uniform noise with random labels, of the same
shapes. The script prints each step's loss in both engines (the batch's loss before the update,
which is what both `train_on_batch` return) and their difference, then each weight tensor's
largest difference after the last step, and, on MNIST, both models' test accuracy.

The engines do not agree to the last bit, and are not meant to: `KNOWN_DIFFERENCES`, printed at
the end, lists what differs and by how much. Measured on this machine (2-core AMD EPYC with
AVX-512; TensorFlow 2.21 with oneDNN; OpenBLAS 0.3.31) over the full MNIST epoch:

    run                                        |loss diff| > 1e-5   > 1e-3    largest
    minicnn against Keras                        from step 7       step 14    0.053
    minicnn with --match-adam-scalars            from step 61      step 78    0.034
    Keras against Keras, oneDNN on against off   from step 23      step 35    0.035

The first step's losses differ by 1.4e-7 (float32 rounding of the forward pass). Keras rounds
Adam's step size to float32 and minicnn does not; that difference alone sets the curves apart
from step 7, and once it is removed they stay within 1.4e-6 for 50 steps. After that, any two
float32 runs drift apart, Keras against itself included: the final weights differ by up to
~0.1 in all three pairs, while all four runs reach a test accuracy of 0.979-0.980 and a mean loss
over the epoch of 0.2745-0.2759.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import numpy as np

from minicnn import models
from minicnn.datasets import mnist
from minicnn.optimizers import Adam
from minicnn.utils import to_categorical

TRAIN_IMAGES = 54_000  # what the notebook trains on: validation_split=0.1 holds out the last 6,000

KNOWN_DIFFERENCES = """\
Known, intended differences. The formulas are the same; the float32 rounding is not, and
training amplifies any difference (measured on this machine, see this file's docstring):
  - Adam's step size, the largest early on. Keras computes beta_1**t, beta_2**t and
    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) in float32, the variables' dtype; minicnn
    in float64. 0.999 rounds to 0.99900001 in float32, so at t = 1 Keras's alpha is 6.7e-6 of
    itself smaller (printed above) and every weight's step that much shorter, all in the same
    direction. On MNIST this sets the loss curves more than 1e-5 apart from step 7; with
    --match-adam-scalars (minicnn given Keras's float32 alpha) they stay within 1.4e-6 for the
    first 50 steps.
  - Adam's arithmetic. minicnn's kernel rounds g - m and g*g to float32, does the rest in
    float64 and rounds m, v and w once, when storing them; Keras rounds every intermediate to
    float32. Fed the same gradients, the two optimizers' weights differ by ~1e-8 per step.
  - Summation order. Each conv and dense layer sums thousands of float32 products: minicnn with
    OpenBLAS GEMMs over its im2col matrix (and a direct loop for the first conv), TensorFlow with
    oneDNN's kernels (on by default on x86; TF_ENABLE_ONEDNN_OPTS=0 gives Eigen's). The orders
    differ, so the last bits do: on the same weights the two engines' MNIST gradients agree to
    ~3e-6 of each tensor's largest value, the first batch's probabilities to ~3e-8. Both
    engines' GEMMs use fused multiply-adds on this CPU (products crafted to tell fused from
    separate rounding come out fused from tf.matmul every time and from OpenBLAS 81% of the
    time), so FMA is not itself the difference; where and in what order each sums is.
  - The loss. Both compute each sample's cross-entropy from the softmax's logits; Keras averages
    the batch in float32, minicnn sums it in float64 (~1e-7 of the loss).
  - ReLU and pool decisions. A batch has ~3.8 million ReLU inputs and ~900,000 pool windows; a
    few sit within rounding of 0 or of a tie and fall on different sides in the two engines,
    moving single gradients by ~1e-4 of their tensor's scale (on MNIST after a few steps, on
    random images already at the first step). Adam divides each step by the gradient's running
    RMS, so a weight whose gradient is near zero then moves by a good part of lr in a direction
    the noise chose. From there the runs diverge as any two float32 runs do: Keras against
    itself (oneDNN on against off) drifts apart the same way, to final weights up to 0.13 apart
    and test accuracies of 0.9796 and 0.9791. Exact ties, such as MNIST's background windows of
    equal values, are no difference: both engines route a tie to its first maximum."""


class AdamWithKerasScalars(Adam):
    """minicnn's Adam with its step size alpha rounded as Keras computes it, in float32.

    Adam.step computes alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t) in float64;
    setting learning_rate for each step so that this product is Keras's float32 alpha leaves
    every other part of minicnn's update as it is.
    """

    def __init__(self, keras_alpha):
        super().__init__()
        self.keras_alpha = keras_alpha  # keras_alpha(t) -> Keras's alpha at step t

    def step(self, params) -> None:
        t = self.iterations + 1
        lr = self.learning_rate
        self.learning_rate = (self.keras_alpha(t) * (1 - self.beta_1**t)
                              / math.sqrt(1 - self.beta_2**t))
        try:
            super().step(params)
        finally:
            self.learning_rate = lr


def load_data(limit: int):
    """(x, y) to train on, (x_test, y_test) or None, and a description of where they came from."""
    data_dir = os.environ.get("MINICNN_DATA")
    if data_dir:
        (images, labels), (test_images, test_labels) = mnist.load_data(data_dir)
        x = (images[:limit].astype("float32") / 255).reshape(-1, 28, 28, 1)
        x_test = (test_images.astype("float32") / 255).reshape(-1, 28, 28, 1)
        return ((x, to_categorical(labels[:limit], 10)),
                (x_test, to_categorical(test_labels, 10)),
                f"MNIST from {data_dir} (the first {limit:,} training images)")
    rng = np.random.default_rng(0)
    x = rng.random((limit, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, limit), 10)
    return (x, y), None, f"{limit:,} random images and labels (MINICNN_DATA is not set)"


def keras_model(keras):
    """The notebook's model, in Keras."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def keras_adam_alpha(keras, optimizer, t: int) -> float:
    """Keras's Adam step size at step t, computed as its `update_step` does, in float32."""
    ops, f32 = keras.ops, "float32"
    lr = ops.cast(optimizer.learning_rate, f32)
    step = ops.cast(t, f32)
    beta_1_power = ops.power(ops.cast(optimizer.beta_1, f32), step)
    beta_2_power = ops.power(ops.cast(optimizer.beta_2, f32), step)
    return float(lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power))


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="steps to train (default: one epoch over the 54,000 images)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="minicnn's weight initialization")
    parser.add_argument("--match-adam-scalars", action="store_true",
                        help="give minicnn's Adam Keras's float32 step size")
    args = parser.parse_args(argv)
    if args.batch_size <= 0:
        parser.error(f"--batch-size must be positive, received {args.batch_size}")
    epoch_steps = math.ceil(TRAIN_IMAGES / args.batch_size)
    steps = epoch_steps if args.steps is None else args.steps
    if not 0 < steps <= epoch_steps:
        parser.error(f"--steps must be in [1, {epoch_steps}] (one epoch of batch "
                     f"{args.batch_size}), received {steps}")

    try:
        import keras
        import tensorflow as tf
    except ImportError:
        print("This example needs TensorFlow: python -m pip install tensorflow-cpu")
        return 2

    (x, y), test, source = load_data(min(steps * args.batch_size, TRAIN_IMAGES))
    print(f"minicnn against Keras {keras.__version__} (TensorFlow {tf.__version__}): {steps} "
          f"steps of batch {args.batch_size} on {source}, in order, no shuffling")
    print("TF_ENABLE_ONEDNN_OPTS: "
          + os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (oneDNN on, TensorFlow's default)"))

    ours = models.mnist_cnn(seed=args.seed)  # compiled with Adam() and categorical cross-entropy
    theirs = keras_model(keras)
    theirs.set_weights(ours.get_weights())  # the same layouts: nothing to transpose
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy")
    if args.match_adam_scalars:
        ours.compile(optimizer=AdamWithKerasScalars(
            lambda t: keras_adam_alpha(keras, theirs.optimizer, t)),
            loss="categorical_crossentropy", metrics=["accuracy"])
        print("--match-adam-scalars: minicnn's Adam uses Keras's float32 step size alpha")
    start = theirs.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), start, strict=True))
    print(f"initial weights: {len(start)} tensors, {sum(w.size for w in start):,} values, "
          "identical in both")
    first = slice(0, args.batch_size)
    gap = np.abs(ours.predict(x[first], batch_size=args.batch_size)
                 - theirs.predict(x[first], batch_size=args.batch_size, verbose=0)).max()
    print(f"forward pass on the first batch, before training: max |p_minicnn - p_keras| = "
          f"{gap:.1e}")

    print(f"\n{'step':>8}  {'minicnn loss':>12}  {'Keras loss':>12}  {'difference':>11}")
    losses, seconds = [], {"minicnn": 0.0, "Keras": 0.0}
    for step in range(steps):
        batch = slice(step * args.batch_size, (step + 1) * args.batch_size)
        t0 = time.perf_counter()
        loss_ours = ours.train_on_batch(x[batch], y[batch])[0]  # [loss, accuracy]
        t1 = time.perf_counter()
        loss_theirs = float(theirs.train_on_batch(x[batch], y[batch]))
        t2 = time.perf_counter()
        seconds["minicnn"] += t1 - t0
        seconds["Keras"] += t2 - t1
        losses.append((loss_ours, loss_theirs))
        print(f"{step + 1:>4}/{steps:<3}  {loss_ours:12.7f}  {loss_theirs:12.7f}  "
              f"{loss_ours - loss_theirs:+11.2e}")

    ours_l, theirs_l = np.array(losses).T
    diffs = np.abs(ours_l - theirs_l)
    worst = int(np.argmax(diffs))
    print(f"\nLargest |loss difference| over {steps} steps: {diffs[worst]:.2e} (step {worst + 1});"
          f" first step {diffs[0]:.2e}, last step {diffs[-1]:.2e}")
    print(f"Mean loss over the {steps} steps: minicnn {ours_l.mean():.5f}, Keras "
          f"{theirs_l.mean():.5f}")
    print(f"Time in train_on_batch: minicnn {seconds['minicnn']:.1f} s, Keras "
          f"{seconds['Keras']:.1f} s (Keras's includes tracing its train function; the two share "
          "the CPU, so this is no benchmark)")

    print("\nWeights after the last step, per tensor: largest |w_minicnn - w_keras|, and the "
          "largest |w| for scale")
    for p, w_ours, w_theirs in zip(ours.params, ours.get_weights(), theirs.get_weights(),
                                   strict=True):
        print(f"  {p.name:<18} {fmt_shape(w_ours.shape):<16} "
              f"{np.abs(w_ours - w_theirs).max():.2e}   max |w| {np.abs(w_theirs).max():.3f}")
    if test is not None:
        x_test, y_test = test
        labels = y_test.argmax(axis=1)
        acc_ours = np.mean(ours.predict(x_test, batch_size=500).argmax(axis=1) == labels)
        acc_theirs = np.mean(theirs.predict(x_test, batch_size=500, verbose=0).argmax(axis=1)
                             == labels)
        print(f"Test accuracy (10,000 images): minicnn {acc_ours:.4f}, Keras {acc_theirs:.4f}")

    exact = 1e-3 * math.sqrt(1 - 0.999) / (1 - 0.9)
    alpha_keras = keras_adam_alpha(keras, theirs.optimizer, 1)
    print(f"\nAdam's alpha at t = 1: {exact:.10e} in float64 (minicnn), {alpha_keras:.10e} in "
          f"float32 (Keras), relative difference {abs(alpha_keras - exact) / exact:.1e}")
    print(KNOWN_DIFFERENCES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
