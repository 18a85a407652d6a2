"""Winograd F(4x4, 3x3) (minicnn/fast/kernels/winograd4.py): each transform kernel against its
NumPy twin (the F(2x2) module's references given F(4x4)'s matrices), the whole convolution
against the reference Conv2D and float64 central differences, and where a NaN goes.

Setups, problems and the sum tolerance are tests/test_winograd.py's; a transform's output sums
products of inputs with matrix entries up to 8, so its rounding is counted in `gain` terms (the
largest sum of |entries| a value is made of) rather than in entries.
Run with `-s` to see the float32 error of both tile sizes against float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn.fast.kernels.winograd4 as winograd4_kernels
from minicnn.fast.kernels.winograd import (
    F4X4_MATRICES,
    winograd_filter_transform_backward_reference,
    winograd_filter_transform_reference,
    winograd_input_transform_backward_reference,
    winograd_input_transform_reference,
    winograd_output_transform_backward_reference,
    winograd_output_transform_reference,
)
from minicnn.fast.kernels.winograd4 import (
    WINOGRAD4_KERNELS,
    winograd4_filter_transform,
    winograd4_filter_transform_backward,
    winograd4_input_transform,
    winograd4_input_transform_backward,
    winograd4_output_transform,
    winograd4_output_transform_backward,
)
from minicnn.fast.winograd import (
    F2X2,
    F4X4,
    winograd_conv2d,
    winograd_conv2d_backward,
    winograd_geometry,
)
from tests.strategies import dtypes, seeds, standard_normal
from tests.test_winograd import (
    GRADCHECK_SETUPS,
    WinogradSetup,
    assert_sums_close,
    draw_problem,
    numeric_gradient,
    reference_conv,
    rel_error,
)
from tests.tolerances import GRADCHECK_TOL, WINOGRAD4_ERROR_GROWTH

MATRICES = F4X4_MATRICES


def gain(matrix: np.ndarray) -> float:
    """The largest sum of |entries| along a row: how much a transform can grow a sum."""
    return float(np.abs(matrix).sum(axis=1).max())


@st.composite
def winograd4_setups(draw) -> WinogradSetup:
    """As tests/test_winograd.py's, to 13 pixels: 1 to 4 tiles a side, the last cropped or
    not."""
    padding = draw(st.sampled_from(["valid", "same"]))
    low = 3 if padding == "valid" else 1
    H, W = draw(st.integers(low, 13)), draw(st.integers(low, 13))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return WinogradSetup(N, H, W, C, F, padding)


def geometry(s: WinogradSetup):
    return winograd_geometry(s.H, s.W, s.padding, 4)


def tiles(s: WinogradSetup) -> int:
    g = geometry(s)
    return s.N * g.TH * g.TW


# -- the transforms against their NumPy twins -----------------------------------------------------
@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_input_transform_matches_reference(s, dtype, seed):
    x, *_ = draw_problem(s, dtype, seed)
    g = geometry(s)
    V = np.full((36, tiles(s), s.C), np.nan, dtype=dtype)
    winograd4_input_transform(x, g.PT, g.PL, g.TH, g.TW, V)
    expected = winograd_input_transform_reference(x, g.PT, g.PL, g.TH, g.TW, MATRICES)
    assert_sums_close(V, expected, gain(MATRICES.B_T) ** 2)


@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_input_transform_backward_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    g = geometry(s)
    dV = standard_normal(rng, (36, tiles(s), s.C), dtype)
    dx = np.full(s.x_shape, np.nan, dtype=dtype)
    winograd4_input_transform_backward(dV, g.PT, g.PL, g.TH, g.TW, dx)
    expected = winograd_input_transform_backward_reference(dV, s.x_shape, g.PT, g.PL, g.TH,
                                                           g.TW, MATRICES)
    assert_sums_close(dx, expected, 4 * gain(MATRICES.B_T.T) ** 2)  # up to 4 tiles a pixel


@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_filter_transform_matches_reference(s, dtype, seed):
    _, kernel, _, _ = draw_problem(s, dtype, seed)
    U = np.full((36, s.C, s.F), np.nan, dtype=dtype)
    winograd4_filter_transform(kernel, U)
    assert_sums_close(U, winograd_filter_transform_reference(kernel, MATRICES), 9)


@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_filter_transform_backward_matches_reference(s, dtype, seed):
    dU = standard_normal(np.random.default_rng(seed), (36, s.C, s.F), dtype)
    dkernel = np.full(s.kernel_shape, np.nan, dtype=dtype)
    winograd4_filter_transform_backward(dU, dkernel)
    assert_sums_close(dkernel, winograd_filter_transform_backward_reference(dU, MATRICES), 36)


@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_output_transform_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    g = geometry(s)
    M = standard_normal(rng, (36, tiles(s), s.F), dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    y = np.full(s.out_shape, np.nan, dtype=dtype)
    winograd4_output_transform(M, bias, g.TH, g.TW, y)
    expected = winograd_output_transform_reference(M, bias, s.N, g.TH, g.TW, g.H_out, g.W_out,
                                                   MATRICES)
    assert_sums_close(y, expected, gain(MATRICES.A_T) ** 2 + 1)


@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_output_transform_backward_matches_reference(s, dtype, seed):
    *_, dout = draw_problem(s, dtype, seed)
    g = geometry(s)
    dM = np.full((36, tiles(s), s.F), np.nan, dtype=dtype)
    winograd4_output_transform_backward(dout, g.TH, g.TW, dM)
    expected = winograd_output_transform_backward_reference(dout, g.TH, g.TW, MATRICES)
    assert_sums_close(dM, expected, gain(MATRICES.A_T.T) ** 2)


def test_every_winograd4_kernel_has_a_reference_and_a_test():
    test_names = [name for name in globals() if name.startswith("test_")]
    for kernel in WINOGRAD4_KERNELS:
        name = getattr(kernel, "py_func", kernel).__name__.lstrip("_")
        assert callable(getattr(winograd4_kernels, f"_{name}", None)), name  # the twin
        assert f"test_{name}_matches_reference" in test_names, name


def test_the_matrices_compute_a_correlation():
    """A^T [(G g) * (B^T d)] is the 4-output, 3-tap correlation of d (6,) with g (3,), exactly
    in float64 to rounding: the matrices are right before any kernel uses them."""
    rng = np.random.default_rng(0)
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    y = MATRICES.A_T @ ((MATRICES.G @ g) * (MATRICES.B_T @ d))
    np.testing.assert_allclose(y, np.correlate(d, g, "valid"), rtol=1e-13, atol=1e-13)


# -- the whole convolution against the reference Conv2D -------------------------------------------
@given(s=winograd4_setups(), dtype=dtypes(), seed=seeds())
def test_winograd4_conv2d_matches_reference_conv2d(s, dtype, seed):
    """Forward and all three gradients, float64 tightly, float32 to the rounding of the sums
    grown by the transforms (WINOGRAD4_ERROR_GROWTH)."""
    x, kernel, bias, dout = draw_problem(s, dtype, seed)
    y, cache = winograd_conv2d(x, kernel, bias, s.padding, transforms=F4X4)
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache)
    conv = reference_conv(s, kernel, bias, dtype)
    growth = WINOGRAD4_ERROR_GROWTH
    assert_sums_close(y, conv(x), 9 * s.C * growth)
    assert_sums_close(dx, conv.backward(dout), 9 * s.F * growth)
    assert_sums_close(dkernel, conv.kernel.grad, s.N * s.H * s.W * growth)
    assert_sums_close(dbias, conv.bias.grad, s.N * s.H * s.W)


@pytest.mark.parametrize("s", [*GRADCHECK_SETUPS, WinogradSetup(1, 7, 9, 2, 2, "same")], ids=str)
def test_winograd4_gradients_match_central_differences(s):
    x, kernel, bias, dout = draw_problem(s, np.float64, 7)

    def f() -> float:
        return float(np.sum(winograd_conv2d(x, kernel, bias, s.padding, transforms=F4X4)[0]
                            * dout))

    cache = winograd_conv2d(x, kernel, bias, s.padding, transforms=F4X4)[1]
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache)
    numeric_dkernel = numeric_gradient(f, kernel)
    assert rel_error(dx, numeric_gradient(f, x)) < GRADCHECK_TOL
    assert rel_error(dkernel, numeric_dkernel) < GRADCHECK_TOL
    assert rel_error(dbias, numeric_gradient(f, bias)) < GRADCHECK_TOL
    assert rel_error(dkernel[::-1, ::-1], numeric_dkernel) > 1e-2  # the check can fail


@pytest.mark.parametrize("shape", [(4, 32, 32, 16, 16), (4, 16, 16, 32, 32), (4, 8, 8, 64, 64),
                                   (3, 7, 10, 3, 4)], ids=str)
def test_float32_error_stays_within_the_growth_allowed(shape):
    """On ResNet-20's shapes: F(4x4)'s float32 error against float64, as a share of the
    result's scale, is larger than F(2x2)'s (measured 10-20x: entries up to 8 in the transforms)
    and within WINOGRAD4_ERROR_GROWTH times the rounding of the direct sums."""
    N, H, W, C, F = shape
    rng = np.random.default_rng(1)
    x, kernel = rng.standard_normal((N, H, W, C)), rng.standard_normal((3, 3, C, F))
    bias = rng.standard_normal(F)
    exact, cache = winograd_conv2d(x, kernel, bias, "same")
    dout = rng.standard_normal(exact.shape)
    exact_grads = winograd_conv2d_backward(dout, cache)
    for wt in (F2X2, F4X4):
        y, c = winograd_conv2d(*(a.astype(np.float32) for a in (x, kernel, bias)), "same",
                               transforms=wt)
        grads = winograd_conv2d_backward(dout.astype(np.float32), c)
        errors = [float(np.abs(got - want).max() / np.abs(want).max())
                  for got, want in zip((y, *grads), (exact, *exact_grads), strict=True)]
        print(f"{shape} F({wt.m}x{wt.m}): y, dx, dkernel, dbias error / scale "
              + " ".join(f"{e:.1e}" for e in errors))
        assert max(errors) < 1e-6 * WINOGRAD4_ERROR_GROWTH


# -- NaN ------------------------------------------------------------------------------------------
@settings(max_examples=20)
@given(s=winograd4_setups(), seed=seeds(), data=st.data())
def test_a_nan_reaches_at_least_what_it_reaches_in_conv2d_and_stays_in_its_tiles(s, seed,
                                                                                   data):
    """Never fewer: a NaN in x makes NaN of every output whose window holds it, one in dout of
    every input pixel its output read, its filter's kernel gradient and its bias gradient.
    Sometimes more (the module docstring says why), but only within the 4x4 output blocks
    whose tiles read the NaN pixel."""
    x, kernel, bias, dout = draw_problem(s, np.float64, seed)
    pixel = tuple(data.draw(st.integers(0, n - 1)) for n in s.x_shape)
    x[pixel] = np.nan
    dout[tuple(data.draw(st.integers(0, n - 1)) for n in s.out_shape)] = np.nan
    y, cache = winograd_conv2d(x, kernel, bias, s.padding, transforms=F4X4)
    dx, dkernel, dbias = winograd_conv2d_backward(dout, cache)
    conv = reference_conv(s, kernel, bias, np.float64)
    assert np.isnan(y[np.isnan(conv(x))]).all()
    assert np.isnan(dx[np.isnan(conv.backward(dout))]).all()
    assert np.isnan(dbias[np.isnan(conv.bias.grad)]).all()
    assert np.isnan(dkernel[np.isnan(conv.kernel.grad)]).all()
    # the padded pixel's position, and the tiles (start 4 * t, 6 wide) that read it
    g = geometry(s)
    n, h, w = pixel[0], pixel[1] + g.PT, pixel[2] + g.PL
    rows = {ti for ti in range(g.TH) if 4 * ti <= h < 4 * ti + 6}
    cols = {tj for tj in range(g.TW) if 4 * tj <= w < 4 * tj + 6}
    reach = np.zeros(y.shape, dtype=bool)
    for ti in rows:
        for tj in cols:
            reach[n, 4 * ti:4 * ti + 4, 4 * tj:4 * tj + 4] = True
    assert not np.isnan(y[~reach]).any()
