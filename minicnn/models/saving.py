"""load_model: a model rebuilt from its file (see model_file.py for what the file holds).

The file is read and checked first (model_file.read_model_file: the arrays' dtypes, and a size
ceiling from their headers). Then the layers are built from the architecture, and each weight a
layer creates is compared with the stored array in its place *before* it is allocated: a file
edited to say `filters=10**9` is an error naming the layer, not a 36 GB allocation.
"""

from __future__ import annotations

import contextlib

import numpy as np

from minicnn import layers as layers_module
from minicnn import losses, optimizers
from minicnn.layers.base import Layer, shape_str
from minicnn.models.functional import Model
from minicnn.models.graph_config import functional_from_config
from minicnn.models.model_file import ModelFileError, read_model_file
from minicnn.models.sequential import Sequential

_LAYER_DTYPES = (None, "float32", "float64")  # what a layer's config may say; None: float32


def load_model(filepath, custom_objects: dict | None = None) -> Model:
    """A model saved with `model.save()`: same layers, weights, and optimizer state.

    `custom_objects` maps class names to the classes of your own layers (or optimizers), as in
    Keras: `load_model(path, custom_objects={"Square": Square})`.

    Raises:
        FileNotFoundError (or another OSError): the file cannot be opened.
        ModelFileError (a ValueError): the file is not a usable model file; the message names the
            file and the problem.
    """
    file = read_model_file(filepath)
    arch = file.architecture
    known = {name: getattr(layers_module, name) for name in layers_module.__all__}
    known.update(custom_objects or {})
    stored = _StoredWeights(file.weights)
    try:
        model = _build(arch, known, stored)
        model.epochs_trained = _count(arch.get("epochs_trained", 0), "epochs_trained")
        weights = model.weights  # trainable or not
        for p, w in zip(weights, file.weights, strict=False):
            if p.value.dtype != w.dtype:
                raise ValueError(f"{p.name} is {p.value.dtype} but the file holds it as "
                                 f"{w.dtype}")
        model.set_weights(file.weights)
        if "compile" in arch:
            c = arch["compile"]
            optimizer = _optimizer_class(c["optimizer"]["class_name"], custom_objects)
            config = dict(c["optimizer"]["config"])
            if isinstance(config.get("learning_rate"), dict):  # a schedule, serialised
                config["learning_rate"] = optimizers.schedules.deserialize(
                    config["learning_rate"], custom_objects)
            model.compile(optimizer(**config), losses.get(c["loss"]),
                          c["metrics"], fast=c.get("fast", True))
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


def _build(arch: dict, known: dict, stored: _StoredWeights) -> Model:
    """The model `arch` describes, each weight checked against the file as it is made."""
    if arch.get("class_name") == "Functional":
        def call(layer, inputs):
            with stored.checking(layer):
                return layer(inputs)

        return functional_from_config(arch, Model, lambda spec: _layer(spec, known, stored), call)
    model = Sequential(name=arch.get("name"), seed=arch.get("seed"))
    for spec in arch["layers"]:
        layer = _layer(spec, known, stored)
        with stored.checking(layer):
            model.add(layer)
    if not model.built:
        raise ValueError("the first layer has no input_shape")
    if arch.get("trainable") is False:
        model.trainable = False
    return model


def _layer(spec: dict, known: dict, stored: _StoredWeights):
    """One layer from its entry; a nested model (class Sequential or Functional) whole."""
    if spec["class_name"] in ("Sequential", "Functional"):
        return _build(spec["config"], known, stored)
    cls = known.get(spec["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {spec['class_name']!r}; pass it in "
                         f"custom_objects={{'{spec['class_name']}': TheClass}} (on the "
                         f"command line: --custom-objects FILE.py). minicnn's own "
                         f"layers are in minicnn.layers; to write one: "
                         f"{layers_module._CUSTOM_LAYER_GUIDE}")
    if spec["config"].get("dtype") not in _LAYER_DTYPES:
        raise ValueError(f"layer {spec['config'].get('name')!r} has dtype "
                         f"{spec['config']['dtype']!r}; minicnn layers compute in "
                         f"float32 or float64")
    return cls.from_config(spec["config"])


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
