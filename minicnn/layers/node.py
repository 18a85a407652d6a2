"""The functional API's vocabulary: symbolic tensors, the nodes that make them, and the graph.

    inputs = Input(shape=(28, 28, 1))            # a KerasTensor: a shape, no values yet
    x = Conv2D(32, 3, activation="relu")(inputs)  # calling a layer on it records a Node
    y = Add()([x, Conv2D(32, 3, padding="same")(x)])
    model = Model(inputs, y)                      # the Graph from `inputs` to `y`

A `KerasTensor` stands for an array that does not exist yet: its shape (batch dimension None),
its dtype, and the `Node` that will compute it. A Node is one call of one layer: the tensors it
reads and the one it makes. Calling a layer twice makes two nodes over the same weights (a
shared layer). A `Graph` is the nodes between some input tensors and some output tensors, in an
order where every node comes after the nodes it reads from (a topological order); a Sequential
is the special case of a chain. Nothing here computes: the plans in minicnn/fast run a graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from minicnn.layers._names import _auto_name


class KerasTensor:
    """A symbolic tensor: the shape (batch first, None) and dtype of a future array, and the node
    that will make it (None only while it is being made)."""

    def __init__(self, shape: tuple, dtype, node: Node | None = None, name: str | None = None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in self.shape) + (
            ",)" if len(self.shape) == 1 else ")")
        return f"<KerasTensor shape={shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"{self!r} is symbolic: it has a shape but no values until the model runs. Build "
            "a model from it (Model(inputs, outputs)) and call model.predict(x) or model(x).")


class Node:
    """One call of `layer`: it reads `inputs` (KerasTensors) and makes `output`.
    `index` is the call's number among the layer's calls (Keras's `layer[index]` in summaries)."""

    def __init__(self, layer, inputs: Sequence[KerasTensor], output: KerasTensor,
                 index: int = 0, multi_input: bool = False):
        self.layer = layer
        self.inputs = tuple(inputs)
        self.output = output
        self.index = index
        # The layer was called on a list ([a, b], as merge layers are): forward gets a list.
        self.multi_input = multi_input
        output.node = self

    def __repr__(self) -> str:
        return f"<Node {self.layer.name}[{self.index}] of {len(self.inputs)} input(s)>"


def is_symbolic(inputs) -> bool:
    """True for a KerasTensor or a list or tuple holding at least one."""
    if isinstance(inputs, KerasTensor):
        return True
    return isinstance(inputs, (list, tuple)) and any(isinstance(t, KerasTensor) for t in inputs)


class Graph:
    """The nodes that compute `outputs` from `inputs`, each after every node it reads from.

    `nodes` excludes the input layers' own nodes. Built from the outputs backwards, so a node
    nothing needs is left out; a node that reads a tensor neither made inside the graph nor among
    `inputs` is an error naming it (Keras's "Graph disconnected").
    """

    def __init__(self, inputs: Sequence[KerasTensor], outputs: Sequence[KerasTensor]):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        is_input = {id(t) for t in self.inputs}
        order: list[Node] = []
        done: set[int] = set()
        # Depth-first from each output, inputs before the node that reads them, in the order
        # they were passed: a chain stays contiguous, which lets the fast plan fuse along it.
        for out in self.outputs:
            stack = [(out, False)]
            while stack:
                tensor, expanded = stack.pop()
                if id(tensor) in is_input or id(tensor.node) in done:
                    continue
                node = tensor.node
                if node is None or getattr(node.layer, "is_input_layer", False):
                    raise ValueError(
                        f"Graph disconnected: cannot find a path from the inputs "
                        f"{[t.name for t in self.inputs]} to the tensor {tensor!r}, which is "
                        f"read by the model but is not one of its inputs.")
                if expanded:
                    done.add(id(node))
                    order.append(node)
                    continue
                stack.append((tensor, True))
                for t in reversed(node.inputs):
                    if id(t) not in is_input and id(t.node) not in done:
                        stack.append((t, False))
        self.nodes = order

    @property
    def layers(self) -> list:
        """Every layer that computes in the graph, once each, in Keras's order (`keras_order`)."""
        return [layer for layer in self._order() if not getattr(layer, "is_input_layer", False)]

    def keras_order(self) -> list:
        """Every layer, input layers included, once each, in the order Keras's functional
        `model.layers` lists them (and so `model.weights`, `get_weights`): by decreasing depth
        (the longest path to an output, a shared layer's deepest call), and at equal depth in the
        order a depth-first walk from the outputs first reaches them."""
        return list(self._order())

    def _order(self) -> list:
        # Worked out once: a graph's nodes never change, and training asks for its layers at
        # every step (the plan's key, the penalties).
        order = self.__dict__.get("_keras_order")
        if order is None:
            order = self.__dict__["_keras_order"] = self._sorted_layers()
        return order

    def _sorted_layers(self) -> list:
        input_nodes = [t.node for t in self.inputs]
        all_nodes = [n for n in input_nodes if n is not None] + self.nodes
        first_seen: dict[int, int] = {}
        stack, done = list(reversed(self.outputs)), set()
        while stack:
            node = stack.pop().node
            if node is None or id(node) in done:
                continue
            done.add(id(node))
            first_seen.setdefault(id(node.layer), len(first_seen))
            stack.extend(reversed(node.inputs))
        node_depth: dict[int, int] = {}
        layer_depth: dict[int, int] = {}
        for node in reversed(all_nodes):  # outputs first, every consumer before what it reads
            depth = max(node_depth.get(id(node), 0), layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = node_depth[id(node)] = depth
            for t in node.inputs:
                if t.node is not None:
                    node_depth[id(t.node)] = max(depth + 1, node_depth.get(id(t.node), 0))
        layers = {id(n.layer): n.layer for n in all_nodes}
        return sorted(layers.values(), key=lambda layer: (-layer_depth[id(layer)],
                                                          first_seen.get(id(layer), 0)))

    def consumers(self) -> dict[int, list[Node]]:
        """For each tensor (by id), the nodes that read it."""
        readers: dict[int, list[Node]] = {}
        for node in self.nodes:
            for t in node.inputs:
                readers.setdefault(id(t), []).append(node)
        return readers


class InputLayer:
    """The layer behind `Input()`: it holds the shape of the model's input and computes nothing.
    It is listed in a functional model's `layers` and `summary()`, as in Keras."""

    is_input_layer = True

    def __init__(self, shape: tuple, dtype="float32", name: str | None = None):
        self.name = name or _auto_name(type(self))
        self.dtype = np.dtype(dtype)
        self.input_shape = self.output_shape = (None, *shape)
        self.built, self.trainable = True, True
        self.params, self.weights, self.non_trainable_params = [], [], []
        self.output = KerasTensor(self.output_shape, self.dtype, name=self.name)
        Node(self, [], self.output)

    def count_params(self) -> int:
        return 0

    def get_weights(self) -> list:
        return []

    def set_weights(self, weights) -> None:
        if list(weights):
            raise ValueError(f"Layer '{self.name}' (InputLayer) has no weights, received "
                             f"{len(list(weights))}")

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": str(self.dtype),
                "batch_shape": [None, *self.output_shape[1:]]}

    def __repr__(self) -> str:
        return f"<InputLayer name={self.name!r} shape={self.output_shape}>"


def Input(shape, *, name: str | None = None, dtype=None) -> KerasTensor:
    """`Input(shape)`: a symbolic tensor for a model's input; `shape` is one sample's shape,
    without the batch dimension. Call layers on it and hand it to `Model(inputs, outputs)`, or
    put it first in a `Sequential([...])`."""
    shape = (shape,) if isinstance(shape, int) else shape
    if (not isinstance(shape, (tuple, list)) or not shape or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
            for d in shape)):
        raise ValueError(
            "Invalid value for argument `shape`. Expected a tuple of strictly positive ints "
            f"(or None), without the batch dimension. Received shape={shape!r}")
    dtype = np.dtype("float32" if dtype is None else dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"Invalid value for argument `dtype`. minicnn's inputs are floating "
                         f"point (float32 or float64). Received dtype={dtype!r}")
    return InputLayer(tuple(shape), dtype, name).output
