"""Conv2DTranspose: gradients, TensorFlow, Keras's output sizes and errors, the fast step, files.

Setups are drawn whole (strides 1..3, "valid"/"same", output_padding None or below the stride,
odd sizes, batch 1); the one combination Keras accepts but cannot run (an even kernel, "same",
output_padding 0: no convolution maps the output back to the input's size) is drawn too and must
raise. The forward is also checked against the definition written out as loops: every input
pixel stamps its kernel, scaled, onto the output, stride apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import activations
from minicnn.fast import LayerStep, make_plan
from minicnn.fast.conv_transpose import ConvTransposeStep
from minicnn.gradcheck import check_layer
from minicnn.layers import Conv2D, Conv2DTranspose
from minicnn.layers.conv_transpose import transpose_geometry
from minicnn.models import Sequential, load_model
from tests.strategies import seeds
from tests.test_gradients import assert_passes, bias_away_from_kinks
from tests.test_plan import assert_step_equals_layers
from tests.tolerances import (
    GRADCHECK_TOL,
    KERNEL_ATOL,
    KERNEL_RTOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
)


@dataclass(frozen=True)
class Setup:
    N: int
    H: int
    W: int
    C: int
    F: int
    kernel: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    output_padding: tuple[int, int] | None

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    def layer(self, **kwargs) -> Conv2DTranspose:
        return Conv2DTranspose(self.F, self.kernel, strides=self.strides, padding=self.padding,
                               output_padding=self.output_padding, **kwargs)


def runs(s: Setup) -> bool:
    """False for the even kernel + "same" + output_padding 0 case (see the module docstring)."""
    try:
        for k in range(2):
            transpose_geometry((s.H, s.W)[k], s.kernel[k], s.strides[k], s.padding,
                               None if s.output_padding is None else s.output_padding[k])
    except ValueError:
        return False
    return True


@st.composite
def setups(draw, max_size: int = 6) -> Setup:
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    output_padding = draw(st.none() | st.tuples(st.integers(0, strides[0] - 1),
                                                  st.integers(0, strides[1] - 1)))
    s = Setup(draw(st.integers(1, 3)), draw(st.integers(1, max_size)),
              draw(st.integers(1, max_size)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
              (draw(st.integers(1, 4)), draw(st.integers(1, 4))), strides,
              draw(st.sampled_from(["valid", "same"])), output_padding)
    assume(runs(s))
    return s


# -- the definition, and Keras's size rule written out independently ------------------------------
def keras_length(H: int, K: int, S: int, padding: str, op: int | None) -> int:
    """keras/src/backend/common/backend_utils.py, _get_output_shape_given_tf_padding."""
    if padding == "valid":
        return (H - 1) * S + K + (max(K, S) - K if op is None else op)
    return H * S if op is None else (H - 1) * S + K % 2 + op


def by_definition(x, kernel, bias, s: Setup) -> np.ndarray:
    """Input pixel (i, j) adds x[n, i, j] . kernel[kh, kw, f] at (i*SH - PT + kh, j*SW - PL + kw),
    with TensorFlow's padding of the Conv2D that maps the output back to x's size."""
    (KH, KW), (SH, SW) = s.kernel, s.strides
    op = s.output_padding or (None, None)
    L = [keras_length(n, k, st_, s.padding, o)
         for n, k, st_, o in zip((s.H, s.W), s.kernel, s.strides, op, strict=True)]
    P = [0, 0] if s.padding == "valid" else [
        max((n - 1) * st_ + k - ln, 0) // 2
        for n, k, st_, ln in zip((s.H, s.W), s.kernel, s.strides, L, strict=True)]
    y = np.zeros((s.N, L[0], L[1], s.F)) + bias
    for i, j, kh, kw in np.ndindex(s.H, s.W, KH, KW):
        h, w = i * SH - P[0] + kh, j * SW - P[1] + kw
        if 0 <= h < L[0] and 0 <= w < L[1]:
            y[:, h, w, :] += x[:, i, j, :] @ kernel[kh, kw].T
    return y


@given(s=setups(), seed=seeds())
def test_forward_is_the_definition(s, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape)
    layer = s.layer(bias_initializer="he_normal", dtype="float64")
    layer.rng = rng
    y = layer(x)
    want = by_definition(x, layer.kernel.value, layer.bias.value, s)
    np.testing.assert_allclose(y, want, rtol=KERNEL_RTOL["float64"], atol=KERNEL_ATOL["float64"])
    assert layer.output_shape == (None, *y.shape[1:])


# -- float64 gradient checks ----------------------------------------------------------------------
@pytest.mark.slow  # 40 hypothesis examples: ~3 s
@given(s=setups(), activation=st.sampled_from([None, "relu", "tanh"]), use_bias=st.booleans(),
       seed=seeds())
def test_gradients(s, activation, use_bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape)
    layer = s.layer(activation=activation, use_bias=use_bias or activation == "relu",
                    dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    if activation == "relu":
        bias_away_from_kinks(layer, x)
        first_filter_all_active(layer, x)
    assert_passes(check_layer(layer, x, seed=seed))


def first_filter_all_active(layer: Conv2DTranspose, x: np.ndarray) -> None:
    """Filter 0's bias set so that its every pre-activation is >= 1: the gradient reaches every
    input pixel even where the kink-free biases of bias_away_from_kinks leave only pixels no
    input reaches alive (a 1x1 input, stride 2: one pixel x * w, one the bias alone)."""
    layer.bias.value[0] = 0.0
    relu, layer.activation = layer.activation, activations.linear
    z = layer(x).reshape(-1, layer.filters)[:, 0]
    layer.activation = relu
    layer.bias.value[0] = 1.0 - z.min()


def test_the_checker_catches_a_kernel_flipped_in_backward(monkeypatch):
    """dx computed with the kernel rotated 180 degrees (a transposed conv mistaken for a full
    convolution with the kernel as it is) fails the input's row, and only that one."""
    right = Conv2DTranspose.backward_from_z

    def flipped(self, dz):
        kernel = self.kernel.value.copy()
        self.kernel.value[...] = kernel[::-1, ::-1]
        try:
            dx = right(self, dz)
        finally:
            self.kernel.value[...] = kernel
        return dx

    monkeypatch.setattr(Conv2DTranspose, "backward_from_z", flipped)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 3))
    report = check_layer(Conv2DTranspose(2, 3, strides=2, padding="same"), x)
    assert not report.passed
    assert [t.verdict for t in report.tensors if t.verdict != "ok"] == ["FAIL"]
    assert next(t.name for t in report.tensors if t.verdict == "FAIL").endswith("input")


@given(dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_dtype_is_kept(dtype, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, 3, 2)).astype(dtype)
    layer = Conv2DTranspose(3, 3, strides=2, activation="relu")
    y = layer(x)
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype
    assert layer.kernel.value.shape == (3, 3, 3, 2)  # (kh, kw, filters, c_in)


# -- TensorFlow as the oracle ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle():
    """tests/test_oracle_tf.py (its compare_layer) and keras, imported once."""
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras

    from tests import test_oracle_tf
    return test_oracle_tf, keras


@settings(max_examples=20)
@given(s=setups(max_size=7), activation=st.sampled_from([None, "relu", "sigmoid"]),
       seed=seeds())
def test_agrees_with_tensorflow(oracle, s, activation, seed):
    """y, dx, dkernel and dbias of sum(y * dout) from the same float32 weights; dout is zeroed
    where a float64 pre-activation lies within KINK_MARGIN of a ReLU's kink. `-s` prints them.

    Strides larger than the kernel are left to the definition's tests: there TensorFlow's
    oneDNN kernel is no oracle (a 1x1 kernel with strides (3, 1) gave outputs 0.88 off, in one
    run of three, as its output for what the next test refuses can crash the process)."""
    assume(all(k >= st for k, st in zip(s.kernel, s.strides, strict=True)))
    oracle_tf, keras = oracle
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(np.float32)
    ours = s.layer(activation=activation)
    theirs = keras.layers.Conv2DTranspose(s.F, s.kernel, strides=s.strides, padding=s.padding,
                                          output_padding=s.output_padding, activation=activation)
    kernel, bias = oracle_tf.build_pair(ours, theirs, x, rng)
    z64 = by_definition(x.astype(np.float64), kernel.astype(np.float64), bias, s)
    oracle_tf.compare_layer(ours, theirs, x,
                            oracle_tf.random_dout(rng, z64 if activation == "relu" else None),
                            f"Conv2DTranspose {s} {activation}")


def test_output_shapes_are_keras_over_a_grid(oracle):
    """compute_output_shape equals Keras's for every (size, kernel, stride, padding,
    output_padding) below; the combinations TensorFlow cannot run raise here."""
    _, keras = oracle
    refused = 0
    for size in range(1, 7):
        for K in range(1, 5):
            for S in range(1, 4):
                for padding in ("valid", "same"):
                    for op in (None, *range(S)):
                        ours = Conv2DTranspose(2, (K, 1), strides=(S, 1), padding=padding,
                                               output_padding=None if op is None else (op, 0))
                        theirs = keras.layers.Conv2DTranspose(
                            2, (K, 1), strides=(S, 1), padding=padding,
                            output_padding=None if op is None else (op, 0))
                        want = tuple(theirs.compute_output_shape((None, size, 3, 4)))
                        if padding == "same" and op == 0 and K % 2 == 0:
                            refused += 1
                            with pytest.raises(ValueError, match="no convolution maps"):
                                ours.compute_output_shape((None, size, 3, 4))
                            continue
                        assert ours.compute_output_shape((None, size, 3, 4)) == want
                        assert ours.compute_output_shape((None, None, 3, 4))[1] is None
    assert refused == 6 * 2 * 3  # 6 sizes, even K of 2 and 4, strides 1 to 3 (each with op=0)


def test_tensorflow_cannot_run_what_is_refused(oracle):
    # In a process of its own: TensorFlow's oneDNN kernel for this layer may raise, abort the
    # process, or damage its heap so that a later test or the interpreter's exit crashes
    # (seen: test_conv_transpose.py alone ended in SIGSEGV, SIGABRT or success, 3 runs of 3)
    script = ("import numpy as np, keras\n"
              "x = np.ones((1, 5, 5, 2), np.float32)\n"
              "keras.layers.Conv2DTranspose(3, 2, strides=2, padding='same', output_padding=0)(x)\n"
              "print('ran')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode != 0 and "ran" not in proc.stdout, proc.stdout + proc.stderr[-2000:]
    x = np.ones((1, 5, 5, 2), np.float32)
    with pytest.raises(ValueError, match="Use an odd kernel size, or output_padding >= 1"):
        Conv2DTranspose(3, 2, strides=2, padding="same", output_padding=0)(x)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strides": 2, "output_padding": 2},
     r"`output_padding` must be strictly less than `strides` for all dimensions. At dimension 0, "
     r"`output_padding` is 2 but `strides` is 2. Received: output_padding=\(2, 2\), "
     r"strides=\(2, 2\)"),
    ({"strides": (3, 1), "output_padding": (1, 1)}, r"At dimension 1, `output_padding` is 1"),
    ({"output_padding": 1}, "but `strides` is 1"),
])
def test_keras_refuses_output_padding_at_or_over_the_stride_and_so_do_we(oracle, kwargs, message):
    _, keras = oracle
    with pytest.raises(ValueError, match=message):
        keras.layers.Conv2DTranspose(2, 3, **kwargs)
    with pytest.raises(ValueError, match=message):
        Conv2DTranspose(2, 3, **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"filters": 0}, "Invalid value for argument `filters`.*Received filters=0"),
    ({"dilation_rate": 2}, r"argument `dilation_rate`. Expected 1.*Received dilation_rate=2"),
    ({"data_format": "channels_first"}, "Received data_format='channels_first'"),
    ({"output_padding": -1}, "Invalid value for argument `output_padding`"),
    ({"padding": "full"}, "Received padding='full'"),
])
def test_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Conv2DTranspose(**{"filters": 2, "kernel_size": 3, **kwargs})


# -- the fast step --------------------------------------------------------------------------------
@given(s=setups(), activation=st.sampled_from(["relu", None]), use_bias=st.booleans(),
       input_gradient=st.booleans(), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_fast_step_equals_the_layer(s, activation, use_bias, input_gradient, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(dtype)
    layer = s.layer(activation=activation, use_bias=use_bias, bias_initializer="he_normal",
                    dtype=dtype)
    layer.rng = rng
    layer(x)
    step = ConvTransposeStep(layer, input_gradient=input_gradient)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)
    grads = [p.grad for p in step.params]
    for part, grad in zip(step.partials(), grads, strict=True):
        assert part.shape[0] == step.pieces
        np.testing.assert_array_equal(part.sum(axis=0), grad.reshape(part.shape[1:]))


def decoder() -> Sequential:
    """An MNIST autoencoder's shape in small: two stride-2 convs down, transposed convs up, the
    last with a sigmoid (so binary cross-entropy starts from its logits: backward_from_z)."""
    return Sequential([
        Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(8, 8, 1)),
        Conv2D(6, 3, strides=2, padding="same", activation="relu"),
        Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu"),  # 4x4
        Conv2DTranspose(4, (3, 2), padding="same"),
        Conv2DTranspose(1, 2, strides=2, output_padding=0, activation="sigmoid")], seed=0)


def test_the_plan_runs_it_as_a_fast_step_with_relu_or_none_only():
    model = decoder()
    kinds = [type(step).__name__ for step in model.plan if not isinstance(step, LayerStep)]
    assert kinds.count("ConvTransposeStep") == 2
    sigmoid = Conv2DTranspose(2, 3, activation="sigmoid")
    sigmoid.build((None, 4, 4, 2))
    assert isinstance(make_plan([sigmoid])[0], LayerStep)


def test_an_autoencoder_trains_the_same_in_both_tiers_and_learns():
    """Binary cross-entropy on a sigmoid output (the fused head), Adam, fast plan and reference
    layers from the same start; the loss falls."""
    x = np.random.default_rng(2).random((16, 8, 8, 1)).astype(np.float32)
    x = (x > 0.5).astype(np.float32)
    histories, weights = [], []
    for fast in (True, False):
        model = decoder()
        model.compile("adam", "binary_crossentropy", fast=fast)
        histories.append(model.fit(x, x, batch_size=8, epochs=4, verbose=0).history["loss"])
        weights.append(model.get_weights())
    assert histories[0][-1] < histories[0][0]
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


# -- configs and files ----------------------------------------------------------------------------
def test_config_round_trip():
    layer = Conv2DTranspose(5, (3, 2), strides=(2, 3), padding="same", output_padding=(1, 0),
                            activation="relu", use_bias=False, kernel_regularizer="l2",
                            name="up", dtype="float64")
    config = layer.get_config()
    twin = Conv2DTranspose.from_config(config)
    assert twin.get_config() == config
    assert (config["output_padding"], config["dilation_rate"], config["data_format"]) == (
        [1, 0], [1, 1], "channels_last")
    assert Conv2DTranspose(2, 3).get_config()["output_padding"] is None


def test_save_load_and_to_keras_round_trip(tmp_path, oracle):
    model = decoder()
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(3).random((5, 8, 8, 1)).astype(np.float32)
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


def test_the_fused_sigmoid_head_gradient_is_the_loss_gradient():
    """Binary cross-entropy on a sigmoid Conv2DTranspose starts backward from dL/dz through
    backward_from_z, as fit does; dL/dx and dL/dkernel against central differences of the loss
    in float64. (check_layers works on deep copies, whose activation is no longer the module's
    sigmoid object, so its head would not take the fused path.)"""
    from minicnn.losses import BinaryCrossentropy, LossHead

    rng = np.random.default_rng(5)
    h = rng.standard_normal((2, 3, 2, 3))
    hidden = Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu",
                             bias_initializer="he_normal", dtype="float64")
    last = Conv2DTranspose(1, 2, strides=2, output_padding=1, activation="sigmoid",
                           dtype="float64")
    for layer in (hidden, last):
        layer.rng = rng
    hidden.build(h.shape)
    bias_away_from_kinks(hidden, h)
    y = (rng.random((2, 13, 9, 1)) > 0.5).astype(np.float64)
    head = LossHead(BinaryCrossentropy(), last)
    assert head.from_logits

    def loss() -> float:
        return head.value(y, last(hidden(h)))

    loss()
    dx = hidden.backward(head.backward(y, last.cache.y.reshape(y.shape), last))
    for value, grad in ((h, dx), (last.kernel.value, last.kernel.grad.copy())):
        numeric = np.empty_like(value)
        for i in np.ndindex(value.shape):
            keep = value[i]
            value[i] = keep + 1e-6
            up = loss()
            value[i] = keep - 1e-6
            numeric[i] = (up - loss()) / 2e-6
            value[i] = keep
        error = np.abs(grad - numeric).max() / np.abs(numeric).max()
        assert error < GRADCHECK_TOL, error
