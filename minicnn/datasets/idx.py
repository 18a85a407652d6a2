"""Read and write IDX files, the format MNIST ships in.

An IDX file is a header followed by the array in C order, every number big-endian:

    bytes 0-1     00 00
    byte  2       type code, a key of DTYPES (0x08 uint8 ... 0x0E float64)
    byte  3       ndim, 1..255
    4 * ndim      the dims, uint32 each
    the rest      prod(dims) elements, nothing more

`read_idx` tells gzip from raw by content (gzip starts 1f 8b), `write_idx` by name (`.gz`).
Every malformed file raises `IDXError`, naming the file and the problem; the header's claimed size
is checked against what the file can hold before any array is allocated.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from minicnn._atomic import atomic_write

__all__ = ["DTYPES", "IDXError", "read_idx", "write_idx"]

# Type code -> element dtype in memory (native byte order); in the file it is big-endian.
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}
_CODES: dict[np.dtype, int] = {dtype: code for code, dtype in DTYPES.items()}
_SUPPORTED = ", ".join(f"{dtype} (0x{code:02X})" for code, dtype in DTYPES.items())

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate turns at most ~1032 output bytes out of one input byte (a 258-byte match coded in 2
# bits), so a gzip file of n bytes cannot decompress to more than about 1032 * n; the slack covers
# headers and tiny files. A header claiming more is refused before anything is allocated.
_MAX_DEFLATE_RATIO = 1032
_GZIP_SLACK = 1 << 16
_CHUNK = 1 << 20  # gzip is decompressed this many bytes at a time


class IDXError(ValueError):
    """A file that is not a well-formed IDX file (raw or gzip-compressed)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (told apart by its first two bytes).

    Returns:
        A writeable, C-contiguous, native-endian array of the file's shape and dtype (one of
        DTYPES). Its memory is the buffer the file was read into: no copy is made, and multi-byte
        types are byte-swapped in place.

    Raises:
        IDXError: the file is malformed (empty, short header, bad magic, unknown type code, ndim 0,
            data shorter or longer than the dims say, corrupt or truncated gzip).
        FileNotFoundError, IsADirectoryError: as `open` raises them.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(2) == _GZIP_MAGIC:
            f.seek(0)
            return _read_gzip(f, path, size)
        f.seek(0)
        return _read_raw(f, path, size)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` (any shape with 1..255 dims, a dtype of DTYPES) as an IDX file.

    A name ending in `.gz` gets a gzip-compressed file. The file appears atomically: a temporary
    file in the same directory is renamed over `path` once it is complete.

    Raises:
        TypeError: the dtype is not one IDX can hold.
        ValueError: ndim is 0 or above 255, or a dim is 2**32 or more.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(
            f"Invalid dtype for argument `array` of write_idx({path!r}, ...). Expected one of "
            f"{_SUPPORTED}. Received dtype={array.dtype}."
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(
            f"Invalid shape for argument `array` of write_idx({path!r}, ...). Expected 1 to 255 "
            f"dims. Received shape={array.shape}."
        )
    if max(array.shape) >= 2**32:
        raise ValueError(
            f"Invalid shape for argument `array` of write_idx({path!r}, ...). Expected every dim "
            f"below 2**32 (IDX stores them as uint32). Received shape={array.shape}."
        )
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">"))
    payload = memoryview(data.reshape(-1).view(np.uint8))
    with atomic_write(path) as f:
        if path.lower().endswith(".gz"):
            # mtime=0 and no name in the gzip header: the same array always gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=6, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)


def _read_raw(f, path: str, size: int) -> np.ndarray:
    """Read an uncompressed IDX file of `size` bytes from the open binary file `f`."""
    dtype, dims = _read_header(f, path)
    header_len = 4 + 4 * len(dims)
    expected = math.prod(dims) * dtype.itemsize
    if size - header_len != expected:
        raise _length_error(path, dims, dtype, expected, size - header_len)
    out = np.empty(expected, dtype=np.uint8)
    got = _readinto(f, memoryview(out))
    if got != expected:  # the file shrank between fstat and read
        raise _length_error(path, dims, dtype, expected, got)
    return _as_array(out, dtype, dims)


def _read_gzip(f, path: str, compressed_size: int) -> np.ndarray:
    """Read a gzip-compressed IDX file, decompressing at most _CHUNK bytes at a time."""
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            dtype, dims = _read_header(gz, path)
            expected = math.prod(dims) * dtype.itemsize
            limit = compressed_size * _MAX_DEFLATE_RATIO + _GZIP_SLACK
            if expected > limit:
                raise IDXError(
                    f"Invalid IDX file '{path}': its header claims dims {dims} of {dtype}, "
                    f"{expected} bytes of data, more than a {compressed_size}-byte gzip file can "
                    f"hold (at most about {limit} bytes)."
                )
            out = np.empty(expected, dtype=np.uint8)
            view = memoryview(out)
            got = 0
            while got < expected:
                chunk = gz.read(min(_CHUNK, expected - got))
                if not chunk:
                    raise _length_error(path, dims, dtype, expected, got)
                view[got : got + len(chunk)] = chunk
                got += len(chunk)
            # Reading past the data also checks the gzip trailer (CRC and length).
            if gz.read(1):
                raise _length_error(path, dims, dtype, expected, expected, more=True)
    except EOFError as e:
        raise IDXError(f"Invalid IDX file '{path}': truncated gzip stream ({e}).") from e
    except (zlib.error, OSError) as e:  # gzip.BadGzipFile is an OSError
        raise IDXError(f"Invalid IDX file '{path}': corrupt gzip stream ({e}).") from e
    return _as_array(out, dtype, dims)


def _read_header(f, path: str) -> tuple[np.dtype, tuple[int, ...]]:
    """Parse the magic and dims at the start of `f`; returns the element dtype and the dims."""
    magic = f.read(4)
    if not magic:
        raise IDXError(f"Invalid IDX file '{path}': empty, no header and no data.")
    if len(magic) < 4:
        raise IDXError(
            f"Invalid IDX file '{path}': short header. Expected at least 4 bytes. "
            f"Received {len(magic)}."
        )
    if magic[0] or magic[1]:
        raise IDXError(
            f"Invalid IDX file '{path}': bad magic. Expected the first two bytes to be 00 00. "
            f"Received {magic[0]:02x} {magic[1]:02x}."
        )
    code, ndim = magic[2], magic[3]
    if code not in DTYPES:
        raise IDXError(
            f"Invalid IDX file '{path}': unknown type code. Expected one of {_SUPPORTED}. "
            f"Received 0x{code:02X}."
        )
    if ndim == 0:
        raise IDXError(f"Invalid IDX file '{path}': ndim is 0. Expected at least 1 dim.")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise IDXError(
            f"Invalid IDX file '{path}': short header. Expected {4 + 4 * ndim} bytes for "
            f"{ndim} dims. Received {4 + len(raw_dims)}."
        )
    return DTYPES[code], struct.unpack(f">{ndim}I", raw_dims)


def _length_error(
    path: str, dims: tuple[int, ...], dtype: np.dtype, expected: int, got: int, more: bool = False
) -> IDXError:
    """The error for data that disagrees with the dims; `more`: got is a lower bound on the size."""
    relation = "longer" if more or got > expected else "shorter"
    received = f"more than {got}" if more else f"{got}"
    return IDXError(
        f"Invalid IDX file '{path}': data is {relation} than the header says. Dims {dims} of "
        f"{dtype} need {expected} bytes. Received {received} bytes."
    )


def _readinto(f, view: memoryview) -> int:
    """Fill `view` from `f` until it is full or the file ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _as_array(buffer: np.ndarray, dtype: np.dtype, dims: tuple[int, ...]) -> np.ndarray:
    """View the raw big-endian bytes in `buffer` as a native-endian array of `dims`, in place."""
    array = buffer.view(dtype.newbyteorder(">")).reshape(dims)
    if not array.dtype.isnative:
        array.byteswap(inplace=True)
        array = array.view(dtype)
    return array
