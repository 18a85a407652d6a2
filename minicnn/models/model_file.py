"""The model file: one .npz holding a model's architecture, weights and optimizer state.

It holds plain arrays (it loads with allow_pickle=False, so it cannot run code):
    "format"         "minicnn.model/1"
    "architecture"   JSON: the model's name and seed, each layer's class and config, and the
                     compile settings (optimizer class and config, its step count, loss, metrics)
    "weight/<k>"     the k-th weight array of model.get_weights()
    "slot/<k>/<j>"   the optimizer's j-th state array (Adam's m, v) for weight k
It is written to a temporary file and renamed over the target, so a crash mid-save leaves the
previous file intact. This module knows the file, not the model: `Sequential.save` writes one,
`models.load_model` builds a model from one.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import NamedTuple

import numpy as np

from minicnn._atomic import atomic_write

FORMAT = "minicnn.model/1"


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
    """Read and check a model file; a ValueError names the file and what is wrong with it."""
    path = os.fspath(filepath)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise ValueError(f"Cannot read model file '{path}': it is truncated, corrupt or not a "
                         f"minicnn model ({type(e).__name__}: {e})") from e
    if "format" not in arrays or str(arrays["format"]) != FORMAT:
        found = str(arrays["format"]) if "format" in arrays else "no format marker"
        raise ValueError(f"'{path}' is not a minicnn model file: expected format {FORMAT!r}, "
                         f"found {found!r}")
    try:
        architecture = json.loads(str(arrays["architecture"]))
        if not isinstance(architecture["layers"], list):
            raise TypeError("'layers' is not a list")
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"Model file '{path}' has an unreadable architecture "
                         f"({type(e).__name__}: {e})") from e
    count = sum(key.startswith("weight/") for key in arrays)
    missing = [k for k in range(count) if f"weight/{k}" not in arrays]
    if missing:
        raise ValueError(f"Model file '{path}' is missing weight arrays {missing}")
    weights = [arrays[f"weight/{k}"] for k in range(count)]
    slots = [tuple(arrays[f"slot/{k}/{j}"] for j in range(2) if f"slot/{k}/{j}" in arrays)
             for k in range(count)]
    return ModelFile(path, architecture, weights, slots)
