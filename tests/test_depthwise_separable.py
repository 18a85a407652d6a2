"""DepthwiseConv2D and SeparableConv2D: kernels, gradients, TensorFlow, the fast step, files.

Setups are drawn whole: batch 1..3, odd and even sizes, kernels 1..4 (even ones make "same"
padding asymmetric, the extra row and column at the bottom and right as TensorFlow), strides 1
and 2, depth_multiplier 1 and 2. The numba kernels are compared with their NumPy references
(the im2col matrix read channel by channel), the layers with central differences in float64 and
with Keras's layers from the same weights (y, dx and every weight gradient), and the fast step
with the layers it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn.fast import LayerStep, make_plan
from minicnn.fast.depthwise import DepthwiseStep
from minicnn.gradcheck import check_layer
from minicnn.kernels import depthwise as kernels
from minicnn.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    GlobalAveragePooling2D,
    SeparableConv2D,
)
from minicnn.layers._args import window_geometry
from minicnn.layers.depthwise_conv import DepthwiseWindow
from minicnn.models import Sequential, load_model
from tests.strategies import seeds
from tests.test_gradients import assert_passes, bias_away_from_kinks
from tests.test_plan import assert_step_equals_layers, scale_close
from tests.tolerances import FLOAT32_RTOL, TF_FORWARD_ATOL, TF_FORWARD_RTOL


@dataclass(frozen=True)
class Setup:
    N: int
    H: int
    W: int
    C: int
    M: int  # depth_multiplier
    F: int  # SeparableConv2D's filters
    kernel: tuple[int, int]
    strides: tuple[int, int]
    padding: str

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        """(H_out, W_out, PT, PL), by Keras's rule."""
        (H_out, PT), (W_out, PL) = (window_geometry(n, k, s, self.padding) for n, k, s in zip(
            (self.H, self.W), self.kernel, self.strides, strict=True))
        return H_out, W_out, PT, PL

    def layer(self, separable: bool, **kwargs) -> DepthwiseConv2D | SeparableConv2D:
        args = {"strides": self.strides, "padding": self.padding, "depth_multiplier": self.M,
                **kwargs}
        return (SeparableConv2D(self.F, self.kernel, **args) if separable
                else DepthwiseConv2D(self.kernel, **args))


@st.composite
def setups(draw, max_size: int = 7) -> Setup:
    padding = draw(st.sampled_from(["valid", "same"]))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    low = kernel if padding == "valid" else (1, 1)  # a "valid" output is never empty
    return Setup(draw(st.integers(1, 3)), draw(st.integers(low[0], max(low[0], max_size))),
                 draw(st.integers(low[1], max(low[1], max_size))), draw(st.integers(1, 4)),
                 draw(st.integers(1, 2)), draw(st.integers(1, 4)), kernel,
                 (draw(st.integers(1, 2)), draw(st.integers(1, 2))), padding)


def pre_activation(layer, x: np.ndarray) -> np.ndarray:
    """The layer's z, in float64 from its weights by the NumPy references."""
    H_out, W_out, PT, PL = layer.geometry(*x.shape[1:3])
    kernel = layer.kernel if isinstance(layer, DepthwiseConv2D) else layer.depthwise_kernel
    z = kernels.depthwise_forward_reference(x.astype(np.float64), kernel.value.astype(np.float64),
                                            *layer.strides, PT, PL, H_out, W_out)
    if isinstance(layer, SeparableConv2D):
        z = z @ layer.pointwise_kernel.value[0, 0].astype(np.float64)
    return z + (layer.bias.value if layer.bias is not None else 0.0)


# -- the kernels against their references ----------------------------------------------------------
@given(s=setups(), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_kernels_equal_their_references(s, dtype, seed):
    rng = np.random.default_rng(seed)
    H_out, W_out, PT, PL = s.geometry
    (KH, KW), (SH, SW) = s.kernel, s.strides
    x = rng.standard_normal(s.x_shape).astype(dtype)
    kernel = rng.standard_normal((KH, KW, s.C, s.M)).astype(dtype)
    dz = rng.standard_normal((s.N, H_out, W_out, s.C * s.M)).astype(dtype)
    z = np.full(dz.shape, np.nan, dtype)  # outputs are overwritten, whatever they held
    kernels.depthwise_forward(x, kernel, SH, SW, PT, PL, z)
    scale_close(z, kernels.depthwise_forward_reference(x, kernel, SH, SW, PT, PL, H_out, W_out),
                dtype)
    dx = np.full(x.shape, np.nan, dtype)
    kernels.depthwise_backward_input(dz, kernel, SH, SW, PT, PL, dx)
    scale_close(dx, kernels.depthwise_backward_input_reference(dz, kernel, x.shape, SH, SW, PT,
                                                               PL), dtype)
    dkernel = np.full(kernel.shape, np.nan, dtype)
    kernels.depthwise_backward_kernel(x, dz, SH, SW, PT, PL, dkernel)
    scale_close(dkernel, kernels.depthwise_backward_kernel_reference(x, dz, KH, KW, SH, SW, PT,
                                                                     PL), dtype)


def test_the_plain_twins_compute_what_the_jitted_kernels_do():
    rng = np.random.default_rng(0)
    x, kernel = rng.standard_normal((2, 5, 4, 3)), rng.standard_normal((3, 2, 3, 2))
    dz = rng.standard_normal((2, 3, 2, 6))  # stride 2, "same": PT = 1, PL = 0
    for name, args, out in (("depthwise_forward", (x, kernel), dz.shape),
                            ("depthwise_backward_input", (dz, kernel), x.shape),
                            ("depthwise_backward_kernel", (x, dz), kernel.shape)):
        jitted, plain = np.empty(out), np.empty(out)
        getattr(kernels, name)(*args, 2, 2, 1, 0, jitted)
        getattr(kernels, name).py_func(*args, 2, 2, 1, 0, plain)
        np.testing.assert_array_equal(jitted, plain)


# -- float64 gradient checks ----------------------------------------------------------------------
@pytest.mark.parametrize("separable", [False, True], ids=["depthwise", "separable"])
@settings(max_examples=25)
@given(s=setups(max_size=6), activation=st.sampled_from([None, "relu", "tanh"]),
       use_bias=st.booleans(), seed=seeds())
def test_gradients(separable, s, activation, use_bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape)
    layer = s.layer(separable, activation=activation, use_bias=use_bias or activation == "relu",
                    dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    if activation == "relu":
        bias_away_from_kinks(layer, x)
    assert_passes(check_layer(layer, x, seed=seed))


@pytest.mark.parametrize("separable", [False, True], ids=["depthwise", "separable"])
def test_the_checker_catches_an_input_gradient_with_channels_mixed_up(separable, monkeypatch):
    """dx handed to the wrong input channels (reversed, as a layout mistaken for TensorFlow's
    c*M + m would) fails the input's row, and only that one: the weight gradients are right."""
    right = DepthwiseWindow.depthwise_backward

    def mixed(self, x, dz, kernel):
        dx = right(self, x, dz, kernel)
        return dx[..., ::-1].copy()  # channel c's gradient handed to channel C - 1 - c

    monkeypatch.setattr(DepthwiseWindow, "depthwise_backward", mixed)
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 3))
    layer = (SeparableConv2D(2, 3, padding="same", depth_multiplier=2) if separable
             else DepthwiseConv2D(3, padding="same", depth_multiplier=2))
    report = check_layer(layer, x)
    assert not report.passed
    assert [t.verdict for t in report.tensors if t.verdict != "ok"] == ["FAIL"]
    assert next(t.name for t in report.tensors if t.verdict == "FAIL").endswith("input")


@given(dtype=st.sampled_from(["float32", "float64"]), separable=st.booleans(), seed=seeds())
def test_dtype_and_weight_layouts_are_kept(dtype, separable, seed):
    x = np.random.default_rng(seed).standard_normal((2, 5, 5, 3)).astype(dtype)
    layer = Setup(2, 5, 5, 3, 2, 4, (3, 2), (2, 1), "same").layer(separable, activation="relu")
    y = layer(x)
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype
    assert y.shape == (2, 3, 5, 4 if separable else 6)
    want = ([(3, 2, 3, 2), (1, 1, 6, 4), (4,)] if separable else [(3, 2, 3, 2), (6,)])
    assert [w.shape for w in layer.get_weights()] == want


# -- TensorFlow as the oracle ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle():
    """tests/test_oracle_tf.py (its compare_layer) and keras, imported once."""
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras

    from tests import test_oracle_tf
    return test_oracle_tf, keras


def keras_twin(keras, s: Setup, separable: bool, activation):
    args = {"strides": s.strides, "padding": s.padding, "depth_multiplier": s.M,
            "activation": activation}
    return (keras.layers.SeparableConv2D(s.F, s.kernel, **args) if separable
            else keras.layers.DepthwiseConv2D(s.kernel, **args))


@pytest.mark.parametrize("separable", [False, True], ids=["depthwise", "separable"])
@settings(max_examples=25)
@given(s=setups(max_size=9), activation=st.sampled_from([None, "relu", "sigmoid"]),
       seed=seeds())
def test_agrees_with_tensorflow(oracle, separable, s, activation, seed):
    # TensorFlow's depthwise convolution is right for equal row and column strides only: with
    # strides (1, 2), a 1x2 kernel on a 3x3 input, tf.nn.depthwise_conv2d gave zeros for output
    # row 1, whose sums by hand are -0.155 and 1.18 (minicnn's). Unequal strides are checked
    # against the NumPy references above.
    assume(s.strides[0] == s.strides[1])
    compare_with_tensorflow(oracle, separable, s, activation, seed)


def compare_with_tensorflow(oracle, separable: bool, s: Setup, activation, seed: int) -> None:
    """y, dx and every weight gradient of sum(y * dout) from the same float32 weights; dout is
    zeroed where a float64 pre-activation lies within KINK_MARGIN of a ReLU's kink (-s prints
    the largest differences)."""
    oracle_tf, keras = oracle
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(np.float32)
    ours = s.layer(separable, activation=activation)
    theirs = keras_twin(keras, s, separable, activation)
    oracle_tf.build_pair(ours, theirs, x, rng)
    z64 = pre_activation(ours, x) if activation == "relu" else None
    oracle_tf.compare_layer(ours, theirs, x, oracle_tf.random_dout(rng, z64),
                            f"{type(ours).__name__} {s} {activation}")


@pytest.mark.parametrize("separable", [False, True], ids=["depthwise", "separable"])
@pytest.mark.parametrize("s", [
    Setup(2, 6, 7, 3, 2, 5, (2, 4), (2, 2), "same"),  # even kernels: padding split unevenly
    Setup(1, 5, 5, 4, 1, 3, (3, 3), (2, 1), "same"),
    Setup(2, 45, 45, 8, 1, 16, (3, 3), (1, 1), "same"),  # the small Xception's blocks
])
def test_asymmetric_same_padding_and_xception_shapes_agree_with_tensorflow(oracle, separable, s):
    compare_with_tensorflow(oracle, separable, s, "relu", seed=7)


def test_our_config_keys_are_keras_config_keys(oracle):
    _, keras = oracle
    for ours, theirs in ((DepthwiseConv2D(3), keras.layers.DepthwiseConv2D(3)),
                         (SeparableConv2D(4, 3), keras.layers.SeparableConv2D(4, 3))):
        assert set(ours.get_config()) - {"input_shape"} <= set(theirs.get_config())


@pytest.mark.parametrize(("make", "message"), [
    (lambda: DepthwiseConv2D(3, dilation_rate=2),
     r"argument `dilation_rate`. Expected 1 \(minicnn's DepthwiseConv2D has no dilation\)"
     r"\. Received dilation_rate=2"),
    (lambda: SeparableConv2D(2, 3, dilation_rate=(1, 2)), r"Received dilation_rate=\(1, 2\)"),
    (lambda: DepthwiseConv2D(3, data_format="channels_first"),
     "Received data_format='channels_first'"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=0),
     "Invalid value for argument `depth_multiplier`.*Received depth_multiplier=0"),
    (lambda: SeparableConv2D(0, 3), "Invalid value for argument `filters`.*Received filters=0"),
    (lambda: SeparableConv2D(2, 3, padding="full"), "Received padding='full'"),
    (lambda: SeparableConv2D(2, 3, pointwise_regularizer="l3"),
     "Received pointwise_regularizer='l3'"),
    (lambda: DepthwiseConv2D(4)(np.zeros((1, 3, 5, 2))), "kernel \\(4, 4\\) does not fit"),
])
def test_errors_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_depthwise_regularizer_is_in_the_loss():
    model = Sequential([DepthwiseConv2D(3, depthwise_regularizer="l2", input_shape=(5, 5, 2)),
                        GlobalAveragePooling2D()], seed=0)
    x = np.random.default_rng(0).random((4, 5, 5, 2)).astype(np.float32)
    y = np.zeros((4, 2), np.float32)
    model.compile("sgd", "mse")
    penalty = 0.01 * float(np.sum(model.layers[0].kernel.value.astype(np.float64) ** 2))
    mse = float(np.mean(model.predict(x, verbose=0).astype(np.float64) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + penalty, rel=FLOAT32_RTOL)


# -- the fast step --------------------------------------------------------------------------------
@given(s=setups(), separable=st.booleans(), activation=st.sampled_from(["relu", None]),
       use_bias=st.booleans(), input_gradient=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_fast_step_equals_the_layer(s, separable, activation, use_bias, input_gradient, dtype,
                                    seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(dtype)
    layer = s.layer(separable, activation=activation, use_bias=use_bias,
                    bias_initializer="he_normal", dtype=dtype)
    layer.rng = rng
    layer(x)
    step = DepthwiseStep(layer, input_gradient=input_gradient)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)
    for part, grad in zip(step.partials(), [p.grad for p in step.params], strict=True):
        assert part.shape == (step.pieces, *grad.shape)
        np.testing.assert_array_equal(part.sum(axis=0), grad)


def xception_in_small(seed: int = 0) -> Sequential:
    """keras.io's small Xception's pattern in miniature: separable convs with BatchNormalization
    and ReLU, a depthwise conv, global pooling and a softmax."""
    return Sequential([
        Conv2D(8, 3, strides=2, padding="same", activation="relu", input_shape=(11, 11, 3)),
        SeparableConv2D(12, 3, padding="same", activation="relu"),
        SeparableConv2D(12, 3, padding="same", depth_multiplier=2),
        BatchNormalization(),
        DepthwiseConv2D(3, strides=2, padding="same", activation="relu"),
        DepthwiseConv2D(2, activation="sigmoid"),
        GlobalAveragePooling2D(),
        Dense(3, activation="softmax")], seed=seed)


# Three epochs on 20 random images leave BatchNormalization's moving statistics far from the
# batch's, which fit rightly warns about; this test is about the two tiers agreeing.
@pytest.mark.filterwarnings("ignore::minicnn.callbacks.LearningWarning")
def test_the_fast_plan_trains_like_the_layers():
    """The plan runs every depthwise and separable conv, sigmoid included, as DepthwiseSteps;
    fit with it and with the reference layers, from the same start, gives the same losses and
    weights."""
    kinds = [type(step).__name__ for step in xception_in_small().plan]
    assert kinds.count("DepthwiseStep") == 4 and kinds[5] == "DepthwiseStep"
    rng = np.random.default_rng(1)
    x = rng.random((20, 11, 11, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    histories, weights = [], []
    for fast in (True, False):
        model = xception_in_small()
        model.compile("adam", "categorical_crossentropy", fast=fast)
        histories.append(model.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"])
        weights.append(model.get_weights())
    assert histories[0][-1] < histories[0][0]
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    sigmoid = DepthwiseConv2D(3, activation="sigmoid")
    sigmoid.build((None, 5, 5, 2))
    assert isinstance(make_plan([sigmoid])[0], LayerStep)


# -- configs and files ----------------------------------------------------------------------------
def test_config_round_trip():
    for layer in (
            DepthwiseConv2D((3, 2), strides=(2, 1), padding="same", depth_multiplier=2,
                            activation="relu", use_bias=False, depthwise_regularizer="l2",
                            name="dw", dtype="float64"),
            SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=3,
                            activation="tanh", pointwise_initializer="he_normal", name="sep",
                            depthwise_regularizer="l2", pointwise_regularizer="l1")):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config
        assert (config["dilation_rate"], config["data_format"]) == ([1, 1], "channels_last")


def test_save_load_and_to_keras_round_trip(tmp_path, oracle):
    model = xception_in_small()
    model.compile("adam", "categorical_crossentropy")
    x = np.random.default_rng(3).random((5, 11, 11, 3)).astype(np.float32)
    model.set_weights([w + 0.1 if w.ndim == 1 else w for w in model.get_weights()])
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    from minicnn.models import to_keras

    twin = to_keras(model)
    assert [type(layer).__name__ for layer in twin.layers] == [
        type(layer).__name__ for layer in model.layers]
    ours, theirs = model.predict(x, verbose=0), twin.predict(x, verbose=0)
    assert np.abs(ours - theirs).max() <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * np.abs(theirs).max()
    # Keras's own files, both ways: the configs are get_config()'s, the weights in Keras's order
    _, keras = oracle
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0)
    assert np.abs(ours - theirs).max() <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * np.abs(theirs).max()
    twin.save(tmp_path / "keras.keras")
    back = load_model(tmp_path / "keras.keras", compile=False)
    assert back.get_config()["layers"] == model.get_config()["layers"]
    np.testing.assert_array_equal(back.predict(x, verbose=0), ours)
