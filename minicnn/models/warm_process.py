"""What `minicnn.models.warmup`'s background process runs, and `minicnn warmup`: the kernels
compiled into numba's cache by running models on two samples.

    python -m minicnn.models.warm_process DIR

DIR holds the model to warm first (`model.json`, its `to_json()`); the process marks
`reference.done` once the model's reference layers have run (their kernels cached), `model.done`
once its fast plan has, then runs `zoo()`, small models that between them call every kernel.
"""

from __future__ import annotations

import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from minicnn import layers, optimizers
from minicnn.models import recipes
from minicnn.models.functional import Model
from minicnn.models.saving import model_from_json
from minicnn.models.sequential import Sequential
from minicnn.models.warmup import foreground


def exercise(model, batch: int = 2, fast: bool = True) -> None:
    """One training step and one inference call on `batch` random samples: every kernel
    `model`'s plan (fast, or its reference layers) calls, compiled or loaded from the cache."""
    rng = np.random.default_rng(0)
    model.compile(optimizer=optimizers.Adam(), loss="mse", fast=fast)
    xs = [rng.standard_normal((batch, *shape[1:])).astype(model.dtype)
          for shape in _input_shapes(model)]
    y = np.zeros((batch, *model.output_shape[1:]), dtype=model.dtype)
    model.train_on_batch(xs if len(xs) > 1 else xs[0], y)
    model.predict(xs if len(xs) > 1 else xs[0], verbose=0)


def _input_shapes(model) -> list[tuple]:
    shape = model.input_shape
    return list(shape) if isinstance(shape, list) else [shape]


def zoo() -> list:
    """Small models that between them call every kernel of minicnn (tests/test_warmup.py checks
    that nothing is left uncompiled after them), the built-in recipes first."""
    models = [recipes.mnist_cnn(), recipes.fashion_mnist_cnn(), recipes.cifar10_cnn(),
              recipes.resnet20(), recipes.lenet()]
    grey = (12, 12, 1)
    models.append(Sequential([
        layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=grey),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Conv2DTranspose(4, 3, strides=2, activation="relu"),
        layers.DepthwiseConv2D(3, activation="relu"),
        layers.SeparableConv2D(8, 3, activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax"),
    ]))
    models.append(Sequential([
        layers.Conv2D(20, 3, activation="relu", input_shape=(10, 10, 3)),
        layers.MaxPooling2D(2, strides=1),
        layers.Flatten(),
        layers.Dense(2),
    ]))
    # The other activations, merges and pools, in a graph.
    inputs = layers.Input((9, 9, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="tanh")(inputs)
    b = layers.Conv2D(4, 3, padding="same", activation="elu")(inputs)
    c = layers.Conv2D(4, 3, padding="same", activation="leaky_relu")(inputs)
    d = layers.Conv2D(4, 3, padding="same", activation="softmax")(inputs)
    x = layers.Concatenate()([layers.Add()([a, b]), layers.Multiply()([c, d])])
    x = layers.Activation("sigmoid")(layers.AveragePooling2D(2, padding="same")(x))
    x = layers.MaxPooling2D(2)(layers.BatchNormalization()(x))
    outputs = layers.Dense(2)(layers.GlobalMaxPooling2D()(x))
    models.append(Model(inputs, outputs))
    return models


def warm_all(progress: Callable[[str], None] | None = None) -> float:
    """Compile every kernel into numba's cache, here and now; returns the seconds it took."""
    start = time.perf_counter()
    with foreground(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = zoo()
        for k, model in enumerate(models, 1):
            exercise(model)
            if progress is not None:
                progress(f"{k}/{len(models)} models: {time.perf_counter() - start:.1f} s")
    return time.perf_counter() - start


def _main(directory: str) -> int:
    folder = Path(directory)
    try:
        spec = folder / "model.json"
        if spec.exists():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = model_from_json(spec.read_text())
                    # First what the model runs meanwhile (about 1.3 s), then its fast plan.
                    exercise(model, fast=False)
                    (folder / "reference.done").touch()
                    exercise(model)
            except Exception:  # a layer this process cannot rebuild: its model waits for all
                traceback.print_exc()
            else:
                (folder / "model.done").touch()
        warm_all()
    except KeyboardInterrupt:  # Ctrl-C reaches the program's whole process group
        shutil.rmtree(folder, ignore_errors=True)
        return 130
    # The program that started it may be gone: this process outlives it, so that a short
    # first run still leaves every kernel cached. Its folder goes unless it failed (a warning
    # in the program gives the log there).
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
