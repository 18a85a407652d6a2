"""Sequential: a linear stack of layers, their weights, and saving them.

The passes (compile, fit, evaluate, predict, the study tools) come from `Trainer`, in
training.py; this half is the container: which layers, in what order, built for what shape,
holding which weights, and how they are written to a file (model_file.py).
"""

from __future__ import annotations

import os

import numpy as np

from minicnn.layers.base import Layer, _auto_name, shape_str
from minicnn.layers.input import Input
from minicnn.models.model_file import read_model_file, write_model_file
from minicnn.models.summary import summary_text
from minicnn.models.training import Trainer


class Sequential(Trainer):
    """A linear stack of layers. `Sequential([layers...], name=None, seed=None)`.

    `seed` fixes every random choice (weight initialization and each epoch's shuffle), so a run
    is bit-for-bit reproducible on CPU; without one a seed is drawn and kept in `model.seed`.
    """

    def __init__(self, layers: list[Layer] | None = None, name: str | None = None,
                 seed: int | None = None):
        self.name = name or _auto_name(type(self))
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._layers: list[Layer] = []
        self._input: Input | None = None  # an Input() added first, for the first real layer
        self._init_training()
        for layer in layers or []:
            self.add(layer)

    # -- structure ------------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def add(self, layer: Layer | Input) -> None:
        if isinstance(layer, Input):
            if self._layers or self._input is not None:
                raise ValueError("An Input can only be the first element of a Sequential model. "
                                 f"Received {layer!r} after {self._layers or [self._input]}")
            self._input = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Only minicnn Layer instances can be added to a Sequential model. "
                f"Received: {layer!r} (of type {type(layer).__name__})"
            )
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name '{layer.name}' is already the name of a layer in this model.")
        if self._input is not None and not self._layers:
            shape = (None, *self._input.shape)
            if layer.input_shape is not None and layer.input_shape != shape:
                raise ValueError(
                    f"Layer '{layer.name}' has input_shape={layer.input_shape[1:]} but follows "
                    f"Input(shape={self._input.shape})")
            layer.input_shape = shape
        self._layers.append(layer)
        self._plans.clear()
        if self._layers[0].input_shape is not None:  # Keras builds as soon as the shape is known
            self.build(self._layers[0].input_shape)

    @property
    def built(self) -> bool:
        return bool(self._layers) and all(layer.built for layer in self._layers)

    @property
    def input_shape(self) -> tuple | None:
        return self._layers[0].input_shape if self._layers else None

    @property
    def output_shape(self) -> tuple | None:
        return self._layers[-1].output_shape if self.built else None

    def build(self, input_shape: tuple | None = None) -> None:
        """Build every layer in turn for inputs of `input_shape` (batch dimension first)."""
        if input_shape is None:
            input_shape = self.input_shape
        if input_shape is None:
            raise ValueError(f"Model '{self.name}' cannot be built without an input shape: give "
                             "the first layer input_shape=... or call the model on data.")
        shape = (None, *tuple(input_shape)[1:])
        for layer in self._layers:
            if not layer.built:
                if layer.rng is None:
                    layer.rng = self._rng
                layer.build(shape)
            elif layer.input_shape[1:] != shape[1:]:
                raise ValueError(
                    f"Layer '{layer.name}' was built for input shape "
                    f"{shape_str(layer.input_shape)} but follows an output of {shape_str(shape)}")
            shape = layer.output_shape

    @property
    def params(self):
        return [p for layer in self._layers for p in layer.params]

    @property
    def dtype(self):
        return next((layer.dtype for layer in self._layers if layer.params), np.dtype("float32"))

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self._layers)

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"Model '{self.name}' expects {expected} weight arrays, "
                             f"received {len(weights)}")
        k = 0
        for layer in self._layers:
            layer.set_weights(weights[k:k + len(layer.weights)])
            k += len(layer.weights)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by its name or by its index in `layers`, as Keras's `get_layer`."""
        if (name is None) == (index is None):
            raise ValueError("Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self._layers]}.")

    def summary(self, print_fn=None) -> None:
        """Print Keras 3's table of the layers, their output shapes and parameter counts."""
        (print_fn or print)(summary_text(self))

    # -- saving ---------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON-ready data: name, seed, layers, and compile settings."""
        config = {"class_name": "Sequential", "name": self.name, "seed": self.seed,
                  "epochs_trained": self.epochs_trained,
                  "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                             for layer in self._layers]}
        if self.compiled:
            config["compile"] = {
                "optimizer": {"class_name": type(self.optimizer).__name__,
                              "config": self.optimizer.get_config(),
                              "iterations": self.optimizer.iterations},
                "loss": self.loss.name, "metrics": list(self.metrics), "fast": self.fast}
        return config

    def save(self, filepath: str | os.PathLike) -> None:
        """Write architecture, weights and optimizer state to one .npz file, atomically
        (`models.load_model` reads it back)."""
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             "save: fit it, call it on data, or give the first layer an "
                             "input_shape.")
        # slot/k belongs to weight/k: a non-trainable weight (moving statistics) gets none.
        weights = [p for layer in self._layers for p in layer.weights]
        slots = self.optimizer.slots(weights) if self.compiled else []
        write_model_file(filepath, self.get_config(), self.get_weights(), slots)

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Write the architecture and weights, without optimizer state, to one .npz file,
        atomically; `load_weights` reads it (or a file from `save()`) back."""
        if not os.fspath(filepath).endswith(".npz"):
            raise ValueError("The filename must end in `.npz` (minicnn keeps weights in a NumPy "
                             "archive; Keras's `.weights.h5` becomes `.weights.npz`). "
                             f"Received: filepath={os.fspath(filepath)}")
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             "save: fit it, call it on data, or give the first layer an "
                             "input_shape.")
        config = {key: value for key, value in self.get_config().items() if key != "compile"}
        write_model_file(filepath, config, self.get_weights(), [])

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Load the weights of a model saved with `save()` or `save_weights()` into this model
        of the same shape."""
        file = read_model_file(filepath)
        mine, theirs = self.get_weights(), [tuple(w.shape) for w in file.weights]
        if [w.shape for w in mine] != theirs:
            saved = ", ".join(f"{s['config'].get('name')} ({s['class_name']})"
                              for s in file.architecture["layers"])
            raise ValueError(
                f"Weights in '{file.path}' do not fit model '{self.name}': the file has weight "
                f"shapes {theirs} (layers: {saved}); the model has {[w.shape for w in mine]}")
        self.set_weights(file.weights)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={len(self._layers)}>"
