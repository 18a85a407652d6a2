"""BatchNormStep and DropoutStep against their layers, and their kernels against plain NumPy.

As in tests/test_plan.py: each step runs beside the layers it covers, from the same weights, on
shapes hypothesis draws, and must give the same output, input gradient, weight gradients and
moving statistics to float rounding (the step sums in float64 per chunk; the layer in its own
dtype, in NumPy's order). Dropout must draw the very same masks, bit for bit. Then the models:
the Fashion-MNIST recipe trains through the fast plan as through the layers, the same on one
thread as on two, and every entry point hands its training flag to the new steps.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.fast import ConvPoolStep, ConvStep, LayerStep, make_plan, parallel
from minicnn.fast.batch_norm import BatchNormStep
from minicnn.fast.dropout import DropoutStep
from minicnn.fast.kernels import batch_norm as bn_kernels
from minicnn.fast.kernels.batch_norm import (
    bn_backward_dx,
    bn_backward_dx_reference,
    bn_backward_sums,
    bn_backward_sums_reference,
    bn_maxpool,
    bn_maxpool_backward_dx,
    bn_maxpool_backward_dx_reference,
    bn_maxpool_backward_sums,
    bn_maxpool_backward_sums_reference,
    bn_maxpool_reference,
    bn_mean_var,
    bn_mean_var_reference,
    bn_normalize,
    bn_normalize_reference,
    dropout_forward,
    dropout_forward_reference,
)
from minicnn.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    ReLU,
)
from minicnn.layers.dropout import DropoutCache
from minicnn.models import Sequential, cifar10_cnn, fashion_mnist_cnn, resnet20
from minicnn.utils import to_categorical
from tests.strategies import distinct_values, dtypes, seeds, standard_normal
from tests.test_plan import ModeSpy, assert_entry_points_pass_their_modes, scale_close
from tests.tolerances import FLOAT32_RTOL, KERNEL_ATOL, KERNEL_RTOL, PLAN_TRAINING_ATOL


def assert_exact(actual, expected):
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual, expected)


@st.composite
def bn_inputs(draw, pooled: bool = False):
    """(x, per-channel mu, inv_sigma, gamma, beta) with x (N, H, W, C) or, unpooled, (M, C).

    x is shifted away from 0 (a mean of up to +-5 standard deviations), so the one-pass
    variance about a shift is tested where cancellation would show. Pooled inputs are distinct
    values, so that no two numbers of a window are near a tie."""
    rng = np.random.default_rng(draw(seeds()))
    dtype = draw(dtypes())
    C = draw(st.integers(1, 5))
    if pooled:
        N, H, W = draw(st.integers(1, 3)), draw(st.integers(2, 7)), draw(st.integers(2, 7))
        x = distinct_values(rng, (N, H, W, C), dtype)
    else:
        x = standard_normal(rng, (draw(st.integers(1, 40)), C), dtype)
    x = (x * rng.uniform(0.5, 3) + rng.uniform(-5, 5)).astype(dtype)
    mu = standard_normal(rng, (C,), dtype)
    inv_sigma = rng.uniform(0.2, 2, C).astype(dtype)
    gamma = (rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C)).astype(dtype)
    beta = standard_normal(rng, (C,), dtype)
    return rng, x, mu, inv_sigma, gamma, beta


# -- kernels against their references -------------------------------------------------------------
def assert_sums_close(actual, expected, terms):
    """NumPy adds the rows of a one-channel array pairwise, the kernels in order: the same terms,
    summed in another order. Bit for bit with two channels or more (tests/test_plan_bn_dropout:
    the step tests against the layers)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    dtype = actual.dtype.name
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=KERNEL_ATOL[dtype] * terms + KERNEL_RTOL[dtype] * scale)


@given(setup=bn_inputs())
def test_bn_mean_var_and_normalize_match_their_references(setup):
    _rng, x, mu, inv_sigma, gamma, beta = setup
    C = x.shape[1]
    got_mu, got_var = np.full(C, np.nan, x.dtype), np.full(C, np.nan, x.dtype)
    for c0 in range(C):  # one channel at a time, as a thread may get them
        bn_mean_var(x, c0, c0 + 1, got_mu, got_var)
    want_mu, want_var = bn_mean_var_reference(x)
    assert_sums_close(got_mu, want_mu, terms=1)
    assert_sums_close(got_var, want_var, terms=1)
    y = np.full_like(x, np.nan)
    bn_normalize(x, mu, inv_sigma, gamma, beta, False, y)
    assert_exact(y, bn_normalize_reference(x, mu, inv_sigma, gamma, beta))  # the same operations


@given(setup=bn_inputs(), training=st.booleans())
def test_bn_backward_kernels_match_their_references(setup, training):
    rng, x, mu, inv_sigma, gamma, beta = setup
    M, C = x.shape
    dout = standard_normal(rng, x.shape, x.dtype)
    sums = np.full((4, C), np.nan, x.dtype)
    bn_backward_sums(dout, x, mu, inv_sigma, gamma, beta, False, 0, C, sums)
    assert_sums_close(sums, bn_backward_sums_reference(dout, x, mu, inv_sigma, gamma), terms=M)
    dx = np.full_like(x, np.nan)
    bn_backward_dx(dout, x, mu, inv_sigma, gamma, beta, False, inv_sigma / M, sums, training, M,
                   dx)
    assert_exact(dx, bn_backward_dx_reference(dout, x, mu, inv_sigma, gamma, sums, training))


@given(setup=bn_inputs(), training=st.booleans(), nan=st.booleans())
def test_bn_kernels_with_a_relu_after_match_their_references(setup, training, nan):
    """The ReLU joined to the pass: clamped forward, its mask recomputed backward; a NaN in dout
    stays NaN where the ReLU was off (dout * 0), as the layers' product gives."""
    rng, x, mu, inv_sigma, gamma, beta = setup
    M, C = x.shape
    y = np.full_like(x, np.nan)
    bn_normalize(x, mu, inv_sigma, gamma, beta, True, y)
    want_y = bn_normalize_reference(x, mu, inv_sigma, gamma, beta, relu=True)
    assert_exact(y, want_y)
    dout = standard_normal(rng, x.shape, x.dtype)
    if nan:
        dout[rng.integers(M), rng.integers(C)] = np.nan
    sums = np.full((4, C), np.nan, x.dtype)
    bn_backward_sums(dout, x, mu, inv_sigma, gamma, beta, True, 0, C, sums)
    assert_sums_close(sums, bn_backward_sums_reference(dout, x, mu, inv_sigma, gamma, beta,
                                                       relu=True), terms=M)
    dx = np.full_like(x, np.nan)
    bn_backward_dx(dout, x, mu, inv_sigma, gamma, beta, True, inv_sigma / M, sums, training, M,
                   dx)
    assert_exact(dx, bn_backward_dx_reference(dout, x, mu, inv_sigma, gamma, sums, training,
                                              beta, relu=True))


def test_the_bn_kernels_and_their_plain_twins_agree():
    """The un-jitted twins (what NUMBA_DISABLE_JIT runs) compute what the compiled kernels do."""
    rng = np.random.default_rng(3)
    x = standard_normal(rng, (7, 3), np.float32) + np.float32(0.5)
    mu, inv_sigma = x.mean(axis=0), np.float32(1.5) * np.ones(3, np.float32)
    gamma = np.array([1.0, -2.0, 0.5], np.float32)
    beta = np.array([0.1, -0.2, 0.3], np.float32)
    dout = standard_normal(rng, x.shape, np.float32)
    for relu in (False, True):
        outs = []
        for normalize, sums_of, dx_of in ((bn_kernels.bn_normalize, bn_kernels.bn_backward_sums,
                                           bn_kernels.bn_backward_dx),
                                          (bn_kernels._bn_normalize, bn_kernels._bn_backward_sums,
                                           bn_kernels._bn_backward_dx)):
            y, sums, dx = np.empty_like(x), np.empty((4, 3), np.float32), np.empty_like(x)
            normalize(x, mu, inv_sigma, gamma, beta, relu, y)
            sums_of(dout, x, mu, inv_sigma, gamma, beta, relu, 0, 3, sums)
            dx_of(dout, x, mu, inv_sigma, gamma, beta, relu, inv_sigma / 7, sums, True, 7, dx)
            outs.append((y, sums, dx))
        for got, want in zip(*outs, strict=True):
            assert_exact(got, want)


@given(setup=bn_inputs(pooled=True), pool=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       training=st.booleans())
def test_bn_maxpool_kernels_match_normalize_then_pool(setup, pool, training):
    """Odd maps whose last row or column no window reads: the forward must not read them (they
    are NaN) and the backward must give them the gradient of a position no window chose."""
    rng, x, mu, inv_sigma, gamma, beta = setup
    N, H, W, C = x.shape
    PH, PW = min(pool[0], H), min(pool[1], W)
    x_nan = x.copy()
    x_nan[:, H // PH * PH:] = np.nan
    x_nan[:, :, W // PW * PW:] = np.nan
    out = np.full((N, H // PH, W // PW, C), np.nan, x.dtype)
    argmax = np.full(out.shape, -7, np.int32)
    bn_maxpool(x_nan, mu, inv_sigma, gamma, beta, PH, PW, out, argmax)
    want_out, want_argmax = bn_maxpool_reference(x, mu, inv_sigma, gamma, beta, PH, PW)
    assert_exact(out, want_out)
    assert_exact(argmax, want_argmax)
    dout = standard_normal(rng, out.shape, x.dtype)
    sums = np.full((4, C), np.nan, x.dtype)
    bn_maxpool_backward_sums(dout, argmax, x, mu, inv_sigma, gamma, PH, PW, 0, C, sums)
    want = bn_maxpool_backward_sums_reference(dout, argmax, x, mu, inv_sigma, gamma)
    assert_sums_close(sums, want, terms=N * H * W)
    M = N * H * W
    dx = np.full_like(x, np.nan)
    bn_maxpool_backward_dx(dout, argmax, x, mu, inv_sigma, gamma, inv_sigma / M, sums, training,
                           M, PH, PW, dx)
    assert_exact(dx, bn_maxpool_backward_dx_reference(dout, argmax, x, mu, inv_sigma, gamma,
                                                      sums, training))


@given(size=st.integers(1, 300), rate=st.floats(0, 0.95), dtype=dtypes(), seed=seeds())
def test_dropout_forward_matches_its_reference(size, rate, dtype, seed):
    rng = np.random.default_rng(seed)
    x, u = standard_normal(rng, (size,), dtype), rng.random(size)
    scale = (np.ones((), dtype) / dtype.type(1 - rate)).item()
    mask, y = np.full(size, np.nan, dtype), np.full(size, np.nan, dtype)
    dropout_forward(x, u, rate, scale, mask, y)
    want_mask, want_y = dropout_forward_reference(x, u, rate, dtype.type(scale))
    assert_exact(mask, want_mask)
    assert_exact(y, want_y)


# -- steps against their layers -------------------------------------------------------------------
def random_batch_norm(rng, shape, dtype, center=True, scale=True, momentum=0.99):
    layer = BatchNormalization(center=center, scale=scale, momentum=momentum, dtype=dtype)
    layer.build((None, *shape[1:]))
    C = shape[-1]
    if scale:
        layer.gamma.value[...] = rng.uniform(0.5, 2, C) * rng.choice([-1, 1], C)
    if center:
        layer.beta.value[...] = rng.standard_normal(C)
    layer.moving_mean.value[...] = rng.standard_normal(C)
    layer.moving_variance.value[...] = rng.uniform(0.5, 2, C)
    return layer


def assert_bn_step_equals_layers(step, step_layers, ref_layers, x, rng, training,
                                 input_gradient):
    """The step over `step_layers` against deep copies `ref_layers` run one by one: bit for
    bit when there are two channels or more (the kernels add in NumPy's order then), else to
    float rounding (NumPy adds a single channel's values pairwise)."""
    def close(got, want):
        if x.shape[-1] > 1:
            assert_exact(got, want)
        else:
            scale_close(got, want, x.dtype.name)

    y_ref = x
    for layer in ref_layers:
        y_ref = layer.forward(y_ref, training=training)
    y = step.forward(x, training=training)
    close(y, y_ref)
    for got, want in zip(step_layers[0].weights, ref_layers[0].weights, strict=True):
        close(got.value, want.value)  # the moving statistics moved alike
    dout = standard_normal(rng, y.shape, x.dtype)
    g = dout
    for layer in reversed(ref_layers):
        g = layer.backward(g)
    dx = step.backward(dout)
    for got, want in zip(step_layers[0].params, ref_layers[0].params, strict=True):
        close(got.grad, want.grad)
    if input_gradient:
        close(dx, g)
    else:
        assert dx is None


@given(shape=st.one_of(st.tuples(st.integers(1, 9), st.integers(1, 5)),
                       st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5),
                                 st.integers(1, 5))),
       training=st.booleans(), center=st.booleans(), scale=st.booleans(),
       input_gradient=st.booleans(), dtype=dtypes(), seed=seeds())
def test_batch_norm_step_equals_its_layer(shape, training, center, scale, input_gradient,
                                          dtype, seed):
    """After Dense (N, F) or Conv2D (N, H, W, C); both modes; with and without gamma, beta."""
    rng = np.random.default_rng(seed)
    x = (standard_normal(rng, shape, dtype) * 2 + rng.uniform(-3, 3)).astype(dtype)
    bn = random_batch_norm(rng, shape, dtype, center, scale, momentum=rng.uniform(0, 1))
    step = BatchNormStep(bn, input_gradient=input_gradient)
    assert step.layers == (bn,)
    assert_bn_step_equals_layers(step, [bn], [copy.deepcopy(bn)], x, rng, training,
                                 input_gradient)


@given(n=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9), c=st.integers(1, 5),
       pool=st.integers(2, 3), training=st.booleans(), input_gradient=st.booleans(),
       dtype=dtypes(), seed=seeds())
def test_batch_norm_pool_step_equals_its_two_layers(n, h, w, c, pool, training, input_gradient,
                                                    dtype, seed):
    """Odd maps; distinct inputs so that the step's and the layer's float-rounded outputs never
    straddle a tie in a window."""
    rng = np.random.default_rng(seed)
    h, w = max(h, pool), max(w, pool)
    x = distinct_values(rng, (n, h, w, c), dtype)
    bn = random_batch_norm(rng, x.shape, dtype)
    pool_layer = MaxPooling2D(pool, dtype=dtype)
    pool_layer.build(x.shape)
    step = BatchNormStep(bn, pool_layer, input_gradient=input_gradient)
    assert step.layers == (bn, pool_layer)
    assert_bn_step_equals_layers(step, [bn, pool_layer],
                                 [copy.deepcopy(bn), copy.deepcopy(pool_layer)], x, rng,
                                 training, input_gradient)


@given(shape=st.one_of(st.tuples(st.integers(1, 9), st.integers(1, 5)),
                       st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5),
                                 st.integers(1, 5))),
       training=st.booleans(), center=st.booleans(), scale=st.booleans(),
       input_gradient=st.booleans(), relu_layer=st.sampled_from(["Activation", "ReLU"]),
       dtype=dtypes(), seed=seeds())
def test_batch_norm_relu_step_equals_its_two_layers(shape, training, center, scale,
                                                    input_gradient, relu_layer, dtype, seed):
    """BatchNormalization + Activation('relu') (ResNet's) or ReLU(): one step, the layers'
    output, gradients and moving statistics. The inputs straddle 0 (about half clamped)."""
    rng = np.random.default_rng(seed)
    x = (standard_normal(rng, shape, dtype) * 2 + rng.uniform(-1, 1)).astype(dtype)
    bn = random_batch_norm(rng, shape, dtype, center, scale, momentum=rng.uniform(0, 1))
    relu = Activation("relu", dtype=dtype) if relu_layer == "Activation" else ReLU(dtype=dtype)
    relu.build(x.shape)
    step = BatchNormStep(bn, relu, input_gradient=input_gradient)
    assert step.layers == (bn, relu) and step.relu and step.pool is None
    assert_bn_step_equals_layers(step, [bn, relu], [copy.deepcopy(bn), copy.deepcopy(relu)], x,
                                 rng, training, input_gradient)


def test_batch_norm_takes_only_a_relu_that_computes_as_the_layer():
    """Another activation, or a ReLU subclass with math of its own, stays a step of its own."""
    class LoudReLU(ReLU):
        def forward(self, x, training=False):
            return super().forward(x, training) * 2

    bn = random_batch_norm(np.random.default_rng(0), (2, 3, 3, 4), "float32")
    for other in (Activation("tanh"), Activation("linear"), LoudReLU()):
        assert BatchNormStep.takes([bn, other], 0) == 1
    assert BatchNormStep.takes([bn, Activation("relu")], 0) == 2
    assert BatchNormStep.takes([bn, ReLU()], 0) == 2


@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5)),
       rate=st.floats(0, 0.9), training=st.booleans(), dtype=dtypes(), seed=seeds())
def test_dropout_step_draws_the_layers_masks(shape, rate, training, dtype, seed):
    """The same generator state gives the same mask, output, cache and dx, bit for bit, and
    leaves the generator where the layer leaves it."""
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, shape, dtype)
    mine, theirs = Dropout(rate, dtype=dtype), Dropout(rate, dtype=dtype)
    mine.rng, theirs.rng = np.random.default_rng(seed), np.random.default_rng(seed)
    step = DropoutStep(mine)
    assert_exact(step.forward(x, training=training), theirs.forward(x, training=training))
    assert type(mine.cache) is DropoutCache
    if theirs.cache.mask is None:
        assert mine.cache.mask is None
    else:
        assert_exact(mine.cache.mask, theirs.cache.mask)
    dout = standard_normal(rng, shape, dtype)
    assert_exact(step.backward(dout), theirs.backward(dout))
    assert mine.rng.random() == theirs.rng.random()


def test_dropout_step_with_a_noise_shape_is_the_layer():
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    mine, theirs = (Dropout(0.5, noise_shape=(None, 1, 5), seed=3) for _ in range(2))
    y = DropoutStep(mine).forward(x, training=True)
    assert_exact(y, theirs.forward(x, training=True))
    assert mine.cache.mask.shape == (3, 1, 5)


# -- the plan and the models ----------------------------------------------------------------------
def kinds(model):
    return [(type(step).__name__, [layer.name for layer in step.layers]) for step in model.plan]


def test_which_layers_become_which_steps():
    model = fashion_mnist_cnn(seed=0)
    names = [layer.name for layer in model.layers]
    assert kinds(model) == [
        ("ConvStep", names[0:1]),             # relu, then BN: no ConvPoolStep
        ("BatchNormStep", names[1:3]),        # BN + the non-overlapping pool, one pass
        ("DropoutStep", names[3:4]),
        ("ConvStep", names[4:5]),
        ("BatchNormStep", names[5:7]),
        ("DropoutStep", names[7:8]),
        ("LayerStep", names[8:9]),
        ("LayerStep", names[9:10]),
        ("DropoutStep", names[10:11]),
        ("LayerStep", names[11:12]),
    ]
    model = cifar10_cnn(seed=0, augment=False)
    assert [type(step).__name__ for step in model.plan] == [
        "ConvStep", "ConvPoolStep", "DropoutStep", "ConvStep", "ConvPoolStep",
        "DropoutStep", "LayerStep", "LayerStep", "DropoutStep", "LayerStep"]
    # BN after Dense, BN before an overlapping pool, BN first (no input gradient)
    model = Sequential([BatchNormalization(input_shape=(8, 8, 2)), Conv2D(3, 3), Flatten(),
                        Dense(4), BatchNormalization(), Dense(2, activation="softmax")])
    assert [type(s).__name__ for s in model.plan] == [
        "BatchNormStep", "ConvStep", "LayerStep", "LayerStep", "BatchNormStep", "LayerStep"]
    assert model.plan[0].input_gradient is False
    model = Sequential([Conv2D(3, 3, input_shape=(9, 9, 1)), BatchNormalization(),
                        MaxPooling2D(3, strides=2)])
    assert [len(s.layers) for s in model.plan] == [1, 1, 1]
    assert all(type(s) is LayerStep for s in make_plan(model.layers, fast=False))
    with pytest.raises(ValueError, match="BatchNormStep"):
        BatchNormStep(*model.layers[1:3])
    # ResNet-20: each conv-BN-ReLU's BN and ReLU one step; a BN before an Add alone
    steps = resnet20(seed=0, augment=False).graph_plan.steps
    bn_steps = [[type(layer).__name__ for layer in s.layers] for s in steps
                if isinstance(s, BatchNormStep)]
    assert bn_steps.count(["BatchNormalization", "Activation"]) == 10
    assert bn_steps.count(["BatchNormalization"]) == 9


def fashion_data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), to_categorical(rng.integers(0, 10, n),
                                                                          10)


def test_the_fashion_model_trains_through_the_plan_like_the_layers(monkeypatch):
    """Three Adam steps, fast against fast=False, from the same weights and the same draws:
    every weight, the moving statistics included, and the predictions agree. The convolutions
    run im2col (and direct), whose rounding PLAN_TRAINING_ATOL was measured on; Winograd rounds
    otherwise, and the BatchNormalization after conv2 rescales that by 1 / sigma (1.2e-5 after
    one step here: the next test compares the new steps with Winograd in both plans)."""
    monkeypatch.setenv("MINICNN_CONV_ALGORITHM", "im2col")
    x, y = fashion_data()
    fast, plain = fashion_mnist_cnn(seed=1), fashion_mnist_cnn(seed=1)
    assert "winograd" not in {getattr(step, "algorithm", None) for step in fast.plan}
    plain.compile("adam", "categorical_crossentropy", ["accuracy"], fast=False)
    for _ in range(3):
        a, b = fast.train_on_batch(x, y), plain.train_on_batch(x, y)
        np.testing.assert_allclose(a, b, rtol=FLOAT32_RTOL)
    for a, b in zip(fast.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)
    np.testing.assert_allclose(fast.predict(x), plain.predict(x), rtol=0,
                               atol=PLAN_TRAINING_ATOL)
    dropouts = [layer for layer in fast.layers if isinstance(layer, Dropout)]
    assert all(type(layer.cache) is DropoutCache for layer in dropouts)


def test_the_new_steps_train_the_fashion_model_bit_for_bit_as_the_layers(monkeypatch):
    """The same fast plan (Winograd where the plan picks it) with BatchNormalization, its pool
    and Dropout run as LayerSteps (the reference layers) instead: the convolutions are the same
    steps in both, so the weights, moving statistics and predictions after three steps are the
    same bits."""
    x, y = fashion_data()
    fast, reference = fashion_mnist_cnn(seed=1), fashion_mnist_cnn(seed=1)
    assert {"BatchNormStep", "DropoutStep"} <= {type(step).__name__ for step in fast.plan}
    with monkeypatch.context() as patch:
        patch.setattr(BatchNormStep, "applies", staticmethod(lambda *layers: False))
        patch.setattr(DropoutStep, "applies", staticmethod(lambda layer: False))
        assert not {"BatchNormStep", "DropoutStep"} & {type(s).__name__ for s in reference.plan}
    for _ in range(3):
        assert fast.train_on_batch(x, y) == reference.train_on_batch(x, y)
    for a, b in zip(fast.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with monkeypatch.context() as patch:  # inference plans are built per call
        patch.setattr(BatchNormStep, "applies", staticmethod(lambda *layers: False))
        want = reference.predict(x)
    np.testing.assert_array_equal(fast.predict(x), want)


def test_one_thread_and_two_give_the_same_bits():
    x, y = fashion_data(24)
    before = parallel.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            parallel.set_num_threads(threads)
            model = fashion_mnist_cnn(seed=3)
            model.fit(x, y, batch_size=12, epochs=2, verbose=0)
            weights.append([*model.get_weights(), model.predict(x)])
    finally:
        parallel.set_num_threads(before)
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fast", [True, False])
def test_every_entry_point_passes_its_mode_to_the_new_steps(fast, monkeypatch):
    spy = ModeSpy()
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                        BatchNormalization(), MaxPooling2D(2), Dropout(0.3), spy, Flatten(),
                        Dense(6), BatchNormalization(), Dropout(0.5),
                        Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy", fast=fast)
    # LearningCheck's end-of-epoch look at the moving statistics runs an inference pass
    model.learning_check = False
    kinds_run = {type(step).__name__ for step in model.plan}
    assert kinds_run == ({"ConvStep", "BatchNormStep", "DropoutStep", "LayerStep"} if fast
                         else {"LayerStep"})
    rng = np.random.default_rng(0)
    x = rng.random((12, 10, 10, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 12), 3)
    assert_entry_points_pass_their_modes(
        model, spy, (BatchNormStep, DropoutStep, ConvPoolStep, ConvStep, LayerStep), kinds_run,
        x, y, monkeypatch)
    moving = model.layers[1].moving_mean.value.copy()
    model.predict(x)
    assert_exact(model.layers[1].moving_mean.value, moving)  # inference leaves them alone
