"""Callbacks with Keras's hooks: History, the progress display, early stopping, checkpoints, CSV,
learning-rate scheduling and reduction on a plateau.

`fit` calls, in order: on_train_begin; per epoch on_epoch_begin, per batch on_train_batch_begin
and on_train_batch_end(batch, logs), then on_epoch_end(epoch, logs) with the epoch's training and
validation metrics; finally on_train_end. `evaluate` and `predict` call the on_test_* and
on_predict_* hooks. A callback sets `self.model.stop_training = True` to end training early.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings

import numpy as np


class Callback:
    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Forwards each hook to every callback, in order."""

    def __init__(self, callbacks, model, params: dict):
        self.callbacks = list(callbacks)
        for c in self.callbacks:
            if not isinstance(c, Callback):
                raise TypeError(
                    f"Invalid value in argument `callbacks`. Expected Callback instances. "
                    f"Received {c!r}"
                )
            c.set_model(model)
            c.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for c in self.callbacks:
                getattr(c, hook)(*args)
        return call


class History(Callback):
    """Records the epoch logs: `history` maps each metric to its per-epoch values."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path: str | os.PathLike) -> str:
        """Accuracy and loss curves (training and validation) as a PNG; returns the path."""
        from minicnn.plots import plot_history

        return plot_history(self, path)


def _format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def _format_per_step(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def _format_logs(logs: dict) -> str:
    return "".join(f" - {key}: {value:.4f}" for key, value in logs.items())


class ProgbarLogger(Callback):
    """What `fit(verbose=...)` prints, in Keras's format.

    verbose=1: a live bar, `  50/422 [===>......] - ETA: 6s - loss: 0.5 - accuracy: 0.8`, redrawn
    in place on a terminal and in Jupyter (on a pipe or a file only the finished line is written).
    verbose=2: one line per epoch, `422/422 - 7s - loss: ... - 7s/epoch - 17ms/step`.
    verbose="auto" (Keras 3's default in `fit`) is 1.
    """

    def __init__(self, verbose: int | str = 1, stream=None, width: int = 30):
        super().__init__()
        self.verbose = 1 if verbose == "auto" else verbose
        self.stream = stream
        self.width = width

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()

    def _begin(self) -> None:
        self.steps = self.params.get("steps")
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._begin()
        if self.verbose:
            self._write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")

    def _bar(self, seen: int, logs: dict, final: bool) -> str:
        elapsed = time.perf_counter() - self.start
        steps = self.steps
        digits = len(str(steps))
        done = int(self.width * seen / steps)
        bar = "=" * done + (">" if done < self.width else "") + "." * (self.width - done - 1)
        text = f"{seen:>{digits}}/{steps} [{bar[:self.width]}]"
        if final:
            text += f" - {_format_duration(elapsed)} {_format_per_step(elapsed / seen)}"
        else:
            eta = elapsed / seen * (steps - seen)
            text += f" - ETA: {_format_duration(eta)}"
        return text + _format_logs(logs)

    def on_train_batch_end(self, batch, logs=None):
        self._redraw(batch, logs)

    def _redraw(self, batch: int, logs) -> None:
        if self.verbose != 1 or not self._dynamic():
            return
        now = time.perf_counter()
        if now - self.last_draw >= 0.05 and batch + 1 < self.steps:
            self.last_draw = now
            # A terminal needs the rest of a longer previous line cleared (ESC [K); Jupyter's
            # "\r" already replaces the whole line, and would only store the escape as noise.
            clear = "\033[K" if self._is_terminal() else ""
            self._write("\r" + self._bar(batch + 1, logs or {}, final=False) + clear)

    def _is_terminal(self) -> bool:
        stream = self.stream or sys.stdout
        return hasattr(stream, "isatty") and stream.isatty()

    def _dynamic(self) -> bool:
        r"""Whether "\r" redraws the line in place: on a terminal, and in Jupyter.

        A Jupyter kernel's stdout is no tty, yet Jupyter's front ends (the notebook, JupyterLab,
        VS Code, Colab) treat "\r" as a terminal does. Keras decides by `"ipykernel" in
        sys.modules`; that holds in any process that merely imported ipykernel (jupyter_client
        does when it looks up the "python3" kernel), so here the stream itself must be the
        kernel's, an ipykernel OutStream. A pipe or a file gets only the finished line.
        """
        if self._is_terminal():
            return True
        iostream = sys.modules.get("ipykernel.iostream")
        return iostream is not None and isinstance(self.stream or sys.stdout, iostream.OutStream)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        steps = self.params.get("steps_done", self.steps)
        elapsed = time.perf_counter() - self.start
        if self.verbose == 1:
            prefix = "\r" if self._dynamic() else ""
            self._write(prefix + self._bar(steps, logs, final=True) + "\n")
        elif self.verbose == 2:
            self._write(f"{steps}/{self.steps} - {_format_duration(elapsed)}{_format_logs(logs)}"
                        f" - {_format_duration(elapsed)}/epoch"
                        f" - {_format_per_step(elapsed / max(steps, 1))}\n")

    # evaluate() and predict(): the same bar over their batches, without an "Epoch" line; fit's
    # validation pass runs without callbacks, so these never draw inside a training epoch.
    def on_test_begin(self, logs=None):
        self._begin()

    def on_test_batch_end(self, batch, logs=None):
        self._redraw(batch, logs)

    def on_test_end(self, logs=None):
        self._finish(logs or {})

    on_predict_begin = on_test_begin
    on_predict_batch_end = on_test_batch_end
    on_predict_end = on_test_end

    def _finish(self, logs: dict) -> None:
        if self.verbose == 1:
            prefix = "\r" if self._dynamic() else ""
            self._write(prefix + self._bar(self.steps, logs, final=True) + "\n")
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            self._write(f"{self.steps}/{self.steps} - {_format_duration(elapsed)}"
                        f" - {_format_per_step(elapsed / max(self.steps, 1))}"
                        f"{_format_logs(logs)}\n")


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", restore_best_weights: bool = False):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.min_delta = abs(min_delta)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"Invalid value for argument `mode`. Expected 'auto', 'min' or "
                             f"'max'. Received mode={mode!r}")
        self.sign = _improvement_sign(monitor, mode)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = math.inf, None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor)
        if value is None:
            return
        score = self.sign * value
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after each epoch (or only when `monitor` improved), atomically.

    `filepath` may hold format fields from the epoch logs (epoch counts from 1), e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.npz"; a field that is not `epoch`, `loss`, a compiled
    metric or its `val_` twin is an error when `fit` starts. A missing directory is created, as
    Keras does.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto"):
        super().__init__()
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only = save_best_only
        self.sign = _improvement_sign(monitor, mode)
        self.best = math.inf

    def on_train_begin(self, logs=None):
        # Format the pattern with stand-ins for every value an epoch can log, so that a typo
        # fails now rather than after the first epoch's work.
        names = ["loss", *self.model.metrics]
        sample = {name: 0.0 for name in names + [f"val_{name}" for name in names]}
        try:
            self.filepath.format(epoch=1, **sample)
        except KeyError as e:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {{{e.args[0]}}}, which no "
                f"epoch logs; available: {', '.join(['epoch', *sample])}") from e
        except (AttributeError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} is not a valid "
                             f"format string for the epoch logs ({e})") from e

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:  # a val_ field, and fit was given no validation data
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names "
                             f"{{{e.args[0]}}}, which this fit does not log (no validation "
                             f"data?); it logs: {', '.join(['epoch', *logs])}") from e
        if self.save_best_only:
            value = _monitored(logs, self.monitor)
            if value is None or not self.sign * value < self.best:
                if self.verbose and value is not None:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve")
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from "
                      f"{self.sign * self.best:.5f} to {value:.5f}, saving model to {path}")
            self.best = self.sign * value
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.model.save(path)


class CSVLogger(Callback):
    """Write one row of epoch logs per epoch to a CSV file (flushed each epoch)."""

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename)
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer, self.keys, self.header_written = None, None, bool(exists)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.writer is None:
            self.keys = list(logs)
            self.writer = csv.writer(self.file, delimiter=self.separator)
            if not self.header_written:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(logs.get(k, "NA") for k in self.keys)])
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LearningWarning(UserWarning):
    """A layer did not learn in the first steps of training."""


class LearningCheck(Callback):
    """Did every layer learn? After the first `steps` training steps, warn about each parameter
    tensor that never got a non-zero gradient or never moved.

    The classic from-scratch bug it catches: conv layers silently disconnected from the loss
    (a backward that returns zeros, or gradients written to a copy) while the dense head alone
    learns to ~93% accuracy, so nothing looks wrong. `fit` runs it by default.
    """

    def __init__(self, steps: int = 5):
        super().__init__()
        self.steps = steps
        self.problems: list[str] = []

    def on_train_begin(self, logs=None):
        self.start = [p.value.copy() for p in self.model.params]
        self.got_gradient = [False] * len(self.start)
        self.seen, self.problems = 0, []

    def on_train_batch_end(self, batch, logs=None):
        if self.seen >= self.steps:
            return
        params = self.model.params
        for k, p in enumerate(params):
            self.got_gradient[k] = self.got_gradient[k] or bool(np.any(p.grad))
        self.seen += 1
        if self.seen < self.steps:
            return
        for k, p in enumerate(params):
            if not self.got_gradient[k]:
                self.problems.append(f"{p.name} got an all-zero gradient in each of the first "
                                     f"{self.steps} steps: is the layer connected to the loss?")
            elif np.array_equal(p.value, self.start[k]):
                self.problems.append(f"{p.name} did not change in the first {self.steps} steps "
                                     "although its gradient was not zero")
        for problem in self.problems:
            warnings.warn(f"Layer did not learn: {problem}", LearningWarning, stacklevel=2)


class BackwardSummaryLogger(Callback):
    """model.backward_summary(x, y) at the end of every epoch, kept for plotting.

    `gradient_norms` maps each layer with weights to its |dL/dW| per epoch (the input of
    minicnn.plots.plot_gradient_norms); `summaries` keeps each epoch's whole BackwardSummary.
    """

    def __init__(self, x, y, print_every: int = 0):
        super().__init__()
        self.x, self.y, self.print_every = x, y, print_every
        self.summaries: list = []
        self.gradient_norms: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        summary = self.model.backward_summary(self.x, self.y, print_fn=False)
        self.summaries.append(summary)
        for row in summary.rows:
            if row.grad_norm is not None:
                self.gradient_norms.setdefault(row.name, []).append(row.grad_norm)
        if self.print_every and (epoch + 1) % self.print_every == 0:
            print(summary)


class LearningRateScheduler(Callback):
    """At each epoch's start set the rate to schedule(epoch, current_rate) (or schedule(epoch)
    for a one-argument schedule), as Keras does; logs it as "learning_rate" at the epoch's end.

    An optimizer whose `learning_rate` is a schedule refuses the new rate with a TypeError.
    """

    def __init__(self, schedule, verbose: int = 0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # Keras's old API: schedule(epoch)
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError("The output of the `schedule` function should be a float. "
                             f"Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the rate by `factor` (not below `min_lr`) when `monitor` has not improved by
    more than `min_delta` for `patience` epochs, then wait `cooldown` epochs; Keras's logic.
    Logs the epoch's rate as "learning_rate" (before any reduction), as Keras does.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"ReduceLROnPlateau mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=2)
            mode = "auto"
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.mode, self.min_delta = mode, abs(min_delta)
        self.cooldown, self.min_lr = cooldown, min_lr
        self.sign = _improvement_sign(monitor, mode)
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: "
                          f"{','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.best is None or self.sign * current + self.min_delta < self.sign * self.best:
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


def _improvement_sign(monitor: str, mode: str) -> float:
    """+1 when lower is better, -1 when higher is (accuracy in "auto" mode)."""
    if mode == "max" or (mode == "auto" and "acc" in monitor):
        return -1.0
    return 1.0


def _monitored(logs, monitor: str) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"Callback monitors `{monitor}`, which is not available. Available "
                      f"metrics are: {', '.join(logs or {})}", stacklevel=3)
    return value
