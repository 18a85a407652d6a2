"""to_keras: the same model in Keras, with the same layers, arguments and weights.

Each layer is rebuilt from its `get_config()` (minicnn's layers take Keras's class names and
arguments) and its weights are copied in unchanged: the layouts are Keras's (kernels
(kh, kw, c_in, c_out) and (in, out), BatchNormalization's gamma, beta, moving mean and
variance). A Sequential becomes a `keras.Sequential`; a graph a functional `keras.Model` with the
same calls (a shared layer is one Keras layer called twice, a nested model a nested model).
Keras (and TensorFlow behind it) is imported here, never by `import minicnn`.
"""

from __future__ import annotations

import os
from typing import Any


def to_keras(model: Any, compile: bool = False) -> Any:
    """The same model in Keras; with `compile=True`, compiled with the model's optimizer (the
    same arguments, a learning-rate schedule included; a fresh state), loss and metrics.

    Args:
        model: a built minicnn `Sequential` or `Model` of minicnn's own layers.
        compile: also compile the Keras model as `model` is compiled.

    Returns:
        A Keras model whose `predict` equals `model.predict` to float32 rounding.

    Raises:
        ValueError: if the model is not built, has a layer Keras has no twin for (a layer of
            your own, named in the message), or `compile=True` and the model is not compiled.
    """
    if not getattr(model, "built", False):
        raise ValueError(f"Invalid value for argument `model`. Expected a built model (fit it, "
                         f"call it on data, or give its first layer an input_shape). Received "
                         f"the unbuilt model {getattr(model, 'name', model)!r}.")
    _check_layers(model)
    if compile and not model.compiled:
        raise ValueError(f"Invalid value for argument `compile`. Expected a compiled model to "
                         f"copy the optimizer, loss and metrics from. Received compile=True "
                         f"for the uncompiled model {model.name!r}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up logging only
    import keras

    twin = _mirror_model(keras, model, name=f"{model.name}_keras")
    if compile:
        compiled = model._compile_config()
        options = dict(compiled["optimizer"]["config"])
        rate = options.get("learning_rate")
        if isinstance(rate, dict):  # a schedule
            options["learning_rate"] = getattr(keras.optimizers.schedules,
                                               rate["class_name"])(**rate["config"])
        optimizer = getattr(keras.optimizers, compiled["optimizer"]["class_name"])(**options)

        def made(module, spec):  # a name as it is, an object from {class_name, config}
            return spec if isinstance(spec, str) else getattr(module, spec["class_name"])(
                **spec["config"])

        twin.compile(optimizer=optimizer, loss=made(keras.losses, compiled["loss"]),
                     metrics=[made(keras.metrics, m) for m in compiled["metrics"]],
                     weighted_metrics=[made(keras.metrics, m)
                                       for m in compiled.get("weighted_metrics", [])] or None)
    return twin


def _check_layers(model) -> None:
    # Only minicnn's own layers have a Keras twin of the same name; a subclass or a layer of
    # your own may compute something else under a familiar name.
    for layer in model.layers:
        if hasattr(layer, "_graph"):
            _check_layers(layer)
        elif not type(layer).__module__.startswith("minicnn.layers."):
            raise ValueError(
                f"Invalid value for argument `model`. Expected only minicnn's built-in layers, "
                f"which Keras mirrors. Received layer {layer.name!r} of class "
                f"{type(layer).__module__}.{type(layer).__qualname__}, which Keras has no twin "
                "for.")


def _mirror_model(keras, model, name: str):
    if type(model).__name__ == "Sequential" or not hasattr(model, "_multi_in"):
        stack = [keras.Input(tuple(model.input_shape[1:]))]
        stack += [_mirror(keras, layer) for layer in model.layers]
        twin = keras.Sequential(stack, name=name)
    else:
        graph = model._graph
        tensors = {id(t): keras.Input(tuple(t.shape[1:]), name=t.name) for t in graph.inputs}
        made: dict[int, Any] = {}
        for node in graph.nodes:
            if id(node.layer) not in made:
                made[id(node.layer)] = _mirror(keras, node.layer)
            args = [tensors[id(t)] for t in node.inputs]
            tensors[id(node.output)] = made[id(node.layer)](args if node.multi_input else args[0])
        ins = [tensors[id(t)] for t in graph.inputs]
        outs = [tensors[id(t)] for t in graph.outputs]
        twin = keras.Model(ins if model._multi_in else ins[0],
                           outs if model._multi_out else outs[0], name=name)
    for layer in model.layers:
        if layer.weights and not hasattr(layer, "_graph"):
            twin.get_layer(layer.name).set_weights(layer.get_weights())  # raises on a shape
    return twin


def _mirror(keras, layer):
    if hasattr(layer, "_graph"):
        return _mirror_model(keras, layer, name=layer.name)
    options = {k: v for k, v in layer.get_config().items() if k != "input_shape"}
    if options.get("dtype") is None:
        options.pop("dtype", None)
    keras_class = getattr(keras.layers, type(layer).__name__, None)
    if keras_class is None:
        raise ValueError(f"Keras {keras.__version__} has no layer {type(layer).__name__} "
                         f"to mirror layer {layer.name!r}.")
    return keras_class(**options)
