"""The fast plan's choice of convolution algorithm (minicnn/fast/conv_algorithm.py).

ConvStep and ConvPoolStep run im2col, a direct convolution or Winograd F(2x2, 3x3) or
F(4x4, 3x3), picked per
layer shape when the plan is built, or forced with MINICNN_CONV_ALGORITHM. Whatever runs, a step
computes what its layers compute: output, input gradient and weight gradients against the
reference layers, to the tolerances of tests/test_plan.py; bit for bit the same on one or two
threads; and a short fit of the CIFAR-10 recipe ends with the same weights under every setting.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.fast import ConvPoolStep, ConvStep, parallel
from minicnn.fast.conv_algorithm import (
    DIRECT_MAX_FIELD,
    ENVIRONMENT_VARIABLE,
    WINOGRAD,
    WINOGRAD4_MAX_GRID,
    WINOGRAD_MIN_CHANNELS,
    WINOGRAD_MIN_SIDE,
    choose_algorithm,
)
from minicnn.layers import Conv2D, MaxPooling2D
from minicnn.models import cifar10_cnn, mnist_cnn
from minicnn.utils import to_categorical
from tests.strategies import seeds
from tests.test_plan import assert_step_equals_layers
from tests.tolerances import PLAN_TRAINING_ATOL


@contextlib.contextmanager
def conv_algorithm(setting: str | None):
    """MINICNN_CONV_ALGORITHM=setting inside the block (unset for None), restored after.
    (Not pytest's monkeypatch: hypothesis runs many examples per function-scoped fixture.)"""
    before = os.environ.get(ENVIRONMENT_VARIABLE)
    try:
        if setting is None:
            os.environ.pop(ENVIRONMENT_VARIABLE, None)
        else:
            os.environ[ENVIRONMENT_VARIABLE] = setting
        yield
    finally:
        if before is None:
            os.environ.pop(ENVIRONMENT_VARIABLE, None)
        else:
            os.environ[ENVIRONMENT_VARIABLE] = before


def conv_step(x, filters, padding, activation, use_bias, input_gradient, dtype, rng, setting):
    conv = Conv2D(filters, 3, padding=padding, activation=activation, use_bias=use_bias,
                  bias_initializer="he_normal", dtype=dtype)
    conv.rng = rng
    conv(x)
    with conv_algorithm(setting):
        return ConvStep(conv, input_gradient=input_gradient)


def conv_pool_step(x, filters, pool, input_gradient, dtype, rng, setting):
    conv = Conv2D(filters, 3, activation="relu", bias_initializer="he_normal", dtype=dtype)
    conv.rng = rng
    pool_layer = MaxPooling2D(pool)
    pool_layer(conv(x))
    with conv_algorithm(setting):
        return ConvPoolStep(conv, pool_layer, input_gradient=input_gradient)


def expected_algorithm(C, H_out, W_out, setting):
    """The documented rule for a 3x3 stride-1 conv, written out once more."""
    if setting in WINOGRAD:
        return setting
    if 9 * C <= DIRECT_MAX_FIELD:
        return "direct"
    if setting == "im2col":
        return "im2col"
    if C < WINOGRAD_MIN_CHANNELS or min(H_out, W_out) < WINOGRAD_MIN_SIDE:
        return "im2col"
    def up(side, m):
        return -(-side // m) * m
    grid_4, grid_2 = up(H_out, 4) * up(W_out, 4), up(H_out, 2) * up(W_out, 2)
    return "winograd4" if grid_4 <= WINOGRAD4_MAX_GRID * grid_2 else "winograd"


# -- every algorithm computes what the layers compute ----------------------------------------------
@pytest.mark.parametrize("algorithm", WINOGRAD)
@given(n=st.integers(1, 3), H=st.integers(1, 11), W=st.integers(1, 11),
       channels=st.integers(1, 5), filters=st.integers(1, 6),
       padding=st.sampled_from(["valid", "same"]), activation=st.sampled_from(["relu", None]),
       use_bias=st.booleans(), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_winograd_conv_step_equals_its_layer(algorithm, n, H, W, channels, filters, padding,
                                             activation, use_bias, input_gradient, dtype, seed):
    """Forced Winograd, either tile, on small, odd and even maps, 1-pixel ones with 'same'
    padding."""
    if padding == "valid":
        H, W = H + 2, W + 2
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, H, W, channels)).astype(dtype)
    step = conv_step(x, filters, padding, activation, use_bias, input_gradient, dtype, rng,
                     algorithm)
    assert step.algorithm == algorithm
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@pytest.mark.parametrize("algorithm", WINOGRAD)
@given(n=st.integers(1, 3), size=st.integers(4, 13), channels=st.integers(1, 5),
       filters=st.integers(1, 6), pool=st.integers(2, 3), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_winograd_conv_pool_step_equals_its_two_layers(algorithm, n, size, channels, filters,
                                                       pool, input_gradient, dtype, seed):
    """Forced Winograd, only on the pooled region: pooled sides that are not a multiple of the
    tile round the grid up; rows and columns no window reads stay uncomputed and get no
    gradient."""
    rng = np.random.default_rng(seed)
    size = max(size, pool + 2)
    x = rng.standard_normal((n, size, size, channels)).astype(dtype)
    step = conv_pool_step(x, filters, pool, input_gradient, dtype, rng, algorithm)
    assert step.algorithm == algorithm
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@settings(max_examples=12)
@given(n=st.integers(1, 3), H=st.integers(5, 10), W=st.integers(5, 10),
       channels=st.integers(WINOGRAD_MIN_CHANNELS - 2, WINOGRAD_MIN_CHANNELS + 2),
       filters=st.integers(6, 18), padding=st.sampled_from(["valid", "same"]),
       setting=st.sampled_from(["auto", "im2col", *WINOGRAD]), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_conv_step_under_each_setting(n, H, W, channels, filters, padding, setting,
                                      input_gradient, dtype, seed):
    """Shapes around the thresholds, where auto picks Winograd or im2col; each setting picks
    what the rule says and computes what the layer computes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, H, W, channels)).astype(dtype)
    step = conv_step(x, filters, padding, "relu", True, input_gradient, dtype, rng, setting)
    _, H_out, W_out, _ = step.conv.output_shape
    assert step.algorithm == expected_algorithm(channels, H_out, W_out, setting)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@settings(max_examples=12)
@given(n=st.integers(1, 3), size=st.integers(8, 13), pool=st.integers(2, 3),
       channels=st.integers(WINOGRAD_MIN_CHANNELS - 2, WINOGRAD_MIN_CHANNELS + 2),
       filters=st.integers(6, 18), setting=st.sampled_from(["auto", "im2col", *WINOGRAD]),
       input_gradient=st.booleans(), dtype=st.sampled_from(["float32", "float64"]),
       seed=seeds())
def test_conv_pool_step_under_each_setting(n, size, pool, channels, filters, setting,
                                           input_gradient, dtype, seed):
    """The rule sees the pooled region (the outputs the step computes), not the conv's map."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, size, size, channels)).astype(dtype)
    step = conv_pool_step(x, filters, pool, input_gradient, dtype, rng, setting)
    side = (size - 2) // pool * pool
    assert step.algorithm == expected_algorithm(channels, side, side, setting)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


# -- the rule --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "strides", "H_out", "C", "F", "expected"), [
    ((3, 3), (1, 1), 26, 1, 32, "direct"),     # MNIST conv1: field 9
    ((3, 3), (1, 1), 10, 32, 64, "winograd"),  # MNIST conv2, on its 10x10 pooled region (F(4x4)
                                               # would compute 12x12)
    ((3, 3), (1, 1), 3, 64, 64, "im2col"),     # MNIST conv3: 3x3 outputs, 9 of 16 tile outputs
    ((3, 3), (1, 1), 32, 3, 32, "im2col"),     # CIFAR conv1: 3 channels
    ((3, 3), (1, 1), 30, 32, 32, "winograd4"),  # CIFAR conv2, pooled region 30x30 (32x32)
    ((3, 3), (1, 1), 15, 32, 64, "winograd4"),  # CIFAR conv3, 'same'
    ((3, 3), (1, 1), 12, 64, 64, "winograd4"),  # CIFAR conv4, pooled region 12x12
    ((3, 3), (1, 1), 32, 16, 16, "winograd4"),  # ResNet-20's convs at 32x32, 16x16, 8x8
    ((3, 3), (1, 1), 8, 64, 64, "winograd4"),
    ((3, 3), (1, 1), 18, 32, 32, "winograd"),  # grid 20x20 against 18x18: 1.23
    ((3, 3), (1, 1), WINOGRAD_MIN_SIDE, WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_CHANNELS,
     "winograd"),
    ((3, 3), (1, 1), WINOGRAD_MIN_SIDE - 1, 64, 64, "im2col"),
    ((3, 3), (1, 1), 16, WINOGRAD_MIN_CHANNELS - 1, 64, "im2col"),
    ((3, 3), (1, 1), 16, 32, 8, "winograd4"),   # few filters: the input transform still pays
    ((3, 3), (2, 2), 16, 64, 64, "im2col"),    # Winograd runs stride 1 only
    ((5, 5), (1, 1), 16, 64, 64, "im2col"),    # and 3x3 kernels only
    ((1, 1), (1, 1), 16, 16, 64, "direct"),
])
def test_auto_picks_what_the_thresholds_say(kernel, strides, H_out, C, F, expected):
    assert choose_algorithm(kernel, strides, H_out, H_out, C, F, "auto") == expected
    if expected not in WINOGRAD:  # (the grid's area decides F(2x2) or F(4x4))
        assert choose_algorithm(kernel, strides, H_out, H_out + 7, C, F, "auto") == expected
    # the smaller side decides
    if expected in WINOGRAD:
        assert choose_algorithm(kernel, strides, H_out, WINOGRAD_MIN_SIDE - 1, C, F,
                                "auto") == "im2col"


def test_forcing_picks_winograd_wherever_it_runs_and_im2col_never():
    shapes = [((3, 3), (1, 1), 10, 32, 64), ((3, 3), (1, 1), 3, 64, 64),
              ((3, 3), (1, 1), 26, 1, 32), ((3, 3), (2, 2), 16, 64, 64),
              ((5, 5), (1, 1), 16, 64, 64)]
    for setting in WINOGRAD:
        assert [choose_algorithm(*s[:3], s[2], *s[3:], setting=setting) for s in shapes] == [
            setting, setting, setting, "im2col", "im2col"]
    assert [choose_algorithm(*s[:3], s[2], *s[3:], setting="im2col") for s in shapes] == [
        "im2col", "im2col", "direct", "im2col", "im2col"]


def test_the_setting_comes_from_the_environment_and_is_checked():
    with conv_algorithm("im2col"):
        assert choose_algorithm((3, 3), (1, 1), 16, 16, 64, 64) == "im2col"
    with conv_algorithm(None):
        assert choose_algorithm((3, 3), (1, 1), 16, 16, 64, 64) == "winograd4"
    with conv_algorithm("winograd"):
        assert choose_algorithm((3, 3), (1, 1), 16, 16, 64, 64) == "winograd"
    with conv_algorithm("fft"), pytest.raises(ValueError,
                                              match=rf"{ENVIRONMENT_VARIABLE}.*Received 'fft'"):
        choose_algorithm((3, 3), (1, 1), 16, 16, 64, 64)
    with pytest.raises(ValueError, match=r"argument `setting`.*Received setting='fft'"):
        choose_algorithm((3, 3), (1, 1), 16, 16, 64, 64, "fft")


def algorithms(model):
    return [step.algorithm for step in model.plan if hasattr(step, "algorithm")]


def test_the_models_plans_and_their_reprs_show_each_steps_algorithm():
    with conv_algorithm(None):
        mnist, cifar = mnist_cnn(seed=0), cifar10_cnn(seed=0, augment=False)
        assert algorithms(mnist) == ["direct", "winograd", "im2col"]
        assert algorithms(cifar) == ["im2col", "winograd4", "winograd4", "winograd4"]
    assert repr(mnist.plan[0]).endswith("algorithm='direct')")
    assert "ConvPoolStep(" in repr(mnist.plan[1]) and "algorithm='winograd'" in repr(mnist.plan[1])
    assert repr(mnist.plan[2]) == f"ConvStep({mnist.layers[4].name}, algorithm='im2col')"
    with conv_algorithm("im2col"):
        assert algorithms(cifar10_cnn(seed=0, augment=False)) == ["im2col"] * 4
    with conv_algorithm("winograd"):
        assert algorithms(mnist_cnn(seed=0)) == ["winograd"] * 3


# -- threads and training ------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("pool", [None, 2])
def test_winograd_steps_are_bit_identical_on_one_and_two_threads(pool, algorithm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 9, 9, 16)).astype(np.float32)  # 8 chunks, uneven
    if pool:
        step = conv_pool_step(x, 16, pool, True, "float32", rng, algorithm)
    else:
        step = conv_step(x, 16, "same", "relu", True, True, "float32", rng, algorithm)
    dout = rng.standard_normal(step.forward(x).shape).astype(np.float32)
    threads = parallel.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            parallel.set_num_threads(n)
            y = step.forward(x, training=True).copy()
            dx = step.backward(dout)
            results.append([y, dx, *(p.grad.copy() for p in step.conv.params)])
    finally:
        parallel.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        np.testing.assert_array_equal(one, two)


def test_a_short_cifar_fit_ends_with_the_same_weights_under_every_setting():
    """Four RMSprop steps of the CIFAR-10 recipe (three Winograd layers under auto, four forced,
    none under im2col) from the same seed, on random images: the same weights to float
    rounding, and the same on one thread as on two."""
    rng = np.random.default_rng(0)
    x = rng.random((32, 32, 32, 3), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 32), 10)
    weights = {}
    for setting in ("im2col", "auto", *WINOGRAD):
        with conv_algorithm(setting):
            model = cifar10_cnn(seed=0, augment=False)
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        weights[setting] = model.get_weights()
    for setting in ("auto", *WINOGRAD):
        for got, want in zip(weights[setting], weights["im2col"], strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=PLAN_TRAINING_ATOL)


@pytest.mark.parametrize("algorithm", WINOGRAD)
@pytest.mark.parametrize("pool", [None, 2])
def test_winograd_keeps_each_chunks_kernel_gradient_in_the_kernels_layout(pool, algorithm):
    """minicnn/distributed hands each chunk's partial kernel gradient (`step.partials()`,
    (chunks, KH * KW * C, F)) to the driver, which adds them in chunk order: under Winograd too
    they are kernel gradients, not the transformed dU, and add up to the grad."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((11, 10, 10, 16)).astype(np.float32)
    if pool:
        step = conv_pool_step(x, 8, pool, False, "float32", rng, algorithm)
    else:
        step = conv_step(x, 8, "same", "relu", True, False, "float32", rng, algorithm)
    step.backward(rng.standard_normal(step.forward(x, training=True).shape).astype(np.float32))
    partials, bias = step.partials()
    assert partials.shape == (len(parallel.chunks(11)), 9 * 16, 8)
    np.testing.assert_array_equal(partials.sum(axis=0), step.conv.kernel.grad.reshape(9 * 16, 8))
    np.testing.assert_array_equal(bias.sum(axis=0), step.conv.bias.grad)
    assert step.params == [step.conv.kernel, step.conv.bias] and step.chunked
