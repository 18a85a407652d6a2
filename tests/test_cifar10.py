"""cifar10.load_data on small files the tests write in the binary format, and a download from
127.0.0.1. Each batch holds N records here (cifar10.RECORDS_PER_BATCH is patched from 10,000)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from minicnn.datasets import cifar10
from minicnn.datasets._download import DownloadError

N = 3  # records per batch in these tests
BATCHES = [*cifar10.TRAIN_FILES, cifar10.TEST_FILE]


def encode(x: np.ndarray, y: np.ndarray) -> bytes:
    """The binary format, written from its description: per image (32, 32, 3), the label byte,
    then the red plane, the green plane, the blue plane, each row-major."""
    return b"".join(
        bytes([label]) + b"".join(image[:, :, c].tobytes() for c in range(3))
        for image, label in zip(x, y, strict=True)
    )


def make_batches(seed: int = 0) -> tuple[dict[str, bytes], tuple]:
    """Random batches by file name, and the arrays load_data must return for them."""
    rng = np.random.default_rng(seed)
    xs = rng.integers(0, 256, (6, N, 32, 32, 3), np.uint8)
    ys = rng.integers(0, 10, (6, N), np.uint8)
    batches = {name: encode(x, y) for name, x, y in zip(BATCHES, xs, ys, strict=True)}
    expected = ((np.concatenate(xs[:5]), ys[:5].reshape(-1, 1)), (xs[5], ys[5].reshape(-1, 1)))
    return batches, expected


def write_folder(folder, batches: dict[str, bytes]) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, data in batches.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz holding `members` (name -> bytes), as bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def archive_of(batches: dict[str, bytes]) -> bytes:
    return tar_gz({f"{cifar10.FOLDER}/{name}": data for name, data in batches.items()})


def assert_loaded(result, expected):
    for got, want in zip([a for s in result for a in s], [a for s in expected for a in s],
                         strict=True):
        assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
        np.testing.assert_array_equal(got, want)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """N records per batch, a cache under tmp_path, no mirrors, no proxies, a short timeout."""
    for var in ("MINICNN_CIFAR10_DATA", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINICNN_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", N)
    monkeypatch.setattr(cifar10, "MIRRORS", [])


def test_hand_made_record_is_nhwc_with_rgb_planes(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", 1)
    record = bytearray(cifar10.RECORD_BYTES)
    record[0] = 7  # the label
    record[1 + 0] = 11  # red, row 0, column 0
    record[1 + 1] = 12  # red, row 0, column 1
    record[1 + 32] = 13  # red, row 1, column 0
    record[1 + 1024 + 5 * 32 + 9] = 14  # green, row 5, column 9
    record[1 + 2048 + 31 * 32 + 31] = 15  # blue, row 31, column 31
    write_folder(tmp_path, {name: bytes(record) for name in BATCHES})
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(tmp_path)
    assert x_train.shape == (5, 32, 32, 3) and y_train.shape == (5, 1)
    assert x_test.shape == (1, 32, 32, 3) and y_test.shape == (1, 1)
    assert y_test.tolist() == [[7]]
    image = x_test[0]
    assert (image[0, 0, 0], image[0, 1, 0], image[1, 0, 0]) == (11, 12, 13)
    assert image[5, 9, 1] == 14 and image[31, 31, 2] == 15
    assert np.count_nonzero(image) == 5


@pytest.mark.parametrize("layout", ["loose", "subfolder", "archive", "archive-path"])
def test_every_layout_round_trips(tmp_path, layout):
    batches, expected = make_batches()
    if layout == "loose":
        write_folder(tmp_path, batches)
    elif layout == "subfolder":
        write_folder(tmp_path / cifar10.FOLDER, batches)
    else:
        (tmp_path / cifar10.ARCHIVE).write_bytes(archive_of(batches))
    path = tmp_path / cifar10.ARCHIVE if layout == "archive-path" else tmp_path
    before = sorted(os.listdir(tmp_path))
    assert_loaded(cifar10.load_data(path), expected)
    assert sorted(os.listdir(tmp_path)) == before  # nothing extracted, nothing written


def test_lookup_path_then_variable_then_cache(tmp_path, monkeypatch):
    explicit, from_env, cached = (make_batches(seed) for seed in (1, 2, 3))
    write_folder(tmp_path / "explicit", explicit[0])
    write_folder(tmp_path / "env" / cifar10.FOLDER, from_env[0])
    os.makedirs(cifar10.cache_dir())
    (tmp_path / "cache" / "cifar10" / cifar10.ARCHIVE).write_bytes(archive_of(cached[0]))
    assert cifar10.cache_dir() == str(tmp_path / "cache" / "cifar10")
    assert_loaded(cifar10.load_data(), cached[1])
    monkeypatch.setenv("MINICNN_CIFAR10_DATA", str(tmp_path / "env"))
    assert_loaded(cifar10.load_data(), from_env[1])
    assert_loaded(cifar10.load_data(tmp_path / "explicit"), explicit[1])


def test_missing_data_names_folder_files_and_source(tmp_path, monkeypatch):
    batches, _ = make_batches()
    del batches["data_batch_3.bin"]
    write_folder(tmp_path, batches)
    monkeypatch.setenv("MINICNN_CIFAR10_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        cifar10.load_data()
    message = str(info.value)
    assert str(tmp_path) in message and "$MINICNN_CIFAR10_DATA" in message
    assert all(name in message for name in BATCHES) and cifar10.ARCHIVE in message
    assert not os.path.exists(cifar10.cache_dir())  # nothing downloaded


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda data: data[:-100], "truncated"),
        (lambda data: data + b"\x00", "too long"),
        (lambda data: b"\x0a" + data[1:], "record 0 has label 10"),
    ],
    ids=["truncated", "too-long", "bad-label"],
)
def test_bad_batch_is_an_error_naming_the_file(tmp_path, change, expected):
    batches, _ = make_batches()
    batches["data_batch_4.bin"] = change(batches["data_batch_4.bin"])
    write_folder(tmp_path, batches)
    with pytest.raises(cifar10.CIFAR10Error, match=expected) as info:
        cifar10.load_data(tmp_path)
    assert str(tmp_path / "data_batch_4.bin") in str(info.value)


def test_bad_batch_inside_an_archive_is_named_too(tmp_path):
    batches, _ = make_batches()
    batches["test_batch.bin"] = batches["test_batch.bin"][:5]
    (tmp_path / cifar10.ARCHIVE).write_bytes(archive_of(batches))
    with pytest.raises(cifar10.CIFAR10Error, match="truncated") as info:
        cifar10.load_data(tmp_path)
    assert os.path.join(tmp_path, cifar10.ARCHIVE, "test_batch.bin") in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "not-gzip", "lacks-a-batch"])
def test_bad_archive_is_an_error_naming_it(tmp_path, damage):
    batches, _ = make_batches()
    data = archive_of(batches)
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupted":
        middle, flipped = len(data) // 2, bytearray(data)
        flipped[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        data = bytes(flipped)
    elif damage == "not-gzip":
        data = b"this is no archive at all"
    else:
        del batches["data_batch_2.bin"]
        data = archive_of(batches)
    (tmp_path / cifar10.ARCHIVE).write_bytes(data)
    with pytest.raises(cifar10.CIFAR10Error) as info:
        cifar10.load_data(tmp_path)
    assert os.path.join(tmp_path, cifar10.ARCHIVE) in str(info.value)
    if damage == "lacks-a-batch":
        assert "data_batch_2.bin" in str(info.value)


class Payload:
    """Unpickling this creates a file: proof that nothing was unpickled if the file is absent."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("form", ["folder", "batches-py", "python-archive", "renamed-archive"])
def test_python_version_is_refused_never_unpickled(tmp_path, form):
    marker = str(tmp_path / "unpickled")
    pickled = pickle.dumps(Payload(marker))
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
             "test_batch", "batches.meta"]
    if form == "folder":
        write_folder(tmp_path / "data", dict.fromkeys(names, pickled))
        path = tmp_path / "data"
    elif form == "batches-py":
        write_folder(tmp_path / "data" / "cifar-10-batches-py", dict.fromkeys(names, pickled))
        path = tmp_path / "data"
    else:
        archive = tar_gz({f"cifar-10-batches-py/{name}": pickled for name in names})
        name = "cifar-10-python.tar.gz" if form == "python-archive" else cifar10.ARCHIVE
        (tmp_path / name).write_bytes(archive)
        path = tmp_path / name
    with pytest.raises(cifar10.CIFAR10Error, match="python version") as info:
        cifar10.load_data(path)
    assert cifar10.ARCHIVE in str(info.value)  # points at the binary version
    assert not os.path.exists(marker)


def test_archive_members_are_never_written_out(tmp_path):
    batches, expected = make_batches()
    members = {f"{cifar10.FOLDER}/{name}": data for name, data in batches.items()}
    members["../escaped.bin"] = b"x"
    members["/tmp/absolute-escape.bin"] = b"x"
    os.makedirs(tmp_path / "data")
    (tmp_path / "data" / cifar10.ARCHIVE).write_bytes(tar_gz(members))
    assert_loaded(cifar10.load_data(tmp_path / "data"), expected)
    assert sorted(os.listdir(tmp_path)) == ["data"]
    assert os.listdir(tmp_path / "data") == [cifar10.ARCHIVE]


# ---------------------------------------------------------------------------- download


def test_download_checks_md5_then_reuses_the_cache(server, monkeypatch, capsys):
    batches, expected = make_batches()
    archive = archive_of(batches)
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(archive).hexdigest())
    other = archive_of(make_batches(seed=9)[0])  # a valid archive, but not the one expected
    server.serve("bad", {cifar10.ARCHIVE: other})
    server.serve("good", {cifar10.ARCHIVE: archive})
    monkeypatch.setattr(cifar10, "MIRRORS", [server.mirror("bad"), server.mirror("good")])
    assert_loaded(cifar10.load_data(), expected)
    assert os.listdir(cifar10.cache_dir()) == [cifar10.ARCHIVE]  # no temporary file left
    assert server.log == [f"/bad/{cifar10.ARCHIVE}", f"/good/{cifar10.ARCHIVE}"]
    assert f"Downloading {cifar10.ARCHIVE} from {server.mirror('good')}" in capsys.readouterr().err
    assert_loaded(cifar10.load_data(), expected)
    assert len(server.log) == 2  # the second load read the cache


def test_cut_off_download_leaves_nothing_and_names_the_way_out(server, monkeypatch):
    batches, _ = make_batches()
    archive = archive_of(batches)
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(archive).hexdigest())
    server.serve("m1", {cifar10.ARCHIVE: archive}, "truncate")
    monkeypatch.setattr(cifar10, "MIRRORS", [server.mirror("m1"), server.mirror("m2")])
    with pytest.raises(DownloadError) as info:
        cifar10.load_data()
    message = str(info.value)
    assert "connection closed after" in message and "HTTP Error 404" in message
    assert cifar10.cache_dir() in message and "MINICNN_CIFAR10_DATA=" in message
    assert os.listdir(cifar10.cache_dir()) == []


def test_download_without_checksum_must_be_a_binary_archive(server, monkeypatch):
    batches, expected = make_batches()
    monkeypatch.setattr(cifar10, "MD5", None)
    server.serve("m1", {cifar10.ARCHIVE: gzip.compress(b"junk")})
    server.serve("m2", {cifar10.ARCHIVE: archive_of(batches)})
    monkeypatch.setattr(cifar10, "MIRRORS", [server.mirror("m1"), server.mirror("m2")])
    assert_loaded(cifar10.load_data(), expected)


def test_a_tar_bomb_or_an_oversized_file_costs_no_memory(tmp_path):
    """Issue 21, defect 3: a .tar.gz of a few hundred bytes declaring a 3 GiB member, and
    a loose batch file of 3 GiB (sparse on disk), are refused from their declared sizes, before
    any of it is read (the process's peak memory grows by well under the member's size)."""
    import resource

    big = 3 * 2**30
    archive = tmp_path / cifar10.ARCHIVE
    # a tar header declaring the 3 GiB member, and the first block of its zeros: the archive
    # is a few hundred bytes, as a tar bomb's is
    info = tarfile.TarInfo(f"{cifar10.FOLDER}/data_batch_1.bin")
    info.size = big
    archive.write_bytes(gzip.compress(info.tobuf(tarfile.GNU_FORMAT) + bytes(512)))
    assert archive.stat().st_size < 1000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(cifar10.CIFAR10Error, match="too long"):
        cifar10.load_data(str(archive))
    folder = tmp_path / "loose"
    folder.mkdir()
    for name in (*cifar10.TRAIN_FILES, cifar10.TEST_FILE):  # sparse files: no disk used
        with open(folder / name, "wb") as f:
            f.truncate(big if name == "data_batch_1.bin" else 30730000)
    with pytest.raises(cifar10.CIFAR10Error, match="too long"):
        cifar10.load_data(str(folder))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200 * 1024, f"peak memory grew by {grown_kb} KB"
