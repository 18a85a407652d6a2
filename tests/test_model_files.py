"""Model files from anyone: cheap checks before costly work, one clear error type for every flaw.

A model file is an .npz (a zip of .npy members). These tests hand-edit saved files the way a
careless or hostile user could, and check that `load_model` reads only the format's keys,
refuses what it cannot use with a `ModelFileError` naming the file, and never allocates what the
stored weights do not justify.
"""

import io
import json
import os
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from minicnn import layers
from minicnn.models import Sequential, load_model, model_file
from minicnn.models.model_file import ModelFileError, read_model_file

GIB = 2**30
# What loading the small model below may allocate (its arrays are a few KB; the rest is
# Python objects and the compiled plan), far below the 1 GiB a careless reader would.
SMALL_LOAD_PEAK_BYTES = 32 * 2**20


def small_model(seed: int = 1, dtype: str = "float32") -> Sequential:
    model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1),
                                      dtype=dtype),
                        layers.MaxPooling2D(2), layers.Flatten(),
                        layers.Dense(3, activation="softmax", dtype=dtype)], seed=seed)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    x = np.random.default_rng(0).random((8, 10, 10, 1)).astype(dtype)
    model.train_on_batch(x, np.eye(3, dtype=dtype)[np.arange(8) % 3])  # Adam gets its slots
    return model


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    small_model().save(path)
    return path


def members(path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def edited(path, name: str, change) -> str:
    """A copy of the model file at `path` with `change(arrays, architecture)` applied."""
    arrays = members(path)
    architecture = json.loads(str(arrays["architecture"]))
    change(arrays, architecture)
    arrays["architecture"] = np.array(json.dumps(architecture))
    out = os.path.join(os.path.dirname(path), name)
    np.savez(out, **arrays)
    return out


def npz_with_zero_array(path, arrays: dict[str, np.ndarray], key: str, nbytes: int,
                        dtype: str = "|u1") -> None:
    """An .npz of `arrays` (stored) plus `key`: `nbytes` zero bytes (as `dtype`), deflated.

    The zeros are never held in memory or compressed one by one: deflate blocks ended by a full
    flush do not refer back, so the block for one chunk of zeros is repeated. The file is a
    valid zip (CRCs and sizes right) of about nbytes / 1000 bytes.
    """
    chunk = bytes(16 * 2**20)
    assert nbytes % len(chunk) == 0
    header = npy_header(dtype, nbytes // np.dtype(dtype).itemsize)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(nbytes // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    compressed_size = len(head) + len(block) * (nbytes // len(chunk)) + len(tail)

    entries = []
    with open(path, "wb") as f:
        def local(name: bytes, method: int, crc: int, csize: int, size: int) -> None:
            entries.append((name, method, crc, csize, size, f.tell()))
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, csize,
                                size, len(name), 0) + name)

        for name, array in arrays.items():
            data = npy_bytes(array)
            local(f"{name}.npy".encode(), 0, zlib.crc32(data), len(data), len(data))
            f.write(data)
        local(f"{key}.npy".encode(), 8, crc, compressed_size, len(header) + nbytes)
        f.write(head)
        for _ in range(nbytes // len(chunk)):
            f.write(block)
        f.write(tail)
        directory = f.tell()
        for name, method, crc, csize, size, offset in entries:
            f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                                crc, csize, size, len(name), 0, 0, 0, 0, 0, offset) + name)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                            f.tell() - directory, directory, 0))


def npy_header(dtype: str, size: int) -> bytes:
    """The .npy header of a 1-d array of `size` elements of `dtype`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": (size,)})
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_the_zero_array_helper_writes_a_valid_npz(tmp_path):
    path = tmp_path / "z.npz"
    npz_with_zero_array(path, {"a": np.arange(3.0)}, "zeros", 32 * 2**20)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every CRC right
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["a"], np.arange(3.0))
        zeros = npz["zeros"]
    assert zeros.shape == (32 * 2**20,) and zeros.dtype == np.uint8 and not zeros.any()


# -- only the format's keys are read ---------------------------------------------------------------
def test_only_the_keys_the_format_defines_are_opened(saved, tmp_path, monkeypatch):
    def change(arrays, _):
        arrays["junk"] = np.zeros(1000)
        arrays["weights/0"] = np.zeros(5)  # near-miss names are not the format's either
        arrays["slot/0/7"] = np.zeros(5)   # slots are read from 0 up to the first gap
    path = edited(saved, "extra.npz", change)
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    model = load_model(path)
    format_keys = {"format", "architecture"} | {f"weight/{k}" for k in range(4)} | {
        f"slot/{k}/{j}" for k in range(4) for j in range(2)}
    assert {name.removesuffix(".npy") for name in opened} == format_keys
    for a, b in zip(model.get_weights(), load_model(saved).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_1_gib_extra_key_costs_nothing(saved, tmp_path):
    path = tmp_path / "padded.npz"
    npz_with_zero_array(path, members(saved), "junk", GIB)
    assert os.path.getsize(path) < 2 * 2**20
    tracemalloc.start()
    try:
        model = load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < SMALL_LOAD_PEAK_BYTES, f"loading allocated {peak / 2**20:.0f} MiB"
    np.testing.assert_array_equal(model.get_weights()[0], load_model(saved).get_weights()[0])


# -- the architecture is checked against the stored weights before anything is allocated --------
def test_an_architecture_asking_for_1e9_filters_is_refused_before_allocating(saved):
    path = edited(saved, "huge.npz",
                  lambda _, arch: arch["layers"][0]["config"].update(filters=10**9))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"huge\.npz.*layer 'conv2d\w*' \(Conv2D\) "
                                                 r"creates a kernel of shape \(3, 3, 1, "
                                                 r"1000000000\), but the file's weight/0 has "
                                                 r"shape \(3, 3, 1, 4\)"):
            load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < SMALL_LOAD_PEAK_BYTES


def test_a_dense_layer_wider_than_its_stored_kernel_is_refused(saved):
    path = edited(saved, "wide.npz",
                  lambda _, arch: arch["layers"][3]["config"].update(units=10**7))
    with pytest.raises(ModelFileError, match=r"creates a kernel of shape \(64, 10000000\), but "
                                             r"the file's weight/2 has shape \(64, 3\)"):
        load_model(path)


def test_more_weights_than_the_file_holds_is_refused(saved):
    def drop_last(arrays, _):
        for key in ("weight/3", "slot/3/0", "slot/3/1"):
            del arrays[key]
    with pytest.raises(ModelFileError, match=r"creates a bias of shape \(3,\), but the file "
                                             r"holds only 3 weight arrays"):
        load_model(edited(saved, "short.npz", drop_last))


def test_the_size_ceiling_is_checked_from_the_headers(saved, monkeypatch):
    monkeypatch.setattr(model_file, "MAX_VALUES", 100)
    with pytest.raises(ModelFileError, match=r"model\.npz' holds 705 numbers, more than a "
                                             r"minicnn model file may \(MAX_VALUES = 100\)"):
        read_model_file(saved)


def test_a_stored_array_over_the_ceiling_is_refused_from_its_header(saved, tmp_path,
                                                                   monkeypatch):
    """A 64 MiB float32 weight (64 KB compressed) over a lowered ceiling is never decompressed."""
    monkeypatch.setattr(model_file, "MAX_VALUES", 2**20)
    arrays = members(saved)
    del arrays["weight/0"]
    path = tmp_path / "bomb.npz"
    npz_with_zero_array(path, arrays, "weight/0", 64 * 2**20, dtype="<f4")
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"bomb\.npz' holds 16,777,885 numbers, more "
                                                 r"than a minicnn model file may"):
            load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < SMALL_LOAD_PEAK_BYTES


# -- dtypes: float32 or float64, as the layers compute ---------------------------------------------
def test_float64_models_round_trip(tmp_path):
    model = small_model(dtype="float64")
    model.save(tmp_path / "f64.npz")
    back = load_model(tmp_path / "f64.npz")
    assert back.dtype == np.float64
    for a, b in zip(model.get_weights(), back.get_weights(), strict=True):
        assert b.dtype == np.float64
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, change, message", [
    ("int8-config.npz",
     lambda a, arch: [spec["config"].update(dtype="int8") for spec in arch["layers"]],
     r"layer 'conv2d\w*' has dtype 'int8'; minicnn layers compute in float32 or float64"),
    ("int8-arrays.npz",
     lambda a, arch: a.update({k: (v * 100).astype(np.int8) for k, v in a.items()
                               if k.startswith("weight/")}),
     r"'weight/0' of dtype int8; model weights are float32 or float64"),
    ("float16.npz",
     lambda a, arch: a.update({k: v.astype(np.float16) for k, v in a.items()
                               if k.startswith(("weight/", "slot/"))}),
     r"'weight/0' of dtype float16; model weights are float32 or float64"),
    ("float64-arrays.npz",
     lambda a, arch: a.update({k: v.astype(np.float64) for k, v in a.items()
                               if k.startswith(("weight/", "slot/"))}),
     r"conv2d\w*/kernel is float32 but the file holds it as float64"),
    ("slot-shape.npz",
     lambda a, arch: a.update({"slot/1/0": np.zeros(5, np.float32)}),
     r"optimizer state slot/1/0 of shape \(5,\) and dtype float32, but weight/1 has shape "
     r"\(4,\) and dtype float32"),
])
def test_weights_of_another_dtype_are_refused_not_cast(saved, name, change, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(edited(saved, name, change))


# -- every flaw: one error type, naming the file, on one line ----------------------------------
FLAWED = {
    "nested JSON": lambda path, tmp: _write(tmp / "nested.npz", members(path),
                                            architecture=np.array("[" * 10**5 + "]" * 10**5)),
    "JSON list": lambda path, tmp: _write(tmp / "list.npz", members(path),
                                          architecture=np.array("[1, 2]")),
    "layers not objects": lambda path, tmp: _write(tmp / "ints.npz", members(path),
                                                   architecture=np.array('{"layers": [1]}')),
    "bad JSON": lambda path, tmp: _write(tmp / "bad.npz", members(path),
                                         architecture=np.array("{nope")),
    "architecture not text": lambda path, tmp: _write(tmp / "num.npz", members(path),
                                                      architecture=np.zeros(3)),
    "architecture too long": lambda path, tmp: _write(
        tmp / "long.npz", members(path), architecture=np.array(" " * (2**20 + 1))),
    "no format": lambda path, tmp: _write(tmp / "plain.npz", {"a": np.zeros(3)}),
    "object array": lambda path, tmp: _write(tmp / "obj.npz", members(path),
                                             **{"weight/0": np.array([None, 1], dtype=object)}),
    "not .npy member": lambda path, tmp: _raw_member(path, tmp / "raw.npz"),
    "missing weight": lambda path, tmp: _write(tmp / "gap.npz", members(path),
                                               **{"weight/7": np.zeros(3, np.float32)}),
    "unknown layer": lambda path, tmp: edited(
        path, "unknown.npz", lambda _, arch: arch["layers"][1].update(class_name="Square")),
    "bad config": lambda path, tmp: edited(
        path, "config.npz", lambda _, arch: arch["layers"][0]["config"].update(filters="4")),
    "unknown config key": lambda path, tmp: edited(
        path, "key.npz", lambda _, arch: arch["layers"][0]["config"].update(colour="red")),
    "no compile key": lambda path, tmp: edited(
        path, "compile.npz", lambda _, arch: arch["compile"].pop("loss")),
    ".npy file": lambda path, tmp: _npy(tmp / "weights.npy"),
    ".npy named .npz": lambda path, tmp: _npy(tmp / "weights.npz"),
    "not a zip": lambda path, tmp: _bytes(tmp / "text.npz", b"just some text\n"),
    "truncated": lambda path, tmp: _bytes(tmp / "half.npz", path.read_bytes()[:3000]),
    "corrupt member": lambda path, tmp: _corrupt_member(path, tmp / "flipped.npz"),
}


def _write(path, arrays, **replace):
    arrays.update(replace)
    np.savez(path, **arrays)
    return str(path)


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    return str(path)


def _bytes(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def _raw_member(source, path):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            data = b"not an npy header" if info.filename == "weight/0.npy" else src.read(info)
            out.writestr(info.filename, data)
    return str(path)


def _corrupt_member(source, path):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("weight/2.npy")
    start = info.header_offset + 30 + len(info.filename)
    data[start + 4:start + 40] = bytes(36)  # garbage inside weight/2's deflate stream
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("flaw", list(FLAWED))
def test_every_flaw_is_one_model_file_error_naming_the_file(saved, tmp_path, flaw):
    path = FLAWED[flaw](saved, tmp_path)
    with pytest.raises(ModelFileError) as raised:
        load_model(path)
    message = str(raised.value)
    assert str(path) in message and "\n" not in message, message
    assert isinstance(raised.value, ValueError)


def test_a_missing_file_is_still_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
