"""GradientFlow: how the gradient reaches each layer, step by step, over training.

    flow = callbacks.GradientFlow(every=10, path="runs/x/gradient_flow.csv")
    model.fit(x, y, callbacks=[flow])
    flow.plot("runs/x/gradient_flow.png")     # one line per layer over steps, log scale

Every `every` training steps it records, for each layer with trainable weights:
- `grad_norm`: |dL/dW| of that step, all the layer's weights together;
- `update_ratio`: |W_after - W_before| / |W_before| of that step (about 1e-3 is healthy, as
  CS231n puts it; 1e-6 is a layer that does not learn);
and for every layer its output on the first SAMPLE samples of the batch: `act_mean`, `act_std`,
`saturated` (the share of a sigmoid's or tanh's outputs within 0.02 of its limits: a gradient
through them shrinks 50-fold or more) and `zeros` (the share of a ReLU's outputs that are 0).

A vanishing gradient shows as grad_norm and update_ratio falling layer by layer towards the
input (examples/vanishing_gradients.py: a 6-layer sigmoid CNN against ReLU and BatchNorm).

Cost: a recorded step runs the fast plan as every step does, with a hook that reads each
step's output for SAMPLE samples. Where the plan fuses layers into one step (a conv with its
ReLU and pool), the output of the first layer never exists; for a Conv2D it is computed again
for those samples, on a copy that shares the weights (the layer's own state is untouched);
another fused layer (a BatchNormalization joined by its pool) gets no activation statistics.
Training is bit-identical with and without the callback; the overhead, measured on the notebook's
model at every=10, is in the module's test notes (tests/test_gradient_flow.py).
"""

from __future__ import annotations

import copy
import csv
import os

import numpy as np

from minicnn.callbacks.base import Callback
from minicnn.layers.conv import Conv2D
from minicnn.recording import relu_zero_share, saturated_share

SAMPLE = 16  # samples of a recorded batch whose outputs make the activation statistics
COLUMNS = ("step", "epoch", "layer", "grad_norm", "update_ratio", "act_mean", "act_std",
           "saturated", "zeros")


class GradientFlow(Callback):
    """Per-layer gradient norms, update ratios and activation statistics every `every` steps,
    kept in `rows` and, with `path`, written to a CSV file as they come."""

    def __init__(self, every: int = 10, path: str | os.PathLike | None = None):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every <= 0:
            raise ValueError(f"Invalid value for argument `every`. Expected a strictly positive "
                             f"integer. Received every={every!r}")
        self.every, self.path = every, None if path is None else os.fspath(path)
        self.rows: list[dict] = []
        self.step = 0
        self._before: list[list[np.ndarray]] | None = None

    def on_train_begin(self, logs=None):
        self.epoch = 0
        self._layers = [layer for layer in self.model._compute_layers if layer.params]
        # the layers each step of the plan runs, by the first one (what the hook is shown)
        self._steps = {id(step.layers[0]): step.layers for step in self.model.plan}
        if self.path:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.step % self.every:
            return
        self._before = [[p.value.copy() for p in layer.params] for layer in self._layers]
        self._activations: dict[str, dict] = {}
        self.model._local.flow = self._forward  # this step's forward calls it after each step

    def _forward(self, layer, x, y) -> None:
        covered = self._steps.get(id(layer), (layer,))
        self._stats(covered[-1], y[:SAMPLE])
        if len(covered) > 1 and isinstance(layer, Conv2D) and not isinstance(x, list):
            # fused with what follows: its output is computed again, on a shallow copy (the
            # same weights, a cache of its own), for the sample only
            self._stats(layer, copy.copy(layer).forward(x[:SAMPLE], training=True))

    def _stats(self, layer, y) -> None:
        if layer.name in self._activations:  # a shared layer: its first call
            return
        out = np.asarray(y)
        self._activations[layer.name] = {
            "act_mean": float(out.mean(dtype=np.float64)),
            "act_std": float(out.std(dtype=np.float64)),
            "saturated": saturated_share(layer, out), "zeros": relu_zero_share(layer, out)}

    def on_train_batch_end(self, batch, logs=None):
        if self._before is not None:
            self.model._local.flow = None
            rows = []
            for layer, before in zip(self._layers, self._before, strict=True):
                grad = np.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64)))
                                   for p in layer.params))
                moved = np.sqrt(sum(float(np.sum(np.square(p.value - b, dtype=np.float64)))
                                    for p, b in zip(layer.params, before, strict=True)))
                size = np.sqrt(sum(float(np.sum(np.square(b, dtype=np.float64)))
                                   for b in before))
                rows.append({"layer": layer.name, "grad_norm": float(grad),
                             "update_ratio": float(moved / size) if size else float("nan")})
            for name, stats in self._activations.items():
                row = next((r for r in rows if r["layer"] == name), None)
                if row is None:
                    rows.append(row := {"layer": name, "grad_norm": None, "update_ratio": None})
                row.update(stats)
            order = {layer.name: k for k, layer in enumerate(self.model._compute_layers)}
            rows.sort(key=lambda row: order.get(row["layer"], len(order)))  # the model's order
            for row in rows:
                row.update(step=self.step, epoch=self.epoch)
                for column in COLUMNS:
                    row.setdefault(column, None)
            self.rows += rows
            if self.path:
                with open(self.path, "a", newline="") as f:
                    writer = csv.writer(f)
                    for row in rows:
                        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
            self._before = None
        self.step += 1

    def on_train_end(self, logs=None):
        self.model._local.flow = None  # a fit that stopped mid-step leaves no hook behind

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> GradientFlow:
        """The rows a GradientFlow wrote to `path`, to plot them again (`series`, `plot`)."""
        flow = cls()
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                flow.rows.append({key: (row[key] if key == "layer" else
                                        None if row[key] == "" else
                                        int(row[key]) if key in ("step", "epoch") else
                                        float(row[key])) for key in COLUMNS})
        return flow

    def series(self, column: str = "grad_norm") -> dict[str, tuple[list[int], list[float]]]:
        """{layer: (steps, values)} of one column, layers in the model's order."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        for row in self.rows:
            if row.get(column) is not None:
                steps, values = out.setdefault(row["layer"], ([], []))
                steps.append(row["step"])
                values.append(row[column])
        return out

    def plot(self, path: str | os.PathLike, columns=("grad_norm", "update_ratio"),
             title: str = "Gradient flow per layer") -> None:
        """One panel per column, one line per layer over steps, log scale; saved to `path`."""
        from minicnn.plots.training import plot_gradient_flow

        plot_gradient_flow(self, path, columns, title)
