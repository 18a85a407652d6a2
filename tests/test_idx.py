"""IDX reading and writing: round trips, exact bytes, and every way a file can be malformed."""

from __future__ import annotations

import gzip
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minicnn._atomic import atomic_write
from minicnn.datasets.idx import DTYPES, IDXError, read_idx, write_idx

# Fuzzing a parser: an example costs milliseconds, and more of them reach more of the
# malformed files, so these run many more than the profile's 40.
FUZZ = settings(max_examples=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One directory for hypothesis tests (function-scoped tmp_path does not reset per example)."""
    return tmp_path_factory.mktemp("idx")


def header(code: int, dims: tuple[int, ...]) -> bytes:
    """An IDX header built by hand from the format, independent of write_idx."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def put(path, data: bytes, gz: bool = False):
    """Write `data` to `path` (gzip-compressed if `gz`) and return the path as a str."""
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def extremes(dtype: np.dtype) -> np.ndarray:
    """A (2, 3) array with the dtype's extreme and special values."""
    if dtype.kind == "f":
        info = np.finfo(dtype)
        values = [info.min, info.max, info.tiny, -0.0, np.inf, np.nan]
    else:
        info = np.iinfo(dtype)
        values = [info.min, info.max, 0, 1, -1 if info.min < 0 else 2, 7]
    return np.array(values, dtype=dtype).reshape(2, 3)


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("code", sorted(DTYPES))
def test_round_trip_every_type_code(tmp_path, code, suffix):
    array = extremes(DTYPES[code])
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == DTYPES[code] and back.dtype.isnative
    assert back.shape == (2, 3)
    assert back.tobytes() == array.tobytes()  # bytewise, so NaN and -0.0 count too
    # The byte after the magic's zeros is the type code; gzip is chosen by the name.
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert raw[:4] == bytes([0, 0, code, 2])


@pytest.mark.slow  # 300 drawn arrays written and read back: seconds
@FUZZ
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(list(DTYPES.values())),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    gz=st.booleans(),
    big_endian_input=st.booleans(),
)
def test_round_trip_drawn_arrays(workdir, array, gz, big_endian_input):
    if big_endian_input:
        array = array.astype(array.dtype.newbyteorder(">"))
    path = workdir / ("drawn.idx.gz" if gz else "drawn.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.dtype.isnative
    assert back.shape == array.shape  # dims of size 0 are legal and survive
    assert back.flags.c_contiguous and back.flags.writeable
    assert back.tobytes() == array.astype(back.dtype).tobytes()


def test_exact_bytes_and_hand_built_file(tmp_path):
    array = np.array([[1, -2, 3], [256, 65536, -(2**31)]], dtype=np.int32)
    expected = header(0x0C, (2, 3)) + array.astype(">i4").tobytes()
    write_idx(tmp_path / "a.idx", array)
    assert (tmp_path / "a.idx").read_bytes() == expected
    # Reading does not depend on write_idx: a file built by hand from the format reads back.
    np.testing.assert_array_equal(read_idx(put(tmp_path / "b.idx", expected)), array)


def test_read_is_writeable_native_and_owns_no_copy(tmp_path):
    write_idx(tmp_path / "f.gz", np.arange(12, dtype=np.float64).reshape(3, 4))
    back = read_idx(tmp_path / "f.gz")
    assert back.dtype == np.float64 and back.dtype.isnative
    back /= 2  # writeable, so in-place scaling works
    np.testing.assert_array_equal(back, np.arange(12).reshape(3, 4) / 2)


def test_write_accepts_views_and_gzip_output_is_deterministic(tmp_path):
    array = np.arange(24, dtype=np.int16).reshape(4, 6)[::2, ::-3].T  # non-contiguous view
    write_idx(tmp_path / "a.gz", array)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == first
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


def test_multi_member_gzip_reads(tmp_path):
    # `cat a.gz b.gz` is a valid gzip file; here the header and the data are separate members.
    data = header(0x08, (2, 2)) + bytes([1, 2, 3, 4])
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(data[:6]) + gzip.compress(data[6:]))
    np.testing.assert_array_equal(read_idx(path), [[1, 2], [3, 4]])


def test_gzip_by_content_not_name(tmp_path):
    data = header(0x08, (3,)) + bytes([7, 8, 9])
    np.testing.assert_array_equal(read_idx(put(tmp_path / "plain.gz", data)), [7, 8, 9])
    np.testing.assert_array_equal(read_idx(put(tmp_path / "packed", data, gz=True)), [7, 8, 9])


# ---------------------------------------------------------------------------- malformed files

GOOD = header(0x08, (2, 3)) + bytes(range(6))
MALFORMED = {
    "empty": (b"", "empty"),
    "short magic": (b"\x00\x00\x08", "short header"),
    "short dims": (header(0x08, (2, 3))[:9], "short header"),
    "bad magic": (b"\x01\x00" + GOOD[2:], "bad magic"),
    "unknown type": (b"\x00\x00\x07\x01" + GOOD[4:8] + bytes(2), "0x07"),
    "float16 is not IDX": (b"\x00\x00\x0a\x01" + GOOD[4:8] + bytes(4), "0x0A"),
    "ndim 0": (b"\x00\x00\x08\x00", "ndim is 0"),
    "data short": (GOOD[:-1], "shorter than the header says"),
    "data long": (GOOD + b"\x00", "longer than the header says"),
    "int32 data not a multiple": (header(0x0C, (2,)) + bytes(7), "need 8 bytes. Received 7"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_names_path_and_problem(tmp_path, case, gz):
    data, problem = MALFORMED[case]
    path = put(tmp_path / "bad file.idx", data, gz=gz)
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert path in str(info.value)
    assert problem in str(info.value)


def test_length_errors_give_both_byte_counts(tmp_path):
    with pytest.raises(IDXError, match=r"need 6 bytes\. Received 5 bytes"):
        read_idx(put(tmp_path / "short", GOOD[:-1]))
    with pytest.raises(IDXError, match=r"need 6 bytes\. Received 9 bytes"):
        read_idx(put(tmp_path / "long", GOOD + bytes(3)))
    with pytest.raises(IDXError, match=r"need 6 bytes\. Received more than 6 bytes"):
        read_idx(put(tmp_path / "long.gz", GOOD + bytes(3), gz=True))


@pytest.mark.parametrize(
    "mangle, problem",
    [
        (lambda z: z[:-4], "truncated gzip"),  # trailer cut: the stream just ends
        (lambda z: z[:12], "truncated gzip"),
        (lambda z: z[:10] + b"\xff" * (len(z) - 10), "corrupt gzip"),  # deflate data garbled
        (lambda z: z[:-8] + bytes(8), "corrupt gzip"),  # CRC and length wrong
        (lambda z: z + b"garbage!", "corrupt gzip"),  # trailing bytes that are not a member
        (lambda z: b"\x1f\x8b\x09" + z[3:], "corrupt gzip"),  # unknown compression method
    ],
)
def test_corrupt_and_truncated_gzip(tmp_path, mangle, problem):
    path = put(tmp_path / "x.gz", mangle(gzip.compress(GOOD)))
    with pytest.raises(IDXError, match=problem) as info:
        read_idx(path)
    assert path in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_absurd_header_refused_before_allocating(tmp_path, gz):
    # Three dims of 2**32 - 1 claim ~8e28 bytes; a tiny file must be refused from its size alone.
    data = header(0x0E, (2**32 - 1,) * 3) + bytes(64)
    path = put(tmp_path / "huge", data, gz=gz)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(IDXError, match="huge") as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 1 << 20  # numpy reports its allocations to tracemalloc
    assert "header says" in str(info.value) or "can hold" in str(info.value)


def test_gzip_claim_within_the_ratio_bound_is_read_then_found_short(tmp_path):
    # 50 kB claimed by a ~30-byte gzip file: possible by size alone (deflate could expand that
    # far), so the file is read, and the short data is what gets reported.
    path = put(tmp_path / "claim.gz", header(0x08, (50_000,)) + bytes(10), gz=True)
    with pytest.raises(IDXError, match=r"need 50000 bytes\. Received 10 bytes"):
        read_idx(path)


def test_missing_file_and_directory_raise_standard_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
    with pytest.raises(IsADirectoryError):
        read_idx(tmp_path)


def read_or_idx_error(path) -> np.ndarray | None:
    """read_idx, turning IDXError into None; any other exception fails the test."""
    try:
        return read_idx(path)
    except IDXError as e:
        assert os.fspath(path) in str(e)
        return None


@FUZZ
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x1f\x8b", b"\x00\x00"]))
def test_arbitrary_bytes_give_array_or_idx_error(workdir, data, prefix):
    result = read_or_idx_error(put(workdir / "fuzz", prefix + data))
    assert result is None or isinstance(result, np.ndarray)


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_gzipped_bytes_give_array_or_idx_error(workdir, data):
    result = read_or_idx_error(put(workdir / "fuzz.gz", data, gz=True))
    assert result is None or isinstance(result, np.ndarray)


VALID_FILES = {
    "raw": header(0x0C, (3, 2)) + np.arange(6, dtype=">i4").tobytes(),
    "gz": gzip.compress(header(0x0D, (2, 3)) + np.linspace(0, 1, 6, dtype=">f4").tobytes()),
}


@FUZZ
@given(kind=st.sampled_from(list(VALID_FILES)), data=st.data())
def test_truncations_of_valid_files_are_idx_errors(workdir, kind, data):
    valid = VALID_FILES[kind]
    cut = data.draw(st.integers(0, len(valid) - 1), label="cut")
    assert read_or_idx_error(put(workdir / "cut", valid[:cut])) is None


@FUZZ
@given(kind=st.sampled_from(list(VALID_FILES)), data=st.data())
def test_single_byte_corruptions_give_array_or_idx_error(workdir, kind, data):
    valid = bytearray(VALID_FILES[kind])
    where = data.draw(st.integers(0, len(valid) - 1), label="where")
    valid[where] = data.draw(st.integers(0, 255).filter(lambda b: b != valid[where]), label="b")
    result = read_or_idx_error(put(workdir / "flip", bytes(valid)))
    assert result is None or isinstance(result, np.ndarray)


# ---------------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    "dtype", [np.bool_, np.uint16, np.uint32, np.int64, np.float16, np.complex64, object, "U3"]
)
def test_write_rejects_unsupported_dtypes(tmp_path, dtype):
    with pytest.raises(TypeError) as info:
        write_idx(tmp_path / "x", np.zeros(3, dtype=dtype))
    message = str(info.value)
    assert f"dtype={np.dtype(dtype)}" in message
    assert all(str(supported) in message for supported in DTYPES.values())
    assert not os.listdir(tmp_path)


def test_write_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"1 to 255 dims\. Received shape=\(\)"):
        write_idx(tmp_path / "x", np.uint8(3))
    # A zero-size array can have a dim too large for uint32 without using any memory.
    with pytest.raises(ValueError, match="below 2\\*\\*32"):
        write_idx(tmp_path / "x", np.empty((2**32, 0), dtype=np.uint8))
    assert not os.listdir(tmp_path)


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_idx(tmp_path / "no" / "such.idx", np.zeros(2, np.uint8))


def test_atomic_write_keeps_old_file_and_leaves_no_temp_on_error(tmp_path):
    write_idx(tmp_path / "keep.idx", np.arange(4, dtype=np.uint8))
    before = (tmp_path / "keep.idx").read_bytes()
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "keep.idx") as f:
        f.write(b"half a fi")
        raise KeyboardInterrupt
    assert (tmp_path / "keep.idx").read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.idx"]
