"""CIFAR-10, loaded Keras-style from the official binary version, downloaded if need be.

The binary version, `cifar-10-binary.tar.gz`, holds `cifar-10-batches-bin/` with five training
batches, `data_batch_1.bin` ... `data_batch_5.bin`, and `test_batch.bin`: 10,000 records each of
1 label byte (0-9, CLASS_NAMES) then 3,072 pixel bytes, the 32x32 red plane, then green, then blue,
each row-major. `load_data` reads from the first of these that is set:

1. the `path` argument: a folder, or the `.tar.gz` itself,
2. `$MINICNN_CIFAR10_DATA`,
3. the cache, `cache_dir()`: `$MINICNN_CACHE/cifar10`, default `~/.cache/minicnn/cifar10`.

In a folder it takes the six `.bin` files, loose or in `cifar-10-batches-bin/`, else
`cifar-10-binary.tar.gz`, whose members are read in memory (nothing is extracted, so no member
name can write anywhere). Only the cache is downloaded into, with an MD5 check and an atomic rename.

The "python version" of the set (`cifar-10-python.tar.gz`, `data_batch_1` ...) is pickles, and
unpickling a file runs whatever code it holds: it is refused, never opened.
"""

from __future__ import annotations

import os
import tarfile
import zlib

import numpy as np

from minicnn.datasets import _download

__all__ = ["CLASS_NAMES", "MD5", "MIRRORS", "CIFAR10Error", "cache_dir", "load_data"]

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of cifar-10-binary.tar.gz, from the dataset's page
RECORDS_PER_BATCH = 10000
H = W = 32
C = 3
RECORD_BYTES = 1 + H * W * C
ENV_VAR = "MINICNN_CIFAR10_DATA"
DEADLINE = _download.DEADLINE  # seconds for the archive from one mirror
BINARY_HINT = (
    f"Use the binary version, {ARCHIVE} from https://www.cs.toronto.edu/~kriz/cifar.html "
    f"(or let load_data() download it into the cache)."
)
# Names that only the python version has: its archive, folder and (extension-less) batches.
_PICKLE_NAMES = ("cifar-10-python.tar.gz", "cifar-10-batches-py", "data_batch_1", "batches.meta")


class CIFAR10Error(ValueError):
    """A CIFAR-10 file that is not the binary version, or is truncated or corrupted."""


def cache_dir() -> str:
    """The directory CIFAR-10 is downloaded into: `$MINICNN_CACHE/cifar10`, or under ~/.cache."""
    return _download.cache_dir("cifar10")


def load_data(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load CIFAR-10 as `keras.datasets.cifar10.load_data` does.

    Args:
        path: a folder with the binary batches (or their archive), or the archive itself; default
            `$MINICNN_CIFAR10_DATA`, else the cache (see the module docstring).

    Returns:
        `(x_train, y_train), (x_test, y_test)`, writeable uint8 arrays: images (50000, 32, 32, 3)
        and (10000, 32, 32, 3), NHWC with channels R, G, B; labels (50000, 1) and (10000, 1).

    Raises:
        FileNotFoundError: `path` or `$MINICNN_CIFAR10_DATA` holds neither batches nor archive.
        CIFAR10Error: a batch is truncated, too long or has a label above 9; the archive is
            corrupt or lacks a batch; or the files are the pickled python version.
        DownloadError: the cache lacks the data and no mirror could provide it.
    """
    cache = cache_dir()
    location, given = _download.locate(path, ENV_VAR, cache)
    source = _source(location)
    if source is None and given is not None:
        problem = "lacks" if os.path.isdir(location) else "does not exist; it should hold"
        raise FileNotFoundError(
            f"CIFAR-10 directory '{location}' (from {given}) {problem} "
            f"{', '.join((*TRAIN_FILES, TEST_FILE))} (loose or in {FOLDER}/), or {ARCHIVE}. "
            f"Files only get downloaded into the cache, '{cache}'."
        )
    if source is None:
        failures = _download.fetch_from_mirrors(
            location, ARCHIVE, MIRRORS, (MD5,) if MD5 else None, DEADLINE, _read_archive
        )
        if failures:
            raise _download.DownloadError(
                f"Could not download CIFAR-10 into '{location}'. Every mirror failed for "
                f"{ARCHIVE}:\n" + "\n".join(failures) + f"\nTo use files you already have, set "
                f"{ENV_VAR}=/path/to/dir containing {ARCHIVE} or {FOLDER}/, or pass "
                f"load_data(path=...)."
            )
        source = os.path.join(location, ARCHIVE)
    batches = _read_archive(source) if os.path.isfile(source) else _read_folder(source)
    train = [_parse(batches[name], name, source) for name in TRAIN_FILES]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), _parse(batches[TEST_FILE], TEST_FILE, source)


def _source(location: str) -> str | None:
    """The archive or the folder of `.bin` files that `location` gives, or None if it has neither.

    Raises CIFAR10Error when what is there is the python version.
    """
    if os.path.isfile(location):
        return location
    for folder in (location, os.path.join(location, FOLDER)):
        if all(os.path.isfile(os.path.join(folder, name)) for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    archive = os.path.join(location, ARCHIVE)
    if os.path.isfile(archive):
        return archive
    for name in _PICKLE_NAMES:
        if os.path.exists(os.path.join(location, name)):
            raise _pickle_error(os.path.join(location, name))
    return None


def _pickle_error(where: str) -> CIFAR10Error:
    return CIFAR10Error(
        f"'{where}' is the CIFAR-10 python version: pickled batches, which minicnn never opens "
        f"(unpickling a file runs any code it holds). {BINARY_HINT}"
    )


def _batch_bytes() -> int:
    """Every batch file's exact size (read at each call: tests write smaller batches)."""
    return RECORDS_PER_BATCH * RECORD_BYTES


def _size_error(where: str, size: int) -> CIFAR10Error:
    relation = "truncated" if size < _batch_bytes() else "too long"
    return CIFAR10Error(
        f"Invalid CIFAR-10 batch '{where}': {relation}. Expected {_batch_bytes()} bytes "
        f"({RECORDS_PER_BATCH} records of {RECORD_BYTES}). Received {size} bytes.")


def _read_folder(folder: str) -> dict[str, bytes]:
    """The six batches' bytes from `folder`, by file name. A file's size is checked before it
    is read: an oversized (or sparse) file costs no memory."""
    batches = {}
    for name in (*TRAIN_FILES, TEST_FILE):
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != _batch_bytes():
                raise _size_error(path, size)
            batches[name] = f.read(_batch_bytes() + 1)  # no more, whatever the file became
    return batches


def _read_archive(archive: str) -> dict[str, bytes]:
    """The six batches' bytes from the `.tar.gz` `archive`, read in memory in one pass."""
    if os.path.basename(archive).startswith("cifar-10-python"):
        raise _pickle_error(archive)
    wanted = {f"{FOLDER}/{name}": name for name in (*TRAIN_FILES, TEST_FILE)}
    batches = {}
    try:
        with tarfile.open(archive, "r|gz") as tar:  # a stream: members in order, no seeking
            for member in tar:
                name = member.name.removeprefix("./")
                if name.split("/")[0] == "cifar-10-batches-py":
                    raise _pickle_error(archive)
                if name in wanted and member.isfile():
                    # the member's declared size, from its header: a tar bomb (a 3 GiB sparse
                    # member in a 600-byte archive) is refused before a byte of it is read
                    if member.size != _batch_bytes():
                        raise _size_error(os.path.join(archive, wanted[name]), member.size)
                    batches[wanted[name]] = tar.extractfile(member).read(_batch_bytes() + 1)
    except CIFAR10Error:
        raise
    # tarfile's stream mode, fed a cut gzip header, fails inside its own code with a TypeError
    # or ValueError (found by tests/test_fuzz_readers.py): corrupt input all the same
    except (tarfile.TarError, EOFError, zlib.error, OSError, TypeError, ValueError) as e:
        raise CIFAR10Error(
            f"Invalid CIFAR-10 archive '{archive}': corrupt or truncated ({type(e).__name__}: {e})."
        ) from e
    lacking = [member for member, name in wanted.items() if name not in batches]
    if lacking:
        raise CIFAR10Error(
            f"Invalid CIFAR-10 archive '{archive}': it lacks {', '.join(lacking)}. {BINARY_HINT}"
        )
    return batches


def _parse(data: bytes, name: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch of records -> images (N, 32, 32, 3) uint8 NHWC and labels (N, 1) uint8."""
    where = f"'{os.path.join(source, name)}'"
    expected = RECORDS_PER_BATCH * RECORD_BYTES
    if len(data) != expected:
        relation = "truncated" if len(data) < expected else "too long"
        raise CIFAR10Error(
            f"Invalid CIFAR-10 batch {where}: {relation}. Expected {expected} bytes "
            f"({RECORDS_PER_BATCH} records of {RECORD_BYTES}). Received {len(data)} bytes."
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(RECORDS_PER_BATCH, RECORD_BYTES)
    labels = records[:, :1].copy()
    if labels.size and labels.max() >= len(CLASS_NAMES):
        record = int(np.argmax(labels[:, 0] >= len(CLASS_NAMES)))
        raise CIFAR10Error(
            f"Invalid CIFAR-10 batch {where}: record {record} has label {labels[record, 0]}. "
            f"Expected a label from 0 to {len(CLASS_NAMES) - 1}."
        )
    # Each record's pixels are planes (C, H, W); Keras returns channels last (H, W, C).
    images = records[:, 1:].reshape(-1, C, H, W).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels
