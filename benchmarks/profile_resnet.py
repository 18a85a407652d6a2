"""Where ResNet-20's training step goes: every plan step's forward and backward, by kind.

    python benchmarks/profile_resnet.py [--rounds R] [--batch-size N] [--model resnet20]
                                        [--steps] [--threads T]

Builds the recipe (seed 0), a fixed random batch of CIFAR-10 shapes (N, 32, 32, 3) with one-hot
labels, warms up with three `train_on_batch` calls, then times R more (default 10). Each step
of `model.graph_plan` has its forward and backward wrapped by a timer (an instance attribute,
so nothing else changes), and so do the weight penalties, their gradients and the optimizer's
step; the step's whole time minus all of these is the rest (Python, the loss and metrics).

Printed: the median step, then the median ms per round grouped by kind (a conv's algorithm and
shape C -> F at its input size, BatchNormalization, each other layer class), forward and
backward; with --steps, every step on its own line.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np

import minicnn
from minicnn.models import recipes


def kind(step) -> str:
    """A label shared by steps doing the same work: conv algorithm and shape, or the class."""
    layer = step.layers[0]
    if hasattr(step, "algorithm"):
        (KH, KW), (SH, _) = layer.kernel_size, layer.strides
        _, H, W, C = layer.input_shape
        return f"conv {KH}x{KW}/{SH} {H}x{W} {C}->{layer.filters} {step.algorithm}"
    names = "+".join(type(lay).__name__ for lay in step.layers)
    if type(step).__name__ != "LayerStep":
        names = f"{type(step).__name__}({names})"
    shape = getattr(layer, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4:
        names += f" {shape[1]}x{shape[2]}x{shape[3]}"
    return names


def timed(times: dict, key, fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[key] += time.perf_counter() - t0
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", default="resnet20", choices=sorted(recipes.RECIPES))
    parser.add_argument("--steps", action="store_true", help="print every step")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        minicnn.set_num_threads(args.threads)

    model = recipes.RECIPES[args.model](seed=0)
    shape = model.input_shape[1:]
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, *shape), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch_size)]
    for _ in range(3):
        model.train_on_batch(x, y)

    plan = model.graph_plan
    times: dict = collections.defaultdict(float)
    for k, step in enumerate(plan.steps):
        step.forward = timed(times, (k, "forward"), step.forward)
        step.backward = timed(times, (k, "backward"), step.backward)
    passes = model.training_pass()
    passes.penalty = timed(times, ("penalty", "forward"), passes.penalty)
    passes.add_penalty_gradients = timed(times, ("penalty", "backward"),
                                         passes.add_penalty_gradients)
    model.optimizer.step = timed(times, ("optimizer", "backward"), model.optimizer.step)

    rounds, totals = [], []
    for _ in range(args.rounds):
        times.clear()
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        totals.append(time.perf_counter() - t0)
        rounds.append(dict(times))

    def median(key) -> float:
        return 1e3 * statistics.median(r.get(key, 0.0) for r in rounds)

    labels = {k: kind(step) for k, step in enumerate(plan.steps)}
    labels.update(penalty="L2 penalties", optimizer=type(model.optimizer).__name__)
    total = 1e3 * statistics.median(totals)
    print(f"{args.model}, batch {args.batch_size}, {minicnn.get_num_threads()} threads: "
          f"median step {total:.1f} ms over {args.rounds} rounds (min {1e3 * min(totals):.1f})")
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for key, label in labels.items():
        g = groups[label]
        g[0] += median((key, "forward"))
        g[1] += median((key, "backward"))
        g[2] += 1
    accounted = sum(g[0] + g[1] for g in groups.values())
    print(f"{'what':52s} {'n':>3s} {'fwd ms':>8s} {'bwd ms':>8s} {'sum':>8s}")
    for label, (f, b, n) in sorted(groups.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        print(f"{label:52s} {n:3d} {f:8.2f} {b:8.2f} {f + b:8.2f}")
    print(f"{'the rest (Python, loss, metrics, gradient slots)':52s} {'':3s} {'':8s} {'':8s} "
          f"{total - accounted:8.2f}")
    if args.steps:
        print()
        for k, step in enumerate(plan.steps):
            print(f"{k:3d} {step!r:58s} {median((k, 'forward')):8.2f} "
                  f"{median((k, 'backward')):8.2f}")


if __name__ == "__main__":
    main()
