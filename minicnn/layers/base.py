"""The layer protocol every minicnn layer follows, built-in or a user's own.

    build(input_shape)          create weights once the input shape is known (batch dim is None)
    forward(x, training=False)  -> y; keeps what backward needs in `self.cache`
    backward(dout)              -> dx; fills each parameter's .grad, never changes a weight
    params                      the trainable Parameters (.name, .value, .grad), in Keras order
    weights                     every Parameter, non-trainable ones included (BatchNormalization's
                                moving statistics), in Keras order: what get_weights, set_weights,
                                count_params and saving cover
    per_sample                  True when each sample's output depends on that sample alone (not
                                BatchNormalization's batch statistics): what a data-parallel
                                worker may run on its share of a batch (False by default)

`training` says how to behave, as Keras passes it: True inside `fit`, False in `predict`,
`evaluate` and the validation pass (a Dropout layer drops only when it is True). It does not
decide whether a backward pass may follow: forward always keeps what backward needs, so the
gradient of a model in inference mode can be taken too.

A parameter-free layer of your own needs only `forward` and `backward`; its output shape is found
by running `forward` once on a zero input. Only an optimizer's `step` changes `param.value`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from minicnn import initializers
from minicnn.layers import _config
from minicnn.layers._names import _auto_name, _name_counts, clear_session  # noqa: F401
from minicnn.layers.node import KerasTensor, Node, is_symbolic


@dataclass(eq=False)
class Parameter:
    """One weight tensor: its value, the gradient of the last backward pass, and its name."""

    name: str
    value: np.ndarray
    grad: np.ndarray = field(init=False)
    # False for state a layer updates itself in forward (BatchNormalization's moving statistics):
    # no optimizer, gradient check or LearningCheck sees it.
    trainable: bool = True
    # The smallest value the weight may hold, where it has one (a variance: 0); set_weights
    # and a model file refuse a value below it.
    minimum: float | None = None

    def __post_init__(self) -> None:
        self.grad = np.zeros_like(self.value)

    # What Keras's variables answer: `layer.kernel.shape`, `.dtype`, `.numpy()`.
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def numpy(self) -> np.ndarray:
        """A copy of the value, as Keras's `variable.numpy()`."""
        return self.value.copy()

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"


def _same_shape(a, b) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, list):
        return isinstance(b, list) and [tuple(s) for s in a] == [tuple(s) for s in b]
    return not isinstance(b, list) and tuple(a) == tuple(b)


def shape_fits(expected: tuple, got: tuple, skip_axis: int | None = None) -> bool:
    """Same rank, and equal sizes past the batch axis (None, on either side, matches any),
    except along `skip_axis` (a Concatenate's)."""
    return len(expected) == len(got) and all(
        k == skip_axis or a is None or b is None or a == b
        for k, (a, b) in enumerate(zip(expected, got, strict=True)) if k > 0)


def check_value(p: Parameter, value) -> None:
    """A ValueError naming `p` when `value` cannot be its value: state a layer keeps (a moving
    statistic) must be finite, and no weight may be below its `minimum`. A trained weight may
    hold a NaN (a diverged run): that is its value, and predictions show it."""
    value = np.asarray(value)
    bad = None
    if not p.trainable and not np.all(np.isfinite(value)):
        bad = "values that are not finite"
    elif p.minimum is not None and np.any(value < p.minimum):
        bad = f"values below {p.minimum:g} (the smallest is {float(np.min(value)):.6g})"
    if bad:
        raise ValueError(f"weight {p.name} cannot hold {bad}: it is a layer's state, "
                         f"which training keeps finite" + (
                             f" and at least {p.minimum:g}" if p.minimum is not None else ""))


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
        self.trainable = True
        self._inbound_nodes: list[Node] = []  # one per call on symbolic tensors

    # Keras's switch: a layer with trainable=False keeps its weights as they are in fit (they
    # move to `non_trainable_params`), and a BatchNormalization also normalises with its moving
    # statistics. Gradients still flow *through* the layer to the layers before it.
    trainable: bool = True
    per_sample: bool = False  # see the module docstring
    # What `training=None` means when the layer is called on its own (Keras 3's call default):
    # True for random augmentation, which a tutorial calls directly on images to augment them.
    training_by_default: bool = False

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

    def add_weight(self, name: str, shape: tuple, initializer,
                   trainable: bool = True) -> Parameter:
        init = initializers.get(initializer, f"{name}_initializer")
        param = Parameter(f"{self.name}/{name}", init(shape, self.dtype, self.rng),
                          trainable=trainable)
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

    def __call__(self, x, training: bool | None = None):
        """On arrays: the layer's output (built on first use). On symbolic tensors (`Input()` and
        what layers made of it): a new symbolic tensor, and a Node recording the call, which is
        how the functional API builds a graph. A list is several inputs (merge layers).

        `training=None` is the layer's own default, as in Keras 3: False for most layers, True
        for the random augmentation layers (`data_augmentation(images)` augments)."""
        if is_symbolic(x):
            return self._call_symbolic(x)
        if training is None:
            training = self.training_by_default
        if isinstance(x, (list, tuple)):
            xs = [np.asarray(a) for a in x]
            if not self.built:
                if self.dtype is None:
                    self.dtype = xs[0].dtype
                self.build([(None, *a.shape[1:]) for a in xs])
            return self.forward(xs, training=training)
        if not self.built:
            x = self._prepare(x)
        return self.forward(x, training=training)

    def _call_symbolic(self, inputs) -> KerasTensor:
        multi = isinstance(inputs, (list, tuple))
        tensors = list(inputs) if multi else [inputs]
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(
                    f"Layer '{self.name}' ({type(self).__name__}) was called on a list mixing "
                    f"symbolic tensors (from Input()) and other values; received {t!r}. In "
                    "the functional API every input of a layer call is a symbolic tensor.")
        shape = [t.shape for t in tensors] if multi else tensors[0].shape
        if not self.built:
            if self.dtype is None:
                self.dtype = tensors[0].dtype
            self.build(shape)
            out_shape = self.output_shape
        else:
            self.check_input_shape(shape, context="Calling a layer on a symbolic tensor: ")
            out_shape = (self.output_shape if _same_shape(shape, self.input_shape)
                         else self.compute_output_shape(shape))
        index = len(self._inbound_nodes)
        out = KerasTensor(out_shape, self.dtype,
                          name=self.name if index == 0 else f"{self.name}_{index}")
        self._inbound_nodes.append(Node(self, tensors, out, index, multi_input=multi))
        return out

    def penalties(self) -> list:
        """(Parameter, regularizer) pairs the loss adds: by default the `kernel_regularizer` of
        a layer's `kernel`; a layer with several regularized weights lists them all."""
        reg = getattr(self, "kernel_regularizer", None)
        kernel = getattr(self, "kernel", None)
        return [(kernel, reg)] if reg is not None and kernel is not None else []

    def _call_clone(self) -> Layer:
        """A copy for one more call of the same layer: the same Parameters, its own cache."""
        return copy.copy(self)

    @property
    def output(self) -> KerasTensor:
        """The symbolic output of the layer's call, as Keras's `layer.output` (a layer called
        once on symbolic tensors)."""
        nodes = getattr(self, "_inbound_nodes", [])
        if len(nodes) != 1:
            calls = "never been called" if not nodes else f"been called {len(nodes)} times"
            raise AttributeError(
                f"Layer '{self.name}' has {calls} on symbolic tensors, so it has no single "
                "output; build the model with the functional API (Input, Model) first.")
        return nodes[0].output

    # -- weights ------------------------------------------------------------------------------
    @property
    def params(self) -> list[Parameter]:
        """The trainable weights: what optimizers and the gradient checker see (none while the
        layer is frozen with `trainable = False`)."""
        return [p for p in self._params if p.trainable] if self.trainable else []

    @property
    def non_trainable_params(self) -> list[Parameter]:
        """The weights fit leaves alone: state (moving statistics), or all of them when frozen."""
        return [p for p in self._params if not (p.trainable and self.trainable)]

    @property
    def trainable_weights(self) -> list[Parameter]:
        return self.params

    @property
    def non_trainable_weights(self) -> list[Parameter]:
        return self.non_trainable_params

    @property
    def weights(self) -> list[Parameter]:
        """Every weight, trainable or not, in Keras order."""
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
            check_value(p, w)
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
        """The constructor arguments that rebuild this layer (JSON data), as in Keras:
        `model.save` stores them, `load_model(path, custom_objects={...})` passes them to
        `from_config`. A layer of your own either keeps each `__init__` argument as an attribute
        of the same name (read here), or overrides this Keras's way:
        `return {**super().get_config(), "rate": self._p}`. See minicnn/layers/_config.py."""
        return _config.config_of(self, read_init=type(self).get_config is Layer.get_config)

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """The layer `get_config` describes: `cls(**config)`."""
        return _config.layer_from(cls, config)

    def count_params(self) -> int:
        return int(sum(p.value.size for p in self._params))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} output_shape={self.output_shape}>"
