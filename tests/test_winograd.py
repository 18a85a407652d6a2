"""Winograd F(2x2, 3x3) (minicnn/fast/winograd.py) against the reference Conv2D, float64 central
differences and TensorFlow, and each of its transform kernels against its NumPy twin.

Kernel outputs are preallocated full of NaN, so an element a kernel forgets to write shows up.
Sums may differ from their references by rounding (KERNEL_RTOL, and KERNEL_ATOL per summed
term); a NaN must reach exactly the outputs and gradients it reaches in the reference Conv2D.
Run with `-s` to see the largest differences from TensorFlow next to the tolerances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.fast.kernels.winograd as winograd_kernels
from minicnn.fast import parallel
from minicnn.fast.kernels.winograd import (
    WINOGRAD_KERNELS,
    winograd_filter_transform,
    winograd_filter_transform_backward,
    winograd_filter_transform_backward_reference,
    winograd_filter_transform_reference,
    winograd_input_transform,
    winograd_input_transform_backward,
    winograd_input_transform_backward_reference,
    winograd_input_transform_reference,
    winograd_output_transform,
    winograd_output_transform_backward,
    winograd_output_transform_backward_reference,
    winograd_output_transform_reference,
)
from minicnn.fast.winograd import winograd_conv2d, winograd_conv2d_backward, winograd_geometry
from minicnn.layers import Conv2D
from tests.strategies import dtypes, seeds, standard_normal
from tests.tolerances import (
    GRADCHECK_TOL,
    KERNEL_ATOL,
    KERNEL_RTOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)


@dataclass(frozen=True)
class WinogradSetup:
    """A 3x3 stride-1 conv of x (N, H, W, C) with F filters, and its tile grid."""

    N: int
    H: int
    W: int
    C: int
    F: int
    padding: str

    @property
    def geometry(self):
        return winograd_geometry(self.H, self.W, self.padding)

    @property
    def tiles(self) -> int:
        return self.N * self.geometry.TH * self.geometry.TW

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (3, 3, self.C, self.F)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        g = self.geometry
        return (self.N, g.H_out, g.W_out, self.F)


@st.composite
def winograd_setups(draw) -> WinogradSetup:
    """Batch 1..3, H and W odd and even (3..9 for 'valid', 1..9 for 'same': a 1-pixel image
    is all padding but one), channels and filters 1..4."""
    padding = draw(st.sampled_from(["valid", "same"]))
    low = 3 if padding == "valid" else 1
    H, W = draw(st.integers(low, 9)), draw(st.integers(low, 9))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return WinogradSetup(N, H, W, C, F, padding)


def assert_sums_close(actual, expected, terms):
    """Agreement to the rounding of sums of `terms` products of N(0, 1) values, in any order."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=KERNEL_RTOL[actual.dtype.name],
                               atol=KERNEL_ATOL[actual.dtype.name] * terms)


def reference_conv(s: WinogradSetup, kernel, bias, dtype) -> Conv2D:
    conv = Conv2D(s.F, 3, padding=s.padding, dtype=dtype)
    conv.build(s.x_shape)
    conv.set_weights([kernel, bias])
    return conv


def draw_problem(s: WinogradSetup, dtype, seed):
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, s.x_shape, dtype)
    kernel = standard_normal(rng, s.kernel_shape, dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    dout = standard_normal(rng, s.out_shape, dtype)
    return x, kernel, bias, dout


# -- the transforms against their NumPy twins -----------------------------------------------------
# Each output of a transform sums at most 9 terms (16 for a pixel four input tiles share).
@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_input_transform_matches_reference(s, dtype, seed):
    x, *_ = draw_problem(s, dtype, seed)
    g = s.geometry
    V = np.full((16, s.tiles, s.C), np.nan, dtype=dtype)
    winograd_input_transform(x, g.PT, g.PL, g.TH, g.TW, V)
    assert_sums_close(V, winograd_input_transform_reference(x, g.PT, g.PL, g.TH, g.TW), 4)


@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_input_transform_backward_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    g = s.geometry
    dV = standard_normal(rng, (16, s.tiles, s.C), dtype)
    dx = np.full(s.x_shape, np.nan, dtype=dtype)
    winograd_input_transform_backward(dV, g.PT, g.PL, g.TH, g.TW, dx)
    expected = winograd_input_transform_backward_reference(dV, s.x_shape, g.PT, g.PL, g.TH, g.TW)
    assert_sums_close(dx, expected, 16)


@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_filter_transform_matches_reference(s, dtype, seed):
    _, kernel, _, _ = draw_problem(s, dtype, seed)
    U = np.full((16, s.C, s.F), np.nan, dtype=dtype)
    winograd_filter_transform(kernel, U)
    assert_sums_close(U, winograd_filter_transform_reference(kernel), 9)


@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_filter_transform_backward_matches_reference(s, dtype, seed):
    dU = standard_normal(np.random.default_rng(seed), (16, s.C, s.F), dtype)
    dkernel = np.full(s.kernel_shape, np.nan, dtype=dtype)
    winograd_filter_transform_backward(dU, dkernel)
    assert_sums_close(dkernel, winograd_filter_transform_backward_reference(dU), 9)


@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_output_transform_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    g = s.geometry
    M = standard_normal(rng, (16, s.tiles, s.F), dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    y = np.full(s.out_shape, np.nan, dtype=dtype)
    winograd_output_transform(M, bias, g.TH, g.TW, y)
    expected = winograd_output_transform_reference(M, bias, s.N, g.TH, g.TW, g.H_out, g.W_out)
    assert_sums_close(y, expected, 10)


@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_output_transform_backward_matches_reference(s, dtype, seed):
    *_, dout = draw_problem(s, dtype, seed)
    g = s.geometry
    dM = np.full((16, s.tiles, s.F), np.nan, dtype=dtype)
    winograd_output_transform_backward(dout, g.TH, g.TW, dM)
    assert_sums_close(dM, winograd_output_transform_backward_reference(dout, g.TH, g.TW), 4)


def test_every_winograd_kernel_has_a_reference_and_a_test():
    test_names = [name for name in globals() if name.startswith("test_")]
    for kernel in WINOGRAD_KERNELS:
        name = getattr(kernel, "py_func", kernel).__name__.lstrip("_")
        assert callable(getattr(winograd_kernels, f"{name}_reference", None)), name
        assert f"test_{name}_matches_reference" in test_names, name


# -- the whole convolution against the reference Conv2D -------------------------------------------
@given(s=winograd_setups(), dtype=dtypes(), seed=seeds())
def test_winograd_conv2d_matches_reference_conv2d(s, dtype, seed):
    """Forward and all three gradients, float64 tightly, float32 to the rounding of the sums."""
    x, kernel, bias, dout = draw_problem(s, dtype, seed)
    y, cache = winograd_conv2d(x, kernel, bias, s.padding)
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache)
    conv = reference_conv(s, kernel, bias, dtype)
    terms = 9 * s.C
    assert_sums_close(y, conv(x), terms)
    assert_sums_close(dx, conv.backward(dout), 9 * s.F)
    assert_sums_close(dkernel, conv.kernel.grad, s.N * s.H * s.W)
    assert_sums_close(dbias, conv.bias.grad, s.N * s.H * s.W)


def test_winograd_conv2d_without_bias_and_input_gradient():
    s = WinogradSetup(2, 6, 5, 3, 2, "same")
    x, kernel, _, dout = draw_problem(s, np.float64, 0)
    y, cache = winograd_conv2d(x, kernel, None, s.padding)
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache, input_gradient=False)
    conv = reference_conv(s, kernel, np.zeros(s.F), np.float64)
    assert_sums_close(y, conv(x), 9 * s.C)
    conv.backward(dout)
    assert dx is None
    assert_sums_close(dkernel, conv.kernel.grad, s.N * s.H * s.W)
    assert_sums_close(dbias, conv.bias.grad, s.N * s.H * s.W)


# -- float64 central differences ------------------------------------------------------------------
def numeric_gradient(f, t: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """(f(t + eps e_i) - f(t - eps e_i)) / (2 eps) for every element i of t (changed in place,
    restored)."""
    grad = np.empty_like(t)
    for i in np.ndindex(t.shape):
        old = t[i]
        t[i] = old + eps
        plus = f()
        t[i] = old - eps
        minus = f()
        t[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |analytic - numeric| relative to the larger of the two tensors' largest entries."""
    scale = max(np.abs(analytic).max(), np.abs(numeric).max())
    return float(np.abs(analytic - numeric).max() / scale)


GRADCHECK_SETUPS = [WinogradSetup(2, 5, 6, 2, 3, "valid"),  # odd rows: a cropped tile row
                    WinogradSetup(1, 4, 3, 3, 2, "same"),  # odd columns, padding on all sides
                    WinogradSetup(2, 3, 3, 1, 1, "valid")]  # one output pixel per sample


@pytest.mark.parametrize("s", GRADCHECK_SETUPS, ids=str)
def test_winograd_gradients_match_central_differences(s):
    x, kernel, bias, dout = draw_problem(s, np.float64, 7)

    def f() -> float:
        return float(np.sum(winograd_conv2d(x, kernel, bias, s.padding)[0] * dout))

    dx, dkernel, dbias = winograd_conv2d_backward(dout, winograd_conv2d(x, kernel, bias,
                                                                       s.padding)[1])
    numeric_dkernel = numeric_gradient(f, kernel)
    assert rel_error(dx, numeric_gradient(f, x)) < GRADCHECK_TOL
    assert rel_error(dkernel, numeric_dkernel) < GRADCHECK_TOL
    assert rel_error(dbias, numeric_gradient(f, bias)) < GRADCHECK_TOL
    # ... and the check can fail: a kernel gradient flipped in space (a correlation's gradient
    # taken as a convolution's) is off by O(1).
    assert rel_error(dkernel[::-1, ::-1], numeric_dkernel) > 1e-2


# -- NaN ------------------------------------------------------------------------------------------
@settings(max_examples=20)
@given(s=winograd_setups(), seed=seeds(), data=st.data())
def test_a_nan_reaches_what_it_reaches_in_conv2d(s, seed, data):
    """A NaN in x makes NaN of exactly the outputs whose window holds it; a NaN in dout, of
    exactly the input pixels its output read, its filter's whole kernel gradient and its bias
    gradient: never fewer (a 0 * NaN product swallowed by a transform) and never more (spilled
    into a neighbouring tile). The x-NaN's share of the kernel gradient is the exception, never
    fewer but sometimes more: near the input's edge, where the direct conv reads a pixel with
    only 1 or 2 of the 3 kernel rows (or columns), its rows of dU meet in G^T dU G, where exact
    numbers would cancel and a NaN cannot, and it reaches all 3."""
    x, kernel, bias, dout = draw_problem(s, np.float64, seed)
    x[tuple(data.draw(st.integers(0, n - 1)) for n in s.x_shape)] = np.nan
    dout[tuple(data.draw(st.integers(0, n - 1)) for n in s.out_shape)] = np.nan
    y, cache = winograd_conv2d(x, kernel, bias, s.padding)
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache)
    conv = reference_conv(s, kernel, bias, np.float64)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(conv(x)))
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(conv.backward(dout)))
    np.testing.assert_array_equal(np.isnan(dbias), np.isnan(conv.bias.grad))
    assert np.isnan(dkernel[np.isnan(conv.kernel.grad)]).all()


# -- threads --------------------------------------------------------------------------------------
def test_results_are_bit_identical_on_one_and_two_threads():
    s = WinogradSetup(11, 7, 6, 3, 4, "same")  # 8 chunks, uneven
    x, kernel, bias, dout = draw_problem(s, np.float32, 3)
    threads = parallel.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            parallel.set_num_threads(n)
            y, cache = winograd_conv2d(x, kernel, bias, s.padding)
            results.append((y, *winograd_conv2d_backward(dout, cache)))
    finally:
        parallel.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_winograd_conv2d_names_a_wrong_kernel():
    x = np.zeros((1, 5, 5, 2))
    with pytest.raises(ValueError, match=r"argument `kernel`.*kernel.shape=\(5, 5, 2, 4\)"):
        winograd_conv2d(x, np.zeros((5, 5, 2, 4)), None, "valid")
    with pytest.raises(ValueError, match="dtype"):
        winograd_conv2d(x, np.zeros((3, 3, 2, 4), np.float32), None, "valid")
    with pytest.raises(ValueError, match="does not fit"):
        winograd_conv2d(np.zeros((1, 2, 5, 2)), np.zeros((3, 3, 2, 4)), None, "valid")


# -- TensorFlow -----------------------------------------------------------------------------------
TF_CASES = [  # (x shape, filters, padding)
    ((4, 8, 8, 3), 5, "valid"),
    ((4, 8, 8, 3), 5, "same"),
    ((3, 7, 10, 3), 4, "same"),  # odd rows, even columns
    ((2, 1, 2, 3), 2, "same"),  # smaller than the kernel
    # The notebook's conv2 and conv3 (batch 8), and the CIFAR recipe's first 'same' block.
    ((8, 13, 13, 32), 64, "valid"),
    ((8, 5, 5, 64), 64, "valid"),
    ((2, 32, 32, 32), 32, "same"),
]


def report(what: str, ours, theirs, rtol: float, atol: float) -> None:
    """Assert |ours - theirs| <= atol + rtol * max|theirs| elementwise, as test_oracle_tf does;
    print the margins (-s)."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (what, ours, theirs)
    worst = float(np.abs(ours.astype(np.float64) - theirs).max())
    scale = float(np.abs(theirs).max())
    print(f"{what:<40} max|diff| {worst:.2e}  scale {scale:.2e}  "
          f"max|diff|/scale {worst / scale:.2e}  (rtol {rtol:g}, atol {atol:g})")
    assert worst <= atol + rtol * scale, (what, worst, scale)


@pytest.mark.parametrize(("shape", "filters", "padding"), TF_CASES)
def test_winograd_conv2d_matches_tensorflow(shape, filters, padding):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of this test")
    rng = np.random.default_rng(sum(shape) + filters)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.normal(0, 0.1, (3, 3, shape[3], filters)).astype(np.float32)
    bias = rng.normal(0, 0.1, filters).astype(np.float32)
    xt, kt, bt = tf.constant(x), tf.Variable(kernel), tf.Variable(bias)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = tf.nn.conv2d(xt, kt, 1, padding.upper()) + bt
        dout = rng.standard_normal(yt.shape).astype(np.float32)
        f = tf.reduce_sum(yt * dout)
    dxt, dkt, dbt = tape.gradient(f, [xt, kt, bt])
    y, cache = winograd_conv2d(x, kernel, bias, padding)
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache)
    name = f"{shape} {filters} {padding}"
    report(f"{name}: y", y, yt.numpy(), TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    report(f"{name}: dx", dx, dxt.numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)
    report(f"{name}: dkernel", dkernel, dkt.numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)
    report(f"{name}: dbias", dbias, dbt.numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)
