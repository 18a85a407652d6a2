"""The model file: one .npz holding a model's architecture, weights and optimizer state.

It holds plain arrays (no pickles, so loading one cannot run code):
    "format"         "minicnn.model/1"
    "architecture"   JSON: the model's name and seed, each layer's class and config, and the
                     compile settings (optimizer class and config, its step count, loss, metrics)
    "weight/<k>"     the k-th weight array of model.get_weights(), float32 or float64
    "slot/<k>/<j>"   the optimizer's j-th state array (Adam's m, v) for weight k
It is written to a temporary file and renamed over the target, so a crash mid-save leaves the
previous file intact. This module knows the file, not the model: `Model.save("m.npz")` writes
one, `models.load_model` builds a model from one. (Keras 3's `.keras` and `.weights.h5` files
are keras_file.py's; `save` names the format by the extension, never falling back to .npz.)

A model file may come from anyone, so reading one does the cheap checks before the costly work.
An .npz is a zip archive of .npy members, read here member by member: only the keys above are
opened (an extra key costs nothing however large), and each array's .npy header (dtype, shape)
is checked before its data is decompressed, so every array read is float32 or float64 and all of
them together hold at most MAX_VALUES numbers. Every problem is a ModelFileError naming the file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from typing import NamedTuple

import numpy as np

from minicnn._atomic import atomic_write

FORMAT = "minicnn.model/1"
# Numbers in all the arrays of one file (weights and optimizer state): 1 GiB as float32. The
# notebook's model with Adam holds 279,966.
MAX_VALUES = 2**28
MAX_ARCHITECTURE_CHARS = 2**20  # the notebook's model's JSON is about 2,600 characters
WEIGHT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_NPY_MAGIC = b"\x93NUMPY"


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the problem."""


class ModelFile(NamedTuple):
    path: str
    architecture: dict
    weights: list[np.ndarray]
    slots: list[tuple[np.ndarray, ...]]  # per weight, the optimizer's state arrays (maybe none)


def write_model_file(filepath, architecture: dict, weights: list[np.ndarray],
                     slots: list[tuple[np.ndarray, ...]] = ()) -> None:
    """Write the file atomically; `slots[k]` are the optimizer's arrays for weight k."""
    arrays = {"format": np.array(FORMAT), "architecture": np.array(json.dumps(architecture))}
    for k, w in enumerate(weights):
        arrays[f"weight/{k}"] = w
    for k, group in enumerate(slots):
        for j, s in enumerate(group):
            arrays[f"slot/{k}/{j}"] = s
    with atomic_write(filepath) as f:
        np.savez(f, **arrays)


def read_model_file(filepath) -> ModelFile:
    """Read and check a model file.

    Raises:
        FileNotFoundError (or another OSError): the file cannot be opened.
        ModelFileError: anything else; the message names the file and what is wrong with it.
    """
    path = os.fspath(filepath)
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise ModelFileError(f"'{path}' is a .npy file (one array), not a minicnn model "
                                 f"file: model.save() writes an .npz archive")
        try:
            archive = zipfile.ZipFile(f)
        # NotImplementedError: a central directory claiming a zip version zipfile does not
        # support (found by tests/test_fuzz_readers.py), corrupt input all the same
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as e:
            raise ModelFileError(f"Cannot read model file '{path}': it is truncated, corrupt or "
                                 f"not a minicnn model ({type(e).__name__}: {e})") from e
        with archive:
            return _Reader(path, archive).read()


class _Reader:
    """The members of one open model file, each header checked before its data is read."""

    def __init__(self, path: str, archive: zipfile.ZipFile):
        self.path, self.archive = path, archive
        self.keys = {name.removesuffix(".npy") for name in archive.namelist()
                     if name.endswith(".npy")}

    def error(self, problem: str) -> ModelFileError:
        return ModelFileError(f"Model file '{self.path}' {problem}")

    def read(self) -> ModelFile:
        marker = self.text("format", 100) if "format" in self.keys else None
        if marker != FORMAT:
            found = "no format marker" if marker is None else repr(marker)
            raise ModelFileError(f"'{self.path}' is not a minicnn model file: expected format "
                                 f"{FORMAT!r}, found {found}")
        architecture = self.architecture()
        count = sum(key.startswith("weight/") for key in self.keys)
        missing = [k for k in range(count) if f"weight/{k}" not in self.keys]
        if missing:
            raise self.error(f"is missing weight arrays {missing}")
        weight_keys = [f"weight/{k}" for k in range(count)]
        slot_keys = [self.slot_keys(k) for k in range(count)]
        # Every header first: nothing is decompressed until all the arrays are known to fit.
        headers = {key: self.header(key) for key in weight_keys}
        headers.update((key, self.header(key)) for keys in slot_keys for key in keys)
        total = sum(math.prod(shape) for shape, _ in headers.values())
        if total > MAX_VALUES:
            raise self.error(f"holds {total:,} numbers, more than a minicnn model file may "
                             f"(MAX_VALUES = {MAX_VALUES:,})")
        for k, keys in enumerate(slot_keys):
            for key in keys:
                if headers[key] != headers[weight_keys[k]]:
                    (shape, dtype), (w_shape, w_dtype) = headers[key], headers[weight_keys[k]]
                    raise self.error(f"has optimizer state {key} of shape {shape} and dtype "
                                     f"{dtype}, but weight/{k} has shape {w_shape} and dtype "
                                     f"{w_dtype}")
        weights = [self.array(key, headers[key]) for key in weight_keys]
        slots = [tuple(self.array(key, headers[key]) for key in keys) for keys in slot_keys]
        return ModelFile(self.path, architecture, weights, slots)

    def slot_keys(self, k: int) -> list[str]:
        keys = []
        while f"slot/{k}/{len(keys)}" in self.keys:
            keys.append(f"slot/{k}/{len(keys)}")
        return keys

    def architecture(self) -> dict:
        text = self.text("architecture", MAX_ARCHITECTURE_CHARS) if (
            "architecture" in self.keys) else None
        if text is None:
            raise self.error("has no architecture")
        try:
            architecture = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
            problem = "is nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise self.error(f"has an unreadable architecture: its JSON {problem}") from e
        layers = architecture.get("layers") if isinstance(architecture, dict) else None
        if not isinstance(layers, list) or not all(
                isinstance(spec, dict) and isinstance(spec.get("class_name"), str)
                and isinstance(spec.get("config"), dict) for spec in layers):
            raise self.error("has an unreadable architecture: expected a JSON object whose "
                             "'layers' is a list of {'class_name': str, 'config': {...}}")
        return architecture

    def text(self, key: str, max_chars: int) -> str:
        """The string in a 0-d unicode array of at most `max_chars` characters."""
        shape, dtype = self.header(key, floating=False)
        if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > max_chars:
            raise self.error(f"has a {key!r} entry of dtype {dtype} and shape {shape}; "
                             f"expected a string of at most {max_chars:,} characters")
        return str(self.array(key, (shape, dtype)))

    def header(self, key: str, floating: bool = True) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) from the .npy header of `key`, without reading its data."""
        shape, dtype = self.member(key, _read_header)
        if any(d < 0 for d in shape):
            raise self.error(f"has an array {key!r} of invalid shape {shape}")
        if floating and dtype.newbyteorder("=") not in WEIGHT_DTYPES:
            raise self.error(f"has {key!r} of dtype {dtype}; model weights are float32 or "
                             f"float64")
        return shape, dtype

    def array(self, key: str, header: tuple[tuple[int, ...], np.dtype]) -> np.ndarray:
        array = self.member(key, lambda f: np.lib.format.read_array(f, allow_pickle=False))
        if (array.shape, array.dtype) != header:  # the header was read from this same member
            raise self.error(f"has a corrupt array {key!r}")
        return array.astype(array.dtype.newbyteorder("="), copy=False)

    def member(self, key: str, read):
        """`read` applied to member `key`.npy, any failure reported as a corrupt file."""
        try:
            with self.archive.open(f"{key}.npy") as f:
                return read(f)
        # A damaged member fails in zipfile, zlib, bz2, lzma or numpy's .npy parser, each with
        # exceptions of its own: all of them mean the same thing here.
        except Exception as e:
            raise ModelFileError(f"Cannot read {key!r} in model file '{self.path}': it is "
                                 f"truncated or corrupt ({type(e).__name__}: {e})") from e


def _read_header(f) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version} is not one np.savez writes here")
    return shape, dtype
