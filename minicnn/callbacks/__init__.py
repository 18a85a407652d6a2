"""Callbacks with Keras's hooks: History, the progress display, early stopping, checkpoints, CSV,
learning-rate scheduling and reduction on a plateau.

`fit` calls, in order: on_train_begin; per epoch on_epoch_begin, per batch on_train_batch_begin
and on_train_batch_end(batch, logs), then on_epoch_end(epoch, logs) with the epoch's training and
validation metrics; finally on_train_end. `evaluate` and `predict` call the on_test_* and
on_predict_* hooks. A callback sets `self.model.stop_training = True` to end training early.
"""

from minicnn.callbacks.base import Callback, CallbackList, History
from minicnn.callbacks.diagnostics import BackwardSummaryLogger, LearningCheck, LearningWarning
from minicnn.callbacks.flow import GradientFlow
from minicnn.callbacks.progbar import ProgbarLogger
from minicnn.callbacks.standard import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from minicnn.callbacks.tensorboard import TensorBoard

__all__ = ["BackwardSummaryLogger", "CSVLogger", "Callback", "CallbackList", "EarlyStopping",
           "GradientFlow", "History", "LambdaCallback", "LearningCheck", "LearningRateScheduler",
           "LearningWarning", "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau",
           "TensorBoard", "TerminateOnNaN"]
