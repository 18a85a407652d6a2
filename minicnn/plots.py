"""Pictures of a model and its training, written straight to PNG files.

Each function draws on its own `matplotlib.figure.Figure` with the Agg canvas and never goes
through pyplot: nothing is shown, no global figure state is touched, and it works the same on a
laptop, a server without a display, or CI. Each takes the output path and returns it; showing a
picture is the caller's business.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_history", "plot_model", "plot_predictions"]

_ACCURACY_KEYS = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy")


def _save(fig: Figure, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    FigureCanvasAgg(fig)  # an explicit Agg canvas: rendering never needs a display
    # "tight" grows the saved area to whatever the layout left outside it (titles above
    # fixed-aspect images otherwise get cut).
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)
    return path


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
    accuracy = next((key for key in _ACCURACY_KEYS if key in logs), None)
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


def plot_predictions(images, labels, probabilities, path: str | os.PathLike) -> str:
    """Each image with its true label and the predicted digit (and its probability) as title.

    Args:
        images: (N, H, W) or (N, H, W, 1) grayscale images, any scale.
        labels: (N,) class indices, or (N, C) one-hot rows.
        probabilities: (N, C) predicted class probabilities (what `model.predict` returns).
        path: where to write the PNG.

    Returns:
        `path`, as a string. A wrong prediction has its title in red.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if labels.ndim == 2:
        labels = labels.argmax(axis=-1)
    n = len(images)
    if images.ndim != 3 or n == 0:
        raise ValueError(f"Invalid value for argument `images`. Expected a non-empty array of "
                         f"grayscale images (N, H, W) or (N, H, W, 1). Received shape "
                         f"{np.shape(images)}")
    if labels.shape != (n,) or probabilities.ndim != 2 or len(probabilities) != n:
        raise ValueError(f"Invalid arguments `labels` and `probabilities`. Expected one label "
                         f"and one row of probabilities per image ({n} images). Received labels "
                         f"of shape {labels.shape} and probabilities of shape "
                         f"{probabilities.shape}")
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.2 * cols, 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, image, label, probs in zip(axes, images, labels, probabilities, strict=False):
        digit = int(probs.argmax())
        ax.imshow(image, cmap="gray")
        ax.set_title(f"label {int(label)}\npredicted {digit} ({probs[digit]:.1%})",
                     fontsize=10, color="black" if digit == label else "red")
    for ax in axes:
        ax.axis("off")
    return _save(fig, path)


def plot_model(model, path: str | os.PathLike) -> str | None:
    """The model drawn as 3-D blocks by visualkeras, or None when visualkeras is not installed.

    visualkeras (in the `dev` extra) reads only layer classes and output shapes, which minicnn
    models have with Keras's names, so it draws them unchanged. It imports TensorFlow, which takes
    a few seconds.
    """
    try:
        import visualkeras
    except ImportError:
        return None
    path = os.fspath(path)
    with warnings.catch_warnings():
        # visualkeras warns about a deprecated parameter of its own that we never pass.
        warnings.filterwarnings("ignore", message=".*legend_text_spacing_offset",
                                category=UserWarning)
        visualkeras.layered_view(model, legend=True).save(path)
    return path
