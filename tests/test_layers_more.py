"""The lesson-two layers and activations: gradient checks, TensorFlow, saving, Input.

AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Rescaling, Activation, LeakyReLU,
and the activations leaky_relu, elu, sigmoid and tanh (through Dense, Conv2D and Activation).
Kinks are avoided by construction as in test_gradients.py and test_oracle_tf.py: inputs of a
leaky_relu or elu sit at least 0.1 from 0 (or a Dense bias in the widest gap of its
pre-activations), and a global max pool sees distinct values, so no nudge changes a branch.
The TensorFlow tests skip, each on its own, when TensorFlow is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import activations
from minicnn.gradcheck import check_layer
from minicnn.layers import (
    Activation,
    AveragePooling2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Input,
    LeakyReLU,
    Rescaling,
    clear_session,
)
from minicnn.models import Sequential, load_model
from tests.strategies import distinct_values, seeds, window_setups
from tests.test_gradients import assert_passes, bias_away_from_kinks
from tests.tolerances import (
    KERNEL_ATOL,
    KERNEL_RTOL,
    PLAN_TRAINING_ATOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
)

NEW_ACTIVATIONS = ["leaky_relu", "elu", "sigmoid", "tanh"]


def away_from_zero(rng, shape):
    """Standard normal values pushed at least 0.1 away from 0, the kink of leaky_relu and elu."""
    n = rng.standard_normal(shape)
    return np.sign(n) * (0.1 + np.abs(n))


# -- float64 gradient checks -----------------------------------------------------------------------
@pytest.mark.slow  # 40 hypothesis examples: 2-5 s
@given(s=window_setups(kind="pool"), seed=seeds())
def test_average_pooling2d_gradients(s, seed):
    rng = np.random.default_rng(seed)
    layer = AveragePooling2D((s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding)
    assert_passes(check_layer(layer, rng.standard_normal(s.x_shape), seed=seed))


def average_pool_by_definition(x, s):
    """y[n, i, j, c]: the mean of the window's elements that lie inside x, one at a time."""
    y = np.empty(s.out_shape)
    for n, i, j, c in np.ndindex(*s.out_shape):
        inside = [x[n, h, w, c]
                  for h in range(i * s.SH - s.PT, i * s.SH - s.PT + s.KH)
                  for w in range(j * s.SW - s.PL, j * s.SW - s.PL + s.KW)
                  if 0 <= h < s.H and 0 <= w < s.W]
        y[n, i, j, c] = sum(inside) / len(inside)
    return y


@given(s=window_setups(kind="pool"), seed=seeds())
def test_average_pooling2d_counts_only_the_elements_inside(s, seed):
    """Keras's "same" average: the padding is not averaged in as zeros."""
    x = np.random.default_rng(seed).standard_normal(s.x_shape)
    y = AveragePooling2D((s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding)(x)
    np.testing.assert_allclose(y, average_pool_by_definition(x, s),
                               rtol=KERNEL_RTOL["float64"], atol=KERNEL_ATOL["float64"])


@pytest.mark.slow  # 40 hypothesis examples: 2-5 s
@given(s=window_setups(kind="pool"), seed=seeds())
def test_global_pooling2d_gradients(s, seed):
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, s.x_shape, np.float64)
    assert_passes(check_layer(GlobalAveragePooling2D(), x, seed=seed))
    assert_passes(check_layer(GlobalMaxPooling2D(), x, seed=seed))


@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       activation=st.sampled_from([*NEW_ACTIVATIONS, "relu", "linear"]),
       slope=st.sampled_from([0.0, 0.3, 1.7]), seed=seeds())
def test_activation_layers_gradients(shape, activation, slope, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    x.flat[0] = abs(x.flat[0])  # all negative through a relu: a gradient of only 0s
    assert_passes(check_layer(Activation(activation), x, seed=seed))
    assert_passes(check_layer(LeakyReLU(negative_slope=slope), x, seed=seed))


@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       scale=st.floats(-3, 3).filter(lambda v: abs(v) > 1e-2), offset=st.floats(-2, 2),
       seed=seeds())
def test_rescaling_gradients(shape, scale, offset, seed):
    rng = np.random.default_rng(seed)
    assert_passes(check_layer(Rescaling(scale, offset), rng.standard_normal(shape), seed=seed))


@given(n=st.integers(1, 4), features=st.integers(1, 7), units=st.integers(1, 6),
       activation=st.sampled_from(NEW_ACTIVATIONS), seed=seeds())
def test_dense_with_new_activations_gradients(n, features, units, activation, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    layer = Dense(units, activation=activation, bias_initializer="he_normal", dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    if activation in ("leaky_relu", "elu"):
        bias_away_from_kinks(layer, x)
    assert_passes(check_layer(layer, x, seed=seed))


@pytest.mark.slow  # 40 hypothesis examples: 2-5 s
@given(s=window_setups(kind="conv"), activation=st.sampled_from(NEW_ACTIVATIONS), seed=seeds())
def test_conv2d_with_new_activations_gradients(s, activation, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(s.x_shape)
    layer = Conv2D(2, (s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding,
                   activation=activation, dtype="float64")
    layer.rng = rng
    layer.build(x.shape)
    bias_away_from_kinks(layer, x)
    assert_passes(check_layer(layer, x, seed=seed))


def test_the_checker_catches_a_wrong_elu_backward(monkeypatch):
    """elu's negative branch differentiated as a * y instead of y + a must fail the check."""
    monkeypatch.setattr(activations.ELUActivation, "backward",
                        lambda self, dout, y: np.where(y > 0, dout, dout * y))
    x = away_from_zero(np.random.default_rng(0), (3, 4))
    assert not check_layer(Activation("elu"), x).passed


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_activations_keep_float32_and_are_finite_far_out(name):
    z = np.array([[-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise"):
        y = activations.get(name).forward(z)
    assert y.dtype == np.float32 and np.isfinite(y).all()


# -- TensorFlow as the oracle ---------------------------------------------------------------------
def oracle():
    """tests/test_oracle_tf.py's helpers and keras; skips the calling test without TensorFlow."""
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras

    from tests import test_oracle_tf
    return test_oracle_tf, keras


AVG_POOL_CASES = [
    # (x shape, pool_size, strides, padding)
    ((2, 6, 6, 3), (2, 2), None, "valid"),
    ((2, 7, 7, 3), (2, 2), None, "same"),
    ((2, 7, 8, 2), (3, 3), (2, 2), "same"),
    ((2, 9, 9, 2), (3, 2), (2, 1), "valid"),
    ((3, 5, 6, 4), (3, 3), (1, 1), "same"),  # overlapping windows, padding on every side
]


@pytest.mark.parametrize(("shape", "pool_size", "strides", "padding"), AVG_POOL_CASES)
def test_average_pooling2d_matches_keras(shape, pool_size, strides, padding):
    oracle_tf, keras = oracle()
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    oracle_tf.compare_layer(
        AveragePooling2D(pool_size, strides=strides, padding=padding),
        keras.layers.AveragePooling2D(pool_size, strides=strides, padding=padding),
        x, oracle_tf.random_dout(rng), f"AveragePooling2D{pool_size} {strides} {padding}")


@pytest.mark.parametrize("kind", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
def test_global_pooling2d_matches_keras(kind):
    oracle_tf, keras = oracle()
    rng = np.random.default_rng(3)
    x = distinct_values(rng, (3, 5, 4, 6), np.float32)
    ours = {"GlobalAveragePooling2D": GlobalAveragePooling2D,
            "GlobalMaxPooling2D": GlobalMaxPooling2D}[kind]()
    oracle_tf.compare_layer(ours, getattr(keras.layers, kind)(), x, oracle_tf.random_dout(rng),
                            kind)


def test_rescaling_and_leaky_relu_layers_match_keras():
    oracle_tf, keras = oracle()
    rng = np.random.default_rng(4)
    x = away_from_zero(rng, (3, 4, 5, 2)).astype(np.float32)
    oracle_tf.compare_layer(Rescaling(1 / 255, offset=-0.5),
                            keras.layers.Rescaling(1 / 255, offset=-0.5), x,
                            oracle_tf.random_dout(rng), "Rescaling")
    oracle_tf.compare_layer(LeakyReLU(), keras.layers.LeakyReLU(), x, oracle_tf.random_dout(rng),
                            "LeakyReLU()")
    oracle_tf.compare_layer(LeakyReLU(0.05), keras.layers.LeakyReLU(negative_slope=0.05), x,
                            oracle_tf.random_dout(rng), "LeakyReLU(0.05)")


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_activation_layer_and_dense_match_keras(activation):
    oracle_tf, keras = oracle()
    rng = np.random.default_rng(len(activation))
    x = away_from_zero(rng, (4, 6)).astype(np.float32)
    oracle_tf.compare_layer(Activation(activation), keras.layers.Activation(activation), x,
                            oracle_tf.random_dout(rng), f"Activation({activation!r})")
    ours, theirs = Dense(5, activation=activation), keras.layers.Dense(5, activation=activation)
    kernel, bias = oracle_tf.build_pair(ours, theirs, x, rng)
    z64 = x.astype(np.float64) @ kernel + bias
    kinked = activation in ("leaky_relu", "elu")
    oracle_tf.compare_layer(ours, theirs, x, oracle_tf.random_dout(rng, z64 if kinked else None),
                            f"Dense(activation={activation!r})")


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
def test_conv2d_with_new_activations_matches_keras(activation):
    oracle_tf, keras = oracle()
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
    ours = Conv2D(4, (3, 3), padding="same", activation=activation)
    theirs = keras.layers.Conv2D(4, (3, 3), padding="same", activation=activation)
    kernel, bias = oracle_tf.build_pair(ours, theirs, x, rng)
    z64 = tf.nn.conv2d(x.astype(np.float64), kernel.astype(np.float64), 1, "SAME").numpy() + bias
    oracle_tf.compare_layer(ours, theirs, x, oracle_tf.random_dout(rng, z64),
                            f"Conv2D(activation={activation!r})")


def test_keras_defaults_are_ours():
    """LeakyReLU the layer defaults to 0.3, leaky_relu the function to 0.2, as in Keras 3."""
    _, keras = oracle()
    z = np.array([[-2.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(LeakyReLU()(z), keras.layers.LeakyReLU()(z).numpy())
    np.testing.assert_array_equal(activations.leaky_relu.forward(z),
                                  keras.activations.leaky_relu(z).numpy())
    assert (LeakyReLU().negative_slope, activations.leaky_relu.negative_slope) == (0.3, 0.2)
    for name in NEW_ACTIVATIONS:
        z = np.linspace(-4, 4, 33, dtype=np.float32)[None]
        oracle()[0].report(f"activations.{name}", activations.get(name).forward(z),
                         keras.activations.get(name)(z).numpy(), TF_FORWARD_RTOL, TF_FORWARD_ATOL)


# -- models: saving, Input, summary ----------------------------------------------------------------
def lesson_two_model(first):
    """Every new layer and activation in one small model; `first` gives the input shape."""
    return Sequential([
        *first, Rescaling(1 / 255, offset=-0.5),
        Conv2D(4, 3, activation="elu", padding="same"), AveragePooling2D(padding="same"),
        LeakyReLU(0.1), Conv2D(4, 3, activation="tanh"), Activation("leaky_relu"),
        GlobalMaxPooling2D(), Dense(6, activation="sigmoid"), Dense(3, activation="softmax"),
    ], seed=0)


def test_save_and_load_round_trip(tmp_path):
    model = lesson_two_model([Input(shape=(9, 9, 1))])
    model2 = Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), GlobalAveragePooling2D(),
                         Flatten(), Dense(2)], seed=1)
    x = np.random.default_rng(0).uniform(0, 255, (5, 9, 9, 1)).astype(np.float32)
    for m, xs in ((model, x), (model2, x[:, :6, :6])):
        m.compile("adam", "categorical_crossentropy")
        m.save(tmp_path / "m.npz")
        loaded = load_model(tmp_path / "m.npz")
        assert [type(a) for a in loaded.layers] == [type(b) for b in m.layers]
        assert loaded.get_config() == m.get_config()
        np.testing.assert_array_equal(loaded.predict(xs, verbose=0), m.predict(xs, verbose=0))
    assert loaded.layers[0].input_shape == (None, 6, 6, 1)


def test_lesson_two_model_trains_one_step_in_both_tiers():
    x = np.random.default_rng(1).uniform(0, 255, (8, 9, 9, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(8) % 3]
    after = []
    for fast in (True, False):
        model = lesson_two_model([Input((9, 9, 1))])
        model.compile("adam", "categorical_crossentropy", fast=fast)
        before = model.get_weights()
        model.train_on_batch(x, y)
        after.append(model.get_weights())
        assert all(not np.array_equal(a, b) for a, b in zip(before, after[-1], strict=True))
    for a, b in zip(*after, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)


def test_input_gives_the_summary_of_input_shape():
    def summary(make_layers):
        clear_session()  # before the layers are made, so both get the names conv2d, dense, ...
        lines = []
        Sequential(make_layers(), seed=0).summary(print_fn=lines.append)
        return "\n".join(lines)

    with_input = summary(lambda: [Input(shape=(28, 28, 1)), Conv2D(32, (3, 3), activation="relu"),
                                  GlobalAveragePooling2D(), Dense(10)])
    with_shape = summary(lambda: [Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                                  GlobalAveragePooling2D(), Dense(10)])
    assert with_input == with_shape
    assert "Input" not in with_input and "Total params: 650" in with_input


def test_input_only_first_and_consistent():
    with pytest.raises(ValueError, match="first element"):
        Sequential([Dense(2, input_shape=(3,)), Input((3,))])
    with pytest.raises(ValueError, match="follows Input"):
        Sequential([Input((3,)), Dense(2, input_shape=(4,))])
    with pytest.raises(ValueError, match="argument `shape`"):
        Input((0, 3))
    model = Sequential([Input((3,)), Dense(2)])
    assert model.built and model.input_shape == (None, 3)


def test_arguments_are_checked_with_keras_messages():
    with pytest.raises(ValueError, match="Received activation='swish2'"):
        Activation("swish2")
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(-0.1)
    with pytest.raises(ValueError, match="Received pool_size=0"):
        AveragePooling2D(0)
    with pytest.raises(ValueError, match="Received scale='a'"):
        Rescaling("a")


def test_a_non_default_activation_instance_is_not_saved_as_the_default(tmp_path):
    """Dense(activation=LeakyReLUActivation(0.1)) must not come back from a file with 0.2."""
    model = Sequential([Dense(2, activation=activations.LeakyReLUActivation(0.1),
                              input_shape=(3,))], seed=0)
    model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"negative_slope=0\.1"):
        load_model(tmp_path / "m.npz")


def test_summary_wraps_long_layer_names_as_keras_does():
    """"global_average_pooling2d (GlobalAveragePooling2D)" does not fit Keras's first column:
    Keras wraps it at the space onto two lines, and so must summary()."""
    keras = pytest.importorskip("keras", reason="Keras's summary is the oracle")
    from minicnn.layers import AveragePooling2D, Conv2D, Dense, GlobalAveragePooling2D, Input

    names = ("conv2d", "average_pooling2d", "global_average_pooling2d", "dense")
    ours = Sequential([Input((8, 8, 3)), Conv2D(4, 3, name=names[0]),
                       AveragePooling2D(2, name=names[1]), GlobalAveragePooling2D(name=names[2]),
                       Dense(2, name=names[3])], name="sequential")
    theirs = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name=names[0]),
                               keras.layers.AveragePooling2D(2, name=names[1]),
                               keras.layers.GlobalAveragePooling2D(name=names[2]),
                               keras.layers.Dense(2, name=names[3])], name="sequential")
    ours_lines, theirs_lines = [], []
    ours.summary(print_fn=ours_lines.append)
    theirs.summary(print_fn=lambda line, **kwargs: theirs_lines.append(line))
    assert "\n".join(ours_lines).strip() == "\n".join(theirs_lines).strip()
