"""How a layer is written into a model file and rebuilt from it: `get_config` / `from_config`.

Besides name, dtype and input_shape, a layer saves its constructor arguments one of two ways:
- it keeps each argument of `__init__` as an attribute of the same name (`self.rate = rate`):
  when `get_config` is not overridden, `config_of` reads them all;
- or it overrides `get_config`, Keras's way: `return {**super().get_config(), "rate": self._p}`.
A layer that does neither cannot be saved: an argument of `__init__` that is not an attribute
is an error naming it at save time, rather than a layer that comes back from the file with the
argument's default.
"""

from __future__ import annotations

import inspect
import json

import numpy as np

_ALWAYS = ("name", "dtype", "input_shape")


def config_of(layer, read_init: bool) -> dict:
    """The JSON-ready config of `layer`: name, dtype, input_shape, its `_config_keys`, and with
    `read_init` every other argument of its `__init__`."""
    config = {"name": layer.name, "dtype": None if layer.dtype is None else str(layer.dtype)}
    if layer.input_shape is not None:
        config["input_shape"] = list(layer.input_shape[1:])
    keys = list(layer._config_keys)
    if read_init:
        for arg in inspect.signature(type(layer).__init__).parameters.values():
            if (arg.name == "self" or arg.name in _ALWAYS or arg.name in keys
                    or arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD)):
                continue
            if not hasattr(layer, arg.name):
                raise NotImplementedError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) cannot be saved: its "
                    f"__init__ takes `{arg.name}`, which it does not keep as "
                    f"`self.{arg.name}`. Keep it under that name, or override get_config() "
                    f"to return {{**super().get_config(), '{arg.name}': ...}}.")
            keys.append(arg.name)
    for key in keys:
        config[key] = _json_value(layer, key, getattr(layer, key))
    if not getattr(layer, "trainable", True):
        config["trainable"] = False  # Keras's key; only a frozen layer carries it
    return config


def _json_value(layer, key: str, value):
    if key == "activation" and hasattr(value, "name"):
        value = value.name
    elif key.endswith("_initializer") and not isinstance(value, str):
        value = {"class_name": type(value).__name__, "seed": value.seed}
    elif key.endswith("_regularizer") and value is not None:
        value = {"class_name": type(value).__name__, "config": value.get_config()}
    elif isinstance(value, np.generic):
        value = value.item()
    value = list(value) if isinstance(value, tuple) else value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise NotImplementedError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot be saved: its argument "
            f"`{key}` = {value!r} is not JSON data (numbers, strings, lists, dicts). "
            "Override get_config() to save it as such, and from_config() to rebuild "
            "the layer from it.") from None
    return value


def layer_from(cls, config: dict):
    """`cls(**config)`; name, dtype and input_shape are set after construction when `__init__`
    does not take them (a layer of your own written as
    `def __init__(self, rate): super().__init__()`)."""
    config = dict(config)
    trainable = config.pop("trainable", True)
    params = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    later = {key: config[key] for key in _ALWAYS
             if key in config and key not in params and not takes_kwargs}
    layer = cls(**{key: value for key, value in config.items() if key not in later})
    if later.get("name") is not None:
        layer.name = later["name"]
    if later.get("dtype") is not None:
        layer.dtype = np.dtype(later["dtype"])
    if later.get("input_shape") is not None:
        layer.input_shape = (None, *later["input_shape"])
    if trainable is False:
        layer.trainable = False
    return layer
