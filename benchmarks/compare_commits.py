"""Is anything slower than before? Two commits of minicnn, timed alternately on this machine.

    python benchmarks/compare_commits.py BASE [HEAD] [--rounds R] [--out FILE]

Checks BASE (and HEAD, default: the working tree) out into temporary git worktrees, then runs
the same timing script in fresh processes, alternating the two, R rounds (default 5): the
training step of each built-in model (the notebook's at batch 128, fashion_mnist_cnn 128,
cifar10_cnn 32, resnet20 128, d2l's sigmoid LeNet 256; the last built from layers, so that a
commit without the recipe runs it too), predict on 10,000 images at batch 32, and one image
through predict_on_batch. Each figure is the median within a process; the table gives, per
figure, the median over rounds and their ratio (HEAD / BASE: above 1, HEAD is slower). numba
compiles each tree's kernels into its own cache directory first, untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TIMING = r"""
import json, sys, time, warnings
import numpy as np
from minicnn import layers
from minicnn.models import recipes
from minicnn.models.sequential import Sequential

warnings.simplefilter("ignore")


def lenet():
    model = Sequential([
        layers.Conv2D(6, 5, padding="same", activation="sigmoid", input_shape=(28, 28, 1)),
        layers.AveragePooling2D(2, strides=2), layers.Conv2D(16, 5, activation="sigmoid"),
        layers.AveragePooling2D(2, strides=2), layers.Flatten(),
        layers.Dense(120, activation="sigmoid"), layers.Dense(84, activation="sigmoid"),
        layers.Dense(10, activation="softmax")], seed=0)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    return model


def median_time(f, n):
    for _ in range(3):
        f()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


rng = np.random.default_rng(0)
quick = sys.argv[1] == "quick"
out = {}
models = {"mnist_cnn": (recipes.mnist_cnn, (28, 28, 1), 128),
          "fashion_mnist_cnn": (recipes.fashion_mnist_cnn, (28, 28, 1), 128),
          "cifar10_cnn": (recipes.cifar10_cnn, (32, 32, 3), 32),
          "resnet20": (recipes.resnet20, (32, 32, 3), 128),
          "lenet": (lambda seed: lenet(), (28, 28, 1), 256)}
for name, (make, shape, batch) in models.items():
    model = make(seed=0)
    x = rng.random((batch, *shape), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    n = 3 if quick else (8 if name == "resnet20" else 20)
    out[f"{name} step (batch {batch}) ms"] = 1e3 * median_time(
        lambda: model.train_on_batch(x, y), n)
model = recipes.mnist_cnn(seed=0)
x = rng.random((1000 if quick else 10000, 28, 28, 1), dtype=np.float32)
out["predict 10k, batch 32 s"] = median_time(
    lambda: model.predict(x, batch_size=32, verbose=0), 1 if quick else 3)
out["one image, predict_on_batch ms"] = 1e3 * median_time(
    lambda: model.predict_on_batch(x[:1]), 20 if quick else 300)
print("RESULT " + json.dumps(out))
"""


def worktree(commit: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit],
                   check=True, capture_output=True)
    return where


def run(tree: Path, cache: Path, quick: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(cache),
           "MINICNN_COMPILE": "foreground"}
    proc = subprocess.run([sys.executable, "-c", TIMING, "quick" if quick else "full"],
                          env=env, capture_output=True, text=True, cwd=tree, timeout=3600)
    if proc.returncode != 0 or "RESULT " not in proc.stdout:
        raise RuntimeError(f"timing in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head", nargs="?", default=None,
                        help="a commit (default: the working tree as it is)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few calls")
    parser.add_argument("--out", help="also write the Markdown table here")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
                            check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="minicnn-compare-") as tmp:
        tmp = Path(tmp)
        trees = {"base": worktree(args.base, tmp / "base")}
        trees["head"] = worktree(args.head, tmp / "head") if args.head else ROOT
        try:
            for side in trees:  # numba compiles each tree's kernels once, untimed
                run(trees[side], tmp / f"cache-{side}", quick=True)
            samples: dict[str, dict[str, list]] = {"base": {}, "head": {}}
            for r in range(args.rounds):
                for side in ("base", "head") if r % 2 == 0 else ("head", "base"):
                    for key, value in run(trees[side], tmp / f"cache-{side}",
                                          args.quick).items():
                        samples[side].setdefault(key, []).append(value)
                print(f"round {r + 1}/{args.rounds} done", flush=True)
        finally:
            for side in ("base", "head"):
                if trees.get(side) not in (None, ROOT):
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(trees[side])], capture_output=True)
    head = args.head or "the working tree"
    lines = [f"| figure | {commit} (base) | {head} | {head} / base |", "|---|---:|---:|---:|"]
    for key, values in samples["base"].items():
        b, h = statistics.median(values), statistics.median(samples["head"][key])
        lines.append(f"| {key} | {b:.3f} | {h:.3f} | {h / b:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
