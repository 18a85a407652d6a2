"""Small helpers around the engine, named as in Keras."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["to_categorical", "to_keras"]


def to_categorical(
    y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float32"
) -> np.ndarray:
    """One-hot encode integer class labels, as `keras.utils.to_categorical` does.

    Args:
        y: class labels in [0, num_classes), any shape S. Integer, bool, or float with whole
            values. A trailing dim of size 1, as in (N, 1), is dropped first, like Keras does.
        num_classes: number of classes C; default max(y) + 1.
        dtype: dtype of the result.

    Returns:
        Array of shape S + (C,) (S without its trailing 1), with a 1 at each label's index and 0
        elsewhere.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"Invalid dtype for argument `y`. Expected integer class labels. "
            f"Received y with dtype={y.dtype}."
        )
    if y.dtype.kind == "f":
        # Keras casts to int, which would silently turn 1.5 into 1; only whole values are labels.
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ValueError(
                f"Invalid value for argument `y`. Expected integer class labels. "
                f"Received the non-integer label {y[bad].flat[0]}."
            )
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    labels = y.reshape(-1)
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"Invalid value for argument `y`. Expected labels >= 0. "
            f"Received the negative label {labels.min()}."
        )
    if num_classes is None:
        if labels.size == 0:
            raise ValueError(
                "Invalid value for argument `y`. Expected at least one label to infer "
                f"num_classes from, or an explicit num_classes. Received y with shape {y.shape}."
            )
        num_classes = int(labels.max()) + 1
    else:
        received = num_classes
        try:
            num_classes = operator.index(num_classes)
        except TypeError:
            num_classes = 0  # not an integer: reported below with the value received
        if num_classes < 1:
            raise ValueError(
                f"Invalid value for argument `num_classes`. Expected a positive integer. "
                f"Received num_classes={received!r}."
            )
        if labels.size and labels.max() >= num_classes:
            raise ValueError(
                f"Invalid value for argument `y`. Expected labels below num_classes={num_classes}. "
                f"Received the label {int(labels.max())}."
            )
    one_hot = np.zeros((labels.size, num_classes), dtype=dtype)
    one_hot[np.arange(labels.size), labels.astype(np.intp)] = 1
    return one_hot.reshape((*shape, num_classes))


def to_keras(model: Any, compile: bool = False) -> Any:
    """The same model in Keras: a `keras.Sequential` with the same layers, arguments and weights.

    Each layer is rebuilt from its `get_config()` (minicnn's layers take Keras's class names and
    arguments) and minicnn's weights are copied in unchanged (the layouts are Keras's: kernels
    (kh, kw, c_in, c_out) and (in, out), BatchNormalization's gamma, beta, moving mean and
    variance). With `compile=True` it is compiled with the model's optimizer (the same
    arguments, a learning-rate schedule included; a fresh state), loss and metrics.

    Keras (and TensorFlow behind it) is imported here, never by `import minicnn`.

    Args:
        model: a built `minicnn.models.Sequential` (it knows its input shape), of minicnn's
            own layers.
        compile: also compile the Keras model as `model` is compiled.

    Returns:
        A `keras.Sequential` whose `predict` equals `model.predict` to float32 rounding.

    Raises:
        ValueError: if the model is not built, has a layer Keras has no twin for (a layer of
            your own, named in the message), or `compile=True` and the model is not compiled.
    """
    if not getattr(model, "built", False):
        raise ValueError(f"Invalid value for argument `model`. Expected a built model (fit it, "
                         f"call it on data, or give its first layer an input_shape). Received "
                         f"the unbuilt model {getattr(model, 'name', model)!r}.")
    # Only minicnn's own layers have a Keras twin of the same name; a subclass or a layer of
    # your own may compute something else under a familiar name. (Read from the class's module,
    # not by importing minicnn.layers: this module sits below the layers.)
    foreign = [layer for layer in model.layers
               if not type(layer).__module__.startswith("minicnn.layers.")]
    if foreign:
        layer = foreign[0]
        raise ValueError(f"Invalid value for argument `model`. Expected only minicnn's built-in "
                         f"layers, which Keras mirrors. Received layer {layer.name!r} of class "
                         f"{type(layer).__module__}.{type(layer).__qualname__}, which Keras "
                         "has no twin for.")
    config = model.get_config()
    if compile and "compile" not in config:
        raise ValueError(f"Invalid value for argument `compile`. Expected a compiled model to "
                         f"copy the optimizer, loss and metrics from. Received compile=True "
                         f"for the uncompiled model {model.name!r}.")
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up logging only
    import keras

    stack = [keras.Input(tuple(model.input_shape[1:]))]
    for layer, spec in zip(model.layers, config["layers"], strict=True):
        options = {k: v for k, v in spec["config"].items() if k != "input_shape"}
        if options.get("dtype") is None:
            options.pop("dtype", None)
        keras_class = getattr(keras.layers, spec["class_name"], None)
        if keras_class is None:
            raise ValueError(f"Keras {keras.__version__} has no layer {spec['class_name']} "
                             f"to mirror layer {layer.name!r}.")
        stack.append(keras_class(**options))
    twin = keras.Sequential(stack, name=f"{model.name}_keras")
    twin.set_weights(model.get_weights())  # Keras raises if a shape differs
    if compile:
        compiled = config["compile"]
        options = dict(compiled["optimizer"]["config"])
        rate = options.get("learning_rate")
        if isinstance(rate, dict):  # a schedule
            options["learning_rate"] = getattr(keras.optimizers.schedules,
                                               rate["class_name"])(**rate["config"])
        optimizer = getattr(keras.optimizers, compiled["optimizer"]["class_name"])(**options)
        twin.compile(optimizer=optimizer, loss=compiled["loss"], metrics=compiled["metrics"])
    return twin
