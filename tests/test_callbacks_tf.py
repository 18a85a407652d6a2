"""ReduceLROnPlateau and LearningRateScheduler against Keras's own callbacks: the same sequence of
epoch metrics, fed to both, must give the same learning rate at every epoch (and the same logged
"learning_rate"). Metric sequences are drawn by hypothesis, with plateaus made likely."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import callbacks
from minicnn.optimizers import SGD

keras = pytest.importorskip("keras", reason="Keras is the oracle of these tests")


class _Holder:
    """The least a callback needs of a model: its optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer


def _keras_model(learning_rate: float):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


def _keras_rate(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _drive(ours, theirs, metric: str, values: list[float], learning_rate: float):
    """Feed both callbacks the same epochs; return (ours, theirs) rates logged and in effect."""
    mine = _Holder(SGD(learning_rate=learning_rate))
    ours.set_model(mine)
    model = _keras_model(learning_rate)
    theirs.set_model(model)
    for cb in (ours, theirs):
        cb.on_train_begin()
    got, want = [], []
    for epoch, value in enumerate(values):
        ours.on_epoch_begin(epoch, {})
        theirs.on_epoch_begin(epoch, {})
        logs_ours, logs_theirs = {metric: value}, {metric: value}
        ours.on_epoch_end(epoch, logs_ours)
        theirs.on_epoch_end(epoch, logs_theirs)
        got.append((logs_ours["learning_rate"], float(mine.optimizer.learning_rate)))
        want.append((float(logs_theirs["learning_rate"]), _keras_rate(model)))
    return got, want


# A metric that mostly repeats or barely moves, so patience, cooldown and min_delta all matter.
metric_values = st.lists(
    st.sampled_from([1.0, 1.0, 0.99995, 0.9, 0.5, 0.5, 0.6, 0.45, 0.449999]),
    min_size=1, max_size=14)


@settings(deadline=None, max_examples=25)
@given(values=metric_values,
       factor=st.sampled_from([0.1, 0.5]),
       patience=st.integers(0, 3),
       cooldown=st.integers(0, 2),
       min_lr=st.sampled_from([0.0, 0.004]),
       min_delta=st.sampled_from([1e-4, 0.0, 0.05]),
       # Keras 3 reads "auto"'s direction for an accuracy from the compiled metric
       # objects, which a model that has not run yet lacks: give it mode="max" instead
       monitor_mode=st.sampled_from([("val_loss", "auto"), ("val_accuracy", "max"),
                                     ("loss", "max"), ("val_loss", "min")]))
def test_reduce_lr_on_plateau_gives_keras_rates(values, factor, patience, cooldown, min_lr,
                                                min_delta, monitor_mode):
    monitor, mode = monitor_mode
    kwargs = dict(monitor=monitor, factor=factor, patience=patience, cooldown=cooldown,
                  min_lr=min_lr, min_delta=min_delta, mode=mode)
    got, want = _drive(callbacks.ReduceLROnPlateau(**kwargs),
                       keras.callbacks.ReduceLROnPlateau(**kwargs), monitor, values, 0.1)
    # Keras keeps the rate in a float32 variable; ours is a Python float
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6, err_msg=str(kwargs))


@pytest.mark.parametrize("schedule", [
    lambda epoch, lr: lr * 0.5 if epoch % 2 else lr,
    lambda epoch, lr: 0.1 * math.exp(-0.3 * epoch),
    lambda epoch: 0.05 / (1 + epoch),  # Keras's one-argument form
])
def test_learning_rate_scheduler_gives_keras_rates(schedule):
    got, want = _drive(callbacks.LearningRateScheduler(schedule),
                       keras.callbacks.LearningRateScheduler(schedule), "loss",
                       [1.0, 0.9, 0.8, 0.7, 0.6], 0.1)
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6)
