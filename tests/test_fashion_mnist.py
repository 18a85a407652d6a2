"""fashion_mnist.load_data on the shared files, its own lookup, and a download from 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from minicnn.datasets import fashion_mnist, mnist
from minicnn.datasets.idx import write_idx

NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
# $MINICNN_FASHION_MNIST_DATA if set, else the shared folder beside the repository (as in CI).
# Read before the isolation fixture clears the variable.
REAL_DIR = os.environ.get("MINICNN_FASHION_MNIST_DATA") or str(
    Path(__file__).resolve().parents[2] / "shared" / "fashion-mnist"
)

# From ../shared/fashion-mnist/README.md (the dataset's own list) and np.bincount on the files.
OFFICIAL_MD5 = {  # MD5 of each uncompressed file, header included
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}


@pytest.fixture(scope="module")
def real():
    """The real Fashion-MNIST arrays, loaded once; skips when the shared files are not there."""
    present = set(os.listdir(REAL_DIR)) if os.path.isdir(REAL_DIR) else set()
    lacking = [n for n in NAMES if n not in present and n + ".gz" not in present]
    if lacking:
        pytest.skip(
            f"{REAL_DIR} lacks {', '.join(lacking)} (set MINICNN_FASHION_MNIST_DATA to a folder "
            f"with the Fashion-MNIST files)"
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fashion_mnist, "MIRRORS", [])  # never download in this test
        return fashion_mnist.load_data(REAL_DIR)


def test_real_shapes_dtypes_and_labels(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y_train).tolist() == [6000] * 10  # balanced, unlike MNIST
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert len(fashion_mnist.CLASS_NAMES) == 10


def test_real_arrays_hash_to_the_official_files(real):
    # Rebuild each file from its array: the MD5 must be the official one, to the last pixel.
    for name, array in zip(NAMES, [a for split in real for a in split], strict=True):
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        assert hashlib.md5(header + array.tobytes()).hexdigest() == OFFICIAL_MD5[name], name


def test_checksum_table_matches_the_official_content_md5s():
    for name, md5 in OFFICIAL_MD5.items():
        assert md5 in fashion_mnist.CHECKSUMS[name + ".gz"]


# ---------------------------------------------------------------------------- synthetic


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No data variables, a cache under tmp_path, no mirrors, no proxies, a short timeout."""
    for var in ("MINICNN_DATA", "MINICNN_FASHION_MNIST_DATA", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINICNN_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setattr(fashion_mnist, "MIRRORS", [])
    monkeypatch.setattr(mnist, "MIRRORS", [])


def make_dataset(directory, seed=0, gz=False):
    """Write the four files (3 train and 2 test images of 4x5) into `directory`; returns arrays."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = []
    for n in (3, 2):
        arrays += [rng.integers(0, 256, (n, 4, 5), np.uint8), rng.integers(0, 10, n, np.uint8)]
    for name, array in zip(NAMES, arrays, strict=True):
        write_idx(os.path.join(directory, name + (".gz" if gz else "")), array)
    return arrays


def assert_loaded(result, arrays):
    for got, want in zip([a for split in result for a in split], arrays, strict=True):
        np.testing.assert_array_equal(got, want)


def test_lookup_path_then_own_variable_then_cache(tmp_path, monkeypatch):
    explicit = make_dataset(tmp_path / "explicit", seed=1)
    from_env = make_dataset(tmp_path / "env", seed=2)
    cached = make_dataset(fashion_mnist.cache_dir(), seed=3)
    make_dataset(tmp_path / "mnist", seed=4)
    assert fashion_mnist.cache_dir() == str(tmp_path / "cache" / "fashion-mnist")
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "mnist"))  # MNIST's: never read here
    assert_loaded(fashion_mnist.load_data(), cached)
    monkeypatch.setenv("MINICNN_FASHION_MNIST_DATA", str(tmp_path / "env"))
    assert_loaded(fashion_mnist.load_data(), from_env)
    assert_loaded(fashion_mnist.load_data(tmp_path / "explicit"), explicit)


def test_missing_files_name_the_folder_the_files_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_FASHION_MNIST_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert "Fashion-MNIST directory" in message and str(tmp_path / "absent") in message
    assert "$MINICNN_FASHION_MNIST_DATA" in message and fashion_mnist.cache_dir() in message
    assert all(name in message for name in NAMES)


def test_downloads_into_its_cache_with_checksums(server, tmp_path, monkeypatch):
    arrays = make_dataset(tmp_path / "served", gz=True)
    files = {n + ".gz": (tmp_path / "served" / (n + ".gz")).read_bytes() for n in NAMES}
    monkeypatch.setattr(
        fashion_mnist, "CHECKSUMS", {f: (hashlib.md5(b).hexdigest(),) for f, b in files.items()}
    )
    server.serve("bad", {f: b"\x1f\x8b not the file" for f in files})
    server.serve("good", files)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", [server.mirror("bad"), server.mirror("good")])
    assert_loaded(fashion_mnist.load_data(), arrays)
    assert sorted(os.listdir(fashion_mnist.cache_dir())) == sorted(files)
    assert not os.path.exists(mnist.cache_dir())


def test_no_mirror_is_a_download_error_naming_the_variable():
    with pytest.raises(fashion_mnist.DownloadError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert "Fashion-MNIST" in message and fashion_mnist.cache_dir() in message
    assert "MINICNN_FASHION_MNIST_DATA=" in message and "(no mirrors configured)" in message
    assert not isinstance(info.value, mnist.MNISTDownloadError)
