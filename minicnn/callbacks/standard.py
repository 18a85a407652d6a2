"""Keras's standard callbacks: EarlyStopping, ModelCheckpoint, CSVLogger, TerminateOnNaN,
LearningRateScheduler and ReduceLROnPlateau."""

from __future__ import annotations

import csv
import math
import os
import warnings

import numpy as np

from minicnn.callbacks.base import Callback


class LambdaCallback(Callback):
    """A callback from plain functions, as Keras's: `on_epoch_end=lambda epoch, logs: ...`.
    Each argument is one hook (on_epoch_begin/end(epoch, logs), on_train_batch_begin/end(batch,
    logs), on_train_begin/end(logs)); a hook not given does nothing."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_batch_begin=None,
                 on_train_batch_end=None, on_train_begin=None, on_train_end=None,
                 on_batch_begin=None, on_batch_end=None):
        super().__init__()
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_batch_begin": on_train_batch_begin or on_batch_begin,
                 "on_train_batch_end": on_train_batch_end or on_batch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end}
        for hook, function in given.items():
            if function is not None:
                if not callable(function):
                    raise ValueError(f"Invalid value for argument `{hook}`. Expected a "
                                     f"function. Received {hook}={function!r}")
                setattr(self, hook, _with_logs(function, takes_index="batch" in hook
                                               or "epoch" in hook))


def _with_logs(function, takes_index: bool):
    """The hook as Keras calls a LambdaCallback's: (epoch or batch, logs), or (logs)."""
    if takes_index:
        return lambda index, logs=None: function(index, logs)
    return lambda logs=None: function(logs)


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
        names = self.model._log_names()
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
