"""Every reference-tier kernel (minicnn.kernels) against its plain NumPy reference.

The fast plan's kernels have their own tests, in tests/test_fast_kernels.py.

Outputs the kernels fill are preallocated full of NaN (or garbage argmaxes), so an element a
kernel forgets to write, or an accumulator it forgets to zero, shows up as a mismatch.
Copies and maxima must match exactly; sums may differ by rounding (KERNEL_RTOL / KERNEL_ATOL).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minicnn.kernels import (
    adam_update,
    adam_update_reference,
    col2im,
    col2im_reference,
    im2col,
    im2col_reference,
    maxpool_backward,
    maxpool_backward_reference,
    maxpool_forward,
    maxpool_forward_reference,
)
from tests.strategies import (
    distinct_values,
    dtypes,
    seeds,
    small_integers,
    standard_normal,
    window_setups,
)
from tests.tolerances import KERNEL_ATOL, KERNEL_RTOL


def assert_close(actual, expected):
    """Agreement within the kernel tolerances of the arrays' dtype (which must match)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(actual, expected, rtol=KERNEL_RTOL[actual.dtype.name],
                               atol=KERNEL_ATOL[actual.dtype.name])


def run_im2col(x, s):
    cols = np.full(s.cols_shape, np.nan, dtype=x.dtype)
    im2col(x, *s.window_args, cols)
    return cols


def run_col2im(dcols, s):
    dx = np.full(s.x_shape, np.nan, dtype=dcols.dtype)
    col2im(dcols, *s.window_args, dx)
    return dx


def run_maxpool_forward(x, s):
    out = np.full(s.out_shape, np.nan, dtype=x.dtype)
    argmax = np.full(s.out_shape, -1, dtype=np.int32)
    maxpool_forward(x, *s.window_args[:6], out, argmax)
    return out, argmax


# -- im2col / col2im ----------------------------------------------------------------------------
@given(s=window_setups(kind="conv"), dtype=dtypes(), seed=seeds())
def test_im2col_equals_reference(s, dtype, seed):
    x = standard_normal(np.random.default_rng(seed), s.x_shape, dtype)
    cols = run_im2col(x, s)
    # A copy (and zeros for the padding): exactly equal, not merely close.
    np.testing.assert_array_equal(cols, im2col_reference(x, *s.window_args))
    assert cols.dtype == dtype


def test_im2col_by_hand():
    """One 3x3 single-channel image, 2x2 kernel, stride 1, padding "same" (one pad at the end)."""
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    cols = np.full((9, 4), np.nan)
    im2col(x, 2, 2, 1, 1, 0, 0, 3, 3, cols)
    # Columns ordered (kh, kw): top-left, top-right, bottom-left, bottom-right.
    expected = [[1, 2, 4, 5], [2, 3, 5, 6], [3, 0, 6, 0],
                [4, 5, 7, 8], [5, 6, 8, 9], [6, 0, 9, 0],
                [7, 8, 0, 0], [8, 9, 0, 0], [9, 0, 0, 0]]
    np.testing.assert_array_equal(cols, expected)


def test_im2col_columns_are_kh_kw_c():
    """With two channels, the channel varies fastest within each (kh, kw) block."""
    x = np.stack([np.arange(4.0).reshape(2, 2), 10 + np.arange(4.0).reshape(2, 2)], axis=-1)
    cols = np.full((1, 8), np.nan)
    im2col(x[None], 2, 2, 1, 1, 0, 0, 1, 1, cols)
    np.testing.assert_array_equal(cols, [[0, 10, 1, 11, 2, 12, 3, 13]])


@given(s=window_setups(kind="conv"), dtype=dtypes(), seed=seeds())
def test_col2im_matches_reference(s, dtype, seed):
    dcols = standard_normal(np.random.default_rng(seed), s.cols_shape, dtype)
    dx = run_col2im(dcols, s)
    assert_close(dx, col2im_reference(dcols, s.x_shape, *s.window_args))


@given(s=window_setups(kind="conv"), seed=seeds())
def test_col2im_is_the_adjoint_of_im2col(s, seed):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im is im2col's transpose."""
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, s.x_shape, np.float64)
    c = standard_normal(rng, s.cols_shape, np.float64)
    cols = run_im2col(x, s)
    lhs = float(np.sum(cols * c))
    rhs = float(np.sum(x * run_col2im(c, s)))
    # Both sides sum the same products in a different order; their rounding scales with the sum
    # of the products' magnitudes, not with the (possibly cancelling) result.
    scale = float(np.sum(np.abs(cols) * np.abs(c)))
    assert math.isclose(lhs, rhs, rel_tol=0.0,
                        abs_tol=KERNEL_RTOL["float64"] * scale + KERNEL_ATOL["float64"]), (lhs, rhs)


# -- max pooling --------------------------------------------------------------------------------
def assert_pool_forward_matches(x, s):
    out, argmax = run_maxpool_forward(x, s)
    ref_out, ref_argmax = maxpool_forward_reference(x, *s.window_args)
    np.testing.assert_array_equal(out, ref_out)  # a max is one of the inputs: exact
    np.testing.assert_array_equal(argmax, ref_argmax)
    # Independently of the reference: each argmax points at an input holding the output value.
    picked = np.take_along_axis(x.reshape(s.N, s.H * s.W, s.C),
                                argmax.reshape(s.N, -1, s.C).astype(np.intp), axis=1)
    np.testing.assert_array_equal(picked.reshape(out.shape), out)


@given(s=window_setups(kind="pool"), dtype=dtypes(), seed=seeds())
def test_maxpool_forward_matches_reference(s, dtype, seed):
    assert_pool_forward_matches(distinct_values(np.random.default_rng(seed), s.x_shape, dtype), s)


@given(s=window_setups(kind="pool"), dtype=dtypes(), seed=seeds(), high=st.integers(1, 3))
def test_maxpool_forward_picks_the_first_max_on_ties(s, dtype, seed, high):
    """Inputs of a few small integers (all equal when high=1): ties everywhere, and both the
    kernel and the reference must pick the first maximum in row-major window order."""
    assert_pool_forward_matches(small_integers(np.random.default_rng(seed), s.x_shape, dtype,
                                               high), s)


def test_maxpool_first_max_by_hand():
    """A 2x2 window of equal values keeps its top-left position; padding never wins."""
    x = np.full((1, 3, 3, 1), -1.0)
    x[0, 2, 2, 0] = 5.0
    out = np.full((1, 2, 2, 1), np.nan)
    argmax = np.full((1, 2, 2, 1), -1, dtype=np.int32)
    # pool 2, stride 2, "same" on 3x3: output 2x2, the padding row/column at the bottom/right.
    maxpool_forward(x, 2, 2, 2, 2, 0, 0, out, argmax)
    np.testing.assert_array_equal(out[0, :, :, 0], [[-1, -1], [-1, 5]])
    np.testing.assert_array_equal(argmax[0, :, :, 0], [[0, 2], [6, 8]])


@given(s=window_setups(kind="pool"), dtype=dtypes(), seed=seeds())
def test_maxpool_backward_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    # Tie-heavy input: many outputs share one argmax, so the backward must accumulate.
    _, argmax = maxpool_forward_reference(small_integers(rng, s.x_shape, dtype), *s.window_args)
    dout = standard_normal(rng, s.out_shape, dtype)
    dx = np.full(s.x_shape, np.nan, dtype=dtype)
    maxpool_backward(dout, argmax, dx)
    assert_close(dx, maxpool_backward_reference(dout, argmax, s.x_shape))
    # Independently of the reference: routing moves gradient, it neither creates nor loses any.
    # The two sums round differently, by an amount that scales with the sum of |dout|.
    gap = np.abs(dx.sum(axis=(1, 2)) - dout.sum(axis=(1, 2)))
    scale = np.abs(dout).sum(axis=(1, 2))
    assert np.all(gap <= KERNEL_RTOL[dtype.name] * scale + KERNEL_ATOL[dtype.name]), gap.max()


@given(s=window_setups(kind="pool").filter(lambda s: s.SH < s.KH or s.SW < s.KW),
       dtype=dtypes(), seed=seeds())
def test_maxpool_backward_overlapping_windows(s, dtype, seed):
    """stride < pool size: one input can win several windows and must receive every dout."""
    rng = np.random.default_rng(seed)
    _, argmax = run_maxpool_forward(distinct_values(rng, s.x_shape, dtype), s)
    dout = standard_normal(rng, s.out_shape, dtype)
    dx = np.full(s.x_shape, np.nan, dtype=dtype)
    maxpool_backward(dout, argmax, dx)
    assert_close(dx, maxpool_backward_reference(dout, argmax, s.x_shape))


# -- Adam -----------------------------------------------------------------------------------------
@given(size=st.integers(1, 60), steps=st.integers(1, 5), dtype=dtypes(), seed=seeds(),
       grad_scale=st.sampled_from([1e-3, 1e-1, 1.0]),
       learning_rate=st.sampled_from([1e-3, 1e-2]), beta_1=st.sampled_from([0.9, 0.5]),
       beta_2=st.sampled_from([0.999, 0.9]))
def test_adam_update_matches_reference(size, steps, dtype, seed, grad_scale, learning_rate,
                                       beta_1, beta_2):
    rng = np.random.default_rng(seed)
    epsilon = 1e-7
    w = standard_normal(rng, (size,), dtype)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w_ref, m_ref, v_ref = w.copy(), m.copy(), v.copy()
    for t in range(1, steps + 1):
        g = (standard_normal(rng, (size,), np.float64) * grad_scale).astype(dtype)
        # How the optimizer folds both bias corrections into the step size.
        alpha = learning_rate * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        adam_update(w, g, m, v, alpha, beta_1, beta_2, epsilon)
        w_ref, m_ref, v_ref = adam_update_reference(w_ref, g, m_ref, v_ref, alpha, beta_1,
                                                    beta_2, epsilon)
        for actual, expected in ((w, w_ref), (m, m_ref), (v, v_ref)):
            assert_close(actual, expected)
