"""Pictures of training: the History curves and per-layer gradient norms over epochs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from minicnn.metrics import ACCURACY_NAMES
from minicnn.plots._common import _save


def _history_logs(history) -> Mapping[str, list[float]]:
    """The per-epoch metrics of a History (what `fit` returns) or of its `.history` dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping) or not len(logs.get("loss", ())):
        raise ValueError(
            "Invalid value for argument `history`. Expected a History (what `fit` returns) or "
            f"its `.history` dict with a non-empty 'loss' list. Received {history!r}")
    return logs


def plot_history(history, path: str | os.PathLike) -> str:
    """Accuracy and loss per epoch, training beside validation, as the notebook plots them.

    Args:
        history: a History, or its dict {"loss": [...], "accuracy": [...], "val_loss": [...],
            "val_accuracy": [...]} (one value per epoch; the validation and accuracy curves
            are drawn when present).
        path: where to write the PNG.

    Returns:
        `path`, as a string.
    """
    logs = _history_logs(history)
    accuracy = next((key for key in ACCURACY_NAMES if key in logs), None)
    panels = [("Loss", "loss")] if accuracy is None else [("Accuracy", accuracy), ("Loss", "loss")]
    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    for ax, (title, key) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels,
                                strict=True):
        for name in (key, f"val_{key}"):
            if name in logs:
                values = logs[name]
                # Epochs count from 1 as fit prints them; markers keep a 1-epoch run visible.
                ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs
        ax.grid(alpha=0.3)
        # Accuracy rises and loss falls: put each legend where its curves are not.
        ax.legend(loc="lower right" if title == "Accuracy" else "upper right")
    return _save(fig, path)


def _gradient_norm_series(norms, epochs) -> tuple[list, str]:
    """[(name, x, values), ...] and the x-axis label, checked."""
    if not isinstance(norms, Mapping) or not norms:
        raise ValueError(f"Invalid value for argument `norms`. Expected a non-empty mapping "
                         f"name -> sequence of gradient norms. Received {norms!r}")
    series = []
    for name, values in norms.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or np.any(values < 0):
            raise ValueError(f"Invalid value for argument `norms`. Expected each entry to be a "
                             f"non-empty sequence of non-negative floats. Received {name!r}: "
                             f"{values!r}")
        series.append((str(name), values))
    label = "Epoch"
    lengths = {len(values) for _, values in series}
    if isinstance(epochs, (int, np.integer)) and epochs > 0:
        # The values were recorded at evenly spaced steps over `epochs` epochs.
        xs = [np.arange(1, len(v) + 1) * epochs / len(v) for _, v in series]
        per_epoch = max(lengths) / epochs
        if per_epoch != 1:
            label = f"Epoch ({per_epoch:g} records per epoch)"
    elif epochs is None:
        xs = [np.arange(1, len(v) + 1) for _, v in series]
    else:
        x = np.asarray(epochs, dtype=np.float64)
        if x.ndim != 1 or lengths != {len(x)}:
            raise ValueError(f"Invalid value for argument `epochs`. Expected None, a positive "
                             f"number of epochs, or one epoch per recorded value (lengths "
                             f"{sorted(lengths)}). Received epochs={epochs!r}")
        xs = [x] * len(series)
    return [(name, x, v) for (name, v), x in zip(series, xs, strict=True)], label


def plot_gradient_norms(norms: Mapping[str, Sequence[float]], path: str | os.PathLike,
                        epochs: int | Sequence[float] | None = None) -> str:
    """Gradient norms over training, one line per layer (or parameter), on a log scale.

    Args:
        norms: name -> the norm |dL/dW| at each record, e.g. `BackwardSummaryLogger`'s
            `gradient_norms` ({"conv2d": [0.8, 0.5, ...], ...}, one value per epoch).
            Names "layer/param" (e.g. "conv2d/kernel", "conv2d/bias") share a layer's color.
        path: where to write the PNG.
        epochs: None when each sequence holds one value per epoch (drawn at 1, 2, ...); an int E
            when the values were recorded at evenly spaced steps over E epochs; or the epoch of
            each value, a sequence as long as each of `norms`'s.

    Returns:
        `path`, as a string. A log scale, because norms of different layers differ by orders of
        magnitude; a zero norm (a layer that gets no gradient) cannot be drawn on it and is named
        in the legend instead.
    """
    series, xlabel = _gradient_norm_series(norms, epochs)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    colors, drawn = {}, {}  # one color per layer, one line style per parameter of it
    for name, x, values in series:
        layer = name.rsplit("/", 1)[0]
        color = colors.setdefault(layer, f"C{len(colors) % 10}")
        style = ("-", "--", ":", "-.")[drawn.get(layer, 0) % 4]
        drawn[layer] = drawn.get(layer, 0) + 1
        zeros = int(np.sum(values == 0))
        label = name if not zeros else (
            f"{name}: all zero (not drawn)" if zeros == len(values) else
            f"{name}: zero at {zeros} of {len(values)} (not drawn)")
        ax.plot(x, np.where(values > 0, values, np.nan), style, color=color, marker="o",
                markersize=3, label=label)
    if any(np.any(values > 0) for _, _, values in series):
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "every gradient norm is zero", transform=ax.transAxes, ha="center")
    if epochs is None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs
    ax.set_title("Gradient norm per layer")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("|dL/dW| (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return _save(fig, path)


_FLOW_TITLES = {"grad_norm": "|dL/dW|", "update_ratio": "|dW| / |W| of the step",
                "act_std": "std of the output", "saturated": "share saturated",
                "zeros": "share of ReLU zeros"}


def plot_gradient_flow(flow, path: str | os.PathLike,
                       columns: Sequence[str] = ("grad_norm", "update_ratio"),
                       title: str = "Gradient flow per layer") -> str:
    """What `callbacks.GradientFlow` recorded: one panel per column, one line per layer over
    training steps, log scale (a layer whose values are all 0 or missing is left out).

    Args:
        flow: a GradientFlow after fit, or anything with its `series(column)` method.
        path: where to write the PNG.
        columns: which of its columns to draw (grad_norm, update_ratio, act_mean, act_std,
            saturated, zeros).
    """
    fig = Figure(figsize=(8, 3.2 * len(columns)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(columns), 1, sharex=True))
    for ax, column in zip(axes, columns, strict=True):
        series = flow.series(column)
        for k, (layer, (steps, values)) in enumerate(series.items()):
            values = np.asarray(values, dtype=np.float64)
            if np.any(values > 0):
                ax.plot(steps, np.where(values > 0, values, np.nan), color=f"C{k % 10}",
                        label=layer)
        if ax.lines:
            ax.set_yscale("log")
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {column} recorded", transform=ax.transAxes, ha="center")
        ax.set_ylabel(_FLOW_TITLES.get(column, column))
        ax.grid(alpha=0.3, which="both")
    axes[0].set_title(title)
    axes[-1].set_xlabel("training step")
    return _save(fig, path)
