"""TensorBoard: Keras's callback, writing TensorBoard event files with tensorboardX.

    model.fit(x, y, callbacks=[callbacks.TensorBoard("logs/run1", histogram_freq=1)])
    # then: tensorboard --logdir logs

As Keras's: `log_dir/train` and `log_dir/validation` hold the epoch scalars ("epoch_loss",
"epoch_accuracy", ... at step = the epoch), and with `update_freq="batch"` (or every N batches)
`log_dir/train` also gets "batch_loss", ... at step = the training step. Every `histogram_freq`
epochs, `log_dir/train` gets a histogram of every weight ("conv2d/kernel") and of its gradient
in the epoch's last step ("conv2d/kernel/gradient"), and the first conv layer's filters as one
image ("first_layer_filters": a grid of tiles, each scaled to [0, 1]).

The event files are written by tensorboardX, a maintained writer that needs neither TensorFlow
nor PyTorch (pip install tensorboardX, or minicnn[tensorboard]); it is imported when training
starts, never by `import minicnn`.
"""

from __future__ import annotations

import math
import os

import numpy as np

from minicnn.callbacks.base import Callback
from minicnn.layers.conv import Conv2D


def _writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError("callbacks.TensorBoard writes its event files with tensorboardX, "
                          "which is not installed: pip install tensorboardX (or "
                          "pip install 'minicnn[tensorboard]')") from e
    return SummaryWriter


def filter_grid(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel (KH, KW, C, F) as one (rows, cols, 3) image in [0, 1]: one tile per
    filter (RGB when C == 3, else the mean over channels in gray), each scaled to its own
    range, one pixel of gap between tiles."""
    KH, KW, C, F = kernel.shape
    tiles = kernel if C == 3 else np.repeat(kernel.mean(axis=2, keepdims=True), 3, axis=2)
    low = tiles.min(axis=(0, 1, 2), keepdims=True)
    span = tiles.max(axis=(0, 1, 2), keepdims=True) - low
    tiles = (tiles - low) / np.where(span > 0, span, 1)
    cols = math.ceil(math.sqrt(F))
    rows = math.ceil(F / cols)
    grid = np.zeros((rows * (KH + 1) - 1, cols * (KW + 1) - 1, 3))
    for f in range(F):
        r, c = divmod(f, cols)
        grid[r * (KH + 1):r * (KH + 1) + KH, c * (KW + 1):c * (KW + 1) + KW] = tiles[..., f]
    return grid


class TensorBoard(Callback):
    """Keras's TensorBoard callback (log_dir, histogram_freq, update_freq), see the module."""

    def __init__(self, log_dir: str | os.PathLike = "logs", histogram_freq: int = 0,
                 update_freq: str | int = "epoch", write_images: bool = True):
        super().__init__()
        if not isinstance(histogram_freq, int) or isinstance(histogram_freq, bool) or (
                histogram_freq < 0):
            raise ValueError(f"Invalid value for argument `histogram_freq`. Expected a "
                             f"non-negative integer. Received histogram_freq={histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (not isinstance(update_freq, int) or update_freq <= 0):
            raise ValueError(f"Invalid value for argument `update_freq`. Expected 'epoch', "
                             f"'batch' or a positive integer. Received update_freq="
                             f"{update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.update_freq = histogram_freq, update_freq
        self.write_images = write_images
        self._writers: dict = {}
        self.step = 0

    def _writer(self, which: str):
        if which not in self._writers:
            self._writers[which] = self._summary_writer(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        self._summary_writer = _writer_class()
        self._writer("train")

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.update_freq != "epoch" and self.step % self.update_freq == 0:
            for key, value in (logs or {}).items():
                self._writer("train").add_scalar(f"batch_{key}", float(np.mean(value)),
                                                 self.step)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            which, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(which).add_scalar(f"epoch_{name}", float(np.mean(value)), epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for layer in self.model._compute_layers:
                for p in layer.weights:
                    writer.add_histogram(p.name, p.value, epoch)
                    if p.trainable and layer.trainable:
                        writer.add_histogram(f"{p.name}/gradient", p.grad, epoch)
            first = next((layer for layer in self.model._compute_layers
                          if isinstance(layer, Conv2D)), None)
            if self.write_images and first is not None:
                writer.add_image("first_layer_filters", filter_grid(first.kernel.value), epoch,
                                 dataformats="HWC")
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
