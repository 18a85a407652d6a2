"""Downloads shared by the dataset loaders: the cache folder, timeouts, one verified fetch.

A file is written through `atomic_write`, so a download cut off, refused by its checksum or
interrupted (Ctrl-C included) leaves nothing behind, and a complete one appears under its final
name at once.
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
from collections.abc import Callable

from minicnn._atomic import atomic_write

TIMEOUT = 30.0  # seconds to connect and per socket read; $MINICNN_DOWNLOAD_TIMEOUT overrides it
DEADLINE = 600.0  # seconds for one file from one mirror, so a trickling server cannot hold us
_CHUNK = 1 << 16


class DownloadError(OSError):
    """Missing files could not be fetched from any mirror."""


def cache_dir(name: str) -> str:
    """`$MINICNN_CACHE/<name>`, or ~/.cache/minicnn/<name>: where dataset `name` is downloaded."""
    root = os.environ.get("MINICNN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "minicnn"
    )
    return os.path.join(root, name)



def locate(path, env_var: str, cache: str) -> tuple[str, str | None]:
    """Where a dataset is read from, in the loaders' one order: the `path` argument, then the
    environment variable, then the cache; with what named it (None for the cache, the only
    folder anything is downloaded into)."""
    if path is not None:
        return os.path.expanduser(os.fspath(path)), "load_data(path=...)"
    if os.environ.get(env_var):
        return os.environ[env_var], f"${env_var}"
    return cache, None


def timeout() -> float:
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


def fetch_from_mirrors(
    directory: str,
    file: str,
    mirrors: list[str],
    md5s: tuple[str, ...] | None,
    deadline: float,
    check: Callable[[str], object],
) -> list[str]:
    """Download `file` into `directory` from the first of `mirrors` that serves it intact.

    `md5s`: the accepted MD5s (of the file, or of its content if it is gzip); when None, the file
    must at least pass `check(path)`, which raises ValueError (or OSError) on a bad file.

    Returns:
        [] on success, else one line per mirror saying why it failed, for the caller's error.
    """
    seconds = timeout()
    os.makedirs(directory, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file
        try:
            _fetch(url, os.path.join(directory, file), md5s, seconds, deadline, check)
            return []
        # OSError covers URLError, HTTPError and timeouts; HTTPException a cut-off body;
        # ValueError a bad URL, a checksum mismatch or a malformed file.
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"  {url}: {type(e).__name__}: {e}")
    return failures or ["  (no mirrors configured)"]


def _fetch(
    url: str,
    dest: str,
    md5s: tuple[str, ...] | None,
    timeout: float,
    deadline: float,
    check: Callable[[str], object],
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
            check(f.name)  # no checksum known: at least it must read as the format expected
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
    """MD5 of the decompressed content of the gzip file `path`; None if it is not valid gzip.

    A recompressed .gz has other bytes but the same content, and is just as good.
    """
    md5 = hashlib.md5()
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(1 << 20):
                md5.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return md5.hexdigest()
