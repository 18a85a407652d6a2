"""MNIST, loaded Keras-style from the four official IDX files, downloaded if need be.

`load_data` reads from the first of these that is set:

1. the `path` argument,
2. `$MINICNN_DATA`,
3. the cache, `cache_dir()`: `$MINICNN_CACHE/mnist`, default `~/.cache/minicnn/mnist`.

A directory from (1) or (2) is the user's: it must hold the files already, and missing ones raise
FileNotFoundError naming the directory and the files; nothing is downloaded into it. Only the cache
is downloaded into, one missing file at a time, from each of MIRRORS in turn.

Each file may be raw or gzipped (`name` or `name.gz`); when both exist the raw one is read, as it is
faster. Any directory in this layout loads (Fashion-MNIST and KMNIST use the same four names). The
lookup, download and checks live in `_idx_dataset`, shared with `fashion_mnist`; this module holds
what is MNIST's own: the mirrors, the checksums and `$MINICNN_DATA`.
"""

from __future__ import annotations

import os

import numpy as np

from minicnn.datasets import _download, _idx_dataset

__all__ = ["CHECKSUMS", "CLASS_NAMES", "MIRRORS", "MNISTDownloadError", "cache_dir", "load_data"]

CLASS_NAMES = tuple(str(digit) for digit in range(10))  # label k is the digit k
FILES = _idx_dataset.FILES
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
# Downloaded file -> accepted MD5s: of the .gz as the mirrors serve it, and of its decompressed
# content (a recompressed .gz has other bytes but the same content, and is just as good).
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "train-labels-idx1-ubyte.gz": (
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}
DEADLINE = _download.DEADLINE  # seconds for one file from one mirror


class MNISTDownloadError(_download.DownloadError):
    """Missing files could not be fetched from any mirror."""


def cache_dir() -> str:
    """The directory MNIST is downloaded into: `$MINICNN_CACHE/mnist`, or ~/.cache/minicnn/mnist."""
    return _download.cache_dir("mnist")


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST (or any dataset in its layout) as `keras.datasets.mnist.load_data` does.

    Args:
        path: directory holding the four files; default `$MINICNN_DATA`, else the cache (see the
            module docstring for the lookup and when it downloads).

    Returns:
        `(x_train, y_train), (x_test, y_test)`, writeable uint8 arrays: images (N, H, W) and labels
        (N,). For MNIST (60000, 28, 28), (60000,), (10000, 28, 28), (10000,).

    Raises:
        FileNotFoundError: `path` or `$MINICNN_DATA` lacks some of the files.
        MNISTDownloadError: the cache lacks files and no mirror could provide them.
        ValueError: a file is not images (3-D uint8) or labels (1-D uint8), or the counts differ
            (IDXError, a ValueError, for a malformed file).
    """
    # Read at call time, so a test (or a user) may point MIRRORS, CHECKSUMS or DEADLINE elsewhere.
    dataset = _idx_dataset.IDXDataset(
        "MNIST", "mnist", "MINICNN_DATA", MIRRORS, CHECKSUMS, DEADLINE, MNISTDownloadError
    )
    return _idx_dataset.load(path, dataset)
