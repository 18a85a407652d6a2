"""Fuzzing the readers of untrusted files (issue 21): IDX files (1,000 mutants raw and 1,000
gzipped), CIFAR-10's .tar.gz (2,000), minicnn's .npz model file (2,000) and Keras's .keras and
.weights.h5 (300 each), mutated by hypothesis (bytes flipped, inserted, deleted, the file cut,
4-byte fields set to extremes), derandomized so CI runs the same mutants. Every mutant must load
correctly or raise the reader's one named error (IDXError, CIFAR10Error, ModelFileError: all
ValueErrors that name the file), never another exception, and with memory bounded: the
process's peak resident size may not grow by more than MEMORY_MB over the whole run."""

from __future__ import annotations

import gzip
import io
import resource
import tarfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn.datasets import cifar10
from minicnn.datasets.idx import IDXError, read_idx, write_idx
from minicnn.models import ModelFileError, Sequential, load_model
from minicnn.models.model_file import ModelFileError as _same  # noqa: F401 (one class)

MEMORY_MB = 300  # peak growth allowed over all the mutants of one reader


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """`original` with a few random edits: flipped bytes, a cut, an insertion, a deletion,
    a header field set to an extreme value."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "extreme"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:  # a 4-byte field (a dimension, a size) set to its largest values
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                                     b"\x00\x00\x00\x00"]))
    return bytes(data)


class PeakMemory:
    """The growth of the process's peak resident size (Linux: kilobytes) since creation."""

    def __init__(self):
        self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def grown_mb(self) -> float:
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.start) / 1024


def fuzz(original: bytes, path, load, error: type[Exception], examples: int = 1000) -> dict:
    """Write each mutant of `original` to `path` and `load(path)` it: a load, or `error`
    naming the file; returns the counts, after checking the process's peak memory."""
    memory = PeakMemory()
    outcomes = {"loaded": 0, "refused": 0}

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=mutated(original))
    def check(data):
        path.write_bytes(data)
        try:
            load(path)
        except error as e:
            assert str(path) in str(e)
            outcomes["refused"] += 1
            return
        outcomes["loaded"] += 1

    check()
    assert outcomes["refused"] > 0 and memory.grown_mb() < MEMORY_MB, (outcomes,
                                                                        memory.grown_mb())
    return outcomes


def idx_original(tmp_path_factory, compressed: bool) -> bytes:
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    write_idx(path, np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4))
    raw = path.read_bytes()
    return gzip.compress(raw) if compressed else raw


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gzip"])
def test_idx_reader_survives_mutants(tmp_path_factory, compressed):
    original = idx_original(tmp_path_factory, compressed)
    folder = tmp_path_factory.mktemp("mutants")
    path = folder / ("m.idx.gz" if compressed else "m.idx")

    def load(path):
        assert isinstance(read_idx(path), np.ndarray)

    fuzz(original, path, load, IDXError)


def cifar_original(monkeypatch) -> bytes:
    """A .tar.gz of six CIFAR-10 batches of 2 records each (RECORDS_PER_BATCH patched down)."""
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", 2)
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in (*cifar10.TRAIN_FILES, cifar10.TEST_FILE):
            records = rng.integers(0, 256, (2, cifar10.RECORD_BYTES), dtype=np.uint8)
            records[:, 0] %= 10
            data = records.tobytes()
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_cifar10_reader_survives_mutants(tmp_path_factory, monkeypatch):
    original = cifar_original(monkeypatch)
    folder = tmp_path_factory.mktemp("cifar")
    path = folder / cifar10.ARCHIVE

    def load(path):
        (x, y), _ = cifar10.load_data(str(path))
        assert x.shape == (10, 32, 32, 3) and y.max() < 10

    fuzz(original, path, load, cifar10.CIFAR10Error, examples=2000)


def test_model_file_reader_survives_mutants(tmp_path_factory):
    from minicnn import layers

    folder = tmp_path_factory.mktemp("model")
    model = Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)),
                        layers.BatchNormalization(), layers.Flatten(),
                        layers.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(np.random.default_rng(0).random((4, 6, 6, 1)), np.eye(3)[[0, 1, 2, 0]])
    model.save(folder / "original.npz")
    original = (folder / "original.npz").read_bytes()
    path = folder / "m.npz"
    fuzz(original, path,
         lambda path: load_model(path).predict(np.zeros((1, 6, 6, 1)), verbose=0),
         ModelFileError, examples=2000)


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_keras_file_readers_survive_mutants(tmp_path_factory, suffix):
    """Keras 3's archive and weights file (read with zipfile, json and h5py) mutated: a load
    or ModelFileError, never another exception."""
    from minicnn import layers

    folder = tmp_path_factory.mktemp("keras")
    model = Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy")
    original_path = folder / f"original{suffix}"
    (model.save if suffix == ".keras" else model.save_weights)(original_path)
    original = original_path.read_bytes()
    path = folder / f"m{suffix}"

    def load(path):
        if suffix == ".keras":
            load_model(path).predict(np.zeros((1, 6, 6, 1)), verbose=0)
        else:
            model.load_weights(path)

    fuzz(original, path, load, ModelFileError, examples=300)
