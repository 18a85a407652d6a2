"""The layer protocol every minicnn layer follows, built-in or a user's own.

    build(input_shape)          create weights once the input shape is known (batch dim is None)
    forward(x, training=False)  -> y; keeps what backward needs in `self.cache`
    backward(dout)              -> dx; fills each parameter's .grad, never changes a weight
    params                      the Parameter objects (.name, .value, .grad), in Keras order

`training` says how to behave, as Keras passes it: True inside `fit`, False in `predict`,
`evaluate` and the validation pass (a Dropout layer drops only when it is True). It does not
decide whether a backward pass may follow: forward always keeps what backward needs, so the
gradient of a model in inference mode can be taken too.

A parameter-free layer of your own needs only `forward` and `backward`; its output shape is found
by running `forward` once on a zero input. Only an optimizer's `step` changes `param.value`.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from minicnn import initializers

_name_counts: defaultdict[str, int] = defaultdict(int)


def clear_session() -> None:
    """Restart automatic layer names (conv2d, conv2d_1, ...) from zero, as Keras's does."""
    _name_counts.clear()


def _auto_name(cls: type) -> str:
    base = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", cls.__name__)
    base = re.sub(r"([a-z])([A-Z])", r"\1_\2", base).lower()
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


@dataclass(eq=False)
class Parameter:
    """One weight tensor: its value, the gradient of the last backward pass, and its name."""

    name: str
    value: np.ndarray
    grad: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.grad = np.zeros_like(self.value)

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"


def shape_str(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")")


class Layer:
    """Base class of all layers. Subclass it and write `forward` and `backward`."""

    def __init__(self, *, name: str | None = None, dtype=None, input_shape=None):
        self.name = name or _auto_name(type(self))
        # None: take the dtype of the first floating input (float32 when built from a shape).
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.input_shape = None if input_shape is None else (None, *tuple(input_shape))
        self.output_shape: tuple | None = None
        self.built = False
        self.cache = None
        self._params: list[Parameter] = []
        self.rng: np.random.Generator | None = None

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        """Create the weights for inputs of `input_shape` (batch dimension first, may be None)."""
        input_shape = (None, *tuple(input_shape)[1:])
        if self.dtype is None:
            self.dtype = np.dtype(np.float32)
        self.input_shape = input_shape
        self.built = True
        self.output_shape = self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Output shape for `input_shape`; by default found by running forward on zeros."""
        probe = np.zeros((1, *input_shape[1:]), dtype=self.dtype or np.float32)
        return (None, *self.forward(probe, training=False).shape[1:])

    def add_weight(self, name: str, shape: tuple, initializer) -> Parameter:
        init = initializers.get(initializer, f"{name}_initializer")
        param = Parameter(f"{self.name}/{name}", init(shape, self.dtype, self.rng))
        self._params.append(param)
        return param

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """Build on first use and check x against what the layer was built for."""
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"Layer '{self.name}' ({type(self).__name__}) expects a floating-point input, "
                f"received dtype {x.dtype}. Convert it first, e.g. x.astype('float32')."
            )
        if not self.built:
            if self.dtype is None:
                self.dtype = x.dtype
            self.build((None, *x.shape[1:]))
        self.check_input_shape(x.shape)
        if self._params and x.dtype != self.dtype:
            raise TypeError(
                f"Layer '{self.name}' ({type(self).__name__}) has {self.dtype} weights but "
                f"received a {x.dtype} input; cast the input, or the layer with "
                f"set_dtype('{x.dtype}'). minicnn never changes a dtype silently."
            )
        return x

    def check_input_shape(self, shape: tuple, context: str = "") -> None:
        """Raise a ValueError naming the layer, the expected and the received shape unless
        `shape` fits the shape the layer was built for (None matches any size)."""
        expected = self.input_shape
        if len(shape) != len(expected) or any(
            e is not None and e != g for e, g in zip(expected[1:], shape[1:], strict=True)
        ):
            raise ValueError(
                f"{context}Input to layer '{self.name}' ({type(self).__name__}) is incompatible: "
                f"expected shape {shape_str(expected)}, received shape {shape_str(shape)}"
            )

    def _cached(self):
        if self.cache is None:
            raise RuntimeError(
                f"Layer '{self.name}': backward() needs what a forward() call keeps, and no "
                "forward() has run since the layer was built or cast."
            )
        return self.cache

    # -- the pass -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training)")

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement backward(dout)")

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not self.built:
            x = self._prepare(x)
        return self.forward(x, training=training)

    # -- weights ------------------------------------------------------------------------------
    @property
    def params(self) -> list[Parameter]:
        return list(self._params)

    def get_weights(self) -> list[np.ndarray]:
        return [p.value.copy() for p in self._params]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        if not self.built:
            raise ValueError(
                f"Layer '{self.name}' is not built yet: call it on an input or build(input_shape) "
                "before set_weights()."
            )
        weights = list(weights)
        expected = [p.value.shape for p in self._params]
        received = [np.shape(w) for w in weights]
        if [tuple(s) for s in received] != expected:
            raise ValueError(
                f"Layer '{self.name}' expects {len(expected)} weights with shapes {expected}, "
                f"received {len(received)} with shapes {received}"
            )
        for p, w in zip(self._params, weights, strict=True):
            p.value[...] = w

    def set_dtype(self, dtype) -> Layer:
        """Cast every weight (and its gradient) to `dtype`, e.g. float64 for a gradient check."""
        self.dtype = np.dtype(dtype)
        for p in self._params:
            p.value = p.value.astype(self.dtype)
            p.grad = p.grad.astype(self.dtype)
        self.cache = None
        return self

    _config_keys: tuple[str, ...] = ()

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (JSON-serialisable), as in Keras:
        `model.save` stores them, `load_model(path, custom_objects={...})` passes them to
        `from_config`.

        Besides name, dtype and input_shape, a layer of your own saves its constructor
        arguments one of two ways:
        - keep each argument of `__init__` as an attribute of the same name
          (`self.rate = rate`): when `get_config` is not overridden, it reads them all;
        - or override it, Keras's way: `return {**super().get_config(), "rate": self._p}`.
        A layer that does neither cannot be saved: an argument of `__init__` that is not an
        attribute is an error naming it here, at save time, rather than a layer that comes back
        from the file with the argument's default.
        """
        config = {"name": self.name, "dtype": None if self.dtype is None else str(self.dtype)}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape[1:])
        keys = list(self._config_keys)
        if type(self).get_config is Layer.get_config:  # not overridden: the arguments of __init__
            for arg in inspect.signature(type(self).__init__).parameters.values():
                if (arg.name in ("self", "name", "dtype", "input_shape") or arg.name in keys
                        or arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD)):
                    continue
                if not hasattr(self, arg.name):
                    raise NotImplementedError(
                        f"Layer '{self.name}' ({type(self).__name__}) cannot be saved: its "
                        f"__init__ takes `{arg.name}`, which it does not keep as "
                        f"`self.{arg.name}`. Keep it under that name, or override get_config() "
                        f"to return {{**super().get_config(), '{arg.name}': ...}}.")
                keys.append(arg.name)
        for key in keys:
            value = getattr(self, key)
            if key == "activation" and hasattr(value, "name"):
                value = value.name
            elif key.endswith("_initializer") and not isinstance(value, str):
                value = {"class_name": type(value).__name__, "seed": value.seed}
            elif isinstance(value, np.generic):
                value = value.item()
            value = list(value) if isinstance(value, tuple) else value
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise NotImplementedError(
                    f"Layer '{self.name}' ({type(self).__name__}) cannot be saved: its argument "
                    f"`{key}` = {value!r} is not JSON data (numbers, strings, lists, dicts). "
                    "Override get_config() to save it as such, and from_config() to rebuild "
                    "the layer from it.") from None
            config[key] = value
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """The layer `get_config` describes: `cls(**config)`. name, dtype and input_shape are
        set after construction when `__init__` does not take them (a layer of your own written
        as `def __init__(self, rate): super().__init__()`)."""
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        later = {key: config[key] for key in ("name", "dtype", "input_shape")
                 if key in config and key not in params and not takes_kwargs}
        layer = cls(**{key: value for key, value in config.items() if key not in later})
        if later.get("name") is not None:
            layer.name = later["name"]
        if later.get("dtype") is not None:
            layer.dtype = np.dtype(later["dtype"])
        if later.get("input_shape") is not None:
            layer.input_shape = (None, *later["input_shape"])
        return layer

    def count_params(self) -> int:
        return int(sum(p.value.size for p in self._params))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} output_shape={self.output_shape}>"
