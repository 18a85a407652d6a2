"""What compile() asked to be reported: the loss tracker and the metrics, over an epoch or an
evaluate call (Keras's CompileMetrics).

The loss is tracked as Keras tracks it: each batch's loss (its reduction, penalties included)
weighted by the batch's size, so an epoch's loss is the mean over its samples. `metrics` see no
sample weights and `weighted_metrics` see them, as in Keras 3. Logs come out in Keras 3's order
(sorted by name: "accuracy", "loss", ...); `ordered()` gives evaluate's list, loss first and the
metrics in compile order.
"""

from __future__ import annotations

import copy

import numpy as np

from minicnn import metrics as metrics_module


class CompiledMetrics:
    """The loss and compile()'s metrics for targets like y_probe and outputs like out_probe.

    `fresh=True` makes copies of metric objects the user passed (evaluate and the validation
    pass: concurrent calls never share state); training updates the user's own objects, which
    then hold the last epoch's result, as in Keras.
    """

    def __init__(self, metric_ids: list, weighted_ids: list, y_probe: np.ndarray,
                 out_probe: np.ndarray, fresh: bool = False) -> None:
        def make(identifier):
            metric = metrics_module.get(identifier, y_probe, out_probe)
            return copy.deepcopy(metric) if fresh and metric is identifier else metric

        plain = [make(i) for i in metric_ids]
        names = {m.name for m in plain}
        weighted = []
        # Keras's names before the "weighted_" prefix, in compile order: evaluate's list order
        self._order = ["loss", *(m.name for m in plain)]
        for identifier in weighted_ids:
            metric = make(identifier)
            self._order.append(metric.name)
            if metric.name in names:  # Keras's rule when the same metric is asked twice
                metric = copy.copy(metric)
                metric.name = f"weighted_{metric.name}"
            weighted.append(metric)
        self.metrics = [(m, False) for m in plain] + [(m, True) for m in weighted]
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.seen = 0.0, 0
        for metric, _ in self.metrics:
            metric.reset_state()

    def update(self, loss_sum: float, y: np.ndarray, out: np.ndarray,
               sample_weight: np.ndarray | None) -> None:
        """Add a batch: its summed loss (batch loss times its size), targets and outputs."""
        self.loss_sum += loss_sum
        self.seen += len(out)
        for metric, weighted in self.metrics:
            metric.update_state(y, out, sample_weight if weighted else None)

    def logs(self) -> dict[str, float]:
        logs = {"loss": self.loss_sum / self.seen if self.seen else 0.0}
        for metric, _ in self.metrics:
            logs[metric.name] = _number(metric.result())
        return dict(sorted(logs.items()))

    def ordered(self) -> list[float]:
        """What evaluate returns without return_dict, by Keras 3's rule: the logs named by
        the loss and the metrics in compile order (a weighted metric by its name before the
        "weighted_" prefix, so `metrics=["accuracy"], weighted_metrics=["accuracy"]` lists the
        unweighted accuracy twice, as Keras does), then any other log in sorted order."""
        logs = self.logs()
        return [logs[k] for k in self._order if k in logs] + [
            logs[k] for k in sorted(logs) if k not in self._order]


def _number(value):
    return float(value) if np.ndim(value) == 0 else [float(v) for v in value]
