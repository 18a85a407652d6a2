"""NaN and inf propagate: every kernel as its NumPy reference does, and a model's loss with them.

A kernel that writes `v if v > 0 else 0` turns NaN into 0, and one that compares with `>` never
picks a NaN as a window's max: an all-NaN image then predicts a confident-looking [0.1] * 10 and
inf pixels poison the weights while the reported loss stays finite. Here each kernel gets inputs
with NaN, +inf and -inf scattered in and must agree with its reference, NaN for NaN; then a
model on such data must report a NaN loss, and TerminateOnNaN must stop it at once.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import callbacks, kernels
from minicnn.fast import kernels as fast
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.models import Sequential, mnist_cnn
from minicnn.utils import to_categorical
from tests.strategies import dtypes, seeds, window_setups
from tests.tolerances import KERNEL_ATOL, KERNEL_RTOL

SPECIALS = np.array([np.nan, np.inf, -np.inf])
SETTINGS = settings(max_examples=25)


def poisoned(rng, shape, dtype, share=0.1):
    """N(0, 1) values with about `share` of them replaced by NaN, +inf or -inf."""
    a = rng.standard_normal(shape)
    hit = rng.random(shape) < share
    a[hit] = rng.choice(SPECIALS, size=int(hit.sum()))
    return a.astype(dtype)


def assert_same(actual, expected, terms=1):
    """Equal non-finite pattern (NaN where NaN, the same infinities) and close finite values."""
    assert actual.dtype == expected.dtype
    name = actual.dtype.name
    np.testing.assert_allclose(actual, expected, rtol=KERNEL_RTOL.get(name, 0),
                               atol=KERNEL_ATOL.get(name, 0) * terms, equal_nan=True)


# -- the reference tier's kernels --------------------------------------------------------------
@SETTINGS
@given(s=window_setups(kind="pool"), dtype=dtypes(), seed=seeds())
def test_maxpool_keeps_nan_and_inf_as_its_reference(s, dtype, seed):
    x = poisoned(np.random.default_rng(seed), s.x_shape, dtype, share=0.2)
    out = np.full(s.out_shape, 7.0, dtype=dtype)
    argmax = np.full(s.out_shape, -1, dtype=np.int32)
    kernels.maxpool_forward(x, *s.window_args[:6], out, argmax)
    ref_out, ref_argmax = kernels.maxpool_forward_reference(x, *s.window_args)
    assert_same(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)


def test_a_nan_anywhere_in_a_window_is_its_max():
    x = np.array([1.0, np.nan, 5.0, np.nan]).reshape(1, 2, 2, 1)
    out, argmax = np.empty((1, 1, 1, 1)), np.empty((1, 1, 1, 1), np.int32)
    kernels.maxpool_forward(x, 2, 2, 2, 2, 0, 0, out, argmax)
    assert np.isnan(out[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1  # the first NaN, as np.argmax


@SETTINGS
@given(s=window_setups(kind="conv"), seed=seeds())
def test_im2col_and_col2im_carry_nan_and_inf(s, seed):
    rng = np.random.default_rng(seed)
    x = poisoned(rng, s.x_shape, np.float64)
    cols = np.empty(s.cols_shape)
    kernels.im2col(x, *s.window_args, cols)
    assert_same(cols, kernels.im2col_reference(x, *s.window_args))
    dcols = poisoned(rng, s.cols_shape, np.float64)
    dx = np.empty(s.x_shape)
    kernels.col2im(dcols, *s.window_args, dx)
    assert_same(dx, kernels.col2im_reference(dcols, s.x_shape, *s.window_args), s.KH * s.KW)


# -- the fast plan's kernels ---------------------------------------------------------------------
@SETTINGS
@given(m=st.integers(1, 20), f=st.integers(1, 9), dtype=dtypes(), seed=seeds())
def test_bias_relu_and_its_mask_keep_nan_as_their_references(m, f, dtype, seed):
    rng = np.random.default_rng(seed)
    z, bias = poisoned(rng, (m, f), dtype), poisoned(rng, (f,), dtype)
    expected = fast.bias_relu_reference(z, bias)
    fast.bias_relu(z, bias)
    assert_same(z, expected)
    dout, y = poisoned(rng, (m, f), dtype), poisoned(rng, (m, f), dtype)
    dz = np.full((m, f), 7.0, dtype)
    fast.relu_backward(dout, y, dz)
    assert_same(dz, fast.relu_backward_reference(dout, y))


@SETTINGS
@given(s=window_setups(kind="conv"), filters=st.integers(1, 4), relu=st.booleans(),
       dtype=dtypes(), seed=seeds())
def test_conv_direct_keeps_nan_and_inf_as_its_reference(s, filters, relu, dtype, seed):
    rng = np.random.default_rng(seed)
    x = poisoned(rng, s.x_shape, dtype, share=0.05)
    kernel = rng.standard_normal((s.KH, s.KW, s.C, filters)).astype(dtype)
    bias = rng.standard_normal(filters).astype(dtype)
    out = np.full((s.N, s.H_out, s.W_out, filters), 7.0, dtype)
    fast.conv_direct(x, kernel, bias, s.SH, s.SW, s.PT, s.PL, relu, out)
    expected = fast.conv_direct_reference(x, kernel, bias, s.SH, s.SW, s.PT, s.PL, relu,
                                          s.H_out, s.W_out)
    assert_same(out, expected, s.KH * s.KW * s.C)


@SETTINGS
@given(n=st.integers(1, 2), hp=st.integers(1, 3), wp=st.integers(1, 3), c=st.integers(1, 3),
       f=st.integers(1, 4), k=st.integers(1, 3), p=st.integers(2, 3), dtype=dtypes(),
       seed=seeds())
def test_fused_conv_relu_pool_keeps_nan_and_inf_as_its_reference(n, hp, wp, c, f, k, p, dtype,
                                                                 seed):
    rng = np.random.default_rng(seed)
    H_c, W_c = hp * p, wp * p
    x = poisoned(rng, (n, H_c + k - 1, W_c + k - 1, c), dtype, share=0.05)
    kernel = rng.standard_normal((k, k, c, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    out = np.full((n, hp, wp, f), 7.0, dtype)
    argmax = np.full((n, hp, wp, f), -1, np.int32)
    fast.conv_relu_maxpool(x, kernel, bias, p, p, out, argmax)
    ref_out, ref_argmax = fast.conv_relu_maxpool_reference(x, kernel, bias, p, p)
    assert_same(out, ref_out, k * k * c)
    # A NaN window's winner is its first NaN (elsewhere rounding may break a near-tie apart).
    nan = np.isnan(ref_out)
    np.testing.assert_array_equal(argmax[nan], ref_argmax[nan])
    # The same pooling on given conv outputs: the GEMM path's fused kernel.
    z = poisoned(rng, (n * H_c * W_c, f), dtype, share=0.1)
    out2 = np.full((n, hp, wp, f), 7.0, dtype)
    argmax2 = np.full((n, hp, wp, f), -1, np.int32)
    fast.bias_relu_maxpool(z, bias, n, H_c, W_c, p, p, out2, argmax2)
    ref_out2, ref_argmax2 = fast.bias_relu_maxpool_reference(z, bias, n, H_c, W_c, p, p)
    assert_same(out2, ref_out2)
    np.testing.assert_array_equal(argmax2, ref_argmax2)


# -- a model ----------------------------------------------------------------------------------
def small_model(fast_plan: bool) -> Sequential:
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                        MaxPooling2D(2), Conv2D(4, 3, activation="relu"), Flatten(),
                        Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy", ["accuracy"], fast=fast_plan)
    return model


@pytest.mark.parametrize("fast_plan", [True, False], ids=["fast", "reference"])
def test_an_all_nan_image_predicts_nan(fast_plan):
    model = small_model(fast_plan)
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    x[1] = np.nan
    p = model.predict(x)
    assert np.isnan(p[1]).all() and np.isfinite(p[[0, 2]]).all()


@pytest.mark.parametrize("fast_plan", [True, False], ids=["fast", "reference"])
def test_one_inf_pixel_gives_a_nan_loss_and_terminate_on_nan_stops_at_once(fast_plan, capsys):
    model = small_model(fast_plan)
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 1), dtype=np.float32)
    x[:, 4, 4, 0] = np.inf
    y = to_categorical(rng.integers(0, 3, 16), 3)
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])


def test_the_loss_is_nan_when_the_weights_are():
    model = small_model(True)
    rng = np.random.default_rng(0)
    x = rng.random((8, 8, 8, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 8), 3)
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] = np.nan  # one weight of the first conv
    model.set_weights(weights)
    loss, _ = model.evaluate(x, y, verbose=0)
    assert np.isnan(loss)


def test_the_notebook_model_propagates_nan_through_every_step():
    model = mnist_cnn(seed=0)
    x = np.full((2, 28, 28, 1), np.nan, dtype=np.float32)
    assert np.isnan(model.predict(x)).all()  # not [0.1] * 10
