"""RandomRotation, RandomZoom, RandomContrast: random in training only, each backward checked.

Oracles: central differences (every backward, with the draws fixed by a seeded generator);
np.rot90 (quarter turns); Keras 3 on TensorFlow, given the same angle, zoom or contrast factor
(every fill mode and interpolation). TensorFlow registers an approximate gradient for its image
transform (the inverse map applied to dout, not the transpose), so the rotation's and zoom's
input gradient is compared with the exact transpose of TensorFlow's *forward* map, which is
linear in x: its Jacobian is TensorFlow's output on the unit images.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.gradcheck import check_layer
from minicnn.layers import Conv2D, Dense, Flatten, RandomContrast, RandomRotation, RandomZoom
from minicnn.models import Sequential, load_model, to_keras
from tests.strategies import seeds
from tests.tolerances import (
    GRADCHECK_TOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def pair(low, high):
    """A factor as Keras takes it: one number f or a pair (lower, upper), each in [low, high]."""
    bound = st.floats(low, high, allow_nan=False)
    return st.one_of(bound, st.tuples(bound, bound))


# -- the backward, by central differences ---------------------------------------------------

def assert_checked(layer, x, training, seed):
    report = check_layer(layer, x, training=training, seed=seed)
    twin = copy.deepcopy(layer)  # the checker replays the layer's draws: the twin's
    twin(x, training=training)
    read = getattr(twin.cache, "weight", getattr(twin.cache, "passed", None))
    if read is not None and not read.any():
        # "constant" with every point read outside (a 1 x 2 image turned a quarter), or every
        # value clipped: dx = 0, and the checker must say it compared nothing rather than pass
        assert {t.verdict for t in report.tensors} == {"nothing compared (all 0)"}, str(report)
        return
    assert report.passed, str(report)
    assert report.max_error < GRADCHECK_TOL


shapes = {"n": st.integers(1, 2), "h": st.integers(1, 6), "w": st.integers(1, 6),
          "c": st.integers(1, 2)}
moves = {"fill_mode": st.sampled_from(FILL_MODES), "training": st.booleans(), "seed": seeds(),
         "interpolation": st.sampled_from(INTERPOLATIONS), "fill_value": st.sampled_from([0, 1.5])}


@given(factor=pair(-1, 1), **shapes, **moves)
def test_rotation_gradient_check(n, h, w, c, factor, fill_mode, interpolation, fill_value,
                                 training, seed):
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    layer = RandomRotation(factor, fill_mode, interpolation, seed % 1000, fill_value,
                           dtype="float64")
    assert_checked(layer, x, training, seed)


@given(height_factor=pair(-0.9, 1), width_factor=st.none() | pair(-0.9, 1), **shapes, **moves)
def test_zoom_gradient_check(n, h, w, c, height_factor, width_factor, fill_mode, interpolation,
                             fill_value, training, seed):
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    layer = RandomZoom(height_factor, width_factor, fill_mode, interpolation, seed % 1000,
                       fill_value, dtype="float64")
    assert_checked(layer, x, training, seed)


@given(factor=pair(0, 1), clip=st.booleans(), training=st.booleans(), seed=seeds(), **shapes)
def test_contrast_gradient_check(n, h, w, c, factor, clip, training, seed):
    # value_range (-1, 1) clips about a third of N(0, 1) values: the mask is checked too
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    layer = RandomContrast(factor, (-1, 1) if clip else (-50, 50), seed=seed % 1000,
                           dtype="float64")
    assert_checked(layer, x, training, seed)


def test_gradient_check_catches_a_wrong_backward():
    class Gathering(RandomRotation):  # reads dout as forward read x: not the transpose
        def backward(self, dout):
            return self.transform(dout, self.cache.transform)

    class Meanless(RandomContrast):  # forgets that every pixel moves the channel's mean
        def backward(self, dout):
            return self.cache.factor[:, None, None, None] * np.where(self.cache.passed, dout, 0)

    x = np.random.default_rng(0).standard_normal((2, 5, 6, 2))
    for right, wrong in [(RandomRotation(0.3, seed=0), Gathering(0.3, seed=0)),
                         (RandomContrast(0.9, (-9, 9), seed=0), Meanless(0.9, (-9, 9), seed=0))]:
        assert check_layer(right, x).passed
        report = check_layer(wrong, x)
        assert not report.passed and report.max_error > 1e3 * GRADCHECK_TOL, str(report)


# -- what the layers compute ------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_quarter_turns_are_np_rot90_counterclockwise(interpolation):
    x = np.random.default_rng(1).standard_normal((3, 5, 5, 2)).astype(np.float32)
    layer = RandomRotation(1.0, interpolation=interpolation)
    for k in (1, 2, -1):
        np.testing.assert_allclose(layer.rotate(x, k * np.pi / 2), np.rot90(x, k, axes=(1, 2)),
                                   atol=1e-6)


def test_draws_are_per_image_within_the_factors_and_inference_does_nothing():
    x = np.random.default_rng(0).random((300, 6, 7, 2), dtype=np.float32) * 255
    rotation = RandomRotation((-0.1, 0.25), seed=1)
    zoom = RandomZoom((-0.5, 0.2), (0.2, -0.5), seed=2)
    contrast, square = RandomContrast((0.3, 0.6), seed=3), RandomZoom(0.4, seed=4)
    for layer in (rotation, zoom, contrast, square):
        layer(x)  # training=None: augments, as Keras 3's
    angle = np.arctan2(rotation.cache.transform[:, 3], rotation.cache.transform[:, 0])
    height_zoom, width_zoom = zoom.cache.transform[:, 4], zoom.cache.transform[:, 0]
    for drawn, low, high in [(angle / (2 * np.pi), -0.1, 0.25), (height_zoom, 0.5, 1.2),
                             (width_zoom, 0.5, 1.2), (contrast.cache.factor, 0.7, 1.6)]:
        assert low <= drawn.min() < low + 0.05 and high - 0.05 < drawn.max() <= high
        assert len(np.unique(drawn)) == len(x)  # one per image
    assert not np.array_equal(height_zoom, width_zoom)
    np.testing.assert_array_equal(square.cache.transform[:, 0], square.cache.transform[:, 4])
    dout = np.random.default_rng(1).random(x.shape, dtype=np.float32)
    for layer in (rotation, zoom, contrast):
        y = layer(x, training=False)
        assert y is not x and y.dtype == np.float32
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(layer.backward(dout), dout)


def test_keras_reads_one_contrast_number_as_zero_to_it():
    layer = RandomContrast(0.5)  # Keras 3.15: (0, 0.5), so contrast in [1, 1.5]
    assert (layer.lower, layer.upper) == (0.0, 0.5)
    x = np.random.default_rng(0).random((200, 3, 3, 1)) * 100
    layer(x)
    assert layer.cache.factor.min() >= 1 and layer.cache.factor.max() <= 1.5


def test_a_seeded_model_augments_the_same_way_every_run_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 7, 7, 1), dtype=np.float32) * 255
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 16)]

    def trained():
        model = Sequential([RandomRotation(0.2, "constant", "nearest", fill_value=9.0,
                                           input_shape=(7, 7, 1)),
                            RandomZoom((-0.3, 0.2), 0.1, "wrap"), RandomContrast((0.2, 0.4)),
                            Conv2D(2, 3, activation="relu"), Flatten(),
                            Dense(2, activation="softmax")], seed=4)
        model.compile("adam", "categorical_crossentropy")
        assert np.all(np.isfinite(model.fit(x, y, batch_size=4, epochs=2,
                                            verbose=0).history["loss"]))
        return model

    a, b = trained(), trained()
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    a.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    for ours, theirs in zip(a.layers[:3], loaded.layers[:3], strict=True):
        assert type(theirs) is type(ours) and theirs.get_config() == ours.get_config()
        assert type(ours).from_config(ours.get_config()).get_config() == ours.get_config()
    np.testing.assert_array_equal(loaded.predict(x), a.predict(x))  # no draws at inference
    keras_on_tensorflow()
    np.testing.assert_allclose(to_keras(a).predict(x, verbose=0), a.predict(x),
                               rtol=TF_FORWARD_RTOL, atol=TF_FORWARD_ATOL)


def test_keras_files_carry_the_layers_both_ways(tmp_path):
    keras = keras_on_tensorflow()
    model = Sequential([RandomRotation((-0.2, 0.1), "wrap", seed=1, input_shape=(6, 5, 2)),
                        RandomZoom(0.3, (-0.1, 0.2), "constant", "nearest", fill_value=1.0),
                        RandomContrast(0.4, (0, 1)), Flatten(), Dense(3)])
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).random((4, 6, 5, 2), dtype=np.float32)
    theirs = keras.models.load_model(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in theirs.layers[:3]] == [
        "RandomRotation", "RandomZoom", "RandomContrast"]
    assert tuple(theirs.layers[2].factor) == (0, 0.4) and theirs.layers[1].fill_mode == "constant"
    assert_close(theirs.predict(x, verbose=0), model.predict(x))
    back = load_model(tmp_path / "m.keras")
    for ours, loaded in zip(model.layers[:3], back.layers[:3], strict=True):
        assert {k: plain(v) for k, v in loaded.get_config().items()} == {
            k: plain(v) for k, v in ours.get_config().items()}


@pytest.mark.parametrize(("make", "argument", "received"), [
    (lambda: RandomRotation(1.5), "factor", "1.5"),
    (lambda: RandomRotation((0.1,)), "factor", "(0.1,)"),
    (lambda: RandomRotation((-2, 0.5)), "factor", "(-2, 0.5)"),
    (lambda: RandomRotation("0.2"), "factor", "'0.2'"),
    (lambda: RandomRotation(0.1, fill_mode="mirror"), "fill_mode", "'mirror'"),
    (lambda: RandomRotation(0.1, interpolation="bicubic"), "interpolation", "'bicubic'"),
    (lambda: RandomRotation(0.1, fill_value=None), "fill_value", "None"),
    (lambda: RandomZoom(-1.0), "height_factor", "-1.0"),
    (lambda: RandomZoom((0.2, -1)), "height_factor", "(0.2, -1)"),
    (lambda: RandomZoom(0.2, 1.2), "width_factor", "1.2"),
    (lambda: RandomZoom(0.2, True), "width_factor", "True"),
    (lambda: RandomZoom(0.2, fill_mode="edge"), "fill_mode", "'edge'"),
    (lambda: RandomContrast(-0.2), "factor", "-0.2"),
    (lambda: RandomContrast((0.2, 1.5)), "factor", "(0.2, 1.5)"),
    (lambda: RandomContrast(0.2, (255, 0)), "value_range", "(255, 0)"),
    (lambda: RandomContrast(0.2, 255), "value_range", "255"),
])
def test_argument_errors_name_the_argument_and_what_was_received(make, argument, received):
    with pytest.raises(ValueError, match=f"`{argument}`. Expected") as e:
        make()
    assert f"Received {argument}={received}" in str(e.value)


def test_input_must_be_4d():
    for layer in (RandomRotation(0.1), RandomZoom(0.1), RandomContrast(0.1)):
        with pytest.raises(ValueError, match=r"4-D input .* received input_shape=\(None, 5, 5\)"):
            layer(np.zeros((2, 5, 5), np.float32))


# -- Keras on TensorFlow ----------------------------------------------------------------------

def keras_on_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle")
    keras = pytest.importorskip("keras", reason="Keras is the oracle")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs on another backend than TensorFlow")
    return keras


def assert_close(ours, theirs, rtol=TF_FORWARD_RTOL, atol=TF_FORWARD_ATOL):
    # TensorFlow computes each sample point and bilinear weight in float32, ours in float64
    # (~1e-7 of a coordinate): within the TF forward tolerance, scaled by the largest value.
    assert np.abs(ours - theirs).max() <= atol + rtol * np.abs(theirs).max()


def keras_rotation_matrix(keras, degrees, H, W):
    """Keras's own transform for these angles (degrees, float32), as its layer computes it."""
    zero, N = np.zeros(len(degrees), np.float32), len(degrees)
    return np.asarray(keras.layers.RandomRotation(0.1)._compute_affine_matrix(
        0.5, 0.5, keras.ops.convert_to_tensor(degrees), zero, zero, np.ones(N, np.float32),
        zero, zero, H, W))


SIZES = [(1, 4), (3, 1), (5, 4), (7, 8)]


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_keras_rotates_and_zooms_the_same_way(fill_mode, interpolation):
    keras = keras_on_tensorflow()
    rng = np.random.default_rng(2)
    kwargs = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": -2.5}
    rotate, zoom = keras.layers.RandomRotation(1.0, **kwargs), keras.layers.RandomZoom(1, 1,
                                                                                      **kwargs)
    for H, W in SIZES:
        N = 32
        x = rng.standard_normal((N, H, W, 2)).astype(np.float32)
        degrees = rng.uniform(-360, 360, N).astype(np.float32)
        matrix = keras_rotation_matrix(keras, degrees, H, W)
        ours = RandomRotation(1.0, **kwargs)
        y = ours.rotate(x, np.deg2rad(degrees.astype(np.float64)))
        np.testing.assert_allclose(ours.cache.transform, matrix, atol=1e-5)  # one convention
        assert_close(y, np.asarray(rotate.transform_images(
            x, {"rotation_matrix": matrix}, training=True)))
        heights, widths = (rng.uniform(0.1, 2, (2, N)).astype(np.float32))
        y = RandomZoom(1, 1, **kwargs).zoom(x, heights, widths)
        assert_close(y, np.asarray(zoom.transform_images(
            x, {"height_zoom": heights[:, None], "width_zoom": widths[:, None]}, training=True)))


def test_keras_layers_with_one_point_ranges_draw_what_ours_do():
    """A factor (a, a) draws a every time, in both engines: the whole call agrees."""
    keras = keras_on_tensorflow()
    x = np.random.default_rng(3).standard_normal((4, 9, 7, 3)).astype(np.float32)
    for ours, theirs in [(RandomRotation((0.15, 0.15)), keras.layers.RandomRotation((0.15, 0.15))),
                         (RandomRotation((-0.3, -0.3), "constant", fill_value=2.0),
                          keras.layers.RandomRotation((-0.3, -0.3), "constant", fill_value=2.0)),
                         (RandomZoom((-0.4, -0.4)), keras.layers.RandomZoom((-0.4, -0.4))),
                         (RandomZoom((0.3, 0.3), (-0.2, -0.2), "nearest", "nearest"),
                          keras.layers.RandomZoom((0.3, 0.3), (-0.2, -0.2), "nearest",
                                                  "nearest"))]:
        assert_close(ours(x, training=True), np.asarray(theirs(x, training=True)))


def tf_jacobian(keras_transform, H, W):
    """J (H*W, H*W) of a transform of one H x W x 1 image: TensorFlow's output on unit images."""
    units = np.eye(H * W, dtype=np.float32).reshape(H * W, H, W, 1)
    return np.asarray(keras_transform(units)).reshape(H * W, H * W).T  # J[p, q] = dy_p / dx_q


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_backward_is_the_transpose_of_tensorflows_map(fill_mode, interpolation):
    keras = keras_on_tensorflow()
    rng = np.random.default_rng(4)
    kwargs = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 0.0}
    rotate, zoom = keras.layers.RandomRotation(1.0, **kwargs), keras.layers.RandomZoom(1, 1,
                                                                                      **kwargs)
    for H, W in [(5, 4), (6, 6)]:
        turn, scale = RandomRotation(1.0, **kwargs), RandomZoom(1, 1, **kwargs)
        matrix = keras_rotation_matrix(keras, rng.uniform(-180, 180, 1).astype(np.float32), H, W)
        heights, widths = rng.uniform(0.3, 1.8, (2, 1)).astype(np.float32)
        cases = [
            (lambda a, t=turn, m=matrix: t.transform(a, m), turn,
             lambda u, m=matrix: rotate.transform_images(
                 u, {"rotation_matrix": np.repeat(m, len(u), 0)}, training=True)),
            (lambda a, z=scale, h=heights, w=widths: z.zoom(a, h, w), scale,
             lambda u, h=heights, w=widths: zoom.transform_images(
                 u, {"height_zoom": np.full((len(u), 1), h),
                     "width_zoom": np.full((len(u), 1), w)}, training=True)),
        ]
        for forward, layer, theirs in cases:
            J = tf_jacobian(theirs, H, W)
            x, dout = rng.standard_normal((2, 1, H, W, 1)).astype(np.float32)
            assert_close(forward(x).ravel(), J @ x.ravel())
            assert_close(layer.backward(dout).ravel(), J.T @ dout.ravel(), TF_GRAD_RTOL,
                         TF_GRAD_ATOL)


@pytest.mark.parametrize("value_range", [(0, 255), (40, 200)])
def test_keras_adjusts_contrast_alike_with_the_same_gradient(value_range):
    keras = keras_on_tensorflow()
    import tensorflow as tf

    rng = np.random.default_rng(5)
    x = (rng.random((8, 5, 6, 3)) * 255).astype(np.float32)
    factor = rng.uniform(0.2, 2.0, 8).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    layer = RandomContrast((0.8, 1.0), value_range)
    y = layer.adjust(x, factor)
    dx = layer.backward(dout)
    assert 0.03 < (y == value_range[0]).mean() and 0.03 < (y == value_range[1]).mean()
    theirs, tx = keras.layers.RandomContrast((0.8, 1.0), value_range), tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        ty = theirs.transform_images(tx, {"contrast_factor": factor[:, None, None, None]},
                                     training=True)
        loss = tf.reduce_sum(ty * dout)
    assert_close(y, ty.numpy())
    assert_close(dx, tape.gradient(loss, tx).numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)


def plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def test_configs_are_keras_and_keras_accepts_what_we_do():
    keras = keras_on_tensorflow()
    for ours, theirs in [(RandomRotation(0.2), keras.layers.RandomRotation(0.2)),
                         (RandomZoom(0.2), keras.layers.RandomZoom(0.2)),
                         (RandomContrast(0.2), keras.layers.RandomContrast(0.2))]:
        config, expected = ours.get_config(), theirs.get_config()
        for key in type(ours)._config_keys:
            assert key in expected, key
            ok = plain(config[key]) == plain(expected[key]) or (key == "factor" and tuple(
                expected[key]) == (ours.lower, ours.upper))  # Keras keeps the range drawn from
            assert ok, (key, config[key], expected[key])
    for factor in (1.0, -1.0, 0.0, (-1, 1), (0.7, -0.2)):
        assert (RandomRotation(factor).lower, RandomRotation(factor).upper) == tuple(
            keras.layers.RandomRotation(factor).factor)
    for factor in (1.0, 0.0, (0.2, 1), (0.5, -0.99)):
        keras.layers.RandomZoom(factor, factor)
        RandomZoom(factor, factor)
    for factor in (0.0, 1.0, 0.3, (0.2, 0.9), (1, 0)):
        assert (RandomContrast(factor).lower, RandomContrast(factor).upper) == tuple(
            keras.layers.RandomContrast(factor).factor)
    for make in (lambda m: m.RandomRotation(1.01), lambda m: m.RandomZoom(-1),
                 lambda m: m.RandomZoom(0.1, 1.5), lambda m: m.RandomContrast(-0.1),
                 lambda m: m.RandomContrast((2, 0.5))):
        for module in (keras.layers, __import__("minicnn").layers):
            with pytest.raises(ValueError):
                make(module)
