"""Merge layers: Add, Subtract, Multiply, Average, Concatenate, and Keras's functions for them.

A merge layer reads a list of tensors: `forward([x_1, ..., x_n])` -> y and
`backward(dout)` -> [dx_1, ..., dx_n], one gradient per input, in order (the graph adds each to
what its tensor already received: the fan-out rule, docs/backprop.md). They have no weights.

    Add:         y = sum_i x_i              dx_i = dout
    Subtract:    y = x_1 - x_2              dx_1 = dout, dx_2 = -dout
    Multiply:    y = prod_i x_i             dx_i = dout * prod_{j != i} x_j
    Average:     y = (1/n) sum_i x_i        dx_i = dout / n
    Concatenate: y = [x_1 | ... | x_n]      dx_i = the slice of dout where x_i went

Shapes (batch dimension first) must be equal, except along the axis a Concatenate joins; the
inputs share one floating dtype, which the output and every dx keep.
"""

from __future__ import annotations

import numpy as np

from minicnn.layers.base import Layer, shape_fits, shape_str


def _shapes_str(shapes) -> str:
    return "[" + ", ".join(shape_str(tuple(s)) for s in shapes) + "]"


class Merge(Layer):
    """What the merge layers share: a list of inputs, their shapes checked, no weights."""

    min_inputs = 2
    max_inputs: int | None = None

    def __init__(self, *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _who(self) -> str:
        return f"Layer '{self.name}' ({type(self).__name__})"

    def build(self, input_shape: list) -> None:
        """input_shape: one shape per input, batch dimension first (may be None)."""
        if not isinstance(input_shape, list) or not all(
                isinstance(s, (tuple, list)) for s in input_shape):
            raise ValueError(f"A merge layer should be called on a list of inputs. {self._who()} "
                             f"received: input_shape={input_shape} (not a list of shapes)")
        shapes = [(None, *tuple(s)[1:]) for s in input_shape]
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            wanted = (f"exactly {self.max_inputs}" if self.max_inputs == self.min_inputs
                      else f"at least {self.min_inputs}")
            raise ValueError(f"A `{type(self).__name__}` layer should be called on {wanted} "
                             f"inputs. {self._who()} received {n}: "
                             f"input_shape={_shapes_str(input_shape)}")
        if self.dtype is None:
            self.dtype = np.dtype(np.float32)
        self.output_shape = self.compute_output_shape(shapes)
        self.input_shape, self.built = shapes, True

    def compute_output_shape(self, input_shape: list) -> tuple:
        first = tuple(input_shape[0])
        for shape in input_shape[1:]:
            if not shape_fits(first, tuple(shape)):
                raise ValueError(
                    f"Inputs have incompatible shapes. {self._who()} received shapes "
                    f"{shape_str(first[1:])} and {shape_str(tuple(shape)[1:])}")
        return (None, *first[1:])

    def check_input_shape(self, shape, context: str = "") -> None:
        """Raise a ValueError naming the layer unless `shape`, a list of shapes, fits the
        shapes the layer was built for (None matches any size)."""
        shapes = ([tuple(s) for s in shape] if isinstance(shape, (list, tuple)) and shape
                  and all(isinstance(s, (tuple, list)) for s in shape) else None)
        if shapes is None or len(shapes) != len(self.input_shape) or not all(
                shape_fits(e, g) for e, g in zip(self.input_shape, shapes, strict=True)):
            raise ValueError(
                f"{context}Input to layer '{self.name}' ({type(self).__name__}) is incompatible: "
                f"expected shapes {_shapes_str(self.input_shape)}, received "
                f"{shape if shapes is None else _shapes_str(shapes)}")

    def _inputs(self, inputs) -> list[np.ndarray]:
        """The inputs as arrays, the layer built on first use, their shapes and dtypes checked."""
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs. {self._who()} "
                             f"received: an array of shape {np.shape(inputs)}")
        xs = [np.asarray(x) for x in inputs]
        if not self.built:
            if self.dtype is None and xs:
                self.dtype = xs[0].dtype
            self.build([(None, *x.shape[1:]) for x in xs])
        self.check_input_shape([x.shape for x in xs])
        # one floating dtype: numpy would otherwise upcast (Subtract, Concatenate) or, writing
        # into the first input's copy, downcast (Add, Multiply) without a word
        if len({x.dtype for x in xs}) > 1 or not np.issubdtype(xs[0].dtype, np.floating):
            raise TypeError(
                f"{self._who()} expects floating-point inputs of one dtype, received dtypes "
                f"{[str(x.dtype) for x in xs]}. Cast them first, e.g. x.astype('float32'); "
                "minicnn never changes a dtype silently.")
        return xs

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("input_shape", None)  # a list of shapes the calls give, not an argument
        return config


def _sum(xs: list[np.ndarray]) -> np.ndarray:
    """x_1 + ... + x_n, added left to right into one new array."""
    y = xs[0].copy()
    for x in xs[1:]:
        y += x
    return y


class Add(Merge):
    def forward(self, inputs, training: bool = False) -> np.ndarray:
        """[x_1 (N, ...), ..., x_n] -> y (N, ...), their sum."""
        xs = self._inputs(inputs)
        self.cache = len(xs)
        return _sum(xs)

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """dout (N, ...) -> n times dout. The same array, not n copies: no built-in layer's
        backward writes into its dout, and the graph's fan-out sums make new arrays."""
        return [dout] * self._cached()


class Subtract(Merge):
    max_inputs = 2

    def forward(self, inputs, training: bool = False) -> np.ndarray:
        """[x_1, x_2] (N, ...) -> y = x_1 - x_2."""
        x1, x2 = self._inputs(inputs)
        self.cache = 2  # nothing to keep but that a forward ran
        return x1 - x2

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """dout (N, ...) -> [dout, -dout]."""
        self._cached()
        return [dout, -dout]


class Multiply(Merge):
    def forward(self, inputs, training: bool = False) -> np.ndarray:
        """[x_1, ..., x_n] (N, ...) -> y, their element-wise product; keeps the inputs."""
        xs = self._inputs(inputs)
        y = xs[0].copy()
        for x in xs[1:]:
            y *= x
        self.cache = xs
        return y

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """dout (N, ...) -> dx_i = dout * the product of the other inputs, formed without
        dividing y by x_i (which may be 0): prefix products from the left times suffix
        products (with dout) from the right, 3n multiplications in all."""
        xs = self._cached()
        n = len(xs)
        before = [np.ones_like(dout)]  # before[i] = x_1 * ... * x_{i-1}
        for x in xs[:-1]:
            before.append(before[-1] * x)
        dxs, after = [None] * n, dout  # after = dout * x_{i+1} * ... * x_n
        for i in range(n - 1, -1, -1):
            dxs[i] = before[i] * after
            after = after * xs[i]
        return dxs


class Average(Merge):
    def forward(self, inputs, training: bool = False) -> np.ndarray:
        """[x_1, ..., x_n] (N, ...) -> y = (x_1 + ... + x_n) / n."""
        xs = self._inputs(inputs)
        self.cache = len(xs)
        return _sum(xs) / xs[0].dtype.type(len(xs))  # n in the inputs' dtype: float32 stays

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """dout (N, ...) -> n times dout / n (one array, as Add's)."""
        n = self._cached()
        return [dout / dout.dtype.type(n)] * n


class Concatenate(Merge):
    """`Concatenate(axis=-1)`: joins its inputs along `axis` (never the batch axis)."""

    _config_keys = ("axis",)

    def __init__(self, axis: int = -1, *, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"Invalid value for argument `axis`. Expected an int. "
                             f"Received axis={axis!r}")
        self.axis = int(axis)

    def _axis(self, ndim: int) -> int:
        """`axis` as a non-negative index into a shape of rank `ndim` (batch axis first)."""
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(
                f"Invalid value for argument `axis` of layer '{self.name}'. Expected an axis "
                f"other than the batch axis 0 of inputs of rank {ndim}: 1 to {ndim - 1}, or "
                f"{1 - ndim} to -1. Received axis={self.axis}")
        return self.axis % ndim

    def compute_output_shape(self, input_shape: list) -> tuple:
        first = tuple(input_shape[0])
        axis = self._axis(len(first))
        for shape in input_shape[1:]:
            if not shape_fits(first, tuple(shape), skip_axis=axis):
                raise ValueError(
                    f"A `Concatenate` layer requires inputs with matching shapes except for the "
                    f"concatenation axis. {self._who()} received: "
                    f"input_shape={_shapes_str(input_shape)}")
        sizes = [s[axis] for s in input_shape]
        return (None, *first[1:axis], None if None in sizes else sum(sizes), *first[axis + 1:])

    def forward(self, inputs, training: bool = False) -> np.ndarray:
        """[x_1 (N, ..., C_1, ...), ...] -> y (N, ..., C_1 + ... + C_n, ...)."""
        xs = self._inputs(inputs)
        axis = self._axis(xs[0].ndim)
        # where dout is cut: after C_1, C_1 + C_2, ..., C_1 + ... + C_{n-1}
        self.cache = (axis, np.cumsum([x.shape[axis] for x in xs])[:-1])
        return np.concatenate(xs, axis=axis)

    def backward(self, dout: np.ndarray) -> list[np.ndarray]:
        """dout (N, ..., C_1 + ... + C_n, ...) -> [dx_i (N, ..., C_i, ...)], views of dout."""
        axis, splits = self._cached()
        return np.split(dout, splits, axis=axis)


def add(inputs: list, **kwargs):
    """`Add(**kwargs)(inputs)`: the sum of the inputs."""
    return Add(**kwargs)(inputs)


def subtract(inputs: list, **kwargs):
    """`Subtract(**kwargs)(inputs)`: inputs[0] - inputs[1]."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list, **kwargs):
    """`Multiply(**kwargs)(inputs)`: the element-wise product of the inputs."""
    return Multiply(**kwargs)(inputs)


def average(inputs: list, **kwargs):
    """`Average(**kwargs)(inputs)`: the mean of the inputs."""
    return Average(**kwargs)(inputs)


def concatenate(inputs: list, axis: int = -1, **kwargs):
    """`Concatenate(axis, **kwargs)(inputs)`: the inputs joined along `axis`."""
    return Concatenate(axis=axis, **kwargs)(inputs)
