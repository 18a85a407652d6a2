"""ActivationStep: an activation layer on its own (Activation, ReLU, LeakyReLU, Softmax), and the
codes by which every fast step names its layer's activation for the kernels.

Forward is `activation_forward` (minicnn/fast/kernels/activations.py): one numba pass, plus
NumPy's ufunc and a second pass for elu, sigmoid and softmax (tanh is np.tanh alone); backward
is `activation_backward`, one pass. Large batches are cut into chunks run on minicnn's threads
(`parallel.chunks`); below CHUNK_MIN_VALUES values the thread hand-off costs more than it saves.
The step leaves the layer's own ActivationCache in `layer.cache`, as the layer does: a loss
fused with a final Softmax (losses.LossHead) reads the logits there and calls the layer's
`backward_from_z`.
"""

from __future__ import annotations

import functools

import numpy as np

from minicnn import activations
from minicnn.fast import parallel
from minicnn.fast.kernels.activations import (
    ELU,
    LEAKY_RELU,
    LINEAR,
    RELU,
    SIGMOID,
    SOFTMAX,
    TANH,
    UFUNC_ON_W,
    UFUNCS,
    activation_backward,
    activation_forward,
    bias_relu,
    relu_backward,
)
from minicnn.fast.step import Step, computes_as
from minicnn.fast.workspace import Workspace
from minicnn.layers.activation import Activation, ActivationCache, LeakyReLU, ReLU, Softmax
from minicnn.layers.base import Layer

__all__ = ["ActivationStep", "activation_code", "activation_gradient", "bias_activation_in_place",
           "head_may_fuse", "scratch"]

# The kernels' code for each activation class of minicnn/activations.py, by exact class: a
# subclass may compute something else. leaky_relu and elu carry their slope or alpha.
_CODES = {activations.Activation: LINEAR, activations.ReLUActivation: RELU,
          activations.LeakyReLUActivation: LEAKY_RELU, activations.ELUActivation: ELU,
          activations.SigmoidActivation: SIGMOID, activations.TanhActivation: TANH,
          activations.SoftmaxActivation: SOFTMAX}

# Below this many values, one pass on the calling thread: handing chunks to the second thread
# cost more than it saved. Measured on two threads, float32, ms one pass / in 8 chunks:
#   relu forward, 256 x 1024 (262k values)      0.043 / 0.085
#                 128 x 8 x 8 x 64 (524k)       0.091 / 0.255
#                 128 x 16 x 16 x 32 (1M)       0.211 / 0.203
#   sigmoid forward, 262k                       0.399 / 0.462
#                    524k                       0.799 / 0.564
#                    1M                         1.735 / 0.965
# (backward passes are as cheap as relu's forward). A ufunc's forward: 512k; the rest: 1M.
CHUNK_MIN_VALUES = {"ufunc": 1 << 19, "pass": 1 << 20}


def activation_code(activation: activations.Activation) -> tuple[int, float] | None:
    """(code, parameter) of `activation` for the kernels, or None for one they do not know
    (an Activation subclass of your own)."""
    code = _CODES.get(type(activation))
    if code is None:
        return None
    param = getattr(activation, "negative_slope", getattr(activation, "alpha", 0.0))
    return code, float(param)


def head_may_fuse(layers, k: int) -> bool:
    """layers[k] ends a chain with a sigmoid or softmax: it may be the model's output under a
    loss that fuses with it (losses.LossHead), which reads the layer's own cache and runs its
    `backward_from_z`, so a weighted step leaves it to the layer itself (a LayerStep)."""
    return k == len(layers) - 1 and getattr(layers[k], "activation", None) in (
        activations.sigmoid, activations.softmax)


def scratch(workspace: Workspace, code: int, shape: tuple, dtype, z: np.ndarray) -> np.ndarray:
    """The scratch array `activation_forward` needs for `code` (elu and sigmoid), else z."""
    return workspace.get("activation", shape, dtype) if code in UFUNC_ON_W else z


# Rows shorter than this run the kernels' SIMD inner loop over too few values: LeNet's first
# conv has F = 6 filters, and its epilogue passes ran 4-7x slower than on 16 or more (a chunk
# of 32 x 28 x 28 rows: bias_relu 0.075 ms at F = 6, 0.010 ms at 96).
WIDE_ROW = 64


def widen(code: int, *arrays: np.ndarray) -> int:
    """k: how many consecutive (M, F) rows an elementwise pass may see as one row of k * F
    values (a power of two dividing M, with k * F < 2 * WIDE_ROW); 1 for softmax, whose rows
    are its own."""
    M, F = arrays[0].shape
    k = 1
    while code != SOFTMAX and k * F < WIDE_ROW and M % (2 * k) == 0:
        k *= 2
    return k


def bias_activation_in_place(z: np.ndarray, bias: np.ndarray, code: int, param: float,
                             w: np.ndarray) -> None:
    """z (M, F) <- act(z + bias), in place: the epilogue of the conv steps' forward. ReLU keeps
    its own one-pass kernel (`bias_relu`, the path the notebook model's steps always took, and
    the only one its cold start compiles); w is `scratch`'s. Short rows are widened (`widen`)."""
    k = widen(code, z)
    if k > 1:
        M, F = z.shape
        z, bias = z.reshape(M // k, k * F), np.tile(bias, k)
        w = w.reshape(z.shape) if w.size == z.size else z
    if code == RELU:
        bias_relu(z, bias)
    elif code == LINEAR:
        z += bias
    else:
        activation_forward(z, bias, code, param, w)


def activation_gradient(dout: np.ndarray, y: np.ndarray, code: int, param: float,
                        dz: np.ndarray) -> None:
    """dz (M, F) <- dL/dz from dout and the output y (M, F): the conv steps' first backward
    pass (for LINEAR they use dout itself). Short rows are widened (`widen`)."""
    k = widen(code, dout)
    if k > 1:
        shape = (dout.shape[0] // k, k * dout.shape[1])
        dout, y, dz = dout.reshape(shape), y.reshape(shape), dz.reshape(shape)
    if code == RELU:
        relu_backward(dout, y, dz)
    else:
        activation_backward(dout, y, code, param, dz)


def bias_gradient(dz: np.ndarray, out: np.ndarray) -> None:
    """out (F,) <- dz (M, F) summed over its rows: a conv's bias gradient, as a matrix-vector
    product with a row of ones. NumPy's sum over axis 0 of so narrow a matrix goes a row at a
    time: 0.34 ms against BLAS's 0.017 ms for a chunk of ResNet-20's 16-channel conv (16,384 x
    16), paid by each of its 21 convs' 8 chunks every step. The sum goes in another order:
    equal to float rounding."""
    np.matmul(_ones(dz.shape[0], dz.dtype), dz, out=out)


_ONES: dict[np.dtype, np.ndarray] = {}


def _ones(n: int, dtype) -> np.ndarray:
    """n ones of dtype: a view of one read-only vector per dtype, replaced by a longer one when
    asked for more (threads only read it). Made afresh at each call it cost more than the sum
    it serves once another thread held the GIL."""
    ones = _ONES.get(np.dtype(dtype))
    if ones is None or len(ones) < n:
        ones = np.ones(max(n, 1 << 16), dtype=dtype)
        ones.flags.writeable = False
        _ONES[np.dtype(dtype)] = ones
    return ones[:n]


class ActivationStep(Step):
    def __init__(self, layer: Layer) -> None:
        if not self.applies(layer):
            raise ValueError(f"ActivationStep runs an Activation, ReLU, LeakyReLU or Softmax layer "
                             f"with an activation of minicnn.activations; received {layer!r}")
        self.layers = (layer,)
        self.layer = layer
        self.code, self.param = activation_code(layer.activation)
        self.workspace = Workspace()
        self.cache: np.ndarray | None = None  # y, which backward needs

    @staticmethod
    def applies(layer: Layer) -> bool:
        return (any(computes_as(layer, cls) for cls in (Activation, ReLU, LeakyReLU, Softmax))
                and activation_code(layer.activation) is not None)

    @classmethod
    def takes(cls, layers, k: int) -> int:
        return int(cls.applies(layers[k]))

    @classmethod
    def of(cls, layers, input_gradient: bool) -> ActivationStep:
        return cls(layers[0])

    def _row(self, x: np.ndarray) -> int:
        """The length of the rows the kernels see x as: softmax's axis, or a whole sample for
        the elementwise activations (long SIMD loops: see `widen`)."""
        return x.shape[-1] if self.code == SOFTMAX else x[0].size if len(x) else 1

    def _pieces(self, M: int, F: int, N: int, kind: str) -> list[tuple[int, int]]:
        """Row ranges of the (M, F) view, one per chunk of the N samples (one if small)."""
        if M * F < CHUNK_MIN_VALUES[kind]:
            return [(0, M)]
        R = M // N  # rows per sample
        return [(a * R, b * R) for a, b in parallel.chunks(N)]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """x (N, ..., F) -> y (N, ..., F), softmax along F; x is left as it is (the step before
        may keep it for its own backward)."""
        x = np.ascontiguousarray(x)
        F = self._row(x)
        z = x.reshape(-1, F)
        y = np.empty(x.shape, dtype=x.dtype)  # handed on: never a reused buffer
        y2 = y.reshape(-1, F)
        w = scratch(self.workspace, self.code, z.shape, x.dtype, y2)
        no_bias = np.zeros(F, x.dtype)
        code, param = self.code, self.param
        kind = "ufunc" if code in UFUNCS else "pass"

        def chunk(a: int, b: int) -> None:
            if code == TANH:
                np.tanh(z[a:b], out=y2[a:b])  # the layer's own ufunc, one pass
                return
            y2[a:b] = z[a:b]  # then in place: see `bias_activation`
            activation_forward(y2[a:b], no_bias, code, param, w[a:b])
        parallel.run([functools.partial(chunk, a, b)
                      for a, b in self._pieces(len(z), F, len(x), kind)])
        self.cache = y
        self.layer.cache = ActivationCache(x, y)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, ..., F) -> dx (N, ..., F), from the output y."""
        if self.cache is None:
            raise RuntimeError(f"{self!r}: backward() needs a forward() first")
        y = self.cache
        if self.code == LINEAR:
            return dout  # as the layer: the identity's gradient is dout itself
        dout = np.ascontiguousarray(dout)
        F = self._row(y)
        g, y2 = dout.reshape(-1, F), y.reshape(-1, F)
        dx = np.empty(y.shape, dtype=dout.dtype)  # handed on
        dz = dx.reshape(-1, F)
        code, param = self.code, self.param

        def chunk(a: int, b: int) -> None:
            activation_backward(g[a:b], y2[a:b], code, param, dz[a:b])
        parallel.run([functools.partial(chunk, a, b)
                      for a, b in self._pieces(len(g), F, len(y), "pass")])
        return dx
