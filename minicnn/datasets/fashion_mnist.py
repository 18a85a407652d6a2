"""Fashion-MNIST, loaded Keras-style: the same four IDX names and layout as MNIST.

Zalando's 28x28 grayscale pictures of clothing, 60,000 to train and 10,000 to test, labels 0-9
(CLASS_NAMES). `load_data` reads from the first of these that is set:

1. the `path` argument,
2. `$MINICNN_FASHION_MNIST_DATA` (its own variable: `$MINICNN_DATA` names the MNIST folder, and a
   folder of one set must never be read as the other, as the file names are the same),
3. the cache, `cache_dir()`: `$MINICNN_CACHE/fashion-mnist`, default
   `~/.cache/minicnn/fashion-mnist`.

The lookup, download (only into the cache, an MD5 check, an atomic rename) and errors are MNIST's,
from `_idx_dataset`.
"""

from __future__ import annotations

import os

import numpy as np

from minicnn.datasets import _download, _idx_dataset

__all__ = ["CHECKSUMS", "CLASS_NAMES", "MIRRORS", "DownloadError", "cache_dir", "load_data"]

DownloadError = _download.DownloadError
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Keras's copy first (https), then the dataset's own S3 website (http only; the MD5 guards it).
MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]
# Downloaded file -> accepted MD5s: of the .gz as the mirrors serve it (the dataset's list), and of
# its decompressed content (recompressed copies, such as Debian's, have other .gz bytes).
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965",
    ),
}
ENV_VAR = "MINICNN_FASHION_MNIST_DATA"
DEADLINE = _download.DEADLINE  # seconds for one file from one mirror


def cache_dir() -> str:
    """Where Fashion-MNIST is downloaded: `$MINICNN_CACHE/fashion-mnist` or ~/.cache/minicnn/..."""
    return _download.cache_dir("fashion-mnist")


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST as `keras.datasets.fashion_mnist.load_data` does.

    Args:
        path: directory holding the four files, raw or .gz; default `$MINICNN_FASHION_MNIST_DATA`,
            else the cache (see the module docstring for the lookup and when it downloads).

    Returns:
        `(x_train, y_train), (x_test, y_test)`, writeable uint8 arrays: images (60000, 28, 28) and
        (10000, 28, 28), labels (60000,) and (10000,), indexes into CLASS_NAMES.

    Raises:
        FileNotFoundError: `path` or `$MINICNN_FASHION_MNIST_DATA` lacks some of the files.
        DownloadError: the cache lacks files and no mirror could provide them.
        ValueError: a file is not images (3-D uint8) or labels (1-D uint8), or the counts differ
            (IDXError, a ValueError, for a malformed file).
    """
    # Read at call time, so a test (or a user) may point MIRRORS, CHECKSUMS or DEADLINE elsewhere.
    dataset = _idx_dataset.IDXDataset(
        "Fashion-MNIST", "fashion-mnist", ENV_VAR, MIRRORS, CHECKSUMS, DEADLINE, DownloadError
    )
    return _idx_dataset.load(path, dataset)
