"""Pictures of a model and its training, written straight to PNG files.

Training: `plot_history` (accuracy and loss per epoch), `plot_gradient_norms` (per-layer gradient
norms over training). Inside the network: `plot_filters` (the first layer's kernels),
`plot_feature_maps` (what every conv layer outputs for one image), `plot_model`. Results:
`plot_predictions`, `plot_confusion_matrix` (its counts are `minicnn.metrics.confusion_matrix`),
`plot_misclassified`.

Each function draws on its own `matplotlib.figure.Figure` with the Agg canvas and never goes
through pyplot: nothing is shown, no global figure state is touched, and it works the same on a
laptop, a server without a display, or CI. Each takes the output path and returns it; showing a
picture is the caller's business.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from minicnn.layers.conv import Conv2D
from minicnn.metrics import ACCURACY_NAMES, class_labels, confusion_matrix

__all__ = [
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_filters",
    "plot_gradient_norms",
    "plot_history",
    "plot_misclassified",
    "plot_model",
    "plot_predictions",
]

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


# -- inside the network ---------------------------------------------------------------------------
def _first_conv_kernel(layer_or_model) -> tuple[np.ndarray, str]:
    """The kernel (KH, KW, C, F) to draw, and a name for it in the title."""
    if isinstance(layer_or_model, np.ndarray):
        kernel, name = layer_or_model, "kernel"
    else:
        layer = layer_or_model
        if not isinstance(layer, Conv2D):
            layer = next((lay for lay in getattr(layer_or_model, "layers", ())
                          if isinstance(lay, Conv2D)), None)
        if layer is None:
            kinds = [type(lay).__name__ for lay in getattr(layer_or_model, "layers", ())]
            raise ValueError(
                "Invalid value for argument `layer_or_model`. Expected a Conv2D layer, a model "
                "with one, or a kernel array (KH, KW, C, F). Received "
                + (f"a model with layers {kinds}" if kinds else repr(layer_or_model)))
        if not layer.built:
            raise ValueError(f"Layer '{layer.name}' (Conv2D) has no weights yet: build the "
                             "model (give its first layer input_shape=...) or call it on data.")
        kernel, name = layer.kernel.value, f"'{layer.name}' (Conv2D)"
    if kernel.ndim != 4 or kernel.size == 0:
        raise ValueError(f"Invalid value for argument `layer_or_model`. Expected a kernel "
                         f"(KH, KW, C, F). Received an array of shape {kernel.shape}")
    return kernel, name


def plot_filters(layer_or_model, path: str | os.PathLike, channel: int | None = None) -> str:
    """The kernels of a conv layer as a grid of tiles, one per filter, on one color scale.

    Args:
        layer_or_model: a Conv2D layer, a model (its first Conv2D is drawn), or a kernel array
            (KH, KW, C, F) in Keras's layout.
        path: where to write the PNG.
        channel: with C > 1 input channels, the input channel whose (KH, KW) slices are drawn;
            None draws the mean over the C channels. Ignored when C == 1.

    Returns:
        `path`, as a string. The scale is symmetric around zero (blue negative, red positive), so
        a tile's colors say directly which input pattern the filter responds to.
    """
    kernel, name = _first_conv_kernel(layer_or_model)
    KH, KW, C, F = kernel.shape
    if C == 1:
        tiles, what = kernel[:, :, 0, :], "single input channel"
    elif channel is None:
        tiles, what = kernel.mean(axis=2), f"mean over the {C} input channels"
    elif isinstance(channel, (int, np.integer)) and 0 <= channel < C:
        tiles, what = kernel[:, :, channel, :], f"input channel {channel} of {C}"
    else:
        raise ValueError(f"Invalid value for argument `channel`. Expected None or an integer in "
                         f"[0, {C}). Received channel={channel!r}")
    # One scale for all tiles, symmetric so that zero is always the neutral middle color.
    limit = float(np.abs(tiles).max()) or 1.0
    cols = math.ceil(math.sqrt(F))
    rows = math.ceil(F / cols)
    fig = Figure(figsize=(1.1 * cols + 1.2, 1.1 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for f, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if f < F:
            image = ax.imshow(tiles[:, :, f], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(str(f), fontsize=8, pad=2)
    fig.colorbar(image, ax=axes, shrink=0.8, label="weight")
    fig.suptitle(f"{name}: {F} filters of {KH}x{KW} ({what})")
    return _save(fig, path)


def _run_to_last_conv(model, image: np.ndarray) -> tuple[np.ndarray, list]:
    """The image (H, W, C), and [(Conv2D layer, its output (H_out, W_out, F)), ...].

    Runs the model's own inference pass inside a recording (`model.record()`: the reference
    layers one at a time, every output kept), so every conv output exists on its own, in a
    Sequential or a graph alike.
    """
    x = np.asarray(image)
    if x.ndim == 3:
        x = x[np.newaxis]
    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"Invalid value for argument `image`. Expected one image (H, W, C) or "
                         f"(1, H, W, C). Received shape {x.shape}")
    layers = list(getattr(model, "layers", ()))
    if not any(isinstance(layer, Conv2D) for layer in layers):
        raise ValueError(f"Invalid value for argument `model`. Expected a model with at least "
                         f"one Conv2D layer. Received layers "
                         f"{[type(layer).__name__ for layer in layers]}")
    # Cast as predict does (no rescaling): the maps show what the model computes for this input.
    with model.record() as recording:
        model(x.astype(getattr(model, "dtype", np.float32), copy=False))
    outputs = [(model.get_layer(r.name), r.output[0]) for r in recording.layers
               if r.class_name == "Conv2D"]
    return x[0], outputs


def plot_feature_maps(model, image, path: str | os.PathLike, max_maps: int = 16) -> str:
    """What each Conv2D layer of `model` outputs for one image: a row of channels per layer.

    Args:
        model: a model whose `layers` include at least one Conv2D (e.g. `mnist_cnn()`).
        image: one input (H, W, C) or (1, H, W, C), scaled as the model's training data was (it
            is cast to the model's dtype, as `predict` does, and not rescaled).
        path: where to write the PNG.
        max_maps: at most this many channels (the first ones) are drawn per layer.

    Returns:
        `path`, as a string. The top row is the input; below it, one row per Conv2D layer, its
        output (H_out, W_out, F) after the activation, on one color scale per layer.
    """
    if not isinstance(max_maps, (int, np.integer)) or max_maps <= 0:
        raise ValueError(f"Invalid value for argument `max_maps`. Expected a strictly positive "
                         f"integer. Received max_maps={max_maps!r}")
    x, outputs = _run_to_last_conv(model, image)
    rows = [("input", x, "gray", _display_range(x))]  # (title, maps (H, W, C), colormap, range)
    for layer, y in outputs:
        rows.append((f"{layer.name} (Conv2D) output", y, "viridis",
                     (float(y.min()), float(y.max()))))
    # Up to 8 maps side by side, wrapped onto more lines for a layer that shows more.
    shown = [min(max_maps, maps.shape[-1]) for _, maps, _, _ in rows]
    cols = min(8, max(shown))
    lines = [math.ceil(n / cols) for n in shown]
    fig = Figure(figsize=(1.3 * cols + 1.5, 1.45 * sum(lines) + 0.35 * len(rows)),
                 layout="constrained")
    subfigs = fig.subfigures(len(rows), 1, height_ratios=[n + 0.3 for n in lines])
    for subfig, n, (name, maps, cmap, (vmin, vmax)) in zip(subfigs, shown, rows, strict=True):
        subfig.suptitle(f"{name} {tuple(maps.shape)}"
                        + (f": first {n} of {maps.shape[-1]} channels" if n < maps.shape[-1]
                           else ""), fontsize=10)
        axes = subfig.subplots(math.ceil(n / cols), cols, squeeze=False)
        for c, ax in enumerate(axes.ravel()):
            ax.set_axis_off()
            if c < n:
                drawn = ax.imshow(maps[:, :, c], cmap=cmap, vmin=vmin, vmax=vmax)
                ax.set_title(f"channel {c}", fontsize=7, pad=2)
        subfig.colorbar(drawn, ax=axes, shrink=0.9,
                        label="pixel" if name == "input" else "activation")
    return _save(fig, path)


# -- training -------------------------------------------------------------------------------------
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


# -- results --------------------------------------------------------------------------------------
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


def _as_images(images, argument: str = "images") -> np.ndarray:
    """(N, H, W) gray or (N, H, W, 3) RGB: what imshow draws; (N, H, W, 1) loses its axis."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 and not (images.ndim == 4 and images.shape[-1] == 3):
        raise ValueError(f"Invalid value for argument `{argument}`. Expected grayscale images "
                         f"(N, H, W) or (N, H, W, 1), or RGB ones (N, H, W, 3). Received shape "
                         f"{images.shape}")
    return images


def _show(ax, image: np.ndarray, vmin: float, vmax: float) -> None:
    """Draw one (H, W) gray or (H, W, 3) RGB image, its values from vmin (black) to vmax."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax)
    else:  # imshow takes RGB in [0, 1] as it is: scale it there
        ax.imshow(np.clip((image - vmin) / ((vmax - vmin) or 1.0), 0.0, 1.0))


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(k) for k in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"Invalid value for argument `class_names`. Expected {num_classes} "
                         f"names. Received {len(class_names)}")
    return [str(name) for name in class_names]


def _display_range(images: np.ndarray) -> tuple[float, float]:
    """The pixel range to draw `images` on: 0-255 for uint8, 0-1 for floats in it, else theirs."""
    if images.dtype == np.uint8:
        return 0.0, 255.0
    low, high = float(images.min()), float(images.max())
    return (0.0, 1.0) if 0 <= low and high <= 1 else (low, high)


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
