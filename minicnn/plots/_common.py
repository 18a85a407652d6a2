"""What the plots share: saving a figure through an Agg canvas, and showing images."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    FigureCanvasAgg(fig)  # an explicit Agg canvas: rendering never needs a display
    # "tight" grows the saved area to whatever the layout left outside it (titles above
    # fixed-aspect images otherwise get cut).
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)
    return path


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
