"""Pictures of your own, made to look like the images of the set a model was trained on.

`read_gray_image(path)`, what `minicnn predict MODEL picture.png` runs for an MNIST or
Fashion-MNIST model, turns a picture gray, makes the object bright on black as those sets have
it, pads it to a square and resizes it to 28x28. `read_color_image(path)`, for a CIFAR-10 model,
keeps the colours, crops the centre square and resizes it to 32x32. Both read PNG, JPEG, GIF,
BMP, TIFF, WebP or PPM files; Pillow, which reads them, is imported on the first call, so
importing this module costs only NumPy.

A picture is a decompression bomb waiting to happen: a 400 KB PNG can declare 20000x20000
pixels, 6 GB once decoded. Pillow reads the size from the file's header before decoding
anything, so a picture of more than MAX_PIXELS is refused at that point, for the cost of the
header.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import numpy as np

__all__ = ["MAX_PIXELS", "read_color_image", "read_gray_image"]

MNIST_SIDE = 28  # an MNIST (or Fashion-MNIST) image is MNIST_SIDE x MNIST_SIDE pixels
CIFAR10_SIDE = 32  # a CIFAR-10 image is CIFAR10_SIDE x CIFAR10_SIDE pixels, RGB
# 4096 x 4096: a 12-megapixel phone photo fits; reading an RGBA one this size peaks near 0.5 GB.
MAX_PIXELS = 2**24
# Pillow's common raster formats. The rest are left out on purpose: EPS, for one, runs
# Ghostscript, and no picture needs it.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601: R, G, B to luma


def read_gray_image(path: str | os.PathLike) -> np.ndarray:
    """A picture of one digit (or one garment), made to look like an MNIST image.

    The rules, in order:
      1. read with Pillow (a picture of more than MAX_PIXELS pixels is refused from its header);
         integer pixels are scaled to [0, 1] (8-bit by 255, 16-bit gray by 65535), palette and
         other modes are converted to RGBA first;
      2. colour to gray with the ITU-R 601 weights (0.299 R + 0.587 G + 0.114 B); a transparent
         pixel counts as white (alpha-composited onto a white page);
      3. MNIST digits and Fashion-MNIST garments are bright on black. If the image's border (its
         outermost rows and columns, which are background in a picture of one object) averages
         above 0.5, it is a dark object on a light page and is inverted (1 - x);
      4. a non-square image is padded with background (black, after step 3) to a square, so the
         object keeps its proportions;
      5. resized to 28x28: each output pixel averages the block of input pixels it covers when
         shrinking; the nearest input pixel is repeated when enlarging.
    MNIST digits also sit in a 20x20 box centred by mass; draw yours about that size, centred,
    for the best results.

    Returns:
        (28, 28) float32 in [0, 1].

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image in one of FORMATS, or it is larger than
            MAX_PIXELS, or it is empty.
    """
    pixels = _read_pixels(path)
    channels = pixels.shape[-1]  # 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    weights = (1.0,) if channels <= 2 else GRAY_WEIGHTS
    gray = np.zeros(pixels.shape[:2])
    for weight, channel in zip(weights, _on_white(pixels), strict=False):
        gray += weight * channel
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:
        gray = 1.0 - gray
    height, width = gray.shape
    size = max(height, width)
    top, left = (size - height) // 2, (size - width) // 2
    square = np.zeros((size, size))
    square[top:top + height, left:left + width] = gray
    return _resize_square(square, MNIST_SIDE).astype(np.float32)


def read_color_image(path: str | os.PathLike) -> np.ndarray:
    """A photo of one object, made to look like a CIFAR-10 image.

    The rules, in order:
      1. read as `read_gray_image` reads (MAX_PIXELS, scaling to [0, 1], other modes to RGBA);
         a gray picture gives the same value to R, G and B; a transparent pixel counts as white;
      2. the centre square is kept (the longer side cropped evenly on both ends), as CIFAR-10's
         pictures are square with the object in the middle;
      3. resized to 32x32 as `read_gray_image` resizes, each channel on its own.
    Nothing is inverted: CIFAR-10 images are photos, light or dark.

    Returns:
        (32, 32, 3) float32 in [0, 1], channels R, G, B (as `cifar10.load_data` gives them,
        divided by 255).

    Raises:
        FileNotFoundError, ValueError: as `read_gray_image`.
    """
    pixels = _read_pixels(path)
    height, width = pixels.shape[:2]
    size = min(height, width)
    top, left = (height - size) // 2, (width - size) // 2
    square = pixels[top:top + size, left:left + size]  # a view: nothing copied yet
    channels = [_resize_square(channel, CIFAR10_SIDE) for channel in _on_white(square)]
    if len(channels) == 1:  # gray: the same value in R, G and B
        channels *= 3
    return np.stack(channels, axis=-1).astype(np.float32)


def _on_white(pixels: np.ndarray) -> Iterator[np.ndarray]:
    """Each colour channel of `pixels` (H, W, C) as float64 in [0, 1], composited onto white if
    the last channel is alpha (C = 2 or 4). One channel at a time: a large picture is never
    held as float64 in all its channels at once."""
    scale = np.iinfo(pixels.dtype).max if np.issubdtype(pixels.dtype, np.integer) else 1
    channels = pixels.shape[-1]
    alpha = pixels[..., -1] / scale if channels in (2, 4) else None
    for c in range(1 if channels <= 2 else 3):
        channel = pixels[..., c] / scale
        if alpha is not None:
            channel *= alpha
            channel += 1.0 - alpha
        yield channel


def _read_pixels(path: str | os.PathLike) -> np.ndarray:
    """The picture's pixels as Pillow decodes them, (H, W, C), bool or integers; never empty."""
    from PIL import Image

    try:
        # Pillow warns above its own limit (89 million pixels) and refuses twice that; here
        # both are errors, reported as ours below.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=FORMATS)  # reads the header only
    except FileNotFoundError as e:
        raise FileNotFoundError(f"image file '{path}' does not exist") from e
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ValueError(f"image '{path}' is too large to read: {e}") from e
    except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image '{path}': {e}") from e
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"image '{path}' is {width}x{height} pixels, more than the "
                             f"{MAX_PIXELS:,} minicnn reads (MAX_PIXELS); a model's input needs "
                             f"no more than a few hundred pixels a side, so shrink it first")
        try:
            if image.mode == "I" and image.format == "PNG":  # 16-bit gray, in older Pillows
                pixels = np.asarray(image).astype(np.uint16)
            else:
                if image.mode not in ("1", "L", "LA", "RGB", "RGBA") and not (
                        image.mode.startswith("I;16")):
                    image = image.convert("RGBA")  # palette, CMYK, 32-bit and float pictures
                pixels = np.asarray(image)
        except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt pixel data
            raise ValueError(f"cannot read image '{path}': {e}") from e
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if min(pixels.shape[:2]) == 0:
        raise ValueError(f"image '{path}' is empty (shape {pixels.shape[:2]})")
    return pixels


def _resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """(S, S) -> (size, size) float64: block means when shrinking, nearest pixel when enlarging."""
    n = len(image)
    if n < size:
        index = np.arange(size) * n // size
        return image[np.ix_(index, index)]
    edges = np.round(np.linspace(0, n, size + 1)).astype(np.intp)  # strictly increasing: n >= size
    sums = np.add.reduceat(np.add.reduceat(image, edges[:-1], axis=0), edges[:-1], axis=1)
    counts = np.diff(edges)
    return sums / np.outer(counts, counts)
