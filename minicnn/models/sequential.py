"""Sequential: a linear stack of layers, the simplest graph.

A Sequential is a `Model` (functional.py) whose graph is a chain: each layer reads what the one
before it made. It builds lazily (Keras's way): once the first layer knows its input shape,
from `input_shape=...`, an `Input(...)` first, or the first data it sees.
"""

from __future__ import annotations

from minicnn.layers._names import unique_name
from minicnn.layers.base import Layer, shape_str
from minicnn.layers.node import Graph, Input, KerasTensor
from minicnn.models.functional import Model
from minicnn.models.graph_config import MODEL_CLASSES


class Sequential(Model):
    """A linear stack of layers. `Sequential([layers...], name=None, seed=None)`.

    `seed` fixes every random choice (weight initialization and each epoch's shuffle), so a run
    is bit-for-bit reproducible on CPU; without one a seed is drawn and kept in `model.seed`.
    """

    def __init__(self, layers: list[Layer] | None = None, name: str | None = None,
                 seed: int | None = None, trainable: bool = True):
        self._init_container(name or unique_name("sequential"), seed)
        self._multi_in = self._multi_out = False
        self._layers: list[Layer] = []
        self._input: KerasTensor | None = None  # an Input() added first, for the first layer
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    # -- structure ------------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    @property
    def _compute_layers(self) -> list[Layer]:
        return self._layers

    def add(self, layer: Layer | KerasTensor) -> None:
        if isinstance(layer, KerasTensor) and getattr(layer.node.layer, "is_input_layer", False):
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
            shape = self._input.shape
            if layer.input_shape is not None and tuple(layer.input_shape) != shape:
                raise ValueError(
                    f"Layer '{layer.name}' has input_shape={layer.input_shape[1:]} but follows "
                    f"Input(shape={shape[1:]})")
            if not isinstance(layer, Model):
                layer.input_shape = shape
        self._layers.append(layer)
        self._graph = None
        self._reset_plans()
        if self._layers[0].input_shape is not None:  # Keras builds as soon as the shape is known
            self.build(self._layers[0].input_shape)

    @property
    def built(self) -> bool:
        return bool(self._layers) and all(layer.built for layer in self._layers)

    @built.setter
    def built(self, value) -> None:
        pass

    @property
    def input_shape(self) -> tuple | None:
        return self._layers[0].input_shape if self._layers else None

    @input_shape.setter
    def input_shape(self, shape) -> None:
        if shape is not None and self._layers and not self.built:
            self.build(shape)

    @property
    def output_shape(self) -> tuple | None:
        return self._layers[-1].output_shape if self.built else None

    @output_shape.setter
    def output_shape(self, shape) -> None:
        pass

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._chain().inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._chain().outputs)

    @property
    def _graph(self) -> Graph | None:
        return self._chain() if self.built else None

    @_graph.setter
    def _graph(self, graph) -> None:
        self.__dict__["_chain_graph"] = graph

    def _chain(self) -> Graph:
        """The chain as a graph of symbolic calls, as Keras 3 builds a Sequential: each layer
        called on the one before's output, from an input layer (the Input() given first, else
        one made once), so `model.inputs` and `layer.output` can start a functional model
        (`Model(model.inputs, model.layers[-2].output)`). Rebuilt after add(); the nodes of
        the previous build are taken off the layers."""
        graph = self.__dict__.get("_chain_graph")
        if graph is None:
            for node in self.__dict__.get("_chain_nodes", []):
                if node in node.layer._inbound_nodes:
                    node.layer._inbound_nodes.remove(node)
            shape = tuple(self.input_shape)
            tensor = self._input
            if tensor is None or tensor.shape != shape:
                tensor = Input(shape[1:], dtype=self._layers[0].dtype or "float32")
                self._input = tensor
            out, nodes = tensor, []
            for layer in self._layers:
                out = layer._call_symbolic(out)
                nodes.append(out.node)
            graph = Graph([tensor], [out])
            self.__dict__["_chain_graph"], self.__dict__["_chain_nodes"] = graph, nodes
        return graph

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
        self.__dict__["_chain_graph"] = None
        self._reset_plans()

    def get_config(self) -> dict:
        """The architecture as JSON-ready data: name, seed, layers, and compile settings."""
        config = {"class_name": "Sequential", "name": self.name, "seed": self.seed,
                  "epochs_trained": self.epochs_trained,
                  "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                             for layer in self._layers]}
        if not self.trainable:
            config["trainable"] = False
        if self.compiled:
            config["compile"] = self._compile_config()
        return config

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r} layers={len(self._layers)}>"


MODEL_CLASSES["Sequential"] = Sequential
