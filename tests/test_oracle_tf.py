"""minicnn against TensorFlow/Keras as the oracle: same weights in, same numbers out (float32).

Each layer's weights are copied into the matching Keras layer with `set_weights`, unchanged:
minicnn keeps Keras's layouts. Forward outputs are compared, and so are dx, dW, db of
f = sum(y * dout) for one random upstream gradient `dout`, which TensorFlow gets from a
GradientTape. Run with `-s` to see the largest differences next to the tolerances. The Adam steps
of the whole model (seconds each, Keras compiling its train step) are marked `slow`.

Kinks are avoided by construction, not by luck: float32 sums in two engines differ by ~1e-6, so a
pre-activation that close to 0 could pass a ReLU in one engine and not in the other. Such elements
get dout = 0, which makes the gradients independent of which side of the kink they fell on. Pool
inputs have distinct values 1/64 apart, so no rounding can change which one wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
keras = pytest.importorskip("keras", reason="Keras 3 comes with TensorFlow")

from minicnn.layers import (  # noqa: E402
    Conv2D,
    Dense,
    Flatten,
    MaxPooling2D,
    Parameter,
    Softmax,
)
from minicnn.losses import CategoricalCrossentropy, LossHead  # noqa: E402
from minicnn.optimizers import Adam, RMSprop  # noqa: E402
from tests.strategies import distinct_values  # noqa: E402
from tests.tolerances import (  # noqa: E402
    ADAM_STEP_ATOL,
    ADAM_STEP_RTOL,
    KINK_MARGIN,
    OPTIMIZER_STEP_ATOL,
    OPTIMIZER_STEP_RTOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)


def report(what: str, ours, theirs, rtol: float, atol: float) -> None:
    """Assert |ours - theirs| <= atol + rtol * max|theirs| elementwise; print the margins (-s).

    rtol is relative to the tensor's largest magnitude, not to each element: a float32 sum
    rounds by an amount proportional to the size of its terms, and an element that is small
    because its terms cancelled (a dW entry summing thousands of products of either sign) keeps
    the rounding of the large terms. This is the gradient checker's measure of error as well.
    """
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (what, ours.dtype, theirs.dtype)
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    scale = float(np.abs(theirs).max(initial=0.0))
    worst = float(diff.max(initial=0.0))
    print(f"{what:<52} max|diff| {worst:.2e}  scale {scale:.2e}  "
          f"max|diff|/scale {worst / scale if scale else 0.0:.2e}  (rtol {rtol:g}, atol {atol:g})")
    bound = atol + rtol * scale
    assert worst <= bound, (
        f"{what}: max|diff| {worst:.3e} > atol + rtol * max|theirs| = {bound:.3e} at index "
        f"{np.unravel_index(diff.argmax(), diff.shape)}; ours\n{ours}\ntheirs\n{theirs}")


def tf_forward_backward(layer, x: np.ndarray, dout_fn):
    """The Keras layer's y, and dx, [dW, db] of sum(y * dout); dout_fn(y) -> dout."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        dout = dout_fn(y.numpy())
        f = tf.reduce_sum(y * dout)
    dx, *dparams = tape.gradient(f, [xt, *layer.trainable_variables])
    return y.numpy(), dout, dx.numpy(), [g.numpy() for g in dparams]


def compare_layer(ours, theirs, x, dout_fn, name):
    """Forward and backward of minicnn layer `ours` and Keras layer `theirs` on x."""
    y_tf, dout, dx_tf, dparams_tf = tf_forward_backward(theirs, x, dout_fn)
    y = ours(x)
    assert y.dtype == np.float32
    report(f"{name}: y", y, y_tf, TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    dx = ours.backward(dout)
    report(f"{name}: dx", dx, dx_tf, TF_GRAD_RTOL, TF_GRAD_ATOL)
    assert len(ours.params) == len(dparams_tf)
    for p, g_tf in zip(ours.params, dparams_tf, strict=True):
        report(f"{name}: d{p.name.split('/')[-1]}", p.grad, g_tf, TF_GRAD_RTOL, TF_GRAD_ATOL)


def random_dout(rng, pre_activation=None):
    """dout_fn drawing a random dout, zeroed where a float64 pre-activation is near a kink."""
    def dout_fn(y):
        dout = rng.standard_normal(y.shape).astype(np.float32)
        if pre_activation is not None:
            dout[np.abs(pre_activation) < KINK_MARGIN] = 0.0
        return dout
    return dout_fn


def build_pair(ours, theirs, x, rng):
    """Build both layers for x, give ours random weights (bias too), copy them into Keras's."""
    ours.rng = rng
    ours.build(x.shape)
    weights = [w if w.ndim > 1 else rng.normal(0, 0.1, w.shape).astype(w.dtype)
               for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    return weights


# -- Conv2D ---------------------------------------------------------------------------------------
CONV_CASES = [
    # (x shape, filters, kernel, strides, padding)
    ((4, 8, 8, 3), 5, (3, 3), (1, 1), "valid"),
    ((4, 8, 8, 3), 5, (3, 3), (1, 1), "same"),
    ((4, 9, 9, 2), 4, (3, 3), (2, 2), "valid"),
    ((4, 9, 9, 2), 4, (3, 3), (2, 2), "same"),
    ((3, 8, 7, 2), 3, (2, 2), (2, 2), "same"),  # even kernel: padding split, extra at the end
    ((3, 7, 10, 3), 4, (3, 2), (2, 1), "same"),  # non-square kernel and strides
    ((2, 6, 6, 4), 2, (5, 5), (1, 1), "same"),
    # The reference model's shapes (batch 8): conv1, conv2 (32 -> 64 on 13x13), conv3.
    ((8, 28, 28, 1), 32, (3, 3), (1, 1), "valid"),
    ((8, 13, 13, 32), 64, (3, 3), (1, 1), "valid"),
    ((8, 5, 5, 64), 64, (3, 3), (1, 1), "valid"),
]


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize(("shape", "filters", "kernel", "strides", "padding"), CONV_CASES)
def test_conv2d_matches_keras(shape, filters, kernel, strides, padding, activation):
    rng = np.random.default_rng(sum(shape) + filters)
    x = rng.standard_normal(shape).astype(np.float32)
    ours = Conv2D(filters, kernel, strides=strides, padding=padding, activation=activation)
    theirs = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                                 activation=activation)
    kernel_w, bias = build_pair(ours, theirs, x, rng)
    z64 = None
    if activation == "relu":
        z64 = (tf.nn.conv2d(x.astype(np.float64), kernel_w.astype(np.float64), strides,
                            padding.upper()).numpy() + bias)
    compare_layer(ours, theirs, x, random_dout(rng, z64),
                  f"Conv2D{shape}->{filters} k{kernel} s{strides} {padding} {activation}")


# -- MaxPooling2D ---------------------------------------------------------------------------------
POOL_CASES = [
    # (x shape, pool size, strides, padding)
    ((4, 8, 8, 3), 2, None, "valid"),
    ((4, 7, 9, 3), 2, None, "valid"),  # odd sizes: the last row/column is dropped
    ((4, 7, 9, 3), 2, None, "same"),  # ... or padded
    ((4, 9, 9, 2), 3, None, "valid"),
    ((4, 8, 8, 2), 3, None, "same"),
    ((4, 9, 8, 2), 3, 2, "valid"),  # overlapping windows
    ((4, 9, 8, 2), 3, 2, "same"),
    ((4, 6, 7, 2), 2, 1, "same"),
    ((4, 8, 5, 2), (3, 2), (1, 2), "same"),
    ((8, 26, 26, 32), 2, None, "valid"),  # the reference model's pool1 (batch 8)
    ((8, 11, 11, 64), 2, None, "valid"),  # and pool2
]


@pytest.mark.parametrize(("shape", "pool", "strides", "padding"), POOL_CASES)
def test_max_pooling2d_matches_keras(shape, pool, strides, padding):
    rng = np.random.default_rng(sum(shape))
    x = distinct_values(rng, shape, np.float32)
    ours = MaxPooling2D(pool, strides=strides, padding=padding)
    theirs = keras.layers.MaxPooling2D(pool, strides=strides, padding=padding)
    compare_layer(ours, theirs, x, random_dout(rng), f"MaxPool{shape} p{pool} s{strides} {padding}")


def test_max_pooling2d_same_padding_never_wins_on_negative_input():
    rng = np.random.default_rng(7)
    x = distinct_values(rng, (2, 5, 5, 3), np.float32) - 100.0  # all far below zero
    ours, theirs = MaxPooling2D(2, padding="same"), keras.layers.MaxPooling2D(2, padding="same")
    compare_layer(ours, theirs, x, random_dout(rng), "MaxPool negative input, same")


# -- Dense, Flatten -------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "units", "activation"), [
    ((8, 7), 5, None),
    ((8, 7), 5, "relu"),
    ((8, 7), 5, "softmax"),
    ((8, 576), 64, "relu"),  # the reference model's dense head, batch 8
    ((8, 64), 10, "softmax"),
])
def test_dense_matches_keras(shape, units, activation):
    rng = np.random.default_rng(sum(shape) + units)
    x = rng.standard_normal(shape).astype(np.float32)
    ours, theirs = Dense(units, activation=activation), keras.layers.Dense(units, activation)
    kernel_w, bias = build_pair(ours, theirs, x, rng)
    z64 = x.astype(np.float64) @ kernel_w + bias if activation == "relu" else None
    compare_layer(ours, theirs, x, random_dout(rng, z64), f"Dense{shape}->{units} {activation}")


def test_flatten_order_matches_keras():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    ours, theirs = Flatten(), keras.layers.Flatten()
    y_tf, dout, dx_tf, _ = tf_forward_backward(theirs, x, random_dout(rng))
    np.testing.assert_array_equal(ours(x), y_tf)  # a reshape: exactly equal
    np.testing.assert_array_equal(ours.backward(dout), dx_tf)


# -- softmax + categorical cross-entropy ------------------------------------------------------
def keras_reported_loss(model, x: np.ndarray, y: np.ndarray) -> float:
    """The categorical cross-entropy `model.evaluate` reports for a Keras model ending in softmax.

    Keras 3's softmax tags its output with `_keras_logits`, and categorical_crossentropy then
    computes softmax_cross_entropy_with_logits from those logits, not -log of the clipped
    probabilities.
    """
    model.compile(loss="categorical_crossentropy")
    return float(model.evaluate(x, y, batch_size=len(y), verbose=0))


def identity_softmax_head(K: int):
    """A Keras model whose Dense softmax head has exactly its input as logits."""
    model = keras.Sequential([keras.Input((K,)), keras.layers.Dense(K, activation="softmax")])
    model.set_weights([np.eye(K, dtype=np.float32), np.zeros(K, np.float32)])
    return model


def minicnn_softmax_ce(logits: np.ndarray, y: np.ndarray):
    """minicnn's loss value and dL/dlogits for a softmax output, as training computes them."""
    layer = Softmax()
    probs = layer(logits)
    head = LossHead(CategoricalCrossentropy(), layer)
    return head(y, probs), head.backward(y, probs, layer), probs


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_softmax_cross_entropy_matches_keras(scale):
    rng = np.random.default_rng(int(scale))
    logits = (rng.standard_normal((8, 10)) * scale).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 8)]
    value, dz, probs = minicnn_softmax_ce(logits, y)

    reported = keras_reported_loss(identity_softmax_head(10), logits, y)
    report(f"CE value (logit scale {scale})", value, reported, TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    z = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss_tf = keras.losses.CategoricalCrossentropy()(y, keras.activations.softmax(z))
    report(f"CE value, loss object (scale {scale})", value, float(loss_tf), TF_FORWARD_RTOL,
           TF_FORWARD_ATOL)
    report(f"CE dL/dlogits (scale {scale})", dz, tape.gradient(loss_tf, z).numpy(),
           TF_GRAD_RTOL, TF_GRAD_ATOL)
    if scale > 10:
        # Saturated softmax: the value from clipped probabilities would be far off, so this case
        # shows both engines really take the logits path.
        clipped = CategoricalCrossentropy()(y, probs)
        assert clipped < reported - 1.0, (clipped, reported)


def test_softmax_cross_entropy_is_finite_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]], dtype=np.float32)
    y = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    value, dz, _ = minicnn_softmax_ce(logits, y)
    assert np.isfinite(value) and np.all(np.isfinite(dz))
    # logsumexp(z) - z[label] per sample: 2e4, 1e4 + log 2 + 1e4, log 3; dz = (p - y) / N.
    report("CE value, logits +-1e4 vs closed form", value,
           (4e4 + np.log(2) + np.log(3)) / 3, TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    expected_dz = np.array([[1, -1, 0], [-1, 0.5, 0.5], [1 / 3, 1 / 3, -2 / 3]]) / 3
    report("CE dL/dlogits, logits +-1e4 vs closed form", dz, expected_dz.astype(np.float32),
           TF_GRAD_RTOL, TF_GRAD_ATOL)
    report("CE value, logits +-1e4 vs Keras", value,
           keras_reported_loss(identity_softmax_head(3), logits, y), TF_FORWARD_RTOL,
           TF_FORWARD_ATOL)


def test_dense_softmax_loss_uses_the_biased_logits():
    """The loss of a Dense softmax head comes from its logits x @ W + b, bias included."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    ours = Dense(4, activation="softmax")
    ours.rng = rng
    ours.build(x.shape)
    kernel_w = ours.get_weights()[0] * 4  # saturated probabilities: logits and clipping differ
    ours.set_weights([kernel_w, rng.normal(0, 3, 4).astype(np.float32)])
    probs = ours(x)
    report("Dense softmax logits", ours.cache.z, x @ kernel_w + ours.get_weights()[1],
           TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
    theirs.set_weights(ours.get_weights())
    value = LossHead(CategoricalCrossentropy(), ours)(y, probs)
    report("Dense softmax CE value", value, keras_reported_loss(theirs, x, y), TF_FORWARD_RTOL,
           TF_FORWARD_ATOL)


# -- one and three Adam steps of the whole reference model ---------------------------------------
def reference_layers():
    return [
        Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        MaxPooling2D(2),
        Conv2D(64, 3, activation="relu"),
        MaxPooling2D(2),
        Conv2D(64, 3, activation="relu"),
        Flatten(),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ]


def reference_keras_model():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def minicnn_train_step(layers, optimizer, x, y) -> float:
    """Forward, loss from the logits, fused softmax-CE backward, backward chain, Adam step."""
    head = LossHead(CategoricalCrossentropy(), layers[-1])
    out = x
    for layer in layers:
        out = layer(out, training=True)
    value = head(y, out)
    g = head.backward(y, out, layers[-1])
    for layer in reversed(layers[:-1]):
        g = layer.backward(g)
    optimizer.step([p for layer in layers for p in layer.params])
    return value


def training_batch(n: int = 16):
    """The first n MNIST training images when $MINICNN_DATA is set, else uniform noise."""
    rng = np.random.default_rng(2024)
    labels = rng.integers(0, 10, n)
    data_dir = os.environ.get("MINICNN_DATA")
    if data_dir:
        from minicnn.datasets import mnist

        (x_train, y_train), _ = mnist.load_data(data_dir)
        x = (x_train[:n].astype(np.float32) / 255.0)[..., None]
        labels = y_train[:n]
    else:
        x = rng.random((n, 28, 28, 1)).astype(np.float32)
    return x, np.eye(10, dtype=np.float32)[labels]


@pytest.mark.slow
@pytest.mark.parametrize("steps", [1, 3])
def test_adam_steps_of_the_reference_model_match_keras(steps):
    x, y = training_batch()
    rng = np.random.default_rng(5)
    layers = reference_layers()
    out = x
    for layer in layers:
        layer.rng = rng
        out = layer(out)
    model = reference_keras_model()
    model.set_weights([w for layer in layers for w in layer.get_weights()])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy")
    optimizer = Adam(learning_rate=1e-3)
    for step in range(steps):
        ours = minicnn_train_step(layers, optimizer, x, y)
        theirs = float(model.train_on_batch(x, y))  # the loss before this step's update
        report(f"loss before Adam step {step + 1}", ours, theirs, TF_FORWARD_RTOL,
               TF_FORWARD_ATOL)
    params = [p for layer in layers for p in layer.params]
    for p, w_tf in zip(params, model.get_weights(), strict=True):
        report(f"after {steps} Adam step(s): {p.name}", p.value, w_tf, ADAM_STEP_RTOL,
               ADAM_STEP_ATOL)


# -- RMSprop, Keras's default optimizer, update by update -----------------------------------------
@pytest.mark.parametrize("config", [{}, {"momentum": 0.9}, {"centered": True},
                                    {"momentum": 0.5, "centered": True, "rho": 0.8,
                                     "learning_rate": 0.01}],
                         ids=["defaults", "momentum", "centered", "both"])
def test_rmsprop_matches_keras_over_ten_steps(config):
    """The same gradients, ten steps, tensors of three shapes: the same weights."""
    rng = np.random.default_rng(11)
    shapes = [(3, 3, 2, 4), (4,), (7, 5)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-4, 1)).astype(np.float32)
              for s in shapes] for _ in range(10)]
    params = [Parameter(f"w{k}", w.copy()) for k, w in enumerate(start)]
    ours = RMSprop(**config)
    variables = [keras.Variable(w.copy()) for w in start]
    theirs = keras.optimizers.RMSprop(**config)
    for step, g in enumerate(grads):
        for p, gk in zip(params, g, strict=True):
            p.grad[...] = gk
        ours.step(params)
        theirs.apply_gradients(zip([tf.constant(gk) for gk in g], variables, strict=True))
        for p, v in zip(params, variables, strict=True):
            report(f"RMSprop {config} step {step + 1} {p.name}", p.value, v.numpy(),
                   OPTIMIZER_STEP_RTOL, OPTIMIZER_STEP_ATOL)
    assert ours.iterations == int(theirs.iterations) == 10


def test_cross_entropy_gradient_of_unnormalised_outputs_matches_keras():
    """An output that is not a softmax (positive, rows not summing to 1): Keras normalises it,
    clips it and takes the log; its gradient with respect to the output is what minicnn's
    CategoricalCrossentropy.gradient must be."""
    rng = np.random.default_rng(12)
    p = rng.uniform(0.05, 3.0, (6, 4)).astype(np.float32)
    p[0, 1] = 1e-9  # a clipped entry, on a true class
    y = np.eye(4, dtype=np.float32)[[1, 0, 3, 2, 2, 0]]
    pt = tf.constant(p)
    with tf.GradientTape() as tape:
        tape.watch(pt)
        value = keras.losses.CategoricalCrossentropy()(y, pt)
    loss = CategoricalCrossentropy()
    report("CE value, unnormalised output", loss(y, p), float(value), TF_FORWARD_RTOL,
           TF_FORWARD_ATOL)
    report("CE dL/doutput, unnormalised output", loss.gradient(y, p),
           tape.gradient(value, pt).numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)
