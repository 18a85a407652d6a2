"""A functional model's architecture as JSON data, and the model rebuilt from it.

The layout follows Keras's functional config: every layer once, in `model.layers` order, each
with its `inbound_nodes` (one entry per call: the tensors it reads, as [layer name, call, 0]);
and the graph's `input_layers` and `output_layers`. Call numbers count the calls inside this
model, from 0. A model used as a layer is stored whole, as its own config.

    {"class_name": "Functional", "name": ..., "seed": ..., "epochs_trained": ...,
     "layers": [{"class_name": "InputLayer", "name": "input_layer",
                 "config": {"batch_shape": [null, 28, 28, 1], ...}, "inbound_nodes": []},
                {"class_name": "Add", "name": "add", "config": {...},
                 "inbound_nodes": [{"inputs": [["conv2d", 0, 0], ["conv2d_1", 0, 0]],
                                    "list": true}]}, ...],
     "input_layers": [["input_layer", 0, 0]], "output_layers": [["dense", 0, 0]]}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from minicnn.layers.node import Input


def layer_config(layer) -> dict:
    """One layer's entry without its calls: a model's whole config, or a layer's own (without
    `input_shape`: in a graph the calls give each layer its inputs)."""
    config = layer.get_config()
    if not hasattr(layer, "_graph"):
        config = {k: v for k, v in config.items() if k != "input_shape"}
    class_name = config.get("class_name") if hasattr(layer, "_graph") else None
    return {"class_name": class_name or type(layer).__name__, "name": layer.name,
            "config": config}


def functional_config(model) -> dict:
    graph = model._graph
    calls: dict[int, int] = {}  # id(node) -> its call number inside this model
    for node in graph.nodes:
        calls[id(node)] = sum(1 for n in graph.nodes[:graph.nodes.index(node)]
                              if n.layer is node.layer)

    def ref(tensor) -> list:
        node = tensor.node
        return [node.layer.name, calls.get(id(node), 0), 0]

    specs = []
    for layer in model.layers:
        spec = layer_config(layer)
        spec["inbound_nodes"] = [{"inputs": [ref(t) for t in node.inputs],
                                  "list": node.multi_input}
                                 for node in graph.nodes if node.layer is layer]
        specs.append(spec)
    config = {"class_name": "Functional", "name": model.name, "seed": model.seed,
              "epochs_trained": model.epochs_trained, "trainable": model.trainable,
              "layers": specs,
              "input_layers": [ref(t) for t in graph.inputs],
              "output_layers": [ref(t) for t in graph.outputs],
              "multi_input": model._multi_in, "multi_output": model._multi_out}
    if model.compiled:
        config["compile"] = model._compile_config()
    return config


# The model classes by the class name their configs carry ("Functional", "Sequential"): each
# registers itself where it is defined, so that this module needs to import neither.
MODEL_CLASSES: dict[str, type] = {}


def model_from_config(arch: dict, custom_objects: dict | None = None,
                      checking: Callable[[object], contextlib.AbstractContextManager]
                      | None = None):
    """The model `arch` (a `get_config()`) describes, with fresh weights. `custom_objects` maps
    class names to your own layers; `checking(layer)`, when given, is entered around each
    layer's build (load_model checks each weight against the file as it is made)."""
    from minicnn import layers as layers_module

    known = {name: getattr(layers_module, name) for name in layers_module.__all__}
    known.update(custom_objects or {})
    checking = checking or (lambda layer: contextlib.nullcontext())

    def layer_of(spec: dict):
        if spec["class_name"] in MODEL_CLASSES:
            return build(spec["config"])
        cls = known.get(spec["class_name"])
        if cls is None:
            raise ValueError(f"unknown layer class {spec['class_name']!r}; pass it in "
                             f"custom_objects={{'{spec['class_name']}': TheClass}} (on the "
                             f"command line: --custom-objects FILE.py). minicnn's own "
                             f"layers are in minicnn.layers; to write one: "
                             f"{layers_module._CUSTOM_LAYER_GUIDE}")
        if spec["config"].get("dtype") not in (None, "float32", "float64"):
            raise ValueError(f"layer {spec['config'].get('name')!r} has dtype "
                             f"{spec['config']['dtype']!r}; minicnn layers compute in "
                             f"float32 or float64")
        return cls.from_config(spec["config"])

    def build(arch: dict):
        if arch.get("class_name", "Sequential") != "Sequential":
            return _functional(arch, layer_of, checking)
        model = MODEL_CLASSES["Sequential"](name=arch.get("name"), seed=arch.get("seed"))
        for spec in arch["layers"]:
            layer = layer_of(spec)
            with checking(layer):
                model.add(layer)
        if not model.built:
            raise ValueError("the first layer has no input_shape")
        if arch.get("trainable") is False:
            model.trainable = False
        return model

    return build(arch)


def _functional(arch: dict, layer_of, checking):
    made: dict[tuple[str, int], object] = {}  # (layer name, call) -> its output tensor
    pending = []  # [spec, layer (made at its first call), the calls still to make]
    for spec in arch["layers"]:
        if spec["class_name"] == "InputLayer":
            config = spec["config"]
            made[(spec["name"], 0)] = Input(tuple(config["batch_shape"][1:]),
                                            name=spec["name"], dtype=config.get("dtype"))
        else:
            pending.append([spec, None, list(spec["inbound_nodes"])])
    # Calls in dependency order, sweeping the layers in their listed (Keras's) order: each
    # layer is made and built at its first call, so weights are created in the file's order.
    while pending:
        progressed = False
        for entry in pending:
            spec, nodes = entry[0], entry[2]
            while nodes and all((r[0], r[1]) in made for r in nodes[0]["inputs"]):
                if entry[1] is None:
                    entry[1] = layer_of(spec)
                inbound = nodes.pop(0)
                inputs = [made[(r[0], r[1])] for r in inbound["inputs"]]
                index = len(spec["inbound_nodes"]) - len(nodes) - 1
                with checking(entry[1]):
                    made[(spec["name"], index)] = entry[1](
                        inputs if inbound["list"] else inputs[0])
                progressed = True
        pending = [entry for entry in pending if entry[2]]
        if pending and not progressed:
            raise ValueError(f"the graph cannot be rebuilt: layer {pending[0][0]['name']!r} "
                             f"reads tensors no layer makes")

    def tensors(refs):
        missing = [r for r in refs if (r[0], r[1]) not in made]
        if missing:
            raise ValueError(f"the graph names tensors no layer makes: {missing}")
        return [made[(r[0], r[1])] for r in refs]

    inputs, outputs = tensors(arch["input_layers"]), tensors(arch["output_layers"])
    model = MODEL_CLASSES["Functional"](inputs if arch.get("multi_input") else inputs[0],
                  outputs if arch.get("multi_output") else outputs[0],
                  name=arch.get("name"), seed=arch.get("seed"))
    if arch.get("trainable") is False:
        model.trainable = False
    return model
