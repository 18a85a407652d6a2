"""Downloading into the cache, against a real HTTP server on 127.0.0.1 that misbehaves on cue."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from minicnn.datasets import mnist
from minicnn.datasets.idx import write_idx

NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
FILES = [name + ".gz" for name in NAMES]


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.routes[path]`, a (behaviour, body) pair; unknown paths get a 404.

    Behaviours: "ok"; an int HTTP status; "stall" (accept, then send nothing); "stall-body"
    (headers and a few bytes, then nothing); "truncate" (claim the full length, send half, hang up);
    "trickle" (a byte every 50 ms). Stalls end when the test's finalizer sets `server.release`.
    """

    def do_GET(self):
        self.server.log.append(self.path)
        behaviour, body = self.server.routes.get(self.path, (404, b""))
        try:
            if behaviour == "stall":
                self.server.release.wait(30)
                return
            if isinstance(behaviour, int):
                self.send_error(behaviour)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if behaviour == "ok":
                self.wfile.write(body)
            elif behaviour == "stall-body":
                self.wfile.write(body[:10])
                self.wfile.flush()
                self.server.release.wait(30)
            elif behaviour == "truncate":
                self.wfile.write(body[: len(body) // 2])
            elif behaviour == "trickle":
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    if self.server.release.wait(0.05):
                        return
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, which is what several tests want

    def log_message(self, *args):
        pass  # keep the test output clean


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, tuple[object, bytes]] = {}
        self.log: list[str] = []
        self.release = threading.Event()

    def mirror(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}/"

    def serve(self, mirror: str, files: dict[str, bytes], behaviour: object = "ok", only=None):
        """Route each file under `mirror` to `behaviour` (or just the files in `only`)."""
        for file, body in files.items():
            if only is None or file in only:
                self.routes[f"/{mirror}/{file}"] = (behaviour, body)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Small MNIST-layout arrays, their .gz bytes by file name, and an MD5 table for them."""
    rng = np.random.default_rng(0)
    arrays = []
    for n in (6, 3):
        arrays += [
            rng.integers(0, 256, (n, 4, 5), dtype=np.uint8),
            rng.integers(0, 10, n, np.uint8),
        ]
    directory = tmp_path_factory.mktemp("served")
    files = {}
    for file, array in zip(FILES, arrays, strict=True):
        write_idx(directory / file, array)
        files[file] = (directory / file).read_bytes()
    checksums = {file: (hashlib.md5(body).hexdigest(),) for file, body in files.items()}
    return arrays, files, checksums


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path, dataset):
    """An empty cache under tmp_path, no $MINICNN_DATA, no proxies, the test dataset's MD5s."""
    for var in ("MINICNN_DATA", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINICNN_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setattr(mnist, "CHECKSUMS", dataset[2])
    monkeypatch.setattr(mnist, "MIRRORS", [])


def use_mirrors(monkeypatch, server, *names):
    monkeypatch.setattr(mnist, "MIRRORS", [server.mirror(name) for name in names])


def cache_listing() -> list[str]:
    directory = mnist.cache_dir()
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def assert_loaded(result, arrays):
    for got, want in zip([a for split in result for a in split], arrays, strict=True):
        np.testing.assert_array_equal(got, want)


def test_downloads_into_empty_cache_then_reuses_it(server, dataset, monkeypatch, capsys):
    arrays, files, _ = dataset
    server.serve("m1", files)
    use_mirrors(monkeypatch, server, "m1")
    assert_loaded(mnist.load_data(), arrays)
    assert cache_listing() == sorted(FILES)  # final names only, no temporary files
    assert server.log == [f"/m1/{file}" for file in FILES]
    err = capsys.readouterr().err
    assert f"\rDownloading train-images-idx3-ubyte.gz from {server.mirror('m1')}" in err
    assert "/0.0 MB\n" in err  # done/total, then a newline when the file is complete
    assert_loaded(mnist.load_data(), arrays)
    assert len(server.log) == 4  # the second load read the cache


def test_only_missing_files_are_fetched(server, dataset, monkeypatch):
    arrays, files, _ = dataset
    os.makedirs(mnist.cache_dir())
    write_idx(os.path.join(mnist.cache_dir(), NAMES[0]), arrays[0])  # raw counts as present
    server.serve("m1", files)
    use_mirrors(monkeypatch, server, "m1")
    assert_loaded(mnist.load_data(), arrays)
    assert server.log == [f"/m1/{file}" for file in FILES[1:]]


def test_404_on_first_mirror_then_second(server, dataset, monkeypatch):
    arrays, files, _ = dataset
    server.serve("m2", files)  # m1 has nothing: every request there is a 404
    use_mirrors(monkeypatch, server, "m1", "m2")
    assert_loaded(mnist.load_data(), arrays)
    assert server.log[:2] == [f"/m1/{FILES[0]}", f"/m2/{FILES[0]}"]
    assert cache_listing() == sorted(FILES)


def test_corrupt_download_falls_through_and_leaves_nothing(server, dataset, monkeypatch):
    arrays, files, _ = dataset
    wrong = {file: gzip.compress(b"not the right bytes") for file in files}
    server.serve("m1", wrong)
    server.serve("m2", files, only=[FILES[0]])
    use_mirrors(monkeypatch, server, "m1", "m2")
    with pytest.raises(mnist.MNISTDownloadError, match="MD5 mismatch"):
        mnist.load_data()
    # The first file came from m2; the second failed on both mirrors and left nothing behind.
    assert cache_listing() == [FILES[0]]
    server.serve("m2", files)
    assert_loaded(mnist.load_data(), arrays)
    assert cache_listing() == sorted(FILES)


def test_recompressed_file_accepted_by_content_md5(server, dataset, monkeypatch):
    arrays, files, _ = dataset
    # Like the shared MNIST train images: other .gz bytes, same content. The table lists the
    # mirror's .gz MD5 and the content MD5, as mnist.CHECKSUMS does.
    recompressed = {
        file: gzip.compress(gzip.decompress(body), 1, mtime=1) for file, body in files.items()
    }
    assert recompressed != files
    table = {
        file: (hashlib.md5(body).hexdigest(), hashlib.md5(gzip.decompress(body)).hexdigest())
        for file, body in files.items()
    }
    monkeypatch.setattr(mnist, "CHECKSUMS", table)
    server.serve("m1", recompressed)
    use_mirrors(monkeypatch, server, "m1")
    assert_loaded(mnist.load_data(), arrays)


@pytest.mark.parametrize("behaviour", ["stall", "stall-body"])
def test_stalled_mirror_times_out_quickly_then_next(server, dataset, monkeypatch, behaviour):
    arrays, files, _ = dataset
    server.serve("m1", files)
    server.serve("m1", files, behaviour, only=[FILES[1]])
    server.serve("m2", files)
    use_mirrors(monkeypatch, server, "m1", "m2")
    start = time.monotonic()
    assert_loaded(mnist.load_data(), arrays)  # MINICNN_DOWNLOAD_TIMEOUT is 0.5 s
    assert time.monotonic() - start < 3
    assert f"/m2/{FILES[1]}" in server.log and f"/m2/{FILES[0]}" not in server.log
    assert cache_listing() == sorted(FILES)


def test_trickling_mirror_hits_the_deadline(server, dataset, monkeypatch):
    _, files, _ = dataset
    server.serve("m1", files, "trickle")
    use_mirrors(monkeypatch, server, "m1")
    monkeypatch.setattr(mnist, "DEADLINE", 0.3)  # each byte comes well within the 0.5 s timeout
    start = time.monotonic()
    with pytest.raises(mnist.MNISTDownloadError, match="deadline"):
        mnist.load_data()
    assert time.monotonic() - start < 3
    assert cache_listing() == []


def test_all_mirrors_failing_names_dir_files_reasons_and_the_way_out(server, dataset, monkeypatch):
    _, files, _ = dataset
    server.serve("m2", files, 500)
    use_mirrors(monkeypatch, server, "m1", "m2")
    with pytest.raises(mnist.MNISTDownloadError) as info:
        mnist.load_data()
    message = str(info.value)
    assert mnist.cache_dir() in message
    assert all(name in message for name in NAMES)
    assert f"{server.mirror('m1')}{FILES[0]}: HTTPError: HTTP Error 404" in message
    assert f"{server.mirror('m2')}{FILES[0]}: HTTPError: HTTP Error 500" in message
    assert "MINICNN_DATA=" in message and "load_data(path=...)" in message
    assert isinstance(info.value, OSError)


def test_cut_off_download_leaves_no_partial_file_a_later_load_picks_up(
    server, dataset, monkeypatch
):
    arrays, files, _ = dataset
    server.serve("m1", files)
    server.serve("m1", files, "truncate", only=[FILES[2]])
    use_mirrors(monkeypatch, server, "m1")
    with pytest.raises(mnist.MNISTDownloadError, match="connection closed after"):
        mnist.load_data()
    assert cache_listing() == sorted(FILES[:2])
    server.serve("m1", files)
    assert_loaded(mnist.load_data(), arrays)
    assert server.log[-2:] == [f"/m1/{FILES[2]}", f"/m1/{FILES[3]}"]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_interrupted_download_leaves_no_file(server, dataset, monkeypatch):
    _, files, _ = dataset
    server.serve("m1", files, "trickle")
    use_mirrors(monkeypatch, server, "m1")

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)  # Ctrl-C in the middle of the first file
        with pytest.raises(KeyboardInterrupt):
            mnist.load_data()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert cache_listing() == []


def test_stale_temp_file_from_a_killed_process_is_ignored(server, dataset, monkeypatch):
    arrays, files, _ = dataset
    os.makedirs(mnist.cache_dir())
    stale = f".{FILES[0]}.0123abcd.tmp"
    with open(os.path.join(mnist.cache_dir(), stale), "wb") as f:
        f.write(files[FILES[0]][:20])
    server.serve("m1", files)
    use_mirrors(monkeypatch, server, "m1")
    assert_loaded(mnist.load_data(), arrays)
    assert cache_listing() == sorted([*FILES, stale])


def test_file_without_checksum_must_be_valid_idx(server, dataset, monkeypatch):
    arrays, files, _ = dataset
    monkeypatch.setattr(mnist, "CHECKSUMS", {})  # e.g. a user's mirror of another dataset
    server.serve("m1", {file: gzip.compress(b"\x00\x00\x08\x01junk") for file in files})
    server.serve("m2", files)
    use_mirrors(monkeypatch, server, "m1", "m2")
    assert_loaded(mnist.load_data(), arrays)
    assert f"/m2/{FILES[0]}" in server.log


def test_offline_fails_within_seconds(monkeypatch):
    with socket.socket() as s:  # a port that was just free: connecting to it is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirrors = [f"http://127.0.0.1:{port}/a/", f"http://127.0.0.1:{port}/b/"]
    monkeypatch.setattr(mnist, "MIRRORS", mirrors)
    start = time.monotonic()
    with pytest.raises(mnist.MNISTDownloadError, match="MINICNN_DATA") as info:
        mnist.load_data()
    assert time.monotonic() - start < 5
    assert "refused" in str(info.value).lower()
    assert cache_listing() == []


def test_bad_timeout_setting_is_named(monkeypatch):
    monkeypatch.setenv("MINICNN_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="MINICNN_DOWNLOAD_TIMEOUT='soon'"):
        mnist.load_data()
