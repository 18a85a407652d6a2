"""Every fast-plan kernel (minicnn.fast.kernels) against its plain NumPy reference.

Outputs the kernels fill are preallocated full of NaN (or garbage argmaxes), so an element a
kernel forgets to write, or an accumulator it forgets to zero, shows up as a mismatch. The input
rows and columns that no pool window reads are NaN too, so a fused kernel that reads them fails.
Copies and maxima must match exactly; sums may differ by rounding (KERNEL_RTOL, and KERNEL_ATOL
per summed term).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn.fast.kernels as fast_kernels
from minicnn.fast.kernels import (
    ALL_KERNELS,
    bias_relu,
    bias_relu_maxpool,
    bias_relu_maxpool_reference,
    bias_relu_reference,
    conv_direct,
    conv_direct_reference,
    conv_relu_maxpool,
    conv_relu_maxpool_backward,
    conv_relu_maxpool_backward_reference,
    conv_relu_maxpool_reference,
    conv_rows,
    conv_rows_backward,
    conv_rows_backward_reference,
    conv_rows_reference,
    maxpool_relu_backward,
    maxpool_relu_backward_reference,
    relu_backward,
    relu_backward_reference,
)
from minicnn.fast.kernels import conv_along_rows as conv_rows_module
from minicnn.kernels import maxpool_forward_reference
from tests.strategies import (
    WindowSetup,
    distinct_values,
    dtypes,
    seeds,
    small_integers,
    standard_normal,
    window_setups,
)
from tests.tolerances import KERNEL_ATOL, KERNEL_RTOL


def assert_exact(actual, expected):
    """Bit-for-bit agreement (up to the sign of zero), in the same dtype."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)


def assert_sums_close(actual, expected, terms):
    """Agreement to the rounding of sums of `terms` products of N(0, 1) values, in any order."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=KERNEL_RTOL[actual.dtype.name],
                               atol=KERNEL_ATOL[actual.dtype.name] * terms)


# -- conv_direct --------------------------------------------------------------------------------
@given(s=window_setups(kind="conv"), filters=st.integers(1, 5), relu=st.booleans(),
       dtype=dtypes(), seed=seeds())
def test_conv_direct_matches_im2col_gemm_reference(s, filters, relu, dtype, seed):
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, s.x_shape, dtype)
    kernel = standard_normal(rng, (s.KH, s.KW, s.C, filters), dtype)
    bias = standard_normal(rng, (filters,), dtype)
    out = np.full((s.N, s.H_out, s.W_out, filters), np.nan, dtype=dtype)
    conv_direct(x, kernel, bias, s.SH, s.SW, s.PT, s.PL, relu, out)
    expected = conv_direct_reference(x, kernel, bias, s.SH, s.SW, s.PT, s.PL, relu, s.H_out,
                                     s.W_out)
    # The same products summed in another order: equal to float rounding.
    assert_sums_close(out, expected, terms=s.KH * s.KW * s.C)
    if relu:
        assert (out >= 0).all()


# -- conv_rows --------------------------------------------------------------------------------
# Stride-1 setups (the only stride the rows kernels take) and 1..9 filters: the SIMD loop runs
# over a filter's outputs, and the taps go three at a time (KW = 1, 2, 4 and 5 leave 1, 2, 1
# and 2 over).
row_setups = functools.partial(window_setups, "conv", max_stride=1)
row_filters = functools.partial(st.integers, 1, 9)


def row_arrays(rng, s, F, dtype):
    """x (N, H, W, C), kernel (KH, KW, C, F), bias (F,) and dz (N, H_out, W_out, F), N(0, 1)."""
    return (standard_normal(rng, s.x_shape, dtype),
            standard_normal(rng, (s.KH, s.KW, s.C, F), dtype),
            standard_normal(rng, (F,), dtype),
            standard_normal(rng, (s.N, s.H_out, s.W_out, F), dtype))


def run_conv_rows(x, kernel, bias, s, kernel_function=conv_rows):
    out = np.full((*s.out_shape[:3], len(bias)), np.nan, dtype=x.dtype)
    kernel_function(x, kernel, bias, s.PT, s.PL, out)
    return out


def run_conv_rows_backward(x, dz, kernel, s, input_gradient=True):
    """(dkernel, dbias, dx), from outputs full of NaN; dx stays NaN without input_gradient."""
    dkernel = np.full(kernel.shape, np.nan, dtype=dz.dtype)
    dbias = np.full(kernel.shape[3], np.nan, dtype=dz.dtype)
    dx = np.full(s.x_shape, np.nan, dtype=dz.dtype)
    conv_rows_backward(x, dz, kernel, s.PT, s.PL, dkernel, dbias, dx, input_gradient)
    return dkernel, dbias, dx


@given(s=row_setups(), F=row_filters(), dtype=dtypes(), seed=seeds())
def test_conv_rows_matches_im2col_gemm_reference(s, F, dtype, seed):
    x, kernel, bias, _ = row_arrays(np.random.default_rng(seed), s, F, dtype)
    expected = conv_rows_reference(x, kernel, bias, s.PT, s.PL, s.H_out, s.W_out)
    assert_sums_close(run_conv_rows(x, kernel, bias, s), expected, terms=s.KH * s.KW * s.C)


@given(s=row_setups(), F=row_filters(), dtype=dtypes(), seed=seeds())
def test_conv_rows_equals_its_plain_twin(s, F, dtype, seed):
    """The un-jitted `_conv_rows` runs the same operations in the same order: bit for bit."""
    x, kernel, bias, _ = row_arrays(np.random.default_rng(seed), s, F, dtype)
    assert_exact(run_conv_rows(x, kernel, bias, s, conv_rows_module._conv_rows),
                 run_conv_rows(x, kernel, bias, s))


@given(s=row_setups(), F=row_filters(), input_gradient=st.booleans(), dtype=dtypes(),
       seed=seeds())
def test_conv_rows_backward_matches_reference(s, F, input_gradient, dtype, seed):
    x, kernel, _, dz = row_arrays(np.random.default_rng(seed), s, F, dtype)
    dkernel, dbias, dx = run_conv_rows_backward(x, dz, kernel, s, input_gradient)
    ref_dkernel, ref_dbias, ref_dx = conv_rows_backward_reference(x, dz, kernel, s.PT, s.PL)
    assert_sums_close(dkernel, ref_dkernel, terms=s.N * s.H_out * s.W_out)
    assert_sums_close(dbias, ref_dbias, terms=s.N * s.H_out * s.W_out)
    if input_gradient:
        # inputs no output reads (a 'valid' conv's leftover rows and columns) get exactly 0
        assert_sums_close(dx, ref_dx, terms=s.KH * s.KW * F)
    else:
        assert np.isnan(dx).all()  # untouched


def test_conv_rows_backward_equals_its_plain_twin():
    """The un-jitted `_conv_rows_backward` (with the plain `_row_dot`, summed in order) gives
    the kernel's gradients to rounding, dx bit for bit."""
    s = WindowSetup(N=2, H=5, W=6, C=2, KH=3, KW=2, SH=1, SW=1, padding="same", H_out=5,
                    W_out=6, PT=1, PL=0)
    x, kernel, _, dz = row_arrays(np.random.default_rng(0), s, 3, np.float64)
    jitted = run_conv_rows_backward(x, dz, kernel, s)
    plain = [np.full(a.shape, np.nan) for a in jitted]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_rows_module, "row_dot", conv_rows_module._row_dot)
        conv_rows_module._conv_rows_backward(x, dz, kernel, s.PT, s.PL, *plain, True)
    for got, want in zip(plain, jitted, strict=True):
        assert_sums_close(got, want, terms=s.N * s.H_out * s.W_out)
    assert_exact(plain[2], jitted[2])


def with_non_finite_values(rng, a, fraction=0.05):
    """a with about `fraction` of its elements NaN, +inf or -inf."""
    a = a.copy()
    hit = rng.random(a.shape) < fraction
    a[hit] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=a.dtype), size=hit.sum())
    return a


@given(s=row_setups(), F=row_filters(), dtype=dtypes(), seed=seeds())
def test_conv_rows_propagates_non_finite_numbers(s, F, dtype, seed):
    """NaN and inf in x, the kernel and dz: forward, each output is NaN, +inf or -inf exactly
    where the reference's is (the junk positions are never written out); backward, whatever
    the reference makes non-finite is non-finite here too (a junk position's zero times inf
    may add NaN, never remove one), and the rest agrees."""
    rng = np.random.default_rng(seed)
    x, kernel, bias, dz = row_arrays(rng, s, F, dtype)
    x, kernel, dz = (with_non_finite_values(rng, a) for a in (x, kernel, dz))
    with np.errstate(invalid="ignore"):
        out = run_conv_rows(x, kernel, bias, s)
        expected = conv_rows_reference(x, kernel, bias, s.PT, s.PL, s.H_out, s.W_out)
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(out), test(expected))
    finite = np.isfinite(expected)
    assert_sums_close(out[finite], expected[finite], terms=s.KH * s.KW * s.C)
    with np.errstate(invalid="ignore"):
        got = run_conv_rows_backward(x, dz, kernel, s)
        want = conv_rows_backward_reference(x, dz, kernel, s.PT, s.PL)
    for g, w in zip(got, want, strict=True):
        assert not (np.isfinite(g) & ~np.isfinite(w)).any()
        both = np.isfinite(g)
        np.testing.assert_allclose(g[both], w[both], rtol=1e-4, atol=1e-3 * s.N * s.H * s.W)


def test_conv_rows_by_hand():
    """A 3x3 image of 1..9, a 2x2 kernel of ones, 'same' (Keras pads the bottom and right):
    each output is the sum of its window, cut at the edge; dkernel[kh, kw] sums the inputs
    tap (kh, kw) reads, and dx counts the windows holding each input."""
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    kernel = np.ones((2, 2, 1, 1))
    s = WindowSetup(N=1, H=3, W=3, C=1, KH=2, KW=2, SH=1, SW=1, padding="same", H_out=3,
                    W_out=3, PT=0, PL=0)
    out = run_conv_rows(x, kernel, np.array([0.5]), s)
    np.testing.assert_array_equal(out[0, :, :, 0], [[12.5, 16.5, 9.5],
                                                    [24.5, 28.5, 15.5],
                                                    [15.5, 17.5, 9.5]])
    dkernel, dbias, dx = run_conv_rows_backward(x, np.ones((1, 3, 3, 1)), kernel, s)
    np.testing.assert_array_equal(dkernel[:, :, 0, 0], [[45.0, 33.0], [39.0, 28.0]])
    np.testing.assert_array_equal(dbias, [9.0])
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1.0, 2.0, 2.0],
                                                   [2.0, 4.0, 4.0],
                                                   [2.0, 4.0, 4.0]])


# -- bias + ReLU --------------------------------------------------------------------------------
matrix_shapes = st.tuples(st.integers(1, 40), st.integers(1, 12))


@given(shape=matrix_shapes, dtype=dtypes(), seed=seeds())
def test_bias_relu_matches_reference(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    z = standard_normal(rng, shape, dtype)
    bias = standard_normal(rng, shape[1:], dtype)
    z[rng.random(shape) < 0.2] = 0.0
    z[:, 0] = -bias[0]  # pre-activations exactly at the kink: the output must be 0
    expected = bias_relu_reference(z, bias)
    bias_relu(z, bias)
    # One add and one comparison per element, in the same dtype: exact.
    assert_exact(z, expected)
    assert z.dtype == dtype


@given(shape=matrix_shapes, dtype=dtypes(), seed=seeds())
def test_relu_backward_matches_reference(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    y = np.maximum(standard_normal(rng, shape, dtype), 0)  # about half exactly zero
    dout = standard_normal(rng, shape, dtype)
    dz = np.full(shape, np.nan, dtype=dtype)
    relu_backward(dout, y, dz)
    assert_exact(dz, relu_backward_reference(dout, y))
    np.testing.assert_array_equal(dz == 0, (y == 0) | (dout == 0))


# -- Conv2D(relu) + MaxPooling2D ------------------------------------------------------------------
@dataclass(frozen=True)
class ConvPoolSetup:
    """A pair the fused kernels take: a stride-1 'valid' conv with F filters and a (KH, KW)
    kernel on x (N, H, W, C), then a (PH, PW) pool with stride = pool size, H_p x W_p windows."""

    N: int
    H: int
    W: int
    C: int
    F: int
    KH: int
    KW: int
    PH: int
    PW: int
    H_p: int
    W_p: int

    @property
    def H_c(self) -> int:
        return self.H_p * self.PH

    @property
    def W_c(self) -> int:
        return self.W_p * self.PW

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.KH, self.KW, self.C, self.F)

    @property
    def z_shape(self) -> tuple[int, int]:
        """The conv outputs the pool reads, one row per (n, i, j)."""
        return (self.N * self.H_c * self.W_c, self.F)

    @property
    def pooled_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H_p, self.W_p, self.F)


@st.composite
def conv_pool_setups(draw) -> ConvPoolSetup:
    """Batch 1..3, channels 1..4, filters 1..5, kernels 1..3, pools 2..3 (not always square),
    1..3 windows a side, and a conv map 0..P-1 rows and columns longer than the windows cover:
    odd maps whose last row or column no window reads, as 11x11 under a 2x2 pool."""
    PH, PW = draw(st.integers(2, 3)), draw(st.integers(2, 3))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H_p, W_p = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H = H_p * PH + draw(st.integers(0, PH - 1)) + KH - 1
    W = W_p * PW + draw(st.integers(0, PW - 1)) + KW - 1
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    return ConvPoolSetup(N, H, W, C, F, KH, KW, PH, PW, H_p, W_p)


def with_unread_margin(x, s):
    """x with the rows and columns no pool window's conv outputs read set to NaN."""
    x = x.copy()
    x[:, s.H_c + s.KH - 1:] = np.nan
    x[:, :, s.W_c + s.KW - 1:] = np.nan
    return x


def run_bias_relu_maxpool(z, bias, s):
    out = np.full(s.pooled_shape, np.nan, dtype=z.dtype)
    argmax = np.full(s.pooled_shape, -1, dtype=np.int32)
    bias_relu_maxpool(z, bias, s.N, s.H_c, s.W_c, s.PH, s.PW, out, argmax)
    return out, argmax


def run_conv_relu_maxpool(x, kernel, bias, s):
    out = np.full(s.pooled_shape, np.nan, dtype=x.dtype)
    argmax = np.full(s.pooled_shape, -1, dtype=np.int32)
    conv_relu_maxpool(x, kernel, bias, s.PH, s.PW, out, argmax)
    return out, argmax


def assert_pool_results_equal(actual, expected):
    (out, argmax), (ref_out, ref_argmax) = actual, expected
    assert_exact(out, ref_out)
    assert_exact(argmax, ref_argmax)


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_bias_relu_maxpool_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    z = distinct_values(rng, s.z_shape, dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    # One add, a ReLU and comparisons, in the same dtype: exact, argmax included.
    assert_pool_results_equal(run_bias_relu_maxpool(z, bias, s),
                              bias_relu_maxpool_reference(z, bias, s.N, s.H_c, s.W_c, s.PH, s.PW))


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_conv_relu_maxpool_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    x = with_unread_margin(standard_normal(rng, s.x_shape, dtype), s)
    kernel = standard_normal(rng, s.kernel_shape, dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    out, argmax = run_conv_relu_maxpool(x, kernel, bias, s)
    ref_out, _ = conv_relu_maxpool_reference(x, kernel, bias, s.PH, s.PW)
    assert_sums_close(out, ref_out, terms=s.KH * s.KW * s.C)
    # Rounding may break a near-tie differently, so the argmax is checked by what it means: it
    # lies in its own window, and the reference's ReLU output there is the window's max.
    i, j = np.divmod(argmax, s.W_c)
    assert (i // s.PH == np.arange(s.H_p)[None, :, None, None]).all()
    assert (j // s.PW == np.arange(s.W_p)[None, None, :, None]).all()
    y = conv_direct_reference(x, kernel, bias, 1, 1, 0, 0, True, s.H_c, s.W_c)
    picked = np.take_along_axis(y.reshape(s.N, s.H_c * s.W_c, s.F),
                                argmax.reshape(s.N, -1, s.F).astype(np.intp), axis=1)
    assert_sums_close(picked.reshape(s.pooled_shape), ref_out, terms=s.KH * s.KW * s.C)


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_conv_relu_maxpool_matches_reference_exactly_when_sums_are_exact(s, dtype, seed):
    """Inputs on a grid of 1/64 and small integer weights: every partial sum is exact in both
    dtypes, so summation order cannot matter and the argmax must agree too."""
    rng = np.random.default_rng(seed)
    x = with_unread_margin(distinct_values(rng, s.x_shape, dtype), s)
    kernel = small_integers(rng, s.kernel_shape, dtype)
    bias = small_integers(rng, (s.F,), dtype)
    assert_pool_results_equal(run_conv_relu_maxpool(x, kernel, bias, s),
                              conv_relu_maxpool_reference(x, kernel, bias, s.PH, s.PW))


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_conv_relu_maxpool_equals_conv_direct_then_pool(s, dtype, seed):
    """Its docstring's promise, which ConvPool's bit-for-bit match with the layers rests on: each
    output sums bias and taps in conv_direct's order, so the two agree bit for bit."""
    rng = np.random.default_rng(seed)
    x = with_unread_margin(standard_normal(rng, s.x_shape, dtype), s)
    kernel = standard_normal(rng, s.kernel_shape, dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    y = np.full((s.N, s.H_c, s.W_c, s.F), np.nan, dtype=dtype)
    conv_direct(x, kernel, bias, 1, 1, 0, 0, True, y)
    assert_pool_results_equal(
        run_conv_relu_maxpool(x, kernel, bias, s),
        maxpool_forward_reference(y, s.PH, s.PW, s.PH, s.PW, 0, 0, s.H_p, s.W_p))


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds(), high=st.integers(1, 3))
def test_fused_forward_picks_the_first_max_on_ties(s, dtype, seed, high):
    """Small integers everywhere (all zero when high=1): exact sums, ties in most windows, and
    the kernels must pick the first maximum in row-major window order, as the reference does."""
    rng = np.random.default_rng(seed)
    z = small_integers(rng, s.z_shape, dtype, high)
    bias = small_integers(rng, (s.F,), dtype, high)
    assert_pool_results_equal(run_bias_relu_maxpool(z, bias, s),
                              bias_relu_maxpool_reference(z, bias, s.N, s.H_c, s.W_c, s.PH, s.PW))
    x = with_unread_margin(small_integers(rng, s.x_shape, dtype, high), s)
    kernel = small_integers(rng, s.kernel_shape, dtype, high)
    assert_pool_results_equal(run_conv_relu_maxpool(x, kernel, bias, s),
                              conv_relu_maxpool_reference(x, kernel, bias, s.PH, s.PW))


@pytest.mark.parametrize("value", [-1.0, 0.0, 2.0])
def test_fused_forward_keeps_the_top_left_of_a_constant_window(value):
    """Every conv output equal (so, after ReLU, every window one big tie): each argmax is its
    window's top-left position, independently of any reference."""
    s = ConvPoolSetup(N=2, H=8, W=7, C=2, F=3, KH=2, KW=1, PH=3, PW=2, H_p=2, W_p=3)
    ip, jp = np.arange(s.H_p)[:, None], np.arange(s.W_p)[None, :]
    top_left = np.broadcast_to((ip * s.PH * s.W_c + jp * s.PW)[None, :, :, None], s.pooled_shape)
    z = np.full(s.z_shape, value)
    out, argmax = run_bias_relu_maxpool(z, np.zeros(s.F), s)
    np.testing.assert_array_equal(out, max(value, 0.0))
    np.testing.assert_array_equal(argmax, top_left)
    x = with_unread_margin(np.full(s.x_shape, 1.0), s)
    out, argmax = run_conv_relu_maxpool(x, np.full(s.kernel_shape, value / 4), np.zeros(s.F), s)
    np.testing.assert_array_equal(out, max(value, 0.0))  # 4 taps of value / 4, exact
    np.testing.assert_array_equal(argmax, top_left)


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_maxpool_relu_backward_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    z = standard_normal(rng, s.z_shape, dtype)
    bias = standard_normal(rng, (s.F,), dtype)  # a negative bias leaves many windows at 0
    out, argmax = bias_relu_maxpool_reference(z, bias, s.N, s.H_c, s.W_c, s.PH, s.PW)
    dout = standard_normal(rng, s.pooled_shape, dtype)
    dz = np.full(s.z_shape, np.nan, dtype=dtype)
    dbias = np.full(s.F, np.nan, dtype=dtype)
    maxpool_relu_backward(dout, out, argmax, s.N, s.H_c, s.W_c, dz, dbias)
    ref_dz, ref_dbias = maxpool_relu_backward_reference(dout, out, argmax, s.N, s.H_c, s.W_c)
    assert_exact(dz, ref_dz)  # a copy of dout or zero
    assert_sums_close(dbias, ref_dbias, terms=s.N * s.H_p * s.W_p)


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_conv_relu_maxpool_backward_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    x = with_unread_margin(standard_normal(rng, s.x_shape, dtype), s)
    kernel = standard_normal(rng, s.kernel_shape, dtype)
    bias = standard_normal(rng, (s.F,), dtype)
    out, argmax = conv_relu_maxpool_reference(x, kernel, bias, s.PH, s.PW)
    dout = standard_normal(rng, s.pooled_shape, dtype)
    dkernel = np.full(s.kernel_shape, np.nan, dtype=dtype)
    dbias = np.full(s.F, np.nan, dtype=dtype)
    conv_relu_maxpool_backward(x, dout, out, argmax, s.PH, s.PW, dkernel, dbias)
    ref_dkernel, ref_dbias = conv_relu_maxpool_backward_reference(x, dout, out, argmax, s.PH,
                                                                  s.PW, s.KH, s.KW)
    # Each window sends at most one product per kernel element and filter.
    assert_sums_close(dkernel, ref_dkernel, terms=s.N * s.H_p * s.W_p)
    assert_sums_close(dbias, ref_dbias, terms=s.N * s.H_p * s.W_p)


def test_bias_relu_maxpool_and_its_backward_by_hand():
    """One filter, a 2x4 conv map, 2x2 pools: a tie in the first window, all ReLU zeros in the
    second, so only the first window's gradient gets through, to its first maximum."""
    z = np.array([[1.0, 3.0, -5.0, -2.0],
                  [2.0, 3.0, -1.0, -4.0]]).reshape(8, 1)
    bias = np.array([-1.0])  # relu(z + bias) = [[0, 2, 0, 0], [1, 2, 0, 0]]
    out = np.full((1, 1, 2, 1), np.nan)
    argmax = np.full((1, 1, 2, 1), -1, dtype=np.int32)
    bias_relu_maxpool(z, bias, 1, 2, 4, 2, 2, out, argmax)
    np.testing.assert_array_equal(out[0, :, :, 0], [[2.0, 0.0]])
    np.testing.assert_array_equal(argmax[0, :, :, 0], [[1, 2]])  # (0, 1) over (1, 1); (0, 2)

    dout = np.array([10.0, 20.0]).reshape(1, 1, 2, 1)
    dz, dbias = np.full((8, 1), np.nan), np.full(1, np.nan)
    maxpool_relu_backward(dout, out, argmax, 1, 2, 4, dz, dbias)
    np.testing.assert_array_equal(dz[:, 0], [0, 10, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(dbias, [10.0])


def test_every_fast_kernel_has_a_reference_and_a_test():
    """A kernel added to ALL_KERNELS without a `_reference` twin and a test here fails this."""
    test_names = [name for name in globals() if name.startswith("test_")]
    for kernel in ALL_KERNELS:
        name = getattr(kernel, "py_func", kernel).__name__.lstrip("_")
        assert callable(getattr(fast_kernels, f"{name}_reference", None)), name
        assert any(f"test_{name}_" in test for test in test_names), name
