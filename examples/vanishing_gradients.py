"""Vanishing gradients, seen: a 6-layer CNN with sigmoid, with ReLU, and with ReLU and
BatchNormalization, trained side by side on MNIST with callbacks.GradientFlow.

A sigmoid's derivative is at most 1/4 (y (1 - y) at y = 1/2), so each sigmoid layer the gradient
passes back through shrinks it, and the first layers of a deep sigmoid network barely learn. A
ReLU passes the gradient unchanged where it is active; BatchNormalization keeps each layer's
input at a scale where the gradient neither vanishes nor explodes. Run it from the project root:

    python examples/vanishing_gradients.py                     # 1 epoch on 6,000 MNIST images
    python examples/vanishing_gradients.py --limit 60000 --epochs 3

It prints, for each network, the gradient norm of every conv layer at the first recorded step
and the ratio of the first layer's to the last's, the update/weight ratios, the share of
saturated sigmoid outputs, and the test accuracy; writes each network's gradient flow
(gradient_flow_<name>.csv and .png) into --out; and ends by checking the lesson: the sigmoid
network's first-layer gradient is far below its last layer's, the ReLU networks' are not.
MNIST comes from $MINICNN_DATA when set (else from, or into, the cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import minicnn as keras
from minicnn import callbacks, layers
from minicnn.callbacks import LearningWarning

DEPTH = 6  # conv layers
LESSON = 20.0  # the sigmoid network's first/last gradient ratio is at least this much smaller


def build(kind: str, seed: int) -> keras.Sequential:
    """DEPTH 3x3 conv layers of 16 filters ('same' padding, a 2x2 max pool after the 2nd and
    4th), then a softmax; `kind` is 'sigmoid', 'relu' or 'relu+bn'."""
    stack = [keras.Input((28, 28, 1))]
    for k in range(DEPTH):
        if kind == "relu+bn":
            stack += [layers.Conv2D(16, 3, padding="same", use_bias=False),
                      layers.BatchNormalization(), layers.Activation("relu")]
        else:
            stack.append(layers.Conv2D(16, 3, padding="same", activation=kind.split("+")[0]))
        if k in (1, 3):
            stack.append(layers.MaxPooling2D(2))
    stack += [layers.Flatten(), layers.Dense(10, activation="softmax")]
    model = keras.Sequential(stack, name=kind.replace("+", "_"), seed=seed)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def first_step_norms(flow) -> list[tuple[str, float, float, float | None]]:
    """(conv layer, |dL/dW|, update ratio, saturated share) at the first recorded step."""
    rows = [r for r in flow.rows if r["step"] == 0 and r["layer"].startswith("conv2d")]
    return [(r["layer"], r["grad_norm"], r["update_ratio"], r["saturated"]) for r in rows
            if r["grad_norm"] is not None]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=6000, help="training images used")
    parser.add_argument("--every", type=int, default=10, help="GradientFlow's step interval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/vanishing_gradients")
    args = parser.parse_args(argv)

    (x, y), (x_test, y_test) = keras.datasets.mnist.load_data()
    x = (x[:args.limit].astype("float32") / 255)[..., None]
    y = y[:args.limit]
    x_test = (x_test[:2000].astype("float32") / 255)[..., None]
    os.makedirs(args.out, exist_ok=True)
    ratios = {}
    for kind in ("sigmoid", "relu", "relu+bn"):
        model = build(kind, args.seed)
        name = kind.replace("+", "_")
        flow = callbacks.GradientFlow(every=args.every,
                                      path=os.path.join(args.out, f"gradient_flow_{name}.csv"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LearningWarning)
            model.fit(x, y, batch_size=64, epochs=args.epochs, callbacks=[flow], verbose=0)
        flow.plot(os.path.join(args.out, f"gradient_flow_{name}.png"),
                  columns=("grad_norm", "update_ratio", "saturated" if kind == "sigmoid"
                           else "zeros"))
        _, accuracy = model.evaluate(x_test, y_test[:2000], verbose=0)
        norms = first_step_norms(flow)
        ratios[kind] = norms[0][1] / norms[-1][1]
        print(f"\n{kind}: test accuracy {accuracy:.4f} after {args.epochs} epoch(s)")
        print(f"  {'layer':<10} {'|dL/dW|':>10} {'|dW|/|W|':>10} {'saturated':>10}")
        for layer, grad, update, saturated in norms:
            shown = "-" if saturated is None else f"{saturated:.1%}"
            print(f"  {layer:<10} {grad:>10.2e} {update:>10.2e} {shown:>10}")
        print(f"  first conv's gradient / last conv's: {ratios[kind]:.2e}")
        for warning in caught:
            print(f"  LearningCheck: {warning.message}")
    print(f"\nGradient flow per step written to {args.out}/gradient_flow_*.csv and .png")
    if not ratios["sigmoid"] * LESSON < min(ratios["relu"], ratios["relu+bn"]):
        print("FAILED: the sigmoid network's gradient did not vanish against the ReLU ones'",
              file=sys.stderr)
        sys.exit(1)
    return ratios


if __name__ == "__main__":
    main()
