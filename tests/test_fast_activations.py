"""Every activation on the fast plan: the kernels against minicnn/activations.py's NumPy, and the
steps that use them against their reference layers.

The kernels (minicnn/fast/kernels/activations.py) compute each activation with the reference's
own operations (and, for elu, sigmoid, tanh and softmax, NumPy's own ufunc), so they must agree
bit for bit, NaN and infinities included; only softmax's row sums are added in another order.
The steps (ConvStep, ConvTransposeStep, DepthwiseStep, ConvPoolStep, ActivationStep) must give
their layers' output, weight gradients and dx to the tolerances of tests/test_plan.py, for every
activation, in float32 and float64, and the plan must pick them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn.fast.kernels.activations as kernels
from minicnn import activations, layers
from minicnn.fast import ConvPoolStep, ConvStep, make_plan
from minicnn.fast.activation import ActivationStep, activation_code
from minicnn.fast.conv_transpose import ConvTransposeStep
from minicnn.fast.depthwise import DepthwiseStep
from minicnn.fast.kernels import conv_direct_reference
from minicnn.fast.kernels.activations import (
    ELU,
    LEAKY_RELU,
    SOFTMAX,
    activation_backward,
    activation_backward_reference,
    activation_forward,
    bias_activation_reference,
)
from minicnn.fast.kernels.conv_pool import (
    _maxpool_relu_backward,
    bias_relu_maxpool,
    bias_relu_maxpool_reference,
    conv_relu_maxpool_backward,
    conv_relu_maxpool_backward_reference,
    maxpool_relu_backward,
    maxpool_relu_backward_reference,
)
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.models import Sequential
from tests.strategies import distinct_values, dtypes, seeds, standard_normal, window_setups
from tests.test_conv_transpose import setups as transpose_setups
from tests.test_depthwise_separable import setups as depthwise_setups
from tests.test_fast_kernels import conv_pool_setups
from tests.test_plan import assert_step_equals_layers
from tests.test_plan_winograd import conv_algorithm
from tests.test_signatures import kernel_signatures
from tests.tolerances import KERNEL_ATOL, KERNEL_RTOL

NAMES = ("linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax")
# What each activation's parameter is drawn from: Keras's defaults, 0 (a flat negative side)
# and anything up to 3.
PARAMETERS = st.sampled_from([0.0, 0.2, 1.0]) | st.floats(0.0, 3.0)


@st.composite
def activation_objects(draw, name: str | None = None) -> activations.Activation:
    """The activation `name` (None: any of NAMES); leaky_relu's slope and elu's alpha drawn."""
    name = name or draw(st.sampled_from(NAMES))
    if name == "leaky_relu":
        return activations.LeakyReLUActivation(draw(PARAMETERS))
    if name == "elu":
        return activations.ELUActivation(draw(PARAMETERS))
    return activations.get(name)


@st.composite
def codes(draw) -> tuple[int, float]:
    """(code, parameter) of an activation, as the kernels take it."""
    return activation_code(draw(activation_objects()))


def with_non_finite(rng, a, fraction=0.1):
    """a with about `fraction` of its elements NaN, +inf or -inf."""
    a = a.copy()
    hit = rng.random(a.shape) < fraction
    a[hit] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=a.dtype), size=hit.sum())
    return a


def assert_same(actual, expected, code, F):
    """Bit for bit (NaN where NaN), but for softmax's row sums of F terms added in another
    order than NumPy's pairwise sum."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    if code == SOFTMAX:
        np.testing.assert_allclose(actual, expected, rtol=KERNEL_RTOL[actual.dtype.name],
                                   atol=KERNEL_ATOL[actual.dtype.name] * F)
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    else:
        np.testing.assert_array_equal(actual, expected)


matrix_shapes = st.tuples(st.integers(1, 40), st.integers(1, 12))


def forward_input(rng, shape, dtype, non_finite):
    z = 3 * standard_normal(rng, shape, dtype)
    bias = standard_normal(rng, shape[1:], dtype)
    z[rng.random(shape) < 0.1] = 0.0
    z[:, 0] = -bias[0]  # pre-activations exactly at the kink
    return (with_non_finite(rng, z) if non_finite else z), bias


def run_forward(z, bias, code, param):
    """activation_forward on a copy of z, in place, with a scratch array full of NaN."""
    z = z.copy()
    activation_forward(z, bias, code, param, np.full_like(z, np.nan))
    return z


@given(shape=matrix_shapes, code=codes(), non_finite=st.booleans(), dtype=dtypes(), seed=seeds())
def test_activation_forward_matches_reference(shape, code, non_finite, dtype, seed):
    """bias_activation, the ufunc and activation_finish: the reference's act(z + bias)."""
    (code, param), rng = code, np.random.default_rng(seed)
    z, bias = forward_input(rng, shape, dtype, non_finite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reference's inf - inf
        expected = bias_activation_reference(z, bias, code, param)
    assert_same(run_forward(z, bias, code, param), expected, code, shape[1])


@given(shape=matrix_shapes, code=codes(), non_finite=st.booleans(), dtype=dtypes(),
       seed=seeds())
def test_activation_forward_equals_its_plain_twins(shape, code, non_finite, dtype, seed):
    """The same sequence with the un-jitted `_bias_activation` and `_activation_finish`."""
    (code, param), rng = code, np.random.default_rng(seed)
    z, bias = forward_input(rng, shape, dtype, non_finite)
    jitted = run_forward(z, bias, code, param)
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy scalars warn where numba doesn't
        patch.setattr(kernels, "bias_activation", kernels._bias_activation)
        patch.setattr(kernels, "activation_finish", kernels._activation_finish)
        plain = run_forward(z, bias, code, param)
    np.testing.assert_array_equal(jitted, plain)


def backward_input(rng, shape, dtype, code, param, non_finite):
    """(dout, y): y an output the activation can give (from a drawn z), dout N(0, 1)."""
    z, bias = forward_input(rng, shape, dtype, non_finite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = bias_activation_reference(z, bias, code, param)
    dout = standard_normal(rng, shape, dtype)
    return (with_non_finite(rng, dout) if non_finite else dout), y


@given(shape=matrix_shapes, code=codes(), non_finite=st.booleans(), dtype=dtypes(),
       seed=seeds())
def test_activation_backward_matches_reference(shape, code, non_finite, dtype, seed):
    (code, param), rng = code, np.random.default_rng(seed)
    dout, y = backward_input(rng, shape, dtype, code, param, non_finite)
    dz = np.full(shape, np.nan, dtype=dtype)
    activation_backward(dout, y, code, param, dz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = activation_backward_reference(dout, y, code, param)
    assert_same(dz, expected, code, shape[1])
    plain = np.full(shape, np.nan, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kernels._activation_backward(dout, y, code, param, plain)
    np.testing.assert_array_equal(dz, plain)


@pytest.mark.parametrize("name, z, y", [
    ("leaky_relu", [-2.0, 0.0, np.nan, -np.inf, np.inf], [-0.4, 0.0, np.nan, -np.inf, np.inf]),
    ("elu", [-np.inf, 0.0, 1.5, np.nan], [-1.0, 0.0, 1.5, np.nan]),
    ("sigmoid", [-np.inf, 0.0, np.inf, np.nan, -100.0], [0.0, 0.5, 1.0, np.nan, 3.72e-44]),
    ("tanh", [-np.inf, 0.0, np.inf, np.nan], [-1.0, 0.0, 1.0, np.nan]),
])
def test_non_finite_forward_by_hand(name, z, y):
    """What the kernels give at the edges, independently of any reference."""
    code, param = activation_code(activations.get(name))
    z = np.array([z], dtype=np.float32)
    out = run_forward(z, np.zeros(z.shape[1], np.float32), code, param)
    np.testing.assert_allclose(out[0], np.array(y, np.float32), rtol=1e-2)


def test_softmax_rows_with_nan_or_inf_are_nan():
    z = np.array([[1.0, np.inf, 2.0], [np.nan, 0.0, 1.0], [-np.inf, 0.0, 0.0]])
    y = run_forward(z, np.zeros(3), SOFTMAX, 0.0)
    assert np.isnan(y[:2]).all()
    np.testing.assert_array_equal(y[2], [0.0, 0.5, 0.5])


def test_leaky_relu_with_slope_zero_makes_minus_inf_nan():
    """-inf * 0 is NaN in NumPy's leaky_relu, so in the kernel too."""
    y = run_forward(np.array([[-np.inf, -1.0]]), np.zeros(2), LEAKY_RELU, 0.0)
    assert np.isnan(y[0, 0]) and y[0, 1] == 0.0


def test_elu_derivative_by_hand():
    """dz = dout * (y + alpha) below zero (alpha e^z), dout above."""
    y = np.array([[np.expm1(-1.0) * 2.0, 3.0]])
    dz = np.empty_like(y)
    activation_backward(np.array([[10.0, 10.0]]), y, ELU, 2.0, dz)
    np.testing.assert_allclose(dz, [[10.0 * 2.0 * np.exp(-1.0), 10.0]], rtol=1e-12)


# -- the conv + max-pool kernels without their ReLU (relu=False) ---------------------------------
@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_pool_kernels_without_relu_match_their_references(s, dtype, seed):
    """The pass ConvPoolStep runs after another activation: pooling z + bias as it is (exact,
    argmax included), and routing a gradient without the ReLU's mask, with NaN in z and dout."""
    rng = np.random.default_rng(seed)
    z = with_non_finite(rng, distinct_values(rng, s.z_shape, dtype), 0.05)
    bias = standard_normal(rng, (s.F,), dtype)
    out = np.full(s.pooled_shape, np.nan, dtype=dtype)
    argmax = np.full(s.pooled_shape, -1, dtype=np.int32)
    bias_relu_maxpool(z, bias, s.N, s.H_c, s.W_c, s.PH, s.PW, out, argmax, False)
    ref_out, ref_argmax = bias_relu_maxpool_reference(z, bias, s.N, s.H_c, s.W_c, s.PH, s.PW,
                                                      False)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    dout = with_non_finite(rng, standard_normal(rng, s.pooled_shape, dtype), 0.05)
    dz, dbias = np.full(s.z_shape, np.nan, dtype=dtype), np.full(s.F, np.nan, dtype=dtype)
    maxpool_relu_backward(dout, out, argmax, s.N, s.H_c, s.W_c, dz, dbias, False)
    ref_dz, ref_dbias = maxpool_relu_backward_reference(dout, out, argmax, s.N, s.H_c, s.W_c,
                                                        False)
    np.testing.assert_array_equal(dz, ref_dz)
    np.testing.assert_allclose(dbias, ref_dbias, rtol=KERNEL_RTOL[dtype.name],
                               atol=KERNEL_ATOL[dtype.name] * s.N * s.H_p * s.W_p)
    plain_dz = np.full(s.z_shape, np.nan, dtype=dtype)
    _maxpool_relu_backward(dout, out, argmax, s.N, s.H_c, s.W_c, plain_dz, dbias.copy(), False)
    np.testing.assert_array_equal(dz, plain_dz)


@given(s=conv_pool_setups(), dtype=dtypes(), seed=seeds())
def test_conv_maxpool_backward_without_relu_matches_reference(s, dtype, seed):
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, s.x_shape, dtype)
    kernel = standard_normal(rng, s.kernel_shape, dtype)
    z = conv_direct_reference(x, kernel, np.zeros(s.F, dtype), 1, 1, 0, 0, False, s.H_c, s.W_c)
    out, argmax = bias_relu_maxpool_reference(z.reshape(s.z_shape), np.zeros(s.F, dtype), s.N,
                                              s.H_c, s.W_c, s.PH, s.PW, False)
    dout = standard_normal(rng, s.pooled_shape, dtype)
    dkernel = np.full(s.kernel_shape, np.nan, dtype=dtype)
    dbias = np.full(s.F, np.nan, dtype=dtype)
    conv_relu_maxpool_backward(x, dout, out, argmax, s.PH, s.PW, dkernel, dbias, False)
    ref_dkernel, ref_dbias = conv_relu_maxpool_backward_reference(x, dout, out, argmax, s.PH,
                                                                  s.PW, s.KH, s.KW, False)
    for got, want in ((dkernel, ref_dkernel), (dbias, ref_dbias)):
        np.testing.assert_allclose(got, want, rtol=KERNEL_RTOL[dtype.name],
                                   atol=KERNEL_ATOL[dtype.name] * s.N * s.H_p * s.W_p)


# -- the steps ------------------------------------------------------------------------------------
def step_case(layer, x, step_class, input_gradient, dtype, rng):
    layer.rng = rng
    layer(x)
    step = step_class(layer, input_gradient=input_gradient)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@pytest.mark.parametrize("name", NAMES)
@given(s=window_setups("conv"), filters=st.integers(1, 6), data=st.data(),
       use_bias=st.booleans(), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_conv_step_equals_its_layer_for_every_activation(name, s, filters, data, use_bias,
                                                         input_gradient, dtype, seed):
    """Direct (receptive field <= 16) and im2col paths, any stride and padding."""
    activation = data.draw(activation_objects(name))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(dtype)
    conv = Conv2D(filters, (s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding,
                  activation=activation, use_bias=use_bias, bias_initializer="he_normal",
                  dtype=dtype)
    step_case(conv, x, ConvStep, input_gradient, dtype, rng)


@pytest.mark.parametrize("name", NAMES)
@given(n=st.integers(1, 3), size=st.integers(3, 9), channels=st.integers(1, 4),
       filters=st.integers(1, 5), padding=st.sampled_from(["valid", "same"]),
       data=st.data(), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_winograd_conv_step_equals_its_layer_for_every_activation(
        name, n, size, channels, filters, padding, data, input_gradient, dtype, seed):
    """The activation applied in Winograd's `finish`, block by block."""
    activation = data.draw(activation_objects(name))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, size, size, channels)).astype(dtype)
    conv = Conv2D(filters, 3, padding=padding, activation=activation,
                  bias_initializer="he_normal", dtype=dtype)
    conv.rng = rng
    conv(x)
    with conv_algorithm("winograd"):
        step = ConvStep(conv, input_gradient=input_gradient)
    assert step.algorithm == "winograd"
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@pytest.mark.parametrize("name", NAMES)
@given(s=transpose_setups(), data=st.data(), use_bias=st.booleans(),
       input_gradient=st.booleans(), dtype=st.sampled_from(["float32", "float64"]),
       seed=seeds())
def test_conv_transpose_step_equals_its_layer_for_every_activation(name, s, data, use_bias,
                                                                   input_gradient, dtype, seed):
    activation = data.draw(activation_objects(name))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(dtype)
    layer = s.layer(activation=activation, use_bias=use_bias, bias_initializer="he_normal",
                    dtype=dtype)
    step_case(layer, x, ConvTransposeStep, input_gradient, dtype, rng)


@pytest.mark.parametrize("name", NAMES)
@given(s=depthwise_setups(), separable=st.booleans(), data=st.data(),
       use_bias=st.booleans(), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_depthwise_step_equals_its_layer_for_every_activation(name, s, separable, data, use_bias,
                                                              input_gradient, dtype, seed):
    activation = data.draw(activation_objects(name))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(dtype)
    layer = s.layer(separable, activation=activation, use_bias=use_bias,
                    bias_initializer="he_normal", dtype=dtype)
    step_case(layer, x, DepthwiseStep, input_gradient, dtype, rng)


MONOTONE = ("relu", "leaky_relu", "elu", "sigmoid", "tanh")  # what ConvPoolStep takes


@pytest.mark.parametrize("name", MONOTONE)
@given(n=st.integers(1, 3), size=st.integers(4, 11), channels=st.integers(1, 5),
       filters=st.integers(1, 6), kernel=st.integers(1, 3), pool=st.integers(2, 3),
       algorithm=st.sampled_from([None, "winograd"]), data=st.data(),
       input_gradient=st.booleans(), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_conv_pool_step_equals_its_two_layers_for_every_increasing_activation(
        name, n, size, channels, filters, kernel, pool, algorithm, data, input_gradient, dtype,
        seed):
    """Direct (tiny receptive field), im2col and, forced, Winograd (3x3); odd maps whose last
    row and column no window reads; the relu path as it was."""
    activation = data.draw(activation_objects(name))
    rng = np.random.default_rng(seed)
    kernel = 3 if algorithm == "winograd" else kernel
    size = max(size, kernel + pool - 1)
    x = rng.standard_normal((n, size, size, channels)).astype(dtype)
    conv = Conv2D(filters, kernel, activation=activation, bias_initializer="he_normal",
                  dtype=dtype)
    conv.rng = rng
    pool_layer = MaxPooling2D(pool)
    pool_layer(conv(x))
    with conv_algorithm(algorithm):
        step = ConvPoolStep(conv, pool_layer, input_gradient=input_gradient)
    assert algorithm is None or step.algorithm == algorithm
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


def test_conv_pool_step_takes_no_softmax_nor_identity():
    """Max does not commute with softmax (a row's values depend on each other); a conv without
    activation stays a ConvStep."""
    for activation in ("softmax", None):
        conv, pool = built(Conv2D(3, 3, activation=activation), MaxPooling2D(2))
        assert not ConvPoolStep.applies(conv, pool)
    for activation in MONOTONE:
        assert ConvPoolStep.applies(*built(Conv2D(3, 3, activation=activation), MaxPooling2D(2)))


@st.composite
def activation_layers(draw) -> layers.Layer:
    """An Activation(any activation), ReLU(), LeakyReLU(slope) or Softmax()."""
    kind = draw(st.sampled_from(["Activation", "ReLU", "LeakyReLU", "Softmax"]))
    if kind == "Activation":
        return layers.Activation(draw(activation_objects()))
    if kind == "LeakyReLU":
        return layers.LeakyReLU(draw(PARAMETERS))
    return getattr(layers, kind)()


@given(layer=activation_layers(), shape=st.sampled_from([(4, 7), (3, 5, 6, 4), (2, 3, 9)]),
       batch=st.integers(1, 5), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_activation_step_equals_its_layer(layer, shape, batch, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape[1:])).astype(dtype)
    layer(x)
    step = ActivationStep(layer)
    assert_step_equals_layers(step, x, rng, dtype, True)
    assert layer.cache.y.shape == x.shape  # the layer's own cache, for a loss fused with it


@pytest.mark.parametrize("name", NAMES)
def test_activation_step_in_chunks_equals_one_pass(name):
    """A batch large enough to be cut into chunks on threads gives the one-pass result."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64, 64, 16)).astype(np.float32)  # 1M values
    layer = layers.Activation(name)
    layer(x)
    step = ActivationStep(layer)
    assert len(step._pieces(x.size // 16, 16, 16, "pass")) > 1
    y = step.forward(x)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    dx = step.backward(dout)
    code, param = activation_code(layer.activation)
    assert_same(y, bias_activation_reference(x.reshape(-1, 16), np.zeros(16, np.float32), code,
                                             param).reshape(x.shape), code, 16)
    assert_same(dx, activation_backward_reference(dout, y, code, param), code, 16)


# -- the plan -------------------------------------------------------------------------------------
def test_the_plan_takes_every_activation():
    """Every activation of minicnn.activations, as a conv's or on its own, runs a fast step;
    a sigmoid or softmax conv at the end (a loss may fuse with it) stays the layer."""
    conv_acts = [None, "relu", "leaky_relu", activations.LeakyReLUActivation(0.5), "elu",
                 activations.ELUActivation(0.3), "sigmoid", "tanh", "softmax"]
    model = Sequential(
        [Conv2D(3, 3, padding="same", activation=a) for a in conv_acts]
        + [layers.Conv2DTranspose(3, 3, padding="same", activation="tanh"),
           layers.DepthwiseConv2D(3, padding="same", activation="sigmoid"),
           layers.SeparableConv2D(3, 3, padding="same", activation="elu"),
           layers.Activation("sigmoid"), layers.ReLU(), layers.LeakyReLU(0.1), layers.Softmax(),
           layers.Activation("tanh"), Conv2D(2, 1, activation="sigmoid")])
    model.build((None, 8, 8, 2))
    kinds = [type(step).__name__ for step in model.plan]
    assert kinds == (["ConvStep"] * len(conv_acts) + ["ConvTransposeStep", "DepthwiseStep",
                                                      "DepthwiseStep"]
                     + ["ActivationStep"] * 5 + ["LayerStep"])


def test_the_plan_fuses_every_increasing_activation_with_its_pool():
    model = Sequential([Conv2D(3, 3, activation="tanh", input_shape=(20, 20, 1)),
                        MaxPooling2D(2), Conv2D(3, 3, activation="leaky_relu"), MaxPooling2D(2),
                        Conv2D(3, 1, activation="softmax"), MaxPooling2D(2), Flatten(),
                        Dense(2, activation="softmax")])
    kinds = [type(step).__name__ for step in model.plan]
    assert kinds[:3] == ["ConvPoolStep", "ConvPoolStep", "ConvStep"]
    assert model.plan[2].layers == (model.layers[4],)  # the softmax conv on its own


def test_an_activation_of_your_own_keeps_its_layer():
    class Cube(activations.Activation):
        name = "cube"

        def forward(self, z):
            return z ** 3

        def backward(self, dout, y):
            return dout * 3 * np.cbrt(y) ** 2

    steps = make_plan(built(Conv2D(2, 3, activation=Cube()), layers.Activation(Cube()),
                            Flatten(), Dense(2)))
    assert [type(step).__name__ for step in steps] == ["LayerStep"] * 4


def built(*layer_list):
    Sequential(list(layer_list)).build((None, 6, 6, 2))
    return layer_list


@pytest.mark.parametrize("last", ["sigmoid", "softmax"])
def test_a_model_ending_in_a_fused_head_trains_as_the_layers(last):
    """Sigmoid convs, an Activation('tanh') and a final Softmax layer under categorical
    cross-entropy (the loss fuses with the Softmax layer and reads its cache): two SGD steps
    of the fast plan against fast=False, from the same weights."""
    def model(fast):
        m = Sequential([Conv2D(4, 3, activation="sigmoid", input_shape=(8, 8, 2)),
                        layers.Activation("tanh"), Conv2D(3, 3, activation="elu"), Flatten(),
                        Dense(3), layers.Softmax() if last == "softmax" else
                        layers.Activation("softmax")], seed=1)
        m.compile("sgd", "categorical_crossentropy", fast=fast)
        return m
    fast, plain = model(True), model(False)
    assert "ActivationStep" in {type(step).__name__ for step in fast.plan}
    rng = np.random.default_rng(0)
    x = rng.random((6, 8, 8, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    for _ in range(2):
        np.testing.assert_allclose(fast.train_on_batch(x, y), plain.train_on_batch(x, y),
                                   rtol=1e-5)
    for a, b in zip(fast.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_float32_training_compiles_each_activation_kernel_once():
    """As tests/test_signatures.py checks the kernels of ALL_KERNELS: a float32 fit through
    every activation compiles each of the new kernels once, for float32 arrays."""
    script = """
import json
import numpy as np
from minicnn import layers
from minicnn.fast.kernels import activations as k
from minicnn.models import Sequential
rng = np.random.default_rng(0)
model = Sequential([layers.Conv2D(4, 3, activation="sigmoid", input_shape=(8, 8, 1)),
                    layers.Conv2D(4, 3, activation="tanh"), layers.Activation("elu"),
                    layers.LeakyReLU(0.1), layers.Conv2D(4, 1, activation="softmax"),
                    layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
model.compile("sgd", "categorical_crossentropy")
x = rng.random((20, 8, 8, 1), dtype=np.float32)
y = np.eye(3)[rng.integers(0, 3, 20)]
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
model.predict(x[:3])
print(json.dumps({f.py_func.__name__: [str(s) for s in f.signatures] for f in
                  (k.bias_activation, k.activation_finish, k.activation_backward)}))
"""
    (signatures,) = kernel_signatures(script)
    for name, sigs in signatures.items():
        assert len(sigs) == 1 and "Array(float64" not in sigs[0], (name, sigs)
