"""Seeing inside a pass: what each layer received and returned, forward and backward.

    with model.record() as rec:
        model.train_on_batch(x, y)          # or model.predict(x), or model(x)
    rec["conv2d_1"].dout                    # dL/dy that reached conv2d_1
    model.backward_summary(x, y)            # norms, update ratios, ReLU zeros, dead units...

While a recording is open the model runs its layers one by one (the reference path, never the
fused one) and copies each array, since later passes reuse buffers. Outside a recording nothing
is copied: the only cost is one `is None` test per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minicnn import activations
from minicnn._table import render_table
from minicnn.layers.base import Layer, shape_str
from minicnn.layers.conv import Conv2D
from minicnn.layers.dropout import Dropout
from minicnn.layers.pool import MaxPooling2D


@dataclass
class LayerRecord:
    """One layer's part of the last recorded pass (NumPy arrays, copies)."""

    name: str
    class_name: str
    input: np.ndarray  # x (N, ...)
    output: np.ndarray  # y (N, ...)
    dout: np.ndarray | None = None  # dL/dy; for a softmax head: of the loss w.r.t. its output
    dx: np.ndarray | None = None  # dL/dx
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # parameter name -> dL/dW
    cols_shape: tuple[int, int] | None = None  # Conv2D: the im2col matrix (N*H_out*W_out, KH*KW*C)
    mask: np.ndarray | None = None  # Dropout in training: its scaled mask, 0 or 1 / (1 - rate)


class Recording:
    """The last pass recorded in a `with model.record()` block, layer by layer."""

    def __init__(self) -> None:
        self.layers: list[LayerRecord] = []
        self.loss: float | None = None
        self.batch_size: int | None = None

    def __getitem__(self, key: int | str) -> LayerRecord:
        if isinstance(key, int):
            return self.layers[key]
        for record in self.layers:
            if record.name == key:
                return record
        raise KeyError(f"no layer named {key!r} in this recording; have "
                       f"{[r.name for r in self.layers]}")

    def __len__(self) -> int:
        return len(self.layers)

    # Called by the model's TrainingPass while the recording is open. A layer called twice (a
    # shared layer) gets a record per call, `rec[name]` being its first; each backward finds
    # the record of its own call by the layer instance that ran it.
    def start(self, x: np.ndarray) -> None:
        self.layers, self.loss, self.batch_size = [], None, len(x)
        self._by_instance: dict[int, LayerRecord] = {}

    def forward(self, layer: Layer, x, y: np.ndarray) -> None:
        """x: the layer's input, or the list of its inputs (a merge layer)."""
        cols_shape = None
        if isinstance(layer, Conv2D):
            (KH, KW) = layer.kernel_size
            cols_shape = (int(np.prod(y.shape[:3])), KH * KW * x.shape[-1])
        mask = getattr(layer.cache, "mask", None) if isinstance(layer, Dropout) else None
        record = LayerRecord(layer.name, type(layer).__name__, _copy(x), np.array(y),
                             cols_shape=cols_shape, mask=None if mask is None else np.array(mask))
        self.layers.append(record)
        self._by_instance[id(layer)] = record

    def backward(self, layer: Layer, dout: np.ndarray, dx) -> None:
        record = self._by_instance.get(id(layer)) or self[layer.name]
        record.dout = np.array(dout)
        record.dx = None if dx is None else _copy(dx)
        record.grads = {p.name: p.grad.copy() for p in layer.params}


def _copy(a):
    """A copy of an array, or of each array of a list (a merge layer's inputs or dx)."""
    return [np.array(x) for x in a] if isinstance(a, list) else np.array(a)


def _norm(a) -> float | None:
    """The L2 norm of an array, or of a merge layer's list of arrays taken together."""
    if a is None:
        return None
    parts = a if isinstance(a, list) else [a]
    return float(np.sqrt(sum(np.sum(np.square(p.astype(np.float64, copy=False)))
                             for p in parts)))


def _ends_in_relu(layer: Layer) -> bool:
    return getattr(layer, "activation", None) is activations.relu or (
        type(layer).__name__ == "ReLU")


def relu_zero_share(layer: Layer, output: np.ndarray) -> float | None:
    """Share of a ReLU's outputs (N, ..., units) that are exactly 0 in this batch.

    No gradient flows back through a zero output, but a zero is not a dead unit: a unit is 0 on
    one side of its hyperplane and learns from the inputs on the other, so half or more is
    common (78% for the first conv of a fresh MNIST model: the zero background gives z = 0).
    """
    return float(np.mean(output == 0)) if _ends_in_relu(layer) else None


# A sigmoid output within SATURATED of 0 or 1 (derivative y (1 - y) below 0.0196), a tanh output
# within SATURATED of -1 or 1 (derivative 1 - y^2 below 0.0396): a gradient through it shrinks
# by 50x or more, which is how a deep sigmoid network's gradient vanishes.
SATURATED = 0.02


def saturated_share(layer: Layer, output: np.ndarray) -> float | None:
    """Share of a sigmoid's or tanh's outputs that are saturated (see SATURATED)."""
    activation = getattr(layer, "activation", None)
    if activation is activations.sigmoid:
        return float(np.mean((output < SATURATED) | (output > 1 - SATURATED)))
    if activation is activations.tanh:
        return float(np.mean(np.abs(output) > 1 - SATURATED))
    return None


def dead_unit_share(layer: Layer, output: np.ndarray) -> float | None:
    """Share of a ReLU's units (a Dense unit, a conv channel: the last axis of the output
    (N, ..., units)) that are 0 for every sample of the batch, at every position.

    No gradient reaches a dead unit's weights from this batch; a unit dead for all the data
    never learns again.
    """
    if not _ends_in_relu(layer):
        return None
    return float((output == 0).reshape(-1, output.shape[-1]).all(axis=0).mean())


def pool_tie_share(layer: Layer, x: np.ndarray) -> float | None:
    """Share of a max pool's windows whose maximum occurs more than once.

    At a tie the gradient goes to the first maximum only, and a numerical gradient check cannot
    tell which element should get it, so ties (often windows of ReLU zeros) are worth seeing.
    """
    if not isinstance(layer, MaxPooling2D):
        return None
    _, H, W, _ = x.shape
    H_out, W_out, PT, PL = layer.geometry(H, W)
    (PH, PW), (SH, SW) = layer.pool_size, layer.strides
    tied = total = 0
    for i in range(H_out):
        h0, h1 = max(i * SH - PT, 0), min(i * SH - PT + PH, H)
        for j in range(W_out):
            w0, w1 = max(j * SW - PL, 0), min(j * SW - PL + PW, W)
            window = x[:, h0:h1, w0:w1, :]
            count = (window == window.max(axis=(1, 2), keepdims=True)).sum(axis=(1, 2))
            tied += int((count > 1).sum())
            total += count.size
    return tied / total


@dataclass
class BackwardRow:
    name: str
    class_name: str
    dout_shape: tuple
    dout_norm: float | None
    dx_norm: float | None
    grad_norm: float | None  # of all the layer's parameter gradients together
    update_ratio: float | None  # ||last update|| / ||W|| over the layer's parameters
    relu_zeros: float | None  # share of the ReLU's outputs that are 0
    dead_units: float | None  # share of its units that are 0 for every sample of the batch
    pool_ties: float | None
    saturated: float | None = None  # share of a sigmoid's or tanh's outputs saturated


class BackwardSummary:
    """`summary()` for the backward pass; `rows` holds the numbers, str() the table."""

    def __init__(self, model_name: str, recording: Recording, optimizer, layers: list[Layer]):
        self.model_name, self.loss, self.batch_size = (model_name, recording.loss,
                                                       recording.batch_size)
        self.optimizer = optimizer
        self.rows: list[BackwardRow] = []
        for layer in layers:
            r = recording[layer.name]
            grads = list(r.grads.values())
            grad_norm = math.sqrt(sum(_norm(g) ** 2 for g in grads)) if grads else None
            update_ratio = None
            norms = getattr(optimizer, "update_norms", {})
            if layer.params and all(p in norms for p in layer.params):
                weight = math.sqrt(sum(_norm(p.value) ** 2 for p in layer.params))
                update = math.sqrt(sum(norms[p] ** 2 for p in layer.params))
                update_ratio = update / weight if weight else None
            self.rows.append(BackwardRow(
                r.name, r.class_name, tuple(r.dout.shape) if r.dout is not None else (),
                _norm(r.dout), _norm(r.dx), grad_norm, update_ratio,
                relu_zero_share(layer, r.output), dead_unit_share(layer, r.output),
                pool_tie_share(layer, r.input), saturated_share(layer, r.output)))

    def __getitem__(self, name: str) -> BackwardRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self) -> str:
        def num(v, fmt="{:.3e}"):
            return "-" if v is None else fmt.format(v)

        def pct(v):
            return "-" if v is None else f"{100 * v:.1f}%"

        rows = [(f"{r.name} ({r.class_name})", shape_str((None, *r.dout_shape[1:]))
                 if r.dout_shape else "-", num(r.dout_norm), num(r.dx_norm), num(r.grad_norm),
                 num(r.update_ratio, "{:.2e}"),
                 pct(r.relu_zeros) if r.saturated is None else f"{pct(r.saturated)} sat",
                 pct(r.dead_units), pct(r.pool_ties))
                for r in self.rows]
        loss = "" if self.loss is None else f", loss {self.loss:.4f}"
        title = (f'Backward pass of "{self.model_name}" (batch of {self.batch_size}{loss})')
        headers = ("Layer (type)", "dL/dy shape", "|dL/dy|", "|dL/dx|", "|dL/dW|",
                   "update/|W|", "ReLU zeros", "dead units", "pool ties")
        widths = (33, 20, 11, 11, 11, 12, 12, 12, 11)
        footer = [" |.| is the Frobenius norm; update/|W| is the last optimizer step's size "
                  "relative to the weights.", *self._update_hint(),
                  " ReLU zeros: the share of a ReLU's outputs that are 0 (half or more is common); "
                  "for a sigmoid or tanh, the share saturated ('sat': within 0.02 of its limits, "
                  "where the gradient through it shrinks 50-fold or more); dead units: of its "
                  "units (Dense units, conv channels), those 0 for every sample of the batch, "
                  "whose weights get no gradient."]
        return render_table(title, headers, rows, widths, right_from=2, footer=footer)

    def _update_hint(self) -> list[str]:
        """What update/|W| means for this optimizer (nothing for one without a known rule)."""
        name, lr = type(self.optimizer).__name__, getattr(self.optimizer, "learning_rate", None)
        if name == "Adam":
            return [" Adam: ~1e-3 is typical of healthy training; its first steps move every "
                    f"weight by about the learning rate ({lr:g}), so they show about "
                    "learning_rate / rms(W), ~1e-2 for weights of rms 0.1."]
        if name == "SGD":
            return [f" SGD: update/|W| = learning_rate ({lr:g}) * |dL/dW| / |W| without "
                    "momentum (with it, the velocity adds the earlier steps)."]
        return []
