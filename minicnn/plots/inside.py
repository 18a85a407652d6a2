"""Pictures inside the network: the model drawn by visualkeras, the first layer's filters,
what every conv layer outputs for one image, and which pixels made a prediction (saliency and
Grad-CAM)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from minicnn.layers.conv import Conv2D
from minicnn.plots._common import _as_images, _class_names, _display_range, _save, _show


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


def plot_saliency(model, images, path: str | os.PathLike, labels=None, layer: str | None = None,
                  class_names: Sequence[str] | None = None) -> str:
    """Which pixels made each prediction: per image (a row), the image, its saliency map
    (|dL/dx|, L = -log p of the class explained) and its Grad-CAM at a conv layer laid over it,
    from one forward and one backward pass (`model.explain`, minicnn/models/explain.py).

    Args:
        model: a classifier with image input (N, H, W, C).
        images: (N, H, W, C), scaled as the model's training data was.
        path: where to write the PNG.
        labels: the class each image is explained for (default: the predicted one).
        layer: the conv layer of Grad-CAM (default: the last).
        class_names: names for the titles (default: the class indices).

    Returns:
        `path`, as a string.
    """
    e = model.explain(np.asarray(images), labels=labels, layer=layer)
    x = _as_images(images)  # for drawing: a gray image loses its channel axis
    names = _class_names(class_names, max(int(e.probabilities.shape[-1]), 2))
    columns = 3 if e.grad_cam is not None else 2
    fig = Figure(figsize=(2.4 * columns, 2.4 * len(x) + 0.4), layout="constrained")
    axes = fig.subplots(len(x), columns, squeeze=False)
    low, high = _display_range(x)
    for n, row in enumerate(axes):
        for ax in row:
            ax.set_axis_off()
        _show(row[0], x[n], low, high)
        row[0].set_title(f"explained: {names[int(e.labels[n])]}", fontsize=9)
        top = float(e.saliency[n].max()) or 1.0
        row[1].imshow(e.saliency[n] / top, cmap="inferno", vmin=0, vmax=1)
        row[1].set_title("saliency |dL/dx|", fontsize=9)
        if e.grad_cam is not None:
            _show(row[2], x[n], low, high)
            row[2].imshow(e.grad_cam[n], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            row[2].set_title(f"Grad-CAM at {e.layer}", fontsize=9)
    return _save(fig, path)
