"""Pictures of your own digits, made to look like MNIST images for a model trained on MNIST.

`read_digit_image(path)`, what `minicnn predict MODEL digit.png` runs, reads a PNG (or, through
Pillow, JPEG and the rest), turns it gray, makes the digit bright on black as MNIST has it, pads
it to a square and resizes it to 28x28. matplotlib, which reads the file, is imported on the
first call, so importing this module costs only NumPy.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_digit_image"]

MNIST_SIDE = 28  # an MNIST image is MNIST_SIDE x MNIST_SIDE pixels


def read_digit_image(path: str | os.PathLike) -> np.ndarray:
    """A picture of a handwritten digit, made to look like an MNIST image.

    The rules, in order:
      1. read with `matplotlib.image.imread` (PNG natively, other formats through Pillow);
         integer pixels are scaled to [0, 1];
      2. colour to gray with the ITU-R 601 weights (0.299 R + 0.587 G + 0.114 B); a transparent
         pixel counts as white (alpha-composited onto a white page);
      3. MNIST digits are bright strokes on black. If the image's border (its outermost rows and
         columns, which are background in a picture of one digit) averages above 0.5, it is a dark
         digit on a light page and is inverted (1 - x);
      4. a non-square image is padded with background (black, after step 3) to a square, so the
         digit keeps its proportions;
      5. resized to 28x28: each output pixel averages the block of input pixels it covers when
         shrinking; the nearest input pixel is repeated when enlarging.
    MNIST digits also sit in a 20x20 box centred by mass; draw yours about that size, centred,
    for the best results.

    Returns:
        (28, 28) float32 in [0, 1].

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image, or not a 2-D gray/RGB/RGBA picture.
    """
    import matplotlib.image

    try:
        pixels = matplotlib.image.imread(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"image file '{path}' does not exist") from e
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unreadable images
        raise ValueError(f"cannot read image '{path}': {e}") from e
    if np.issubdtype(pixels.dtype, np.integer):
        pixels = pixels / np.iinfo(pixels.dtype).max
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim == 3 and pixels.shape[-1] in (1, 2, 3, 4):
        channels = pixels.shape[-1]
        color, alpha = (pixels, None) if channels in (1, 3) else (pixels[..., :-1],
                                                                   pixels[..., -1])
        gray = color[..., 0] if color.shape[-1] == 1 else color @ [0.299, 0.587, 0.114]
        if alpha is not None:
            gray = gray * alpha + (1.0 - alpha)
    elif pixels.ndim == 2:
        gray = pixels
    else:
        raise ValueError(f"image '{path}' has shape {pixels.shape}; expected a gray (H, W) or "
                         f"an RGB/RGBA (H, W, 3|4) picture")
    if min(gray.shape) == 0:
        raise ValueError(f"image '{path}' is empty (shape {gray.shape})")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:
        gray = 1.0 - gray
    height, width = gray.shape
    size = max(height, width)
    top, left = (size - height) // 2, (size - width) // 2
    square = np.zeros((size, size))
    square[top:top + height, left:left + width] = gray
    return _resize_square(square, MNIST_SIDE).astype(np.float32)


def _resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """(S, S) -> (size, size): block means when shrinking, nearest pixel when enlarging."""
    n = len(image)
    if n < size:
        index = np.arange(size) * n // size
        return image[np.ix_(index, index)]
    edges = np.round(np.linspace(0, n, size + 1)).astype(np.intp)  # strictly increasing: n >= size
    sums = np.add.reduceat(np.add.reduceat(image, edges[:-1], axis=0), edges[:-1], axis=1)
    counts = np.diff(edges)
    return sums / np.outer(counts, counts)
