"""Pictures of results: predictions with their probabilities, the confusion matrix, and the
misclassified images."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from minicnn.metrics import class_labels, confusion_matrix
from minicnn.plots._common import _as_images, _class_names, _display_range, _save, _show


def plot_predictions(images, labels, probabilities, path: str | os.PathLike,
                     class_names: Sequence[str] | None = None) -> str:
    """Each image with its true label and the predicted class (and its probability) as title.

    Args:
        images: (N, H, W) or (N, H, W, 1) grayscale images, or (N, H, W, 3) RGB ones, any scale.
        labels: (N,) class indices, or (N, C) one-hot rows.
        probabilities: (N, C) predicted class probabilities (what `model.predict` returns).
        path: where to write the PNG.
        class_names: C names for the titles; default the class indices 0 .. C-1.

    Returns:
        `path`, as a string. A wrong prediction has its title in red.
    """
    images, labels = _as_images(images), np.asarray(labels)
    probabilities = np.asarray(probabilities)
    if labels.ndim == 2:
        labels = labels.argmax(axis=-1)
    n = len(images)
    if n == 0:
        raise ValueError(f"Invalid value for argument `images`. Expected a non-empty array of "
                         f"images. Received shape {np.shape(images)}")
    if labels.shape != (n,) or probabilities.ndim != 2 or len(probabilities) != n:
        raise ValueError(f"Invalid arguments `labels` and `probabilities`. Expected one label "
                         f"and one row of probabilities per image ({n} images). Received labels "
                         f"of shape {labels.shape} and probabilities of shape "
                         f"{probabilities.shape}")
    names = _class_names(class_names, probabilities.shape[1])
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(2.2 * cols, 2.5 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, image, label, probs in zip(axes, images, labels, probabilities, strict=False):
        predicted = int(probs.argmax())
        _show(ax, image, *_display_range(image))
        ax.set_title(f"label {names[label]}\npredicted {names[predicted]} "
                     f"({probs[predicted]:.1%})",
                     fontsize=10, color="black" if predicted == label else "red")
    for ax in axes:
        ax.axis("off")
    return _save(fig, path)


def plot_confusion_matrix(y_true, y_pred, path: str | os.PathLike,
                          class_names: Sequence[str] | None = None,
                          normalize: bool = False) -> str:
    """The confusion matrix as a heat map, true class down, predicted class across.

    Args:
        y_true: (N,) class indices, or (N, K) one-hot rows.
        y_pred: (N,) class indices, or (N, K) rows, e.g. what `model.predict` returns.
        path: where to write the PNG.
        class_names: K names for the axes' ticks; default the class indices 0 .. K-1.
        normalize: color each row by its share of the true class (the recall on the diagonal),
            so that small classes read like large ones; the cells then show that share as well as
            the count.

    Returns:
        `path`, as a string.
    """
    counts = confusion_matrix(y_true, y_pred,
                              num_classes=None if class_names is None else len(class_names))
    K, N = len(counts), int(counts.sum())
    if N == 0:
        raise ValueError("Invalid arguments `y_true` and `y_pred`. Expected at least one sample. "
                         "Received none")
    names = [str(k) for k in range(K)] if class_names is None else [str(n) for n in class_names]
    rows = counts.sum(axis=1, keepdims=True)
    shares = counts / np.maximum(rows, 1)  # a class with no samples: a row of zeros
    values = shares if normalize else counts
    fig = Figure(figsize=(0.6 * K + 2.5, 0.6 * K + 1.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, shrink=0.8,
                 label="share of the true class" if normalize else "samples")
    if K <= 30:  # beyond that the numbers no longer fit their cells
        dark = values.max() / 2
        for i in range(K):
            for j in range(K):
                text = (f"{shares[i, j]:.0%}\n{counts[i, j]}" if normalize and counts[i, j]
                        else str(counts[i, j]))
                color = ("white" if values[i, j] > dark else
                         "black" if counts[i, j] else "lightgray")
                ax.text(j, i, text, ha="center", va="center", color=color,
                        fontsize=7.5 if normalize else 9)
    ax.set_xticks(range(K), names)
    ax.set_yticks(range(K), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix: {N} samples, {np.trace(counts) / N:.2%} correct"
                 + (" (rows normalized)" if normalize else ""))
    return _save(fig, path)


def plot_misclassified(images, y_true, y_pred, path: str | os.PathLike, max_images: int = 25,
                       probabilities=None, class_names: Sequence[str] | None = None) -> str:
    """A grid of the images the model got wrong, each titled with predicted and true label.

    Args:
        images: (N, H, W) or (N, H, W, 1) grayscale images, or (N, H, W, 3) RGB ones, uint8 or
            floats (in [0, 1] or not).
        y_true: (N,) class indices, or (N, K) one-hot rows.
        y_pred: (N,) class indices, or (N, K) rows (their argmax is the prediction).
        path: where to write the PNG.
        max_images: at most this many mistakes are drawn, the first ones in the order given.
        probabilities: optional (N, K) predicted probabilities; each title then gives the
            probability of the (wrong) predicted class, i.e. how sure the mistake was.
        class_names: K names for the titles; default the class indices 0 .. K-1.

    Returns:
        `path`, as a string. Each title starts with the image's index in `images`. With no
        mistakes at all, the picture is one panel saying so.
    """
    images = _as_images(images)
    true, pred, _ = class_labels(y_true, y_pred)
    if len(images) != len(true):
        raise ValueError(f"Invalid arguments `images` and `y_true`. Expected one label per "
                         f"image. Received {len(images)} images and {len(true)} labels")
    if probabilities is not None:
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 2 or len(probabilities) != len(true) or (
                probabilities.shape[1] <= max(pred.max(initial=0), 0)):
            raise ValueError(f"Invalid value for argument `probabilities`. Expected one row of "
                             f"class probabilities per image ({len(true)} images). Received "
                             f"shape {probabilities.shape}")
    if not isinstance(max_images, (int, np.integer)) or max_images <= 0:
        raise ValueError(f"Invalid value for argument `max_images`. Expected a strictly positive "
                         f"integer. Received max_images={max_images!r}")
    wrong = np.flatnonzero(true != pred)
    if len(wrong) == 0:
        fig = Figure(figsize=(5, 1.5), layout="constrained")
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"No misclassified images:\nall {len(true)} predictions are correct.",
                ha="center", va="center", fontsize=13, transform=ax.transAxes)
        return _save(fig, path)
    shown = wrong[:max_images]
    num_classes = int(max(true.max(), pred.max())) + 1
    names = _class_names(class_names, len(class_names) if class_names is not None else num_classes)
    if len(names) < num_classes:
        raise ValueError(f"Invalid value for argument `class_names`. Expected a name for each "
                         f"of the {num_classes} classes. Received {len(names)}")

    cols = min(len(shown), max(5, math.ceil(math.sqrt(len(shown)))))
    rows = math.ceil(len(shown) / cols)
    vmin, vmax = _display_range(images[shown])
    fig = Figure(figsize=(1.9 * cols, 2.2 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, k in zip(axes, shown, strict=False):
        _show(ax, images[k], vmin, vmax)
        sure = "" if probabilities is None else f" ({probabilities[k, pred[k]]:.0%})"
        ax.set_title(f"#{k}: predicted {names[pred[k]]}{sure}\ntrue {names[true[k]]}", fontsize=9)
    fig.suptitle(f"Misclassified: {len(wrong)} of {len(true)} ({len(wrong) / len(true):.2%})"
                 + (f", the first {len(shown)} shown" if len(shown) < len(wrong) else ""))
    return _save(fig, path)
