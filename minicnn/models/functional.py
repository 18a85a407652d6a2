"""Model: a graph of layers from input tensors to output tensors (Keras's functional API).

    inputs = Input(shape=(32, 32, 3))
    x = Conv2D(16, 3, padding="same", activation="relu")(inputs)
    y = Conv2D(16, 3, padding="same")(x)
    outputs = Dense(10, activation="softmax")(Flatten()(add([x, y])))
    model = Model(inputs, outputs)

This half is the container: which layers, joined how (the `Graph` in minicnn/layers/node.py),
holding which weights. The passes (compile, fit, evaluate, predict, the study tools) come from
`Trainer` (training.py), and how a graph runs from minicnn/fast/graph_plan.py. `Sequential`
(sequential.py) is the special case of a chain.

A model is also a layer: call it on a symbolic tensor inside another model, or put it in a
Sequential; its forward and backward run its own graph.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np

from minicnn import initializers
from minicnn.fast.graph_plan import GraphPlan
from minicnn.layers._names import unique_name
from minicnn.layers.base import Layer, Parameter, check_value, shape_fits, shape_str
from minicnn.layers.node import Graph, KerasTensor
from minicnn.models import keras_file
from minicnn.models.graph_config import MODEL_CLASSES, functional_config, model_from_config
from minicnn.models.model_file import read_model_file, write_model_file
from minicnn.models.summary import summary_text
from minicnn.models.training import Trainer


class Model(Trainer, Layer):
    """`Model(inputs, outputs, name=None, seed=None)`: the layers between symbolic `inputs`
    (from `Input()`) and `outputs` (what calling layers on them gave). Either may be one tensor
    or a list; `predict` then takes and returns the same structure.

    `seed` fixes each epoch's shuffle and the draws of Dropout and the random layers; the weights
    were drawn when the layers were called (set `minicnn.utils.set_random_seed`-style seeds on
    the initializers, or `set_weights`, to fix them).
    """

    def __init__(self, inputs=None, outputs=None, name: str | None = None,
                 seed: int | None = None, trainable: bool = True):
        if inputs is None or outputs is None:
            raise TypeError(
                "Model(inputs, outputs) builds a model from symbolic tensors: inputs = "
                "Input(shape=...), outputs = layers called on them. (Subclassing Model with "
                "a call() method is not supported by minicnn; write a Layer with forward and "
                "backward instead, or use Sequential.)")
        self._init_container(name or unique_name("functional"), seed)
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        ins = list(inputs) if self._multi_in else [inputs]
        outs = list(outputs) if self._multi_out else [outputs]
        for argument, tensors in (("inputs", ins), ("outputs", outs)):
            for t in tensors:
                if not isinstance(t, KerasTensor):
                    raise ValueError(
                        f"Invalid value for argument `{argument}`. Expected symbolic tensors "
                        f"(from Input() and layer calls on it). Received {t!r} of type "
                        f"{type(t).__name__}")
        for t in ins:
            if not getattr(t.node.layer, "is_input_layer", False):
                raise ValueError(f"Invalid value for argument `inputs`. Expected tensors made by "
                                 f"Input(). Received {t!r}, the output of layer "
                                 f"'{t.node.layer.name}'")
        self._graph = Graph(ins, outs)
        names: dict[str, int] = {}
        for layer in self.layers:
            names[layer.name] = names.get(layer.name, 0) + 1
        repeated = [n for n, c in names.items() if c > 1]
        if repeated:
            raise ValueError(f'The name "{repeated[0]}" is used {names[repeated[0]]} times in '
                             "the model. All layer names should be unique.")
        if not trainable:
            self.trainable = False

    def _init_container(self, name: str, seed: int | None) -> None:
        # Layer's own attributes (a model is a layer too), without Layer.__init__, whose
        # input_shape and dtype are properties here.
        self.name = name
        # Without a seed: one from utils.set_random_seed's generator when it was called, else
        # from fresh entropy (kept in model.seed either way, so a run can be repeated).
        self.seed = (int(initializers.global_generator().integers(2**63)) if seed is None
                     else int(seed))
        self._rng = np.random.default_rng(self.seed)
        self.cache = None
        self.rng = None
        self._inbound_nodes = []
        self._trainable = True
        self._graph: Graph | None = None
        self._clone_layers = False
        self._init_training()

    # -- structure ----------------------------------------------------------------------------
    @property
    def layers(self) -> list:
        """Every layer, input layers included, in Keras's order (Graph.keras_order)."""
        return self._graph.keras_order()

    @property
    def _compute_layers(self) -> list:
        """The layers that compute (no InputLayer), each once."""
        return self._graph.layers if self._graph is not None else []

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._graph.inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._graph.outputs)

    @property
    def input(self):
        return self._graph.inputs if self._multi_in else self._graph.inputs[0]

    @property
    def output(self):
        return self._graph.outputs if self._multi_out else self._graph.outputs[0]

    @property
    def input_shape(self):
        if self._graph is None:
            return None
        shapes = [t.shape for t in self._graph.inputs]
        return shapes if self._multi_in else shapes[0]

    @input_shape.setter
    def input_shape(self, shape) -> None:  # Layer.__init__'s assignment; the graph decides
        if shape is not None and self._graph is not None and tuple(shape) != self.input_shape:
            raise ValueError(f"Model '{self.name}' takes inputs of shape "
                             f"{shape_str(self.input_shape)}, not {shape_str(shape)}")

    @property
    def output_shape(self):
        if not self.built:
            return None
        shapes = [t.shape for t in self._graph.outputs]
        return shapes if self._multi_out else shapes[0]

    @output_shape.setter
    def output_shape(self, shape) -> None:
        pass

    @property
    def built(self) -> bool:
        return self._graph is not None and all(layer.built for layer in self._compute_layers)

    @built.setter
    def built(self, value) -> None:
        pass

    @property
    def dtype(self):
        return next((layer.dtype for layer in self._compute_layers if layer.weights),
                    np.dtype("float32"))

    @dtype.setter
    def dtype(self, value) -> None:
        pass

    def build(self, input_shape=None) -> None:
        """A functional model is built when it is made; check `input_shape` against it."""
        if input_shape is not None:
            self.check_input_shape(input_shape)

    def compute_output_shape(self, input_shape):
        return self.output_shape

    def check_input_shape(self, shape, context: str = "") -> None:
        shapes = list(shape) if self._multi_in else [shape]
        if len(shapes) != len(self._graph.inputs):
            raise ValueError(f"{context}Model '{self.name}' expects {len(self._graph.inputs)} "
                             f"input(s), received {len(shapes)}")
        for t, s in zip(self._graph.inputs, shapes, strict=True):
            expected = t.shape
            if not shape_fits(expected, tuple(s)):
                raise ValueError(
                    f"{context}Input '{t.name}' of model '{self.name}' is incompatible: "
                    f"expected shape {shape_str(expected)}, received shape {shape_str(s)}")

    # -- trainable ----------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze or unfreeze every layer of the model, as Keras's `model.trainable = ...`."""
        self._trainable = bool(value)
        for layer in self._compute_layers:
            layer.trainable = bool(value)

    # -- weights ------------------------------------------------------------------------------
    @property
    def weights(self) -> list[Parameter]:
        """Every weight of every layer, once each (a shared layer's once), in layer order."""
        seen: dict[int, Parameter] = {}
        for layer in self._compute_layers:
            for p in layer.weights:
                seen.setdefault(id(p), p)
        return list(seen.values())

    @property
    def params(self) -> list[Parameter]:
        trainable = {id(p) for layer in self._compute_layers for p in layer.params}
        return [p for p in self.weights if id(p) in trainable]

    @property
    def non_trainable_params(self) -> list[Parameter]:
        trainable = {id(p) for p in self.params}
        return [p for p in self.weights if id(p) not in trainable]

    def count_params(self) -> int:
        return int(sum(p.value.size for p in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        return [p.value.copy() for p in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        weights, mine = list(weights), self.weights
        if len(weights) != len(mine):
            raise ValueError(f"Model '{self.name}' expects {len(mine)} weight arrays, "
                             f"received {len(weights)}")
        for p, w in zip(mine, weights, strict=True):
            if np.shape(w) != p.value.shape:
                raise ValueError(f"Model '{self.name}': weight {p.name} has shape "
                                 f"{p.value.shape}, received {np.shape(w)}")
            check_value(p, w)
        for p, w in zip(mine, weights, strict=True):
            p.value[...] = w

    def set_dtype(self, dtype) -> Model:
        for layer in self._compute_layers:
            layer.set_dtype(dtype)
        self._reset_plans()
        self._nested_plans.clear()
        return self

    def get_layer(self, name: str | None = None, index: int | None = None):
        """A layer by its name or by its index in `layers`, as Keras's `get_layer`."""
        layers = self.layers
        if (name is None) == (index is None):
            raise ValueError("Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(layers)} layers.")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in layers]}.")

    def summary(self, print_fn=None) -> None:
        """Print Keras 3's table of the layers, their output shapes and parameter counts (with
        the "Connected to" column for a functional model)."""
        (print_fn or print)(summary_text(self))

    # -- a model as a layer -------------------------------------------------------------------
    def _nested_plan(self) -> GraphPlan:
        key = self._plan_key(True)
        if key not in self._nested_plans:
            self._nested_plans.clear()
            self._nested_plans[key] = GraphPlan(self._graph, fast=True, clone=self._clone_layers,
                                                inputs_need_gradient=True)
        return self._nested_plans[key]

    def forward(self, x, training: bool = False):
        """x (N, ...) -> the model's output: its graph, run as a layer of another model."""
        xs = list(x) if self._multi_in else [x]
        outs = self._nested_plan().forward(xs, training=training)
        self.cache = True  # what backward needs is in the plan's steps
        return outs if self._multi_out else outs[0]

    def backward(self, dout):
        """dL/d(output) -> dL/dx; fills the inner layers' gradients."""
        self._cached()
        dxs = self._nested_plan().backward(list(dout) if self._multi_out else [dout])
        return dxs if self._multi_in else dxs[0]

    def _call_clone(self) -> Model:
        clone = copy.copy(self)
        clone._nested_plans, clone._clone_layers, clone.cache = {}, True, None
        return clone

    # -- saving -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON-ready data, in Keras's functional layout: each layer with the
        calls that feed it (`inbound_nodes`), and the graph's input and output tensors."""
        return functional_config(self)

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Model:
        """The model `get_config()` describes, with fresh weights (Keras's `from_config`)."""
        return model_from_config(config, custom_objects)

    def to_json(self, **kwargs) -> str:
        """The architecture as a JSON string (`models.model_from_json` reads it back)."""
        return json.dumps({k: v for k, v in self.get_config().items() if k != "compile"},
                          **kwargs)

    def save(self, filepath: str | os.PathLike) -> None:
        """Write architecture, weights and optimizer state, atomically: `.npz` is minicnn's own
        file, `.keras` Keras 3's archive (keras.models.load_model opens it); `models.load_model`
        reads both back."""
        if keras_file.suffix_kind(filepath, weights_only=False) == "keras":
            keras_file.save_model(self, filepath)
            return
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             "save: fit it, call it on data, or give the first layer an "
                             "input_shape.")
        weights = self.weights  # slot/k belongs to weight/k: a moving statistic gets none
        slots = self.optimizer.slots(weights) if self.compiled else []
        write_model_file(filepath, self.get_config(), self.get_weights(), slots)

    def save_weights(self, filepath: str | os.PathLike) -> None:
        """Write the weights, atomically: `.weights.h5` in Keras 3's layout (with the optimizer's
        state, as Keras's), or `.npz` with the architecture and no optimizer state;
        `load_weights` reads either back."""
        if keras_file.suffix_kind(filepath, weights_only=True) == "weights.h5":
            keras_file.save_weights(self, filepath)
            return
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             "save: fit it, call it on data, or give the first layer an "
                             "input_shape.")
        config = {key: value for key, value in self.get_config().items() if key != "compile"}
        write_model_file(filepath, config, self.get_weights(), [])

    def load_weights(self, filepath: str | os.PathLike) -> None:
        """Load the weights of a model of the same shape into this one: from minicnn's `.npz`
        (`save()` or `save_weights()`), or from Keras's `.weights.h5` or `.keras`."""
        if keras_file.sniff(filepath) in ("hdf5", "keras"):
            keras_file.load_weights(self, filepath)
            return
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
        return f"<{type(self).__name__} name={self.name!r} layers={len(self.layers)}>"


MODEL_CLASSES["Functional"] = Model

