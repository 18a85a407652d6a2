"""A convolutional autoencoder on MNIST: pictures in, the same pictures out, through 7x7.

The encoder halves the picture twice (Conv2D + MaxPooling2D: 28 -> 14 -> 7); the decoder
doubles it back twice, once with a transposed convolution (Conv2DTranspose, strides=2: a
learned upsampling, whose backward is a plain convolution, docs in its module) and once with
UpSampling2D (each pixel repeated into a 2x2 block) followed by a Conv2D, and a last, linear
Conv2D gives the pixels. The loss is the mean squared error between input and output: the
target is the input itself. (A sigmoid output under MSE stalls here: from seed 0, minicnn and
Keras alike, from the same weights, settle at a loss of 0.1128 by the second epoch, the MSE of
predicting black everywhere, since a sigmoid's small slope far from 1/2 leaves the dead ReLUs
before it no way back; a linear output reaches 0.008 in three epochs.) With --noise the input
is corrupted first and the target stays clean: a denoising autoencoder (keras.io's
"Convolutional autoencoder for image denoising").
Run it from the project root:

    python examples/mnist_autoencoder.py                         # 5 epochs, test MSE 0.0020
    python examples/mnist_autoencoder.py --epochs 1 --limit 2000 # a quick check
    python examples/mnist_autoencoder.py --noise 0.4             # denoising

MNIST comes from $MINICNN_DATA when set (else from, or into, the cache: see
`minicnn.datasets.mnist`); --synthetic uses generated strokes instead, for a machine without
the data. The script prints the test MSE beside the MSE of the best constant guess (the mean
training image), saves a picture of inputs and reconstructions into --out, and ends by checking
that the autoencoder beats that guess by the factor the run should (`mse_bar`).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import minicnn as keras  # Keras's names: keras.Input, keras.Model, keras.layers, ...
from minicnn import layers


def build(seed: int | None = 0) -> keras.Model:
    """The autoencoder: 28x28x1 -> 7x7x32 -> 28x28x1, 28,785 weights."""
    keras.utils.set_random_seed(seed if seed is not None else 0)
    inputs = keras.Input(shape=(28, 28, 1))
    # Encoder
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D(2, padding="same")(x)  # 14x14
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2, padding="same")(x)  # 7x7: the code
    # Decoder
    x = layers.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same")(x)  # 14
    x = layers.UpSampling2D(2)(x)  # 28x28
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    outputs = layers.Conv2D(1, 3, padding="same")(x)  # linear: MSE on the pixels themselves
    model = keras.Model(inputs, outputs, name="autoencoder")
    model.compile(optimizer="adam", loss="mse")
    return model


def mse_bar(epochs: int, train_images: int) -> float:
    """How many times below the constant guess's MSE the test MSE must be.

    Measured on 5 Dec with seed 0 (clean inputs): 1 epoch on --limit 2000 (1,800 images, 15
    steps of 128) brings the test MSE to 0.0526 against the mean image's 0.0649 (1.2x); 3
    epochs on --limit 6000 to 0.0077 (8.5x); the default 5 epochs on all 54,000 images to
    0.0020 against 0.0675 (34.4x, about 40 s an epoch here). Bars leave room below those.
    """
    seen = epochs * train_images
    if seen >= 200_000:
        return 20.0
    if seen >= 16_000:
        return 4.0
    if seen >= 1_500:
        return 1.05
    return 0.0


def synthetic_digits(n: int, seed: int) -> np.ndarray:
    """(n, 28, 28) uint8 pictures of one or two random thick strokes: MNIST's shape and
    dtype, with structure an autoencoder can learn (a line is cheaper to code than noise)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28))
    for _ in range(2):
        a, b = rng.uniform(4, 24, (2, n, 2)).transpose(0, 2, 1)[:, :, :, None, None]
        d = b - a
        t = np.clip(((rows - a[0]) * d[0] + (cols - a[1]) * d[1])
                    / np.maximum(d[0] ** 2 + d[1] ** 2, 1e-9), 0, 1)
        dist = np.hypot(rows - a[0] - t * d[0], cols - a[1] - t * d[1])
        out = np.maximum(out, np.clip(2.5 - dist, 0, 1) * (rng.random((n, 1, 1)) < 0.8))
    return (out * 255).astype(np.uint8)


def load(synthetic: bool, limit: int | None, seed: int):
    """Training and test pictures as (N, 28, 28, 1) float32 in [0, 1]."""
    if synthetic:
        train, test = synthetic_digits(limit or 6000, seed), synthetic_digits(1000, seed + 1)
    else:
        (train, _), (test, _) = keras.datasets.mnist.load_data()
        if limit:
            train, test = train[:limit], test[:limit]
    return [(a.astype("float32") / 255)[..., None] for a in (train, test)]


def save_picture(originals: np.ndarray, inputs: np.ndarray | None, outputs: np.ndarray,
                 path: str) -> None:
    """Rows: the clean pictures, what the model was given (when it was noisy), what it gave
    back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [originals, outputs] if inputs is None else [originals, inputs, outputs]
    fig, axes = plt.subplots(len(rows), len(originals), figsize=(len(originals), len(rows)))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            axes[r, c].imshow(np.clip(image[..., 0], 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training and test pictures")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="standard deviation of the Gaussian noise added to the inputs")
    parser.add_argument("--synthetic", action="store_true", help="generated strokes, no MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/autoencoder")
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    train, test = load(args.synthetic, args.limit, args.seed)
    rng = np.random.default_rng(args.seed)

    def noisy(images: np.ndarray) -> np.ndarray:
        if not args.noise:
            return images
        return np.clip(images + args.noise * rng.standard_normal(images.shape), 0, 1).astype(
            np.float32)

    model = build(args.seed)
    model.summary()
    model.fit(noisy(train), train, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=0.1, shuffle=True, verbose=args.verbose)
    test_inputs = noisy(test)
    test_mse = model.evaluate(test_inputs, test, verbose=0)
    guess = float(np.mean((test - train.mean(axis=0)) ** 2))
    print(f"Test MSE: {test_mse:.4f}; the mean training picture as a guess: {guess:.4f} "
          f"({guess / test_mse:.1f}x the autoencoder's)")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "reconstructions.png")
    save_picture(test[:10], test_inputs[:10] if args.noise else None,
                 model.predict(test_inputs[:10], verbose=0), path)
    print(f"Saved {path}")
    bar = mse_bar(args.epochs, int(len(train) * 0.9))
    if guess / test_mse < bar:
        print(f"FAILED: the test MSE should be at least {bar}x below the guess's",
              file=sys.stderr)
        sys.exit(1)
    return test_mse


if __name__ == "__main__":
    main()
