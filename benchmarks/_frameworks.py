"""The models and recipes in each framework, as `bench_train.py`'s workers run them.

A runner imports its framework, builds a model and times, inside its own process, what the parent
asks for: epochs of `fit`, single training steps, `predict` and `evaluate`. The model is the
notebook's (Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool -> Conv2D 64 -> Flatten -> Dense 64 ->
Dense 10 softmax; Adam, categorical cross-entropy, accuracy) unless the parent names another of
minicnn's recipes (`minicnn.models.recipes`). minicnn and TensorFlow use their Keras API exactly
as the notebook does; for another recipe TensorFlow's worker builds minicnn's recipe and runs its
Keras twin, `minicnn.models.to_keras(model, compile=True)`: the same layers, arguments, initial
weights, optimizer, loss and metrics (the worker imports minicnn for that, and nothing of it runs).
PyTorch has no `fit`, so it runs the notebook's recipe as a plain training loop (shuffle,
batches, Adam with Keras's epsilon, validation pass at each epoch's end), and only that one.
"""

from __future__ import annotations

import math
import os
import time

import _common
import numpy as np


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def keras_model():
    """The notebook's model in Keras, compiled as the notebook compiles it."""
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def architecture(layers) -> list:
    """[class name, [weight shapes]] per layer (minicnn's and Keras's alike): what must agree
    between two frameworks running the same recipe."""
    return [[type(layer).__name__, [list(w.shape) for w in layer.get_weights()]]
            for layer in layers]


def torch_model():
    """The same model in PyTorch (NCHW); the softmax is left to the cross-entropy."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))


class TrainRunner:
    """Times one framework; subclasses say how it imports, builds, fits, steps and infers."""

    def __init__(self, threads: int | None, channel=None):
        self.threads, self.channel = threads, channel
        self.model = None
        self.recipe = "mnist_cnn"  # the notebook's, unless set up

    # -- what each framework provides -------------------------------------------------------------
    def import_framework(self) -> None:
        raise NotImplementedError

    def build(self) -> None:
        raise NotImplementedError

    def fit(self, x, y, epochs: int, batch_size: int, validation_split: float) -> None:
        """model.fit(...), calling self.epoch_done(epoch, logs) at the end of every epoch."""
        raise NotImplementedError

    def train_step(self, x, y) -> None:
        raise NotImplementedError

    def predict(self, x, batch_size: int):
        raise NotImplementedError

    def evaluate(self, x, y, batch_size: int) -> tuple[float, float]:
        raise NotImplementedError

    def thread_info(self) -> dict:
        return {}

    def architecture(self) -> list:
        """[class name, [weight shapes]] for each layer of the built model."""
        return []

    # -- commands from the parent -----------------------------------------------------------------
    def cmd_setup(self, data_dir, limit_train=None, limit_test=None, recipe="mnist_cnn",
                  dataset="mnist") -> dict:
        """Import, load the data, build `recipe` (a name in minicnn.models.recipes.RECIPES)."""
        self.recipe = recipe
        t0 = time.perf_counter()
        self.import_framework()
        t1 = time.perf_counter()
        self.x_train, self.y_train, self.x_test, self.y_test = _common.load_arrays(
            data_dir, limit_train, limit_test, dataset)
        t2 = time.perf_counter()
        self.build()
        t3 = time.perf_counter()
        return {"import_s": t1 - t0, "load_s": t2 - t1, "build_s": t3 - t2,
                "rss_mb": current_rss_mb(), "threads": self.thread_info(),
                "train_images": len(self.x_train), "test_images": len(self.x_test),
                "recipe": recipe, "architecture": self.architecture()}

    def cmd_fit(self, epochs: int, batch_size: int, validation_split: float) -> dict:
        """Run fit; after each epoch report its time and wait for the parent's "continue".

        An epoch's time runs from the parent's go (the fit call, or "continue") to the end of
        the epoch, its validation pass included; the first epoch also has fit's own setup and
        whatever the framework compiles or traces on first use: the warm start.
        """
        self._epochs, self._mark = epochs, time.perf_counter()
        rss_before = current_rss_mb()
        self.fit(self.x_train, self.y_train, epochs, batch_size, validation_split)
        split = math.floor(len(self.x_train) * (1 - validation_split))
        return {"event": "done", "peak_rss_mb": _common.peak_rss_mb(),
                "rss_before_fit_mb": rss_before, "rss_after_fit_mb": current_rss_mb(),
                "train_images": split, "validation_images": len(self.x_train) - split,
                "steps_per_epoch": math.ceil(split / batch_size)}

    def epoch_done(self, epoch: int, logs) -> None:
        seconds = time.perf_counter() - self._mark
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.channel.send({"event": "epoch", "epoch": epoch, "seconds": seconds, "logs": logs})
        if epoch + 1 < self._epochs:
            message = self.channel.receive()
            if message.get("cmd") != "continue":
                raise RuntimeError(f"expected 'continue' between epochs, received {message}")
        self._mark = time.perf_counter()

    def cmd_steps(self, batch_size: int, n: int, warmup: int) -> dict:
        """Time `n` single training steps on consecutive batches, after `warmup` untimed ones."""
        starts = range(0, max(len(self.x_train) - batch_size, 0) + 1, batch_size)
        seconds = []
        for i in range(warmup + n):
            s = starts[i % len(starts)]
            xb, yb = self.x_train[s:s + batch_size], self.y_train[s:s + batch_size]
            t = time.perf_counter()
            self.train_step(xb, yb)
            seconds.append(time.perf_counter() - t)
        return {"seconds": seconds[warmup:]}

    def cmd_infer(self, kind: str, batch_size: int) -> dict:
        t = time.perf_counter()
        if kind == "predict":
            self.predict(self.x_test, batch_size)
            extra = {}
        else:
            loss, accuracy = self.evaluate(self.x_test, self.y_test, batch_size)
            extra = {"loss": float(loss), "accuracy": float(accuracy)}
        return {"seconds": time.perf_counter() - t, "images": len(self.x_test), **extra}

    def cmd_latency(self, n: int) -> dict:
        """Time `n` calls on one test image (batch 1), each its own call."""
        x1 = self.x_test[:1]
        seconds = []
        for _ in range(n):
            t = time.perf_counter()
            self.predict_one(x1)
            seconds.append(time.perf_counter() - t)
        return {"seconds": seconds}

    def predict_one(self, x1):
        """The framework's quickest idiomatic call on one image (class probabilities)."""
        raise NotImplementedError

    def cmd_rss(self) -> dict:
        return {"rss_mb": current_rss_mb(), "peak_rss_mb": _common.peak_rss_mb()}


def cpus() -> int | None:
    """The CPUs this process may run on (1 in a pinned worker)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def blas_threads() -> list:
    """numpy's BLAS libraries and the threads each would use now (threadpoolctl)."""
    import threadpoolctl

    return [[i["internal_api"], i["num_threads"]]
            for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]


class MinicnnRunner(TrainRunner):
    def import_framework(self):
        import minicnn
        import minicnn.models

        if self.threads:  # set through MINICNN_NUM_THREADS already; said again, as a user would
            minicnn.set_num_threads(self.threads)

    def thread_info(self):
        import minicnn

        return {"MINICNN_NUM_THREADS": minicnn.get_num_threads(),
                "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "(default)"),
                "blas_threads_outside_fit": blas_threads(), "cpus": cpus()}

    def build(self):
        from minicnn.models import recipes

        self.model = recipes.RECIPES[self.recipe](seed=0)

    def architecture(self):
        return architecture(self.model.layers)

    def fit(self, x, y, epochs, batch_size, validation_split):
        from minicnn.callbacks import Callback

        runner = self

        class EpochSync(Callback):
            def on_epoch_end(self, epoch, logs=None):
                runner.epoch_done(epoch, logs)

        self.model.fit(x, y, batch_size=batch_size, epochs=epochs,
                       validation_split=validation_split, verbose=0, callbacks=[EpochSync()])

    def train_step(self, x, y):
        self.model.train_on_batch(x, y)

    def predict(self, x, batch_size):
        return self.model.predict(x, batch_size=batch_size, verbose=0)

    def evaluate(self, x, y, batch_size):
        return self.model.evaluate(x, y, batch_size=batch_size, verbose=0)

    def predict_one(self, x1):
        return self.model.predict_on_batch(x1)


class TensorflowRunner(TrainRunner):
    def import_framework(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # logging only
        import keras  # noqa: F401
        import tensorflow as tf

        if self.threads:
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(self.threads)

    def thread_info(self):
        import tensorflow as tf

        return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or "(default)",
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or "(default)",
                "cpus": cpus()}

    def build(self):
        import keras

        keras.utils.set_random_seed(0)
        if self.recipe == "mnist_cnn":
            self.model = keras_model()
        else:
            from minicnn.models import recipes, to_keras

            self.model = to_keras(recipes.RECIPES[self.recipe](seed=0), compile=True)

    def architecture(self):
        return architecture(self.model.layers)

    def fit(self, x, y, epochs, batch_size, validation_split):
        import keras

        runner = self

        class EpochSync(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                runner.epoch_done(epoch, logs)

        self.model.fit(x, y, batch_size=batch_size, epochs=epochs,
                       validation_split=validation_split, verbose=0, callbacks=[EpochSync()])

    def train_step(self, x, y):
        self.model.train_on_batch(x, y)

    def predict(self, x, batch_size):
        return self.model.predict(x, batch_size=batch_size, verbose=0)

    def evaluate(self, x, y, batch_size):
        return self.model.evaluate(x, y, batch_size=batch_size, verbose=0)

    def predict_one(self, x1):
        # Its compiled function: 0.73 ms a call here, against 5.0 ms for an eager model(x1).
        return self.model.predict_on_batch(x1)


class PytorchRunner(TrainRunner):
    """The recipe as a plain PyTorch loop: NCHW tensors, integer labels, Adam(eps=1e-7)."""

    def import_framework(self):
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
            torch.set_num_interop_threads(self.threads)  # before any parallel work

    def thread_info(self):
        import torch

        return {"num_threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(), "cpus": cpus()}

    def build(self):
        import torch

        if self.recipe != "mnist_cnn":
            raise ValueError(f"the PyTorch runner has the notebook's model only, not "
                             f"{self.recipe!r}")
        torch.manual_seed(0)
        self.model = torch_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        self.generator = torch.Generator().manual_seed(0)

    @staticmethod
    def _tensors(x, y=None):
        import torch

        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return xt if y is None else (xt, torch.from_numpy(y.argmax(axis=1)))

    def _step(self, xb, yb):
        import torch.nn.functional as F

        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        self.optimizer.step()
        return float(loss) * len(yb), int((logits.argmax(1) == yb).sum())

    def _evaluate_tensors(self, xt, yt, batch_size):
        import torch
        import torch.nn.functional as F

        self.model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for s in range(0, len(xt), batch_size):
                logits = self.model(xt[s:s + batch_size])
                loss_sum += float(F.cross_entropy(logits, yt[s:s + batch_size], reduction="sum"))
                correct += int((logits.argmax(1) == yt[s:s + batch_size]).sum())
        return loss_sum / len(xt), correct / len(xt)

    def fit(self, x, y, epochs, batch_size, validation_split):
        import torch

        split = math.floor(len(x) * (1 - validation_split))
        xt, yt = self._tensors(x, y)
        x_train, y_train, x_val, y_val = xt[:split], yt[:split], xt[split:], yt[split:]
        for epoch in range(epochs):
            order = torch.randperm(split, generator=self.generator)
            loss_sum, correct = 0.0, 0
            for s in range(0, split, batch_size):
                idx = order[s:s + batch_size]
                batch_loss, batch_correct = self._step(x_train[idx], y_train[idx])
                loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
            val_loss, val_accuracy = self._evaluate_tensors(x_val, y_val, batch_size)
            self.epoch_done(epoch, {"loss": loss_sum / split, "accuracy": correct / split,
                                    "val_loss": val_loss, "val_accuracy": val_accuracy})

    def train_step(self, x, y):
        self._step(*self._tensors(x, y))

    def predict(self, x, batch_size):
        import torch

        self.model.eval()
        xt = self._tensors(x)
        with torch.no_grad():
            return torch.cat([torch.softmax(self.model(xt[s:s + batch_size]), 1)
                              for s in range(0, len(xt), batch_size)]).numpy()

    def evaluate(self, x, y, batch_size):
        return self._evaluate_tensors(*self._tensors(x, y), batch_size)

    def predict_one(self, x1):
        import torch

        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.model(self._tensors(x1)), 1).numpy()


RUNNERS = {"minicnn": MinicnnRunner, "tensorflow": TensorflowRunner, "pytorch": PytorchRunner}


def probe(framework: str, threads: int | None, process_start: float) -> dict:
    """A cold start, in a fresh process: import, build, then the first training steps.

    For minicnn the first step compiles the numba kernels, or loads them from numba's cache;
    for TensorFlow it traces and optimizes the training graph. Random data, batch 128.
    """
    runner = RUNNERS[framework](threads)
    t0 = time.perf_counter()
    runner.import_framework()
    t1 = time.perf_counter()
    runner.build()
    t2 = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    steps = []
    for _ in range(3):
        t = time.perf_counter()
        runner.train_step(x, y)
        steps.append(time.perf_counter() - t)
    # minicnn on an empty cache trains on its reference layers until the background compile
    # has its kernels (minicnn/models/warmup.py): when the fast plan took over, and its step.
    fast_after = fast_step = None
    if framework == "minicnn":
        from minicnn.models import warmup

        while not warmup.ready(runner.model) and time.perf_counter() - t0 < 600:
            runner.train_step(x, y)
        fast_after = time.perf_counter() - t0
        runner.train_step(x, y)  # its first: the kernels load from numba's cache
        t = time.perf_counter()
        runner.train_step(x, y)
        fast_step = time.perf_counter() - t
        if warmup._background is not None:  # it outlives the program: not into the next run
            warmup._background.process.wait(600)
    return {"import_s": t1 - t0, "build_s": t2 - t1, "first_step_s": steps[0],
            "later_step_s": min(steps[1:]), "total_s": t1 - t0 + t2 - t1 + steps[0],
            "fast_plan_after_s": fast_after, "fast_step_s": fast_step,
            "since_process_start_s": time.perf_counter() - process_start,
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR", "(default)")}
