"""The layer protocol and API: names, shapes, weights, dtypes, initializers and clear errors."""

import numpy as np
import pytest

from minicnn import initializers
from minicnn.layers import (
    Conv2D,
    Dense,
    Flatten,
    Layer,
    MaxPool2D,
    MaxPooling2D,
    ReLU,
    Softmax,
    clear_session,
)
from minicnn.losses import CategoricalCrossentropy, LossHead, SparseCategoricalCrossentropy
from minicnn.optimizers import SGD, Adam
from tests.tolerances import INIT_LIMIT_REACHED, INIT_STD_RTOL, KERNEL_RTOL


def reference_layers():
    return [Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)), MaxPooling2D((2, 2)),
            Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
            Conv2D(64, (3, 3), activation="relu"), Flatten(), Dense(64, activation="relu"),
            Dense(10, activation="softmax")]


def test_keras_names_shapes_and_parameter_counts():
    clear_session()
    layers = reference_layers()
    shape = (None, 28, 28, 1)
    for layer in layers:
        layer.build(shape)
        shape = layer.output_shape
    assert [layer.name for layer in layers] == [
        "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "conv2d_2", "flatten", "dense",
        "dense_1"]
    assert [layer.output_shape for layer in layers] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64),
        (None, 3, 3, 64), (None, 576), (None, 64), (None, 10)]
    assert [layer.count_params() for layer in layers] == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    assert MaxPool2D is MaxPooling2D
    assert ReLU().name == "re_lu" and Softmax().name == "softmax"


def test_weights_have_keras_layouts_and_round_trip():
    conv, dense = Conv2D(4, (3, 2)), Dense(5)
    conv.build((None, 6, 6, 3))
    dense.build((None, 7))
    assert [w.shape for w in conv.get_weights()] == [(3, 2, 3, 4), (4,)]
    assert [w.shape for w in dense.get_weights()] == [(7, 5), (5,)]
    new = [np.full((3, 2, 3, 4), 0.5, np.float32), np.arange(4, dtype=np.float32)]
    conv.set_weights(new)
    for got, want in zip(conv.get_weights(), new, strict=True):
        np.testing.assert_array_equal(got, want)
    conv.get_weights()[0][...] = 9  # a copy: changing it changes nothing
    assert conv.kernel.value[0, 0, 0, 0] == 0.5
    with pytest.raises(ValueError, match=r"expects 2 weights with shapes \[\(3, 2, 3, 4\), "):
        conv.set_weights([new[0]])
    with pytest.raises(ValueError, match="not built"):
        Dense(3).set_weights([])


def test_flatten_is_nhwc_row_major():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(Flatten()(x), x.reshape(2, 60))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(dtype):
    rng = np.random.default_rng(0)
    layers = [Conv2D(4, 3, activation="relu"), MaxPooling2D(2), Flatten(), ReLU(),
              Dense(3, activation="softmax")]
    h = rng.random((2, 12, 12, 1)).astype(dtype)
    for layer in layers:
        h = layer(h)
        assert h.dtype == dtype, layer.name
    g = rng.standard_normal(h.shape).astype(dtype)
    for layer in reversed(layers):
        g = layer.backward(g)
        assert g.dtype == dtype, layer.name
        for p in layer.params:
            assert p.value.dtype == dtype and p.grad.dtype == dtype


def test_forward_and_backward_errors_name_the_layer_and_shapes():
    conv = Conv2D(8, 3, input_shape=(28, 28, 1), name="c1")
    conv.build((None, 28, 28, 1))
    with pytest.raises(ValueError, match=r"'c1'.*expected shape \(None, 28, 28, 1\), received "
                                         r"shape \(4, 28, 28, 3\)"):
        conv(np.zeros((4, 28, 28, 3), np.float32))
    with pytest.raises(TypeError, match="floating-point input, received dtype uint8"):
        conv(np.zeros((1, 28, 28, 1), np.uint8))
    with pytest.raises(TypeError, match="float32 weights but received a float64 input"):
        conv(np.zeros((1, 28, 28, 1), np.float64))
    with pytest.raises(RuntimeError, match=r"backward.*forward"):
        Dense(3).backward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="Put a Flatten layer before it"):
        Dense(3).build((None, 4, 4, 2))
    with pytest.raises(ValueError, match="does not fit"):
        Conv2D(1, 5)(np.zeros((1, 3, 3, 1), np.float32))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Conv2D(0, 3), r"`filters`.*Received filters=0"),
    (lambda: Conv2D(4, (3, 0)), r"`kernel_size`.*Received kernel_size=\(3, 0\)"),
    (lambda: Conv2D(4, 3, strides=-1), r"`strides`"),
    (lambda: Conv2D(4, 3, padding="full"), r"`padding`.*Received padding='full'"),
    (lambda: Conv2D(4, 3, activation="swish2"), r"`activation`.*Received activation='swish2'"),
    (lambda: Dense(-2), r"`units`.*Received units=-2"),
    (lambda: MaxPooling2D(1.5), r"`pool_size`"),
    (lambda: Dense(2, kernel_initializer="twos").build((None, 3)), r"`kernel_initializer`"),
    (lambda: Adam(learning_rate=0), r"`learning_rate`"),
    (lambda: Adam(beta_1=1.0), r"`beta_1`"),
    (lambda: SGD(momentum=2), r"`momentum`"),
])
def test_bad_arguments_are_refused_with_keras_style_messages(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_initializers_follow_keras_and_a_seed_fixes_them():
    rng = np.random.default_rng(0)
    kernel = initializers.GlorotUniform()((3, 3, 32, 64), np.float32, rng)
    limit = np.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))
    assert kernel.dtype == np.float32 and np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > INIT_LIMIT_REACHED * limit
    he = initializers.HeNormal()((200, 300), np.float64, rng)
    # Truncated at two standard deviations (the bound computed here in another order).
    bound = 2 * np.sqrt(2 / 200) / 0.87962566103423978
    assert np.abs(he).max() <= bound * (1 + KERNEL_RTOL["float64"])
    assert abs(he.std() / np.sqrt(2 / 200) - 1) < INIT_STD_RTOL
    a = initializers.GlorotUniform(seed=3)((4, 4), np.float32)
    np.testing.assert_array_equal(a, initializers.GlorotUniform(seed=3)((4, 4), np.float32))
    c1, c2 = Conv2D(4, 3), Conv2D(4, 3)
    c1.rng, c2.rng = np.random.default_rng(5), np.random.default_rng(5)
    c1.build((None, 8, 8, 2))
    c2.build((None, 8, 8, 2))
    np.testing.assert_array_equal(c1.kernel.value, c2.kernel.value)
    assert not c1.bias.value.any()


def test_a_parameter_free_custom_layer_needs_only_forward_and_backward():
    class Halve(Layer):
        def forward(self, x, training=True):
            return x[:, ::2]

        def backward(self, dout):
            raise AssertionError("not called here")

    layer = Halve()
    layer.build((None, 6, 3))
    assert layer.output_shape == (None, 3, 3)
    assert layer.count_params() == 0 and layer.get_weights() == []


def test_backward_never_changes_weights_and_fills_grads():
    rng = np.random.default_rng(0)
    layer = Conv2D(3, 3, activation="relu")
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    y = layer(x)
    before = layer.get_weights()
    layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    for a, b in zip(before, layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(p.grad.any() for p in layer.params)


def test_loss_is_finite_for_huge_logits():
    loss = CategoricalCrossentropy()
    head = Dense(3, activation="softmax", dtype="float64")
    head.build((None, 2))
    head.set_weights([np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]]), np.zeros(3)])
    x = np.array([[1.0, 0.0], [0.0, -1.0], [-1.0, 1.0]])
    p = head(x)
    y = np.eye(3)[[1, 0, 2]]
    loss_head = LossHead(loss, head)
    value = loss_head.per_sample(y, p)
    dx = loss_head.backward(y, p, head)
    assert np.isfinite(value).all() and np.isfinite(dx).all() and np.isfinite(p).all()
    # Sample 0 puts logit 1e4 on class 0 and -1e4 on its true class 1: a loss of exactly 2e4.
    np.testing.assert_allclose(value[0], 2e4)
    assert np.isfinite(loss(y, p))  # the clipped-probability path too


def test_loss_errors_explain_the_label_format():
    p = np.full((4, 10), 0.1, np.float32)
    with pytest.raises(ValueError, match="one-hot encode them with to_categorical"):
        CategoricalCrossentropy()(np.arange(4), p)
    with pytest.raises(ValueError, match=r"integer labels in \[0, 10\)"):
        SparseCategoricalCrossentropy()(np.array([0, 1, 2, 10]), p)
    assert SparseCategoricalCrossentropy()(np.array([0, 1, 2, 3]), p) == pytest.approx(np.log(10))


def test_sgd_follows_keras_rules():
    w = Dense(1, use_bias=False, dtype="float64")
    w.build((None, 1))
    w.set_weights([np.array([[1.0]])])
    w.kernel.grad[...] = 0.5
    plain, momentum, nesterov = SGD(0.1), SGD(0.1, momentum=0.9), SGD(0.1, 0.9, nesterov=True)
    plain.step(w.params)
    assert w.kernel.value[0, 0] == pytest.approx(1 - 0.05)
    value, velocity = w.kernel.value[0, 0], 0.0
    for _ in range(2):
        momentum.step(w.params)
        velocity = 0.9 * velocity - 0.1 * 0.5
        value += velocity
    assert w.kernel.value[0, 0] == pytest.approx(value)
    value, velocity = w.kernel.value[0, 0], 0.0
    nesterov.step(w.params)
    velocity = 0.9 * velocity - 0.05
    assert w.kernel.value[0, 0] == pytest.approx(value + 0.9 * velocity - 0.05)


def test_adam_bias_correction_uses_beta_power_t():
    """Keras's rule: on step t, w -= lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)."""
    layer = Dense(1, use_bias=False, dtype="float64")
    layer.build((None, 1))
    layer.set_weights([np.array([[0.0]])])
    adam, w, m, v = Adam(learning_rate=0.01), 0.0, 0.0, 0.0
    for t, g in enumerate([1.0, -2.0, 0.5], start=1):
        layer.kernel.grad[...] = g
        adam.step(layer.params)
        m += (g - m) * 0.1
        v += (g * g - v) * 0.001
        w -= 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-7)
        assert layer.kernel.value[0, 0] == pytest.approx(w, rel=KERNEL_RTOL["float64"])
    assert adam.iterations == 3


def test_a_copied_or_pickled_layer_keeps_the_shared_activation():
    """Activations are recognised by identity (the fast plan's steps, the fused loss head), so
    a deep copy (gradient checks) or a pickle (a Ray replica) must keep the module's object; a
    parametrised one (leaky_relu with another slope) is copied as it is."""
    import copy
    import pickle

    from minicnn import activations
    from minicnn.layers import Conv2D, Dense

    conv = Conv2D(2, 3, activation="relu")
    conv.build((None, 6, 6, 1))
    for twin in (copy.deepcopy(conv), pickle.loads(pickle.dumps(conv))):
        assert twin.activation is activations.relu
    head = Dense(3, activation="softmax")
    assert copy.deepcopy(head).activation is activations.softmax
    leaky = activations.LeakyReLUActivation(0.3)
    assert copy.deepcopy(leaky).negative_slope == 0.3 and copy.deepcopy(leaky) is not leaky
