"""RandomTranslation: shifts images at random in training only; its backward is the transpose.

Three oracles: central differences (the backward), np.pad (integer shifts, where every fill mode
is a plain padding), and Keras's own transform on TensorFlow (every shift, mode and
interpolation).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.gradcheck import check_layer
from minicnn.layers import Conv2D, Dense, Flatten
from minicnn.layers.random_translation import RandomTranslation
from minicnn.models import Sequential, load_model
from tests.strategies import seeds
from tests.tolerances import GRADCHECK_TOL, TF_FORWARD_ATOL, TF_FORWARD_RTOL

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")
# np.pad's name for each fill mode: at whole-pixel shifts a translation is a padded crop.
NP_PAD = {"reflect": "symmetric", "wrap": "wrap", "constant": "constant", "nearest": "edge"}


@st.composite
def factors(draw):
    """A factor as Keras takes it: one number f (meaning [-|f|, |f|]) or a pair, in [-1, 1]."""
    bound = st.floats(-1, 1, allow_nan=False)
    return draw(st.one_of(bound, st.tuples(bound, bound)))


@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 2),
       height_factor=factors(), width_factor=factors(), fill_mode=st.sampled_from(FILL_MODES),
       interpolation=st.sampled_from(INTERPOLATIONS), fill_value=st.sampled_from([0.0, 1.5]),
       training=st.booleans(), seed=seeds())
def test_gradient_check(n, h, w, c, height_factor, width_factor, fill_mode, interpolation,
                        fill_value, training, seed):
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    layer = RandomTranslation(height_factor, width_factor, fill_mode, interpolation,
                              seed=seed % 1000, fill_value=fill_value, dtype="float64")
    report = check_layer(layer, x, training=training, seed=seed)
    twin = copy.deepcopy(layer)  # the checker replays the layer's draws: the twin's
    read = twin(x, training=training)
    rows, cols = twin.cache.rows, twin.cache.cols
    if rows is not None and not any(r.any() and k.any() for r, k in zip(rows, cols, strict=True)):
        # "constant" shifted every image out of its frame: y = fill_value, dx = 0, and the
        # checker must say it compared nothing rather than pass
        assert {t.verdict for t in report.tensors} == {"nothing compared (all 0)"}, str(report)
        np.testing.assert_array_equal(read, fill_value)
        return
    assert report.passed, str(report)
    assert report.max_error < GRADCHECK_TOL


def test_gradient_check_catches_a_backward_that_shifts_the_wrong_way():
    class Untransposed(RandomTranslation):
        def backward(self, dout):  # shifts dout the way forward shifted x, not back
            return self.translate(dout, self.cache.height_shift, self.cache.width_shift)

    x = np.random.default_rng(0).standard_normal((2, 5, 6, 1))
    layer = Untransposed((0.2, 0.4), 0.3, seed=0, dtype="float64")
    assert check_layer(RandomTranslation((0.2, 0.4), 0.3, seed=0), x).passed
    report = check_layer(layer, x)
    assert not report.passed and report.max_error > 0.1, str(report)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_whole_pixel_shifts_pad_and_crop_as_np_pad(fill_mode, interpolation):
    rng = np.random.default_rng(1)
    N, H, W = 12, 5, 6
    x = rng.standard_normal((N, H, W, 2)).astype(np.float32)
    # within L - 2 pixels: beyond, TensorFlow's "wrap" lands on an edge (see the layer's doc)
    down, right = rng.integers(-(H - 2), H - 1, N), rng.integers(-(W - 2), W - 1, N)
    layer = RandomTranslation(0.5, 0.5, fill_mode, interpolation, fill_value=-3.0)
    y = layer.translate(x, down, right)
    assert y.dtype == np.float32
    extra = {"constant_values": -3.0} if fill_mode == "constant" else {}
    for n in range(N):
        padded = np.pad(x[n], ((H, H), (W, W), (0, 0)), mode=NP_PAD[fill_mode], **extra)
        expected = padded[H - down[n]:2 * H - down[n], W - right[n]:2 * W - right[n]]
        np.testing.assert_array_equal(y[n], expected, err_msg=f"image {n}")


def test_each_image_gets_its_own_shift_within_the_factors_and_inference_does_nothing():
    x = np.random.default_rng(0).random((200, 8, 10, 1), dtype=np.float32)
    layer = RandomTranslation((-0.25, 0.5), 0.2, seed=3)
    layer(x, training=True)
    down, right = layer.cache.height_shift, layer.cache.width_shift
    assert down.min() >= -0.25 * 8 and down.max() <= 0.5 * 8
    assert right.min() >= -0.2 * 10 and right.max() <= 0.2 * 10
    assert down.min() < -1 and down.max() > 3 and right.min() < -1 and right.max() > 1
    assert len(np.unique(down)) == len(x)  # drawn per image
    y = layer(x, training=False)
    np.testing.assert_array_equal(y, x)
    assert y is not x
    dout = np.random.default_rng(1).random(x.shape, dtype=np.float32)
    np.testing.assert_array_equal(layer.backward(dout), dout)


def test_same_seed_same_shifts():
    x = np.random.default_rng(0).random((4, 6, 6, 2), dtype=np.float32)
    a, b, c = (RandomTranslation(0.3, 0.3, seed=s) for s in (5, 5, 6))
    ya, yb, yc = (layer(x, training=True) for layer in (a, b, c))
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)


def test_a_seeded_model_translates_the_same_way_every_run_and_saves_its_config(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 16)]

    def trained():
        model = Sequential([RandomTranslation((-0.2, 0.3), 0.25, "constant", "nearest",
                                              fill_value=0.5, input_shape=(6, 6, 1)),
                            Conv2D(2, 3, activation="relu"), Flatten(),
                            Dense(2, activation="softmax")], seed=4)
        model.compile("adam", "categorical_crossentropy")
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        return model

    a, b = trained(), trained()
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x), a.predict(x))  # no shifts at inference
    a.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz",
                        custom_objects={"RandomTranslation": RandomTranslation}).layers[0]
    assert loaded.get_config() == a.layers[0].get_config()
    assert (loaded.fill_mode, loaded.interpolation, loaded.fill_value) == ("constant",
                                                                           "nearest", 0.5)
    assert (loaded.height_lower, loaded.height_upper) == (-0.2, 0.3)
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz", custom_objects={
        "RandomTranslation": RandomTranslation}).predict(x), a.predict(x))


@pytest.mark.parametrize(("kwargs", "argument", "received"), [
    ({"height_factor": 1.5}, "height_factor", "1.5"),
    ({"height_factor": (0.1,)}, "height_factor", "(0.1,)"),
    ({"width_factor": (-2, 0.5)}, "width_factor", "(-2, 0.5)"),
    ({"width_factor": "0.2"}, "width_factor", "'0.2'"),
    ({"width_factor": True}, "width_factor", "True"),
    ({"fill_mode": "mirror"}, "fill_mode", "'mirror'"),
    ({"interpolation": "bicubic"}, "interpolation", "'bicubic'"),
    ({"fill_value": None}, "fill_value", "None"),
])
def test_argument_errors_name_the_argument_and_what_was_received(kwargs, argument, received):
    with pytest.raises(ValueError, match=f"`{argument}`. Expected") as e:
        RandomTranslation(**{"height_factor": 0.1, "width_factor": 0.1, **kwargs})
    assert f"Received {argument}={received}" in str(e.value)


def test_factors_follow_keras():
    layer = RandomTranslation(-0.2, (0.3, -0.1))  # one number: symmetric; a pair: sorted
    assert (layer.height_lower, layer.height_upper) == (-0.2, 0.2)
    assert (layer.width_lower, layer.width_upper) == (-0.1, 0.3)


def test_input_must_be_4d():
    with pytest.raises(ValueError, match=r"4-D input .* received input_shape=\(None, 5, 5\)"):
        RandomTranslation(0.1, 0.1)(np.zeros((2, 5, 5), np.float32), training=True)


# -- Keras on TensorFlow ----------------------------------------------------------------------

def keras_on_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle")
    keras = pytest.importorskip("keras", reason="Keras is the oracle")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs on another backend than TensorFlow")
    return keras


def keras_translated(x, down, right, **kwargs):
    """x moved by Keras's own layer, with the translations given instead of drawn."""
    layer = keras_on_tensorflow().layers.RandomTranslation(1.0, 1.0, **kwargs)
    translations = np.stack([right, down], axis=1).astype(np.float32)  # Keras's order: (x, y)
    return np.asarray(layer.transform_images(
        x, {"translations": translations, "input_shape": x.shape}, training=True))


def assert_close_to_tf(ours, theirs):
    # TensorFlow computes each sample point and bilinear weight in float32 (rounding ~1e-7 of
    # a coordinate of up to 2L pixels): the TF forward tolerance covers it with room to spare.
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * scale


def shifts(rng, N, L):
    """Whole and fractional shifts from -L to L pixels: the edges, the period boundaries of
    "wrap" and "reflect", and points between pixels at least 0.01 away from a rounding tie
    (TensorFlow's float32 coordinate and ours must round the same way)."""
    whole = rng.integers(-L, L + 1, N)
    frac = rng.uniform(0.01, 0.49, N) + rng.integers(0, 2, N) * 0.5
    s = np.where(rng.random(N) < 0.4, whole, np.clip(whole + frac, -L + 0.01, L - 0.01))
    return s.astype(np.float32).astype(np.float64)  # both engines see the same numbers


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_keras_translates_the_same_way(fill_mode, interpolation):
    rng = np.random.default_rng(2)
    for H, W in [(1, 4), (3, 1), (5, 4), (7, 8)]:
        N = 48
        x = rng.standard_normal((N, H, W, 2)).astype(np.float32)
        down, right = shifts(rng, N, H), shifts(rng, N, W)
        kwargs = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": -2.5}
        ours = RandomTranslation(1.0, 1.0, **kwargs).translate(x, down, right)
        assert_close_to_tf(ours, keras_translated(x, down, right, **kwargs))


def test_keras_applies_our_drawn_shifts_alike_and_has_our_defaults():
    x = np.random.default_rng(0).standard_normal((16, 9, 7, 3)).astype(np.float32)
    layer = RandomTranslation((-0.4, 0.3), 0.5, seed=7)
    ours = layer(x, training=True)
    theirs = keras_translated(x, layer.cache.height_shift.astype(np.float32),
                              layer.cache.width_shift.astype(np.float32))
    assert_close_to_tf(ours, theirs)
    keras = keras_on_tensorflow()
    theirs = keras.layers.RandomTranslation(0.1, 0.1).get_config()
    ours = RandomTranslation(0.1, 0.1).get_config()
    for key in ("height_factor", "width_factor", "fill_mode", "interpolation", "seed",
                "fill_value"):
        assert ours[key] == theirs[key], key
    for factor in (1.5, -1.01, (0.1,), (-2, 0.5)):  # what Keras refuses, so do we
        with pytest.raises(ValueError):
            keras.layers.RandomTranslation(factor, 0.1)
        with pytest.raises(ValueError):
            RandomTranslation(factor, 0.1)
