"""The fast plan against the reference layers: every step computes what its layers compute.

Each kind of step runs beside the layers it covers, from the same weights, on shapes, strides and
paddings hypothesis draws, and must give the same output, the same input gradient and the same
weight gradients to float rounding (the layers run the textbook im2col + one GEMM; a step sums
the same products in chunks and, for a tiny receptive field, directly). The tests use only the
public plan: `model.plan`, `step.layers`, `step.forward`, `step.backward`.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import layers
from minicnn.fast import ConvPoolStep, ConvStep, LayerStep, make_plan
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.models import Sequential, mnist_cnn
from minicnn.utils import to_categorical
from tests.strategies import seeds, window_setups
from tests.tolerances import (
    FLOAT32_RTOL,
    KERNEL_ATOL,
    KERNEL_RTOL,
    PLAN_RTOL_FACTOR,
    PLAN_TRAINING_ATOL,
)


def scale_close(got, want, dtype):
    """|got - want| <= atol + rtol * max|want|: summation order changes each element's rounding."""
    scale = float(np.abs(want).max(initial=0.0))
    bound = KERNEL_ATOL[dtype] + PLAN_RTOL_FACTOR * KERNEL_RTOL[dtype] * scale
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got - want).max(initial=0.0) <= bound, (np.abs(got - want).max(), bound)


def run_layers(layer_list, x, dout):
    """Forward and backward through the reference layers; (y, dx, [weight gradients])."""
    y = x
    for layer in layer_list:
        y = layer.forward(y, training=True)
    g = dout
    for layer in reversed(layer_list):
        g = layer.backward(g)
    return y, g, [p.grad.copy() for layer in layer_list for p in layer.params]


def assert_step_equals_layers(step, x, rng, dtype, input_gradient):
    """The step against its own layers, run one by one from the same weights."""
    y_ref = x
    for layer in step.layers:
        y_ref = layer.forward(y_ref, training=True)
    dout = rng.standard_normal(y_ref.shape).astype(dtype)
    y_ref, dx_ref, grads_ref = run_layers(step.layers, x, dout)
    y = step.forward(x, training=True)
    scale_close(y, y_ref, dtype)
    dx = step.backward(dout)
    grads = [p.grad.copy() for layer in step.layers for p in layer.params]
    for got, want in zip(grads, grads_ref, strict=True):
        scale_close(got, want, dtype)
    if input_gradient:
        scale_close(dx, dx_ref, dtype)
    else:
        assert dx is None


@given(n=st.integers(1, 3), size=st.integers(4, 11), channels=st.integers(1, 5),
       filters=st.integers(1, 6), kernel=st.integers(1, 3), pool=st.integers(2, 3),
       input_gradient=st.booleans(), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_conv_pool_step_equals_its_two_layers(n, size, channels, filters, kernel, pool,
                                              input_gradient, dtype, seed):
    """Odd maps whose last row and column no window reads; the direct path (tiny receptive
    field) and the im2col path; with and without the input gradient."""
    rng = np.random.default_rng(seed)
    size = max(size, kernel + pool - 1)
    x = rng.standard_normal((n, size, size, channels)).astype(dtype)
    conv = Conv2D(filters, kernel, activation="relu", bias_initializer="he_normal", dtype=dtype)
    conv.rng = rng
    pool_layer = MaxPooling2D(pool)
    pool_layer(conv(x))
    step = ConvPoolStep(conv, pool_layer, input_gradient=input_gradient)
    assert step.layers == (conv, pool_layer)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@given(s=window_setups("conv"), filters=st.integers(1, 6),
       activation=st.sampled_from(["relu", None]), use_bias=st.booleans(),
       input_gradient=st.booleans(), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_conv_step_equals_its_layer(s, filters, activation, use_bias, input_gradient, dtype,
                                    seed):
    """Any stride and padding, direct (receptive field <= 16) and im2col paths."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape).astype(dtype)
    conv = Conv2D(filters, (s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding,
                  activation=activation, use_bias=use_bias, bias_initializer="he_normal",
                  dtype=dtype)
    conv.rng = rng
    conv(x)
    step = ConvStep(conv, input_gradient=input_gradient)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


def test_layer_step_is_the_layer():
    rng = np.random.default_rng(0)
    dense = Dense(3, activation="relu")
    x = rng.standard_normal((4, 5)).astype(np.float32)
    dense(x)
    step = LayerStep(dense)
    assert_step_equals_layers(step, x, rng, "float32", True)


def test_which_layers_become_which_steps():
    relu, pool = Conv2D(4, 3, activation="relu"), MaxPooling2D(2)
    model = Sequential([relu, pool, Conv2D(4, 3), MaxPooling2D(2),
                        Conv2D(4, 3, activation="relu", strides=2),
                        MaxPooling2D(3, strides=2, padding="same"), Flatten(),
                        Dense(3, activation="softmax")])
    model.build((None, 40, 40, 1))
    kinds = [(type(step).__name__, [layer.name for layer in step.layers]) for step in model.plan]
    names = [layer.name for layer in model.layers]
    assert kinds == [
        ("ConvPoolStep", names[0:2]),       # Conv2D(relu) + MaxPooling2D: fused
        ("ConvStep", names[2:3]),           # no ReLU: not fused, but chunked on threads
        ("LayerStep", names[3:4]),
        ("ConvStep", names[4:5]),           # stride 2: not fused
        ("LayerStep", names[5:6]),          # overlapping 'same' pool
        ("LayerStep", names[6:7]),
        ("LayerStep", names[7:8]),          # a softmax head is always the layer itself
    ]
    assert [layer for step in model.plan for layer in step.layers] == model.layers
    assert isinstance(model.plan, tuple)


def test_pairs_that_do_not_qualify_are_not_fused():
    def built(*pair):
        Sequential(list(pair)).build((None, 12, 12, 2))
        return pair

    assert ConvPoolStep.applies(*built(Conv2D(4, 3, activation="relu"), MaxPooling2D(2)))
    for conv, pool in [(Conv2D(4, 3), MaxPooling2D(2)),
                       (Conv2D(4, 3, activation="relu", strides=2), MaxPooling2D(2)),
                       (Conv2D(4, 3, activation="relu", padding="same"), MaxPooling2D(2)),
                       (Conv2D(4, 3, activation="relu", use_bias=False), MaxPooling2D(2)),
                       (Conv2D(4, 3, activation="relu"), MaxPooling2D(3, strides=2)),
                       (Conv2D(4, 3, activation="relu"), MaxPooling2D(2, padding="same"))]:
        assert not ConvPoolStep.applies(*built(conv, pool))
    with pytest.raises(ValueError, match="ConvPoolStep"):
        ConvPoolStep(*built(Conv2D(4, 3), MaxPooling2D(2)))


def test_fast_false_runs_every_layer_on_its_own():
    model = mnist_cnn(seed=1)
    assert len(model.plan) == 6
    model.compile("adam", "categorical_crossentropy", ["accuracy"], fast=False)
    assert [step.layers for step in model.plan] == [(layer,) for layer in model.layers]
    assert all(isinstance(step, LayerStep) for step in model.plan)
    assert make_plan(model.layers, fast=False)[0].layers == (model.layers[0],)


def test_the_fast_plan_trains_like_the_layers_run_one_by_one():
    """Two Adam steps of the MNIST model, fast against fast=False, from the same weights."""
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 16), 10)
    fast, plain = mnist_cnn(seed=1), mnist_cnn(seed=1)
    plain.compile("adam", "categorical_crossentropy", ["accuracy"], fast=False)
    for _ in range(2):
        a, b = fast.train_on_batch(x, y), plain.train_on_batch(x, y)
        np.testing.assert_allclose(a, b, rtol=FLOAT32_RTOL)
    for a, b in zip(fast.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)
    np.testing.assert_allclose(fast.predict(x), plain.predict(x), rtol=0,
                               atol=PLAN_TRAINING_ATOL)


@pytest.mark.parametrize("fast", [True, False])
def test_a_model_ending_in_a_fusable_pair_trains(fast):
    """No softmax head: the loss's gradient goes to the last step, a fused pair here."""
    rng = np.random.default_rng(0)
    model = Sequential([Conv2D(3, 3, activation="relu", input_shape=(9, 9, 1)),
                        MaxPooling2D(7)], seed=0)
    model.compile("adam", "categorical_crossentropy", fast=fast)
    assert type(model.plan[-1]).__name__ == ("ConvPoolStep" if fast else "LayerStep")
    x = rng.random((8, 9, 9, 1), dtype=np.float32) + 0.1
    y = rng.dirichlet(np.ones(3), size=8).reshape(8, 1, 1, 3).astype(np.float32)
    before = model.get_weights()
    losses = [model.train_on_batch(x, y) for _ in range(3)]
    assert all(np.isfinite(losses))
    assert any(np.any(a != b) for a, b in zip(before, model.get_weights(), strict=True))


def test_nothing_before_the_first_weights_gets_a_backward_pass(monkeypatch):
    """Augmentation and Rescaling before the first conv: the conv skips its input gradient, the
    steps before it are never called backward, and training matches the reference plan, which
    runs every layer's backward."""
    backward_calls: list[str] = []
    original = LayerStep.backward

    def spying(self, dout):
        backward_calls.append(self.layers[0].name)
        return original(self, dout)
    monkeypatch.setattr(LayerStep, "backward", spying)

    def model():
        m = Sequential([layers.Input((12, 12, 2)), layers.Rescaling(0.5),
                        layers.RandomFlip("horizontal"), Conv2D(4, 3, activation="relu"),
                        Conv2D(4, 3), Flatten(), Dense(3, activation="softmax")], seed=3)
        return m
    fast, plain = model(), model()
    fast.compile("adam", "categorical_crossentropy")
    plain.compile("adam", "categorical_crossentropy", fast=False)
    assert [type(step).__name__ for step in fast.plan] == [
        "LayerStep", "LayerStep", "ConvStep", "ConvStep", "LayerStep", "LayerStep"]
    assert [step.input_gradient for step in fast.plan[2:4]] == [False, True]
    rng = np.random.default_rng(0)
    x = rng.random((8, 12, 12, 2), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 8), 3)
    fast.train_on_batch(x, y)
    assert backward_calls == [fast.layers[-2].name]  # Flatten (the loss head runs the Dense)
    backward_calls.clear()
    plain.train_on_batch(x, y)
    assert backward_calls[-2:] == [plain.layers[1].name, plain.layers[0].name]
    for a, b in zip(fast.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)


class ModeSpy(layers.Layer):
    """Passes its input through and records the `training` flag of every forward call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[bool] = []

    def forward(self, x, training=False):
        self.seen.append(training)
        self.cache = x.shape
        return x

    def backward(self, dout):
        return dout


def assert_entry_points_pass_their_modes(model, spy, step_classes, kinds, x, y, monkeypatch):
    """fit gives training=True; evaluate, predict and model(x) give False, model(x, training=True)
    True: to the spy layer in `model` and to every step of the kinds in `step_classes` (whose
    forward is patched to record it); every call runs each of `kinds`, the plan's step kinds."""
    seen_by_steps: list[tuple[str, bool]] = []
    for cls in step_classes:
        original = cls.forward

        def spying(self, x, training=False, _original=original):
            seen_by_steps.append((type(self).__name__, training))
            return _original(self, x, training=training)
        monkeypatch.setattr(cls, "forward", spying)

    def modes(run) -> set:
        spy.seen.clear()
        seen_by_steps.clear()
        run()
        assert {kind for kind, _ in seen_by_steps} == kinds
        return set(spy.seen), {flag for _, flag in seen_by_steps}

    assert modes(lambda: model.fit(x[:8], y[:8], batch_size=4, verbose=0)) == ({True}, {True})
    assert modes(lambda: model.evaluate(x, y, verbose=0)) == ({False}, {False})
    assert modes(lambda: model.predict(x)) == ({False}, {False})
    assert modes(lambda: model(x)) == ({False}, {False})
    assert modes(lambda: model(x, training=True)) == ({True}, {True})


@pytest.mark.parametrize("fast", [True, False])
def test_every_entry_point_passes_its_mode_to_every_step(fast, monkeypatch):
    """fit gives training=True; its validation pass, evaluate, predict and model(x) give False,
    to a plain layer (the spy) and to every fused step alike."""
    spy = ModeSpy()
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                        MaxPooling2D(2), spy, Conv2D(4, 3, activation="relu"), Flatten(),
                        Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy", fast=fast)
    kinds = {type(step).__name__ for step in model.plan}
    assert kinds == ({"ConvPoolStep", "ConvStep", "LayerStep"} if fast else {"LayerStep"})
    rng = np.random.default_rng(0)
    x = rng.random((12, 10, 10, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 3, 12), 3)
    assert_entry_points_pass_their_modes(model, spy, (ConvPoolStep, ConvStep, LayerStep), kinds,
                                         x, y, monkeypatch)
    spy.seen.clear()
    model.fit(x, y, batch_size=4, validation_split=0.5, verbose=0)
    assert spy.seen == [True] * 2 + [False] * 2  # 2 training batches, then 2 validation ones
