"""load_model: a model rebuilt from its file (see model_file.py for what the file holds).

The file is read and checked first (model_file.read_model_file: the arrays' dtypes, and a size
ceiling from their headers). Then the layers are built from the architecture, and each weight a
layer creates is compared with the stored array in its place *before* it is allocated: a file
edited to say `filters=10**9` is an error naming the layer, not a 36 GB allocation.
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from minicnn import losses, optimizers
from minicnn.layers.base import Layer, shape_str
from minicnn.models import keras_file
from minicnn.models.functional import Model
from minicnn.models.graph_config import model_from_config
from minicnn.models.model_file import ModelFileError, read_model_file


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True) -> Model:
    """A model saved with `model.save()`: same layers, weights, and optimizer state. The file
    is minicnn's `.npz` or a Keras 3 `.keras` archive (Keras's own too: its layers must be
    minicnn's, its optimizer, loss and metrics too or it loads uncompiled, with a warning).

    `custom_objects` maps class names to the classes of your own layers (or optimizers), as in
    Keras: `load_model(path, custom_objects={"Square": Square})`.

    Raises:
        FileNotFoundError (or another OSError): the file cannot be opened.
        ModelFileError (a ValueError): the file is not a usable model file; the message names the
            file and the problem.
    """
    kind = keras_file.sniff(filepath)
    if kind == "keras" or (kind is None and os.fspath(filepath).endswith(".keras")):
        return keras_file.load_model(filepath, custom_objects, compile=compile)
    if kind == "hdf5":
        raise keras_file.legacy_h5_error(os.fspath(filepath))
    file = read_model_file(filepath)
    arch = file.architecture
    stored = _StoredWeights(file.weights)
    try:
        model = model_from_config(arch, custom_objects, checking=stored.checking)
        model.epochs_trained = _count(arch.get("epochs_trained", 0), "epochs_trained")
        weights = model.weights  # trainable or not
        for p, w in zip(weights, file.weights, strict=False):
            if p.value.dtype != w.dtype:
                raise ValueError(f"{p.name} is {p.value.dtype} but the file holds it as "
                                 f"{w.dtype}")
        model.set_weights(file.weights)
        if "compile" in arch and compile:
            c = arch["compile"]
            optimizer = _optimizer_class(c["optimizer"]["class_name"], custom_objects)
            config = dict(c["optimizer"]["config"])
            if isinstance(config.get("learning_rate"), dict):  # a schedule, serialised
                config["learning_rate"] = optimizers.schedules.deserialize(
                    config["learning_rate"], custom_objects)
            model.compile(optimizer(**config), losses.get(c["loss"]), c["metrics"],
                          c.get("weighted_metrics"), fast=c.get("fast", True))
            for p, s in zip(weights, file.slots, strict=True):
                if any(a.shape != p.value.shape for a in s):
                    raise ValueError(f"optimizer state for {p.name} has the wrong shape")
            model.optimizer.set_slots(weights, file.slots, c["optimizer"]["iterations"])
    except (KeyError, TypeError, ValueError) as e:
        problem = f"its architecture has no key {e}" if isinstance(e, KeyError) else e
        raise ModelFileError(f"Cannot rebuild the model in '{file.path}': {problem}") from e
    except MemoryError as e:  # a custom layer's own allocation; minicnn's are checked above
        raise ModelFileError(f"Cannot rebuild the model in '{file.path}': it needs more memory "
                             f"than is available ({e})") from e
    return model


def model_from_json(json_string: str, custom_objects: dict | None = None) -> Model:
    """The model `model.to_json()` describes, with fresh weights, as Keras's."""
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Invalid value for argument `json_string`: not JSON ({e})") from e
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("Invalid value for argument `json_string`. Expected the JSON of "
                         "model.to_json(), an object with a list of `layers`.")
    return model_from_config(config, custom_objects)


def clone_model(model: Model, custom_objects: dict | None = None) -> Model:
    """A new model with the same architecture and new layers (new weights: copy them with
    `clone.set_weights(model.get_weights())`), as Keras's `clone_model`."""
    config = {k: v for k, v in model.get_config().items() if k != "compile"}
    config.pop("seed", None)  # a fresh seed: fresh draws, as Keras's clone has
    return model_from_config(config, custom_objects)


def _optimizer_class(name: str, custom_objects: dict | None) -> type:
    known = {cls.__name__: cls for cls in vars(optimizers).values()
             if isinstance(cls, type) and issubclass(cls, optimizers.Optimizer)}
    known.update(custom_objects or {})
    if name not in known:
        raise ValueError(f"unknown optimizer class {name!r}")
    return known[name]


class _StoredWeights:
    """Checks each weight a layer creates against the file's array in its place, before the
    layer allocates it: the k-th `add_weight` of the model must ask for weight/k's shape."""

    def __init__(self, weights: list[np.ndarray]):
        self.weights, self.created = weights, 0

    @contextlib.contextmanager
    def checking(self, layer: Layer):
        add_weight = layer.add_weight

        def checked_add_weight(name, shape, initializer, trainable=True):
            k, shape = self.created, tuple(shape)
            if k == len(self.weights):
                raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) creates a "
                                 f"{name} of shape {shape_str(shape)}, but the file holds only "
                                 f"{len(self.weights)} weight arrays")
            if shape != self.weights[k].shape:
                raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) creates a "
                                 f"{name} of shape {shape_str(shape)}, but the file's weight/{k} "
                                 f"has shape {shape_str(self.weights[k].shape)}")
            self.created += 1
            return add_weight(name, shape, initializer, trainable=trainable)

        # The check is an attribute of this one instance, for the time of its build; the layer's
        # class is untouched.
        layer.add_weight = checked_add_weight
        try:
            yield
        finally:
            del layer.add_weight


def _count(value, key: str) -> int:
    """A non-negative int from the architecture (JSON gives bools and floats too)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"'{key}' should be a count >= 0, not {value!r}")
    return value
