"""mnist.load_data on the real files (when $MINICNN_DATA has them) and on synthetic directories."""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
import pytest

from minicnn.datasets import mnist
from minicnn.datasets.idx import IDXError, write_idx

NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
REAL_DIR = os.environ.get("MINICNN_DATA")  # read before the isolation fixture clears it


def flat(splits) -> list[np.ndarray]:
    """((x_train, y_train), (x_test, y_test)) -> [x_train, y_train, x_test, y_test]."""
    return [array for split in splits for array in split]


# ---------------------------------------------------------------------------- the real files

# From /work/shared/mnist/README.md and counted on the files themselves (np.bincount).
OFFICIAL_MD5 = {  # MD5 of each uncompressed file, header included
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real():
    """The real MNIST arrays, loaded once through $MINICNN_DATA; skips when they are not there."""
    if not REAL_DIR:
        pytest.skip("MINICNN_DATA is not set (point it at a directory with the MNIST files)")
    present = {f for f in os.listdir(REAL_DIR)} if os.path.isdir(REAL_DIR) else set()
    lacking = [n for n in NAMES if n not in present and n + ".gz" not in present]
    if lacking:
        pytest.skip(f"MINICNN_DATA={REAL_DIR} lacks {', '.join(lacking)}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_DATA", REAL_DIR)
        mp.setattr(mnist, "MIRRORS", [])  # never download in this test
        return mnist.load_data()


def test_real_shapes_and_dtypes(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))


def test_real_labels(real):
    (_, y_train), (_, y_test) = real
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS


def test_real_arrays_hash_to_the_official_files(real):
    # Rebuild each file from its array (header from the IDX format, then the bytes): the MD5 must
    # be the official one, so not one pixel or label differs.
    for name, array in zip(NAMES, flat(real), strict=True):
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        assert hashlib.md5(header + array.tobytes()).hexdigest() == OFFICIAL_MD5[name], name


# ---------------------------------------------------------------------------- synthetic directories


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $MINICNN_DATA, a cache under tmp_path, and no mirrors: nothing can reach the network."""
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mnist, "MIRRORS", [])


def make_dataset(directory, n_train, n_test, hw=(4, 5), gz=(False,) * 4, seed=0):
    """Write the four files into `directory` with random uint8 images (N, H, W) and labels."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = []
    for n in (n_train, n_test):
        arrays += [rng.integers(0, 256, (n, *hw), dtype=np.uint8), rng.integers(0, 10, n, np.uint8)]
    for name, array, compress in zip(NAMES, arrays, gz, strict=True):
        write_idx(os.path.join(directory, name + (".gz" if compress else "")), array)
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])


def assert_loaded(result, expected):
    for got, want in zip(flat(result), flat(expected), strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def test_lookup_order_path_then_env_then_cache(tmp_path, monkeypatch):
    explicit = make_dataset(tmp_path / "explicit", 3, 2, seed=1)
    from_env = make_dataset(tmp_path / "env", 4, 2, seed=2)
    cached = make_dataset(mnist.cache_dir(), 5, 2, seed=3)
    assert mnist.cache_dir() == str(tmp_path / "cache" / "mnist")
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "env"))
    assert_loaded(mnist.load_data(tmp_path / "explicit"), explicit)
    assert_loaded(mnist.load_data(), from_env)
    monkeypatch.setenv("MINICNN_DATA", "")  # empty counts as unset
    assert_loaded(mnist.load_data(), cached)


@pytest.mark.parametrize(
    "gz", [(False,) * 4, (True,) * 4, (True, False, False, True)], ids=["raw", "gz", "mixed"]
)
def test_raw_gz_and_mixed_files(tmp_path, gz):
    expected = make_dataset(tmp_path, 6, 3, gz=gz)
    assert_loaded(mnist.load_data(str(tmp_path)), expected)


def test_raw_file_is_preferred_when_both_exist(tmp_path):
    make_dataset(tmp_path, 6, 3, gz=(True,) * 4, seed=1)
    raw = make_dataset(tmp_path, 6, 3, seed=2)
    assert_loaded(mnist.load_data(tmp_path), raw)


def test_fashion_like_layout_of_any_size_loads(tmp_path):
    expected = make_dataset(tmp_path, 7, 3, hw=(28, 28))
    assert_loaded(mnist.load_data(tmp_path), expected)
    other = make_dataset(tmp_path / "odd", 2, 1, hw=(3, 11))
    assert_loaded(mnist.load_data(tmp_path / "odd"), other)


def test_arrays_are_writeable(tmp_path):
    make_dataset(tmp_path, 2, 2)
    (x_train, _), _ = mnist.load_data(tmp_path)
    x_train[0, 0, 0] = 7  # in-place edits work
    assert x_train.flags.writeable


def test_count_mismatch_names_both_files_and_counts(tmp_path):
    make_dataset(tmp_path, 6, 3)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError) as info:
        mnist.load_data(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "t10k-images-idx3-ubyte") in message
    assert str(tmp_path / "t10k-labels-idx1-ubyte") in message
    assert "3 images" in message and "4 labels" in message


@pytest.mark.parametrize(
    "name, array, expected",
    [
        ("train-images-idx3-ubyte", np.zeros((6, 20), np.uint8), "3-D uint8"),
        ("train-images-idx3-ubyte", np.zeros((6, 4, 5), np.float32), "3-D uint8"),
        ("train-labels-idx1-ubyte", np.zeros(6, np.int32), "1-D uint8"),
        ("train-labels-idx1-ubyte", np.zeros((6, 1), np.uint8), "1-D uint8"),
    ],
)
def test_wrong_structure_names_the_file(tmp_path, name, array, expected):
    make_dataset(tmp_path, 6, 3)
    write_idx(tmp_path / name, array)
    with pytest.raises(ValueError, match=expected) as info:
        mnist.load_data(tmp_path)
    assert str(tmp_path / name) in str(info.value)


def test_malformed_file_raises_idx_error_naming_it(tmp_path):
    make_dataset(tmp_path, 6, 3)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(IDXError, match="t10k-images-idx3-ubyte"):
        mnist.load_data(tmp_path)


def test_explicit_dir_missing_files_is_an_error_not_a_download(tmp_path):
    make_dataset(tmp_path, 6, 3)
    os.remove(tmp_path / "train-labels-idx1-ubyte")
    os.remove(tmp_path / "t10k-images-idx3-ubyte")
    # FileNotFoundError, not MNISTDownloadError: with no mirrors a download would raise that.
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "load_data(path=...)" in message
    assert "train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in message
    assert "train-images" not in message
    assert sorted(os.listdir(tmp_path)) == ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"]


def test_env_dir_missing_or_absent_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"\$MINICNN_DATA\) does not exist") as info:
        mnist.load_data()
    assert all(name in str(info.value) for name in NAMES)
    assert not os.path.exists(tmp_path / "absent")
    assert not os.path.exists(mnist.cache_dir())


def test_complete_cache_is_used_without_downloading(tmp_path):
    expected = make_dataset(mnist.cache_dir(), 4, 2, gz=(True,) * 4)
    assert_loaded(mnist.load_data(), expected)  # MIRRORS is empty: any download would fail


def test_cache_dir_follows_minicnn_cache_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "c"))
    assert mnist.cache_dir() == os.path.join(tmp_path, "c", "mnist")
    monkeypatch.delenv("MINICNN_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist.cache_dir() == os.path.join(tmp_path, "home", ".cache", "minicnn", "mnist")


def test_path_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = make_dataset(tmp_path / "data", 2, 1)
    assert_loaded(mnist.load_data("~/data"), expected)
