"""Training in float32 compiles each numba kernel exactly once: no silent float64 (or layout) drift.

A kernel that receives a float64 array, a non-contiguous view or a float where it had an int
compiles a second specialisation: the float32 training loop has then been upcast or copied
somewhere, slower and against "float32 to train". `dispatcher.signatures` lists the
specialisations loaded in a process (from numba's on-disk cache or freshly compiled), so each
check runs in a fresh interpreter where nothing but the code under test has called a kernel.
Those interpreters take seconds each, so the whole module is marked `slow`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minicnn import fast, kernels

pytestmark = pytest.mark.slow

ALL_KERNELS = kernels.ALL_KERNELS + fast.kernels.ALL_KERNELS
ROOT = Path(__file__).resolve().parents[1]

# Prints {kernel name: [signature, ...]} as the last line of stdout.
PRELUDE = """
import json
import numpy as np
from minicnn import fast, kernels

ALL_KERNELS = kernels.ALL_KERNELS + fast.kernels.ALL_KERNELS

def dump():
    print(json.dumps({k.py_func.__name__.lstrip("_"): [str(s) for s in k.signatures]
                      for k in ALL_KERNELS}))

rng = np.random.default_rng(0)
labels = rng.integers(0, 10, 20)
"""

# The training step the TF oracle test drives by hand, three times at batch 8.
HAND_DRIVEN = PRELUDE + """
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.losses import CategoricalCrossentropy, LossHead
from minicnn.optimizers import Adam

layers = [Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(2),
          Conv2D(64, 3, activation="relu"), MaxPooling2D(2), Conv2D(64, 3, activation="relu"),
          Flatten(), Dense(64, activation="relu"), Dense(10, activation="softmax")]
head, optimizer = LossHead(CategoricalCrossentropy(), layers[-1]), Adam()
x = rng.random((8, 28, 28, 1), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[labels[:8]]
for _ in range(3):
    out = x
    for layer in layers:
        out = layer(out, training=True)
    head(y, out)
    g = head.backward(y, out, layers[-1])
    for layer in reversed(layers[:-1]):
        g = layer.backward(g)
    optimizer.step([p for layer in layers for p in layer.params])
dump()
"""

# The public API as a user calls it: uint8 images and float64 one-hot labels (cast once at the
# model's boundary), 20 samples so the last batch of 8 is partial, then evaluate and predict.
FIT = PRELUDE + """
from minicnn.models import mnist_cnn

model = mnist_cnn(seed=0)
x = rng.integers(0, 256, (20, 28, 28, 1)).astype(np.uint8)
y = np.eye(10)[labels]
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
model.evaluate(x, y, batch_size=8, verbose=0)
model.predict(x[:3])
dump()
"""

# The check can fail: after float32 training, one float64 forward/backward (what a gradient
# check runs) must show up as a second signature.
FLOAT64_AFTER = HAND_DRIVEN + """
conv = Conv2D(4, 3, activation="relu", dtype="float64")
conv.backward(conv(rng.standard_normal((2, 6, 6, 3))))
dump()
"""


def kernel_signatures(script: str) -> list[dict[str, list[str]]]:
    """Run `script` in a fresh interpreter; every dump() it printed, in order."""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


# Layer by layer (the reference layers call the reference kernels only) and through fit, which
# runs the fast plan: each conv + pool pair as one fused step, conv3 as a ConvStep.
REFERENCE = {k.py_func.__name__.lstrip("_") for k in kernels.ALL_KERNELS}
CALLED = {"hand-driven steps": sorted(REFERENCE),
          "fit": sorted({"conv_relu_maxpool", "conv_relu_maxpool_backward", "im2col",
                         "bias_relu_maxpool", "maxpool_relu_backward", "col2im", "bias_relu",
                         "relu_backward", "adam_update"})}


@pytest.mark.parametrize("script", [HAND_DRIVEN, FIT], ids=list(CALLED))
def test_float32_training_compiles_each_kernel_once(script, request):
    (signatures,) = kernel_signatures(script)
    called = sorted(name for name, sigs in signatures.items() if sigs)
    assert called == CALLED[request.node.callspec.id], called
    extra = {name: sigs for name, sigs in signatures.items() if len(sigs) > 1}
    assert not extra, "kernels compiled more than once in float32 training:\n" + "\n".join(
        f"  {name}: " + "\n      ".join(sigs) for name, sigs in extra.items())
    # ... and that one is the float32 one (Adam's scalar hyperparameters are float64 scalars).
    arrays64 = {name: sigs[0] for name, sigs in signatures.items()
                if sigs and "Array(float64" in sigs[0]}
    assert not arrays64, f"float64 arrays in float32 training: {arrays64}"


def test_a_float64_call_shows_up_as_a_second_signature():
    float32, after = kernel_signatures(FLOAT64_AFTER)
    for name in ("im2col", "col2im"):
        assert len(float32[name]) == 1, float32[name]
        assert len(after[name]) == 2, after[name]
        assert any("float64" in sig for sig in after[name]), after[name]
