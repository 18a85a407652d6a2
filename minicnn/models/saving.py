"""Saving and loading a whole model in one .npz file.

The file holds, as plain arrays (it loads with allow_pickle=False, so it cannot run code):
    "format"         "minicnn.model/1"
    "architecture"   JSON: the model's name and seed, each layer's class and config, and the
                     compile settings (optimizer class and config, its step count, loss, metrics)
    "weight/<k>"     the k-th weight array of model.get_weights()
    "slot/<k>/<j>"   the optimizer's j-th state array (Adam's m, v) for weight k
It is written to a temporary file and renamed over the target, so a crash mid-save leaves the
previous file intact.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from minicnn import layers as layers_module
from minicnn import losses, optimizers
from minicnn._atomic import atomic_write

FORMAT = "minicnn.model/1"


def _architecture(model) -> dict:
    arch = {"class_name": "Sequential", "name": model.name, "seed": model.seed,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in model.layers]}
    if model.compiled:
        arch["compile"] = {
            "optimizer": {"class_name": type(model.optimizer).__name__,
                          "config": model.optimizer.get_config(),
                          "iterations": model.optimizer.iterations},
            "loss": model.loss.name, "metrics": list(model.metrics)}
    return arch


def save_model(model, filepath) -> None:
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built yet, so it has no weights to save: "
                         "fit it, call it on data, or give the first layer an input_shape.")
    arrays = {"format": np.array(FORMAT),
              "architecture": np.array(json.dumps(_architecture(model)))}
    for k, w in enumerate(model.get_weights()):
        arrays[f"weight/{k}"] = w
    if model.compiled:
        for k, slots in enumerate(model.optimizer.slots(model.params)):
            for j, s in enumerate(slots):
                arrays[f"slot/{k}/{j}"] = s
    with atomic_write(filepath) as f:
        np.savez(f, **arrays)


def _read(filepath) -> tuple[dict, dict[str, np.ndarray]]:
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
        arch = json.loads(str(arrays["architecture"]))
        if not isinstance(arch["layers"], list):
            raise TypeError("'layers' is not a list")
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"Model file '{path}' has an unreadable architecture "
                         f"({type(e).__name__}: {e})") from e
    return arch, arrays


def _weights(path: str, arrays: dict) -> list[np.ndarray]:
    count = sum(key.startswith("weight/") for key in arrays)
    missing = [k for k in range(count) if f"weight/{k}" not in arrays]
    if missing:
        raise ValueError(f"Model file '{path}' is missing weight arrays {missing}")
    return [arrays[f"weight/{k}"] for k in range(count)]


def load_model(filepath, custom_objects: dict | None = None):
    """A model saved with `model.save()`: same layers, weights, and optimizer state."""
    from minicnn.models.sequential import Sequential

    path = os.fspath(filepath)
    arch, arrays = _read(path)
    known = {name: getattr(layers_module, name) for name in layers_module.__all__}
    known.update(custom_objects or {})
    model = Sequential(name=arch.get("name"), seed=arch.get("seed"))
    try:
        for spec in arch["layers"]:
            cls = known.get(spec["class_name"])
            if cls is None:
                raise ValueError(f"unknown layer class {spec['class_name']!r}; pass it in "
                                 f"custom_objects={{'{spec['class_name']}': TheClass}}")
            model.add(cls.from_config(spec["config"]))
        if not model.built:
            raise ValueError("the first layer has no input_shape")
        model.set_weights(_weights(path, arrays))
        if "compile" in arch:
            c = arch["compile"]
            opt_cls = {"Adam": optimizers.Adam, "SGD": optimizers.SGD}[c["optimizer"]["class_name"]]
            model.compile(opt_cls(**c["optimizer"]["config"]), losses.get(c["loss"]), c["metrics"])
            slots = [tuple(arrays[f"slot/{k}/{j}"] for j in range(2) if f"slot/{k}/{j}" in arrays)
                     for k in range(len(model.params))]
            for p, s in zip(model.params, slots, strict=True):
                if any(a.shape != p.value.shape for a in s):
                    raise ValueError(f"optimizer state for {p.name} has the wrong shape")
            model.optimizer.set_slots(model.params, slots, c["optimizer"]["iterations"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"Cannot rebuild the model in '{path}': {e}") from e
    return model


def load_weights(model, filepath) -> None:
    """Copy the weights saved in `filepath` into `model`, which must have the same architecture."""
    path = os.fspath(filepath)
    arch, arrays = _read(path)
    weights = _weights(path, arrays)
    mine = model.get_weights()
    theirs = [tuple(w.shape) for w in weights]
    if [w.shape for w in mine] != theirs:
        saved = ", ".join(f"{s['config'].get('name')} ({s['class_name']})" for s in arch["layers"])
        raise ValueError(
            f"Weights in '{path}' do not fit model '{model.name}': the file has weight shapes "
            f"{theirs} (layers: {saved}); the model has {[w.shape for w in mine]}")
    model.set_weights(weights)
