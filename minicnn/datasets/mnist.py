"""MNIST, loaded Keras-style from the four official IDX files, downloaded if need be.

`load_data` reads from the first of these that is set:

1. the `path` argument,
2. `$MINICNN_DATA`,
3. the cache, `cache_dir()`: `$MINICNN_CACHE/mnist`, default `~/.cache/minicnn/mnist`.

A directory from (1) or (2) is the user's: it must hold the files already, and missing ones raise
FileNotFoundError naming the directory and the files; nothing is downloaded into it. Only the cache
is downloaded into, one missing file at a time, from each of MIRRORS in turn.

Each file may be raw or gzipped (`name` or `name.gz`); when both exist the raw one is read, as it is
faster. Any directory in this layout loads (Fashion-MNIST and KMNIST use the same four names).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import time
import urllib.request
import zlib

import numpy as np

from minicnn._atomic import atomic_write
from minicnn.datasets.idx import read_idx

__all__ = ["CHECKSUMS", "MIRRORS", "MNISTDownloadError", "cache_dir", "load_data"]

# (images, labels) for the train split, then for the test split.
FILES = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
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
TIMEOUT = 30.0  # seconds to connect and per socket read; $MINICNN_DOWNLOAD_TIMEOUT overrides it
DEADLINE = 600.0  # seconds for one file from one mirror, so a trickling server cannot hold us
_CHUNK = 1 << 16


class MNISTDownloadError(OSError):
    """Missing files could not be fetched from any mirror."""


def cache_dir() -> str:
    """The directory MNIST is downloaded into: `$MINICNN_CACHE/mnist`, or ~/.cache/minicnn/mnist."""
    root = os.environ.get("MINICNN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "minicnn"
    )
    return os.path.join(root, "mnist")


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
    if path is not None:
        directory, given = os.path.expanduser(os.fspath(path)), "load_data(path=...)"
    elif os.environ.get("MINICNN_DATA"):
        directory, given = os.environ["MINICNN_DATA"], "$MINICNN_DATA"
    else:
        directory, given = cache_dir(), None
    missing = _missing(directory)
    if missing and given is not None:
        problem = "lacks" if os.path.isdir(directory) else "does not exist; it should hold"
        raise FileNotFoundError(
            f"MNIST directory '{directory}' (from {given}) {problem} {', '.join(missing)} "
            f"(each raw or .gz). Files only get downloaded into the cache, '{cache_dir()}'."
        )
    if missing:
        _download(directory, missing, MIRRORS, CHECKSUMS, _timeout(), DEADLINE)
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


def _timeout() -> float:
    """Seconds per connect/read: $MINICNN_DOWNLOAD_TIMEOUT if set, else TIMEOUT."""
    value = os.environ.get("MINICNN_DOWNLOAD_TIMEOUT")
    if not value:
        return TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0  # not a number: reported below with the value received
    if not seconds > 0:
        raise ValueError(
            f"Invalid value for $MINICNN_DOWNLOAD_TIMEOUT. Expected a positive number of seconds. "
            f"Received MINICNN_DOWNLOAD_TIMEOUT={value!r}."
        )
    return seconds


def _download(
    directory: str,
    names: list[str],
    mirrors: list[str],
    checksums: dict[str, tuple[str, ...]],
    timeout: float,
    deadline: float,
) -> None:
    """Fetch `name + ".gz"` for each of `names` into `directory`, trying `mirrors` in turn.

    A file is verified against `checksums[file]` (any MD5 listed, of the .gz or of its content);
    a file without an entry must at least read as an IDX file. Stops at the first file no mirror
    could provide, raising MNISTDownloadError.
    """
    os.makedirs(directory, exist_ok=True)
    for name in names:
        file = name + ".gz"
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + file
            try:
                _fetch(url, os.path.join(directory, file), checksums.get(file), timeout, deadline)
                break
            # OSError covers URLError, HTTPError and timeouts; HTTPException a cut-off body;
            # ValueError a bad URL, a checksum mismatch or a malformed file (IDXError).
            except (OSError, http.client.HTTPException, ValueError) as e:
                failures.append(f"  {url}: {type(e).__name__}: {e}")
        else:
            raise MNISTDownloadError(
                f"Could not download MNIST into '{directory}'. Missing: "
                f"{', '.join(_missing(directory))}. Every mirror failed for {file}:\n"
                + "\n".join(failures or ["  (no mirrors configured)"])
                + "\nTo use files you already have, set MINICNN_DATA=/path/to/dir containing "
                + ", ".join(n for split in FILES for n in split)
                + " (raw or .gz), or pass load_data(path=...)."
            )


def _fetch(
    url: str, dest: str, md5s: tuple[str, ...] | None, timeout: float, deadline: float
) -> None:
    """Download `url` to `dest` atomically, verifying it; raises (leaving no file) on failure."""
    start = time.monotonic()
    label = f"Downloading {os.path.basename(dest)} from {url}"
    with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as f:
        total, done, shown, md5 = response.length, 0, 0.0, hashlib.md5()
        try:
            # read1 returns what one socket read brings (read() would wait for a full chunk), so
            # the deadline is checked at least every `timeout` seconds even on a trickle.
            while chunk := response.read1(_CHUNK):
                if time.monotonic() - start > deadline:
                    raise TimeoutError(f"gave up after the {deadline:g} s deadline")
                f.write(chunk)
                md5.update(chunk)
                done += len(chunk)
                if time.monotonic() - shown > 0.2:  # a few updates a second, not one per chunk
                    shown = time.monotonic()
                    _progress(label, done, total)
        finally:
            _progress(label, done, total, end="\n")
        if total is not None and done != total:  # read1 does not raise IncompleteRead
            raise ConnectionError(f"connection closed after {done} of {total} bytes")
        f.flush()
        if md5s is None:
            read_idx(f.name)  # no checksum known: at least it must be a whole IDX file
        elif md5.hexdigest() not in md5s and _content_md5(f.name) not in md5s:
            raise ValueError(
                f"MD5 mismatch. Expected one of {', '.join(md5s)}. Received {md5.hexdigest()} "
                f"({done} bytes)."
            )


def _progress(label: str, done: int, total: int | None, end: str = "") -> None:
    """Redraw the progress line on stderr: '<label>: 4.2/9.9 MB'."""
    of = f"/{total / 1e6:.1f}" if total else ""
    sys.stderr.write(f"\r{label}: {done / 1e6:.1f}{of} MB{end}")
    sys.stderr.flush()


def _content_md5(path: str) -> str | None:
    """MD5 of the decompressed content of the gzip file `path`; None if it is not valid gzip."""
    md5 = hashlib.md5()
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(1 << 20):
                md5.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return md5.hexdigest()
