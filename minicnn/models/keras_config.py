"""Keras 3's serialized model config (a .keras archive's config.json) and minicnn's, both ways.

Keras 3 serializes every object as {"module", "class_name", "config", "registered_name"}; a layer
adds its "build_config" ({"input_shape": [null, ...]}), a functional model's layer its "name"
and "inbound_nodes", a model its "compile_config":

    {"module": "keras", "class_name": "Sequential", "registered_name": null,
     "config": {"name": ..., "trainable": true, "layers": [InputLayer, Conv2D, ...]},
     "build_config": {"input_shape": [null, 28, 28, 1]}, "compile_config": {...}}
    a functional layer's call: {"args": [tensor or [tensors]], "kwargs": {}}, a tensor being
    {"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
    [layer name, call, 0]}}; "input_layers"/"output_layers": one such reference or a list.

minicnn's layers take Keras's class names and arguments, so a layer's Keras config *is* its
`get_config()` with a few values in Keras's serialized form (`_keras_value`: a dtype as a
DTypePolicy, an initializer or regularizer as a serialized object, no activation as "linear").
No layer has code here: a layer whose config matches Keras's needs nothing. Reading, a Keras
argument minicnn's layer does not take is dropped only when it asks for what minicnn does anyway
(`_NEUTRAL`: no dilation, no constraint, channels_last...); any other value is an error naming
the layer and the argument.
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np

from minicnn import initializers

_INPUT_TYPES = ("InputLayer",)
# Keras arguments minicnn's layers do not take, and the values that mean what minicnn does.
# None (no constraint, no quantization, no seed...) is neutral for every argument.
_NEUTRAL = {"data_format": ["channels_last"], "dilation_rate": [1, [1, 1]], "groups": [1],
            "sparse": [False], "ragged": [False], "optional": [False], "synchronized": [False],
            "renorm": [False], "keepdims": [False], "depth_multiplier": [1],
            "negative_slope": [0], "threshold": [0], "axis": [-1]}  # ReLU's, Softmax's
_MEANINGLESS = {"renorm_momentum", "lora_alpha"}  # only used when their switch (None) is on


def _initializer_names() -> dict[str, str]:
    """Keras's name of each of minicnn's initializers -> its class: "he_normal" -> "HeNormal"."""
    return {name: cls.__name__ for name, cls in initializers._BY_NAME.items()}


def snake_case(name: str) -> str:
    """Keras's naming.to_snake_case: "BatchNormalization" -> "batch_normalization"."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_class_name(layer) -> str:
    if hasattr(layer, "_graph"):
        return "Sequential" if type(layer).__name__ == "Sequential" else "Functional"
    return type(layer).__name__


def _serialized(module: str, class_name: str, config: dict) -> dict:
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": None}


def _policy(dtype) -> dict:
    return _serialized("keras", "DTypePolicy", {"name": str(np.dtype(dtype or "float32"))})


# -- minicnn -> Keras ---------------------------------------------------------------------------
def check_saveable(model) -> None:
    """Only minicnn's own layers have Keras twins of the same name (a layer of your own may
    compute something else under a familiar one)."""
    for layer in model.layers:
        if hasattr(layer, "_graph"):
            check_saveable(layer)
        elif not type(layer).__module__.startswith("minicnn.layers."):
            raise ValueError(
                f"Model '{model.name}' cannot be saved as a Keras file: its layer "
                f"{layer.name!r} is of class {type(layer).__module__}.{type(layer).__qualname__}"
                ", which Keras has no twin for. Save it as `.npz` (minicnn's own format).")


def _keras_value(key: str, value):
    """A minicnn config value in Keras's serialized form (the table of real differences)."""
    if key == "dtype":
        return _policy(value)
    if key == "activation" and value is None:
        return "linear"
    if key.endswith("_initializer"):
        name, seed = (value, None) if isinstance(value, str) else (value["class_name"],
                                                                   value.get("seed"))
        name = _initializer_names().get(name, name)
        return _serialized("keras.initializers", name,  # Zeros() and Ones() take no seed
                           {} if name in ("Zeros", "Ones") else {"seed": seed})
    if key.endswith("_regularizer") and isinstance(value, dict):
        return _serialized("keras.regularizers", value["class_name"], value["config"])
    return value


def _layer_entry(layer) -> dict:
    if hasattr(layer, "_graph"):
        return model_entry(layer)
    config = {"name": layer.name, "trainable": bool(layer.trainable)}
    config.update((k, _keras_value(k, v)) for k, v in layer.get_config().items()
                  if k not in ("input_shape", "name", "trainable"))
    entry = _serialized("keras.layers", type(layer).__name__, config)
    if layer.weights:  # Keras builds the layer from this before it reads the weights
        entry["build_config"] = {"input_shape": list(layer.input_shape)}
    return entry


def _input_entry(name: str, shape, dtype) -> dict:
    return _serialized("keras.layers", "InputLayer", {
        "batch_shape": [None, *shape[1:]], "dtype": str(np.dtype(dtype or "float32")),
        "sparse": False, "ragged": False, "name": name, "optional": False})


def model_entry(model) -> dict:
    """The Keras 3 serialization of a built minicnn model (config.json without compile)."""
    dtype = model.dtype
    if type(model).__name__ == "Sequential":
        layers = [_input_entry("input_layer", model.input_shape, dtype)]
        layers += [_layer_entry(layer) for layer in model.layers]
        config = {"name": model.name, "trainable": bool(model.trainable), "dtype": _policy(dtype),
                  "layers": layers, "build_input_shape": list(model.input_shape)}
        entry = _serialized("keras", "Sequential", config)
        entry["build_config"] = {"input_shape": list(model.input_shape)}
        return entry
    graph = model._graph
    calls: dict[int, int] = {}  # id(node) -> its call number inside this model (as Keras's)
    for k, node in enumerate(graph.nodes):
        calls[id(node)] = sum(1 for n in graph.nodes[:k] if n.layer is node.layer)

    def ref(t) -> list:
        return [t.node.layer.name, calls.get(id(t.node), 0), 0]

    def tensor(t) -> dict:
        return {"class_name": "__keras_tensor__", "config": {
            "shape": list(t.shape), "dtype": str(np.dtype(dtype or "float32")),
            "keras_history": ref(t)}}

    layers = []
    for layer in model.layers:
        if getattr(layer, "is_input_layer", False):
            t = next(t for t in graph.inputs if t.node.layer is layer)
            entry = _input_entry(layer.name, t.shape, dtype)
        else:
            entry = _layer_entry(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [
            {"args": [[tensor(t) for t in node.inputs] if node.multi_input
                      else tensor(node.inputs[0])], "kwargs": {}}
            for node in graph.nodes if node.layer is layer]
        layers.append(entry)
    ins, outs = [ref(t) for t in graph.inputs], [ref(t) for t in graph.outputs]
    config = {"name": model.name, "trainable": bool(model.trainable), "layers": layers,
              "input_layers": ins if model._multi_in else ins[0],
              "output_layers": outs if model._multi_out else outs[0]}
    entry = _serialized("keras.src.models.functional", "Functional", config)
    entry["registered_name"] = "Functional"
    entry["build_config"] = {"input_shape": None}
    return entry


def compile_entry(model) -> dict:
    """Keras 3's compile_config of a compiled minicnn model."""
    compiled = model._compile_config()
    options = {"name": model.optimizer.name, **compiled["optimizer"]["config"]}
    if isinstance(options["learning_rate"], dict):
        rate = options["learning_rate"]
        options["learning_rate"] = _serialized("keras.optimizers.schedules", rate["class_name"],
                                               rate["config"])

    def obj(module, spec):  # a name as it is, an object serialized as Keras does
        return spec if isinstance(spec, str) else _serialized(module, spec["class_name"],
                                                              spec["config"])

    return {"optimizer": _serialized("keras.optimizers", compiled["optimizer"]["class_name"],
                                     options),
            "loss": obj("keras.losses", compiled["loss"]), "loss_weights": None,
            "metrics": [obj("keras.metrics", m) for m in compiled["metrics"]] or None,
            "weighted_metrics": [obj("keras.metrics", m)
                                 for m in compiled.get("weighted_metrics", [])] or None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


# -- Keras -> minicnn ---------------------------------------------------------------------------
class KerasConfigError(ValueError):
    """A Keras config minicnn cannot rebuild; the message names the layer and the problem."""


def _layer_class(entry: dict, custom_objects: dict | None):
    from minicnn import layers as layers_module

    name = entry.get("registered_name") or entry["class_name"]
    for key in (name, entry["class_name"]):
        if key in (custom_objects or {}):
            return custom_objects[key]
    if entry["class_name"] in layers_module.__all__ and entry.get("registered_name") in (
            None, entry["class_name"]):
        return getattr(layers_module, entry["class_name"])
    try:  # the missing-layer message: what minicnn has, and how to write the one you need
        getattr(layers_module, entry["class_name"])
        problem = f"minicnn has no layer `{name}`."
    except AttributeError as e:
        problem = str(e)
    layer = entry.get("config", {}).get("name", entry.get("name"))
    raise KerasConfigError(
        f"its layer {layer!r} is a Keras `{name}`, which minicnn cannot rebuild: {problem} "
        f"Then load with custom_objects={{'{entry['class_name']}': YourLayer}}.")


def _minicnn_value(where: str, key: str, value, dropped: list[str]):
    if key == "dtype":
        name = value["config"]["name"] if isinstance(value, dict) else value
        if name not in (None, "float32", "float64"):
            raise KerasConfigError(f"{where} computes in {name!r}; minicnn layers compute in "
                                   "float32 or float64")
        return name
    if key == "activation" and not isinstance(value, str):
        raise KerasConfigError(f"{where} has the activation {value!r}, not one minicnn names")
    if key.endswith("_initializer"):
        name = value if isinstance(value, str) else value.get("class_name")
        by_class = {cls.__name__ for cls in initializers._BY_NAME.values()}
        if name in initializers._BY_NAME:
            return name
        seed = (value.get("config") or {}).get("seed") if isinstance(value, dict) else None
        if name in by_class and seed is None:  # its name, as minicnn's own configs have it
            return {v: k for k, v in _initializer_names().items()}[name]
        if name in by_class:  # a seeded object, which the layer's get_config() serializes
            return initializers.get({"class_name": name, "seed": seed})
        dropped.append(f"{where}'s {key} {name} (minicnn's default instead; the weights come "
                       f"from the file)")
        return None
    if key.endswith("_regularizer") and isinstance(value, dict):
        return {"class_name": value["class_name"], "config": value.get("config", {})}
    return value


def _layer_spec(entry: dict, custom_objects, dropped: list[str]) -> dict:
    if entry["class_name"] in ("Sequential", "Functional"):
        arch = model_arch(entry, custom_objects, dropped)
        return {"class_name": arch["class_name"], "name": arch["name"], "config": arch}
    config = dict(entry.get("config", {}))
    if entry["class_name"] in _INPUT_TYPES:
        return {"class_name": "InputLayer", "name": config["name"],
                "config": {"name": config["name"], "batch_shape": config["batch_shape"],
                           "dtype": _minicnn_value("input", "dtype", config.get("dtype"), [])}}
    cls = _layer_class(entry, custom_objects)
    where = f"layer {config.get('name')!r} ({entry['class_name']})"
    params = inspect.signature(cls.__init__).parameters
    takes = {p for p in params if params[p].kind is not params[p].VAR_KEYWORD}
    takes |= {"name", "dtype", "trainable", "input_shape"}
    out = {}
    for key, value in config.items():
        if key in takes:
            value = _minicnn_value(where, key, value, dropped)
            if value is not None or not key.endswith("_initializer"):
                out[key] = value
        elif not (value is None or key in _MEANINGLESS or value in _NEUTRAL.get(key, [])):
            raise KerasConfigError(
                f"{where} has {key}={value!r}, an argument minicnn's {cls.__name__} does not "
                f"take (minicnn computes it as {key}={_NEUTRAL.get(key, [None])[0]!r})")
    return {"class_name": cls.__name__, "name": config.get("name"), "config": out}


def _ref(tensor: dict) -> list:
    name, call, index = tensor["config"]["keras_history"]
    if index != 0:
        raise KerasConfigError(f"its graph reads output {index} of layer {name!r}; minicnn's "
                               "layers have one output")
    return [name, call, 0]


def _node(where: str, node: dict) -> dict:
    args, kwargs = node.get("args"), node.get("kwargs") or {}
    if not isinstance(args, list) or len(args) != 1 or any(v is not None
                                                            for v in kwargs.values()):
        raise KerasConfigError(f"{where} is called with {node!r}; minicnn's layers take one "
                               "tensor or one list of tensors")
    if isinstance(args[0], list):
        return {"inputs": [_ref(t) for t in args[0]], "list": True}
    return {"inputs": [_ref(args[0])], "list": False}


def model_arch(entry: dict, custom_objects=None, dropped: list[str] | None = None) -> dict:
    """minicnn's architecture (graph_config.py's layout) of Keras's serialized model `entry`;
    what minicnn leaves out (initializers it lacks) is appended to `dropped`."""
    dropped = [] if dropped is None else dropped
    if not isinstance(entry, dict):
        raise KerasConfigError(f"its config.json holds a {type(entry).__name__}, not a model")
    kind, config = entry.get("class_name"), entry.get("config")
    if kind not in ("Sequential", "Functional") or not isinstance(config, dict):
        raise KerasConfigError(f"it holds a Keras {kind!r}; minicnn rebuilds Sequential and "
                               "functional models (a subclassed Model has no config to rebuild)")
    arch = {"class_name": kind, "name": config.get("name"),
            "trainable": config.get("trainable", True)}
    if kind == "Sequential":
        shape, specs = config.get("build_input_shape"), []
        for layer in config["layers"]:
            if layer["class_name"] in _INPUT_TYPES:
                shape = layer["config"]["batch_shape"]
                continue
            spec = _layer_spec(layer, custom_objects, dropped)
            if not specs and shape is not None and spec["class_name"] not in (
                    "Sequential", "Functional"):
                spec["config"]["input_shape"] = list(shape[1:])
            specs.append(spec)
        arch["layers"] = specs
        return arch
    specs = []
    for layer in config["layers"]:
        spec = _layer_spec(layer, custom_objects, dropped)
        spec["name"] = layer["name"]
        where = f"layer {layer['name']!r}"
        spec["inbound_nodes"] = [_node(where, n) for n in layer.get("inbound_nodes", [])]
        specs.append(spec)
    arch["layers"] = specs
    for key, multi in (("input_layers", "multi_input"), ("output_layers", "multi_output")):
        refs = config[key]
        single = bool(refs) and isinstance(refs[0], str)
        arch[key] = [list(refs)] if single else [list(r) for r in refs]
        arch[multi] = not single
    return arch


def compile_args(compile_config: dict, dropped: list[str]) -> dict | None:
    """minicnn's compile arguments {optimizer, loss, metrics, weighted_metrics} from Keras's
    compile_config, or None (what was dropped appended to `dropped`) when minicnn lacks a part."""
    from minicnn import losses, metrics, optimizers

    c = compile_config
    spec = c.get("optimizer")
    spec = {"class_name": spec, "config": {}} if isinstance(spec, str) else spec
    known = {"Adam": optimizers.Adam, "AdamW": optimizers.AdamW, "SGD": optimizers.SGD,
             "RMSprop": optimizers.RMSprop}
    name = (spec or {}).get("class_name")
    cls = known.get(name) or known.get({"adam": "Adam", "adamw": "AdamW", "sgd": "SGD",
                                        "rmsprop": "RMSprop"}.get(str(name).lower()))
    if cls is None:
        dropped.append(f"the optimizer {name!r} (minicnn has {', '.join(known)})")
        return None
    params = inspect.signature(cls.__init__).parameters
    takes = set(params) | set(inspect.signature(optimizers.Optimizer.__init__).parameters)
    options = {}
    for key, value in (spec.get("config") or {}).items():
        if key in takes and key not in ("self", "kwargs"):
            if key == "learning_rate" and isinstance(value, dict):
                value = optimizers.schedules.deserialize(
                    {"class_name": value["class_name"], "config": value["config"]})
            elif isinstance(value, float):  # Keras keeps float32 variables: 0.0010000000474..
                value = float(str(np.float32(value)))
            options[key] = value
        elif not (key == "name" or value in (None, False) or key == "ema_momentum"):
            dropped.append(f"the optimizer's {key}={value!r} (minicnn's {name} has no "
                           f"`{key}`)")
            return None
    try:
        optimizer = cls(**options)
    except (TypeError, ValueError) as e:
        dropped.append(f"the optimizer {name} ({e})")
        return None
    if c.get("loss_weights") is not None:
        dropped.append(f"loss_weights={c['loss_weights']!r} (minicnn has none)")
        return None

    def plain(value):  # Keras's {"module", "class_name", "config", ...} -> minicnn's form
        if isinstance(value, dict):
            return {"class_name": value.get("class_name"), "config": value.get("config", {})}
        return value

    try:
        loss = losses.get(plain(c.get("loss")))
    except ValueError:
        dropped.append(f"the loss {c.get('loss')!r}")
        return None
    chosen = {}
    for key in ("metrics", "weighted_metrics"):
        given = c.get(key) or []
        if not isinstance(given, list):
            dropped.append(f"{key}={given!r} (minicnn takes a list)")
            return None
        chosen[key] = [plain(m) for m in given]
        for m in chosen[key]:
            try:
                metrics.get(m, np.zeros((1, 2)), np.zeros((1, 2)))
            except (AttributeError, TypeError, ValueError):
                dropped.append(f"the metric {m!r}")
                return None
    return {"optimizer": optimizer, "loss": loss, "metrics": chosen["metrics"],
            "weighted_metrics": chosen["weighted_metrics"] or None}


def warn_dropped(path: str, dropped: list[str]) -> None:
    if dropped:
        warnings.warn(f"Loading '{path}': minicnn left out " + "; ".join(dropped),
                      stacklevel=3)
