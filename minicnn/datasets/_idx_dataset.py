"""The loader behind MNIST and Fashion-MNIST: four IDX files, looked up, downloaded, checked.

`load(path, dataset)` reads from the first of these that is set:

1. the `path` argument,
2. the dataset's environment variable (`dataset.env_var`),
3. its cache, `_download.cache_dir(dataset.subdir)`.

A directory from (1) or (2) is the user's: it must hold the files already, and missing ones raise
FileNotFoundError naming the directory and the files; nothing is downloaded into it. Only the cache
is downloaded into, one missing file at a time, from each of the dataset's mirrors in turn.

Each file may be raw or gzipped (`name` or `name.gz`); when both exist the raw one is read, as it is
faster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from minicnn.datasets import _download
from minicnn.datasets.idx import read_idx

# (images, labels) for the train split, then for the test split: MNIST's names, which
# Fashion-MNIST and KMNIST reuse.
FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)


@dataclass(frozen=True)
class IDXDataset:
    """What tells one IDX dataset from another.

    title: its name in messages ("MNIST"); subdir: its folder in the cache; env_var: the variable
    naming a folder of the user's; mirrors: base URLs the `.gz` files are fetched from; checksums:
    `name.gz` -> accepted MD5s (of the .gz or of its content); deadline: seconds per file per
    mirror; error: the exception raised when no mirror provides a file.
    """

    title: str
    subdir: str
    env_var: str
    mirrors: list[str]
    checksums: dict[str, tuple[str, ...]]
    deadline: float
    error: type[_download.DownloadError]


def load(
    path: str | os.PathLike | None, dataset: IDXDataset
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """`(x_train, y_train), (x_test, y_test)`: images (N, H, W) and labels (N,), writeable uint8."""
    cache = _download.cache_dir(dataset.subdir)
    directory, given = _download.locate(path, dataset.env_var, cache)
    missing = _missing(directory)
    if missing and given is not None:
        problem = "lacks" if os.path.isdir(directory) else "does not exist; it should hold"
        raise FileNotFoundError(
            f"{dataset.title} directory '{directory}' (from {given}) {problem} "
            f"{', '.join(missing)} (each raw or .gz). Files only get downloaded into the cache, "
            f"'{cache}'."
        )
    for name in missing:
        file = name + ".gz"
        failures = _download.fetch_from_mirrors(
            directory, file, dataset.mirrors, dataset.checksums.get(file), dataset.deadline,
            read_idx,
        )
        if failures:  # stop at the first file no mirror could provide
            raise dataset.error(
                f"Could not download {dataset.title} into '{directory}'. Missing: "
                f"{', '.join(_missing(directory))}. Every mirror failed for {file}:\n"
                + "\n".join(failures)
                + f"\nTo use files you already have, set {dataset.env_var}=/path/to/dir containing "
                + ", ".join(n for split in FILES for n in split)
                + " (raw or .gz), or pass load_data(path=...)."
            )
    return tuple(_load_split(directory, images, labels) for images, labels in FILES)


def _find(directory: str, name: str) -> str | None:
    """The path of `name` (preferred) or `name.gz` in `directory`, or None if neither exists."""
    for candidate in (name, name + ".gz"):
        candidate = os.path.join(directory, candidate)
        if os.path.isfile(candidate):
            return candidate
    return None


def _missing(directory: str) -> list[str]:
    """The file names of FILES that `directory` lacks in both raw and .gz form."""
    return [name for split in FILES for name in split if _find(directory, name) is None]


def _load_split(directory: str, images_name: str, labels_name: str) -> tuple[np.ndarray, ...]:
    """Read and check one split; returns images (N, H, W) and labels (N,), both uint8."""
    images_path, labels_path = _find(directory, images_name), _find(directory, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"Invalid images file '{images_path}'. Expected a 3-D uint8 array (N, H, W). "
            f"Received shape={images.shape}, dtype={images.dtype}."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"Invalid labels file '{labels_path}'. Expected a 1-D uint8 array (N,). "
            f"Received shape={labels.shape}, dtype={labels.dtype}."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"Mismatched files: '{images_path}' holds {len(images)} images but "
            f"'{labels_path}' holds {len(labels)} labels."
        )
    return images, labels
