"""The reshaping layers: ZeroPadding2D, Cropping2D, UpSampling2D and Reshape.

Float64 gradient checks (`check_layer`, random upstream gradient, every element) on shapes
hypothesis draws: every padding and cropping form, odd sizes, batch 1, both interpolations, and
each forward against a definition written independently (np.pad, slicing, np.repeat, TensorFlow's
bilinear kernel pixel by pixel, np.reshape). Then TensorFlow as the oracle: the same float32 x
gives the same y, and the same random dout the same dx from tf.GradientTape. Then the layers in
models: shapes, summaries, configs, .npz files, to_keras, and the errors. These layers are
linear maps with no kinks, so every element is compared. The TensorFlow tests skip, each on its
own, when TensorFlow is not installed.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.gradcheck import check_layer, check_layers
from minicnn.layers import (
    Conv2D,
    Cropping2D,
    Dense,
    Flatten,
    Input,
    Reshape,
    UpSampling2D,
    ZeroPadding2D,
    add,
    clear_session,
)
from minicnn.layers.base import shape_str
from minicnn.models import Model, Sequential, load_model, to_keras
from tests.strategies import seeds
from tests.test_gradients import assert_passes
from tests.tolerances import (
    GRADCHECK_TOL,
    KERNEL_ATOL,
    KERNEL_RTOL,
    PLAN_TRAINING_ATOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)


# -- setups ---------------------------------------------------------------------------------------
def _form(draw, pairs):
    """One of Keras's three ways to write ((top, bottom), (left, right)), when it can say it."""
    (t, b), (left, r) = pairs
    forms = [[list(p) for p in pairs], (tuple(pairs[0]), tuple(pairs[1]))]
    if t == b and left == r:
        forms.append((t, left))
        if t == left:
            forms.append(t)
    return draw(st.sampled_from(forms))


@st.composite
def side_setups(draw, kind: str):
    """(layer, x shape, ((top, bottom), (left, right))) for ZeroPadding2D (0..3 a side) or
    Cropping2D (leaving at least one row and column), batch 1-3, H and W 1-7 (crops 2-8)."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lo = 2 if kind == "crop" else 1
    H, W = draw(st.integers(lo, 8 if kind == "crop" else 7)), draw(st.integers(lo, 7))
    if draw(st.booleans()):  # symmetric, so that the short forms get drawn too
        h = draw(st.integers(0, (H - 1) // 2 if kind == "crop" else 3))
        w = draw(st.integers(0, (W - 1) // 2 if kind == "crop" else 3))
        if kind == "pad" or min(H, W) > 2 * max(h, w):
            h = w = draw(st.sampled_from([h, w])) if draw(st.booleans()) else h
        pairs = ((h, h), (w, w))
    else:
        def side(L):
            first = draw(st.integers(0, L - 1 if kind == "crop" else 3))
            return first, draw(st.integers(0, L - 1 - first if kind == "crop" else 3))
        pairs = (side(H), side(W))
    argument = _form(draw, pairs)
    layer = ZeroPadding2D(argument) if kind == "pad" else Cropping2D(argument)
    return layer, (N, H, W, C), pairs


@st.composite
def upsampling_setups(draw):
    interpolation = draw(st.sampled_from(["nearest", "bilinear"]))
    SH, SW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    size = SH if SH == SW and draw(st.booleans()) else (SH, SW)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)),
             draw(st.integers(1, 3)))
    return UpSampling2D(size, interpolation=interpolation), shape, (SH, SW)


@st.composite
def reshape_setups(draw):
    a, b, c = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    sample = draw(st.sampled_from([(a, b, c), (a * b, c), (a * b * c,)]))
    target = draw(st.sampled_from([(-1,), (a * b, c), (c, -1), (a, b * c, 1), (-1, a),
                                   (b, a, c), (1, -1, 1)]))
    return Reshape(target), (draw(st.integers(1, 3)), *sample), target


def pad_by_definition(x, pairs):
    return np.pad(x, ((0, 0), *pairs, (0, 0)))


def crop_by_definition(x, pairs):
    (t, b), (left, r) = pairs
    return x[:, t:x.shape[1] - b, left:x.shape[2] - r]


def resize_by_definition(x, size, interpolation):
    """TensorFlow's kernels written out pixel by pixel: nearest as Keras's repeat; bilinear as
    ResizeBilinear with half_pixel_centers (in = (out + 0.5) * scale - 0.5, top = max(floor(in),
    0), bottom = min(ceil(in), L - 1), lerp = in - floor(in)), a formulation other than the
    layer's clamped coordinates."""
    N, H, W, C = x.shape
    SH, SW = size
    y = np.empty((N, SH * H, SW * W, C), x.dtype)

    def taps(out, L, s):
        c = (out + 0.5) / s - 0.5
        return max(math.floor(c), 0), min(math.ceil(c), L - 1), c - math.floor(c)

    for i in range(SH * H):
        for j in range(SW * W):
            if interpolation == "nearest":
                y[:, i, j] = x[:, i // SH, j // SW]
                continue
            t, b, dy = taps(i, H, SH)
            left, r, dx = taps(j, W, SW)
            top = x[:, t, left] + (x[:, t, r] - x[:, t, left]) * dx
            bottom = x[:, b, left] + (x[:, b, r] - x[:, b, left]) * dx
            y[:, i, j] = top + (bottom - top) * dy
    return y


# -- float64 gradient checks, forwards by definition ----------------------------------------------
@given(setup=st.one_of(side_setups("pad"), side_setups("crop")), seed=seeds())
def test_padding_and_cropping_gradients(setup, seed):
    layer, shape, pairs = setup
    define = pad_by_definition if isinstance(layer, ZeroPadding2D) else crop_by_definition
    x = np.random.default_rng(seed).standard_normal(shape)
    assert_passes(check_layer(layer, x, seed=seed, reference=lambda x: define(x, pairs)))


@given(setup=upsampling_setups(), seed=seeds())
def test_upsampling_gradients(setup, seed):
    layer, shape, size = setup
    x = np.random.default_rng(seed).standard_normal(shape)
    assert_passes(check_layer(layer, x, seed=seed, reference=lambda x: resize_by_definition(
        x, size, layer.interpolation)))


@given(setup=reshape_setups(), seed=seeds())
def test_reshape_gradients(setup, seed):
    layer, shape, target = setup
    x = np.random.default_rng(seed).standard_normal(shape)
    assert_passes(check_layer(layer, x, seed=seed,
                              reference=lambda x: x.reshape(x.shape[0], *target)))


def _wrong_nearest(self, dout):  # one pixel of each block instead of the block's sum
    return dout[:, ::self.size[0], ::self.size[1]].copy()


def _wrong_bilinear(self, dout):  # nearest's block sums, as if the interpolation were ignored
    N, H, W, C = self.cache[0]
    return dout.reshape(N, H, self.size[0], W, self.size[1], C).sum(axis=(2, 4))


def _wrong_crop(self, dout):  # dout written at the top-left corner, the offsets forgotten
    dx = np.zeros(self.cache, dout.dtype)
    dx[:, :dout.shape[1], :dout.shape[2]] = dout
    return dx


@pytest.mark.parametrize(("layer", "wrong"), [
    (UpSampling2D((2, 3)), _wrong_nearest),
    (UpSampling2D((3, 2), interpolation="bilinear"), _wrong_bilinear),
    (Cropping2D(((1, 0), (2, 1))), _wrong_crop),
])
def test_the_check_catches_a_wrong_backward(layer, wrong, monkeypatch):
    """Each wrong backward has the right shape and is right for some elements; the same check
    that the right backward passes fails it by far."""
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 2))
    assert_passes(check_layer(layer, x))
    monkeypatch.setattr(type(layer), "backward", wrong)
    report = check_layer(layer, x)
    assert not report.passed and report.max_error > 1e3 * GRADCHECK_TOL, str(report)


def test_upsampling_bilinear_keeps_constants_and_its_matrix_rows_sum_to_one():
    """Interpolation weights sum to 1: a constant image stays constant, at the edges too."""
    x = np.full((1, 3, 4, 2), 2.5)
    y = UpSampling2D((3, 4), interpolation="bilinear")(x)
    np.testing.assert_allclose(y, 2.5, rtol=KERNEL_RTOL["float64"], atol=KERNEL_ATOL["float64"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(dtype):
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 3)).astype(dtype)
    for layer in (ZeroPadding2D(((1, 2), (0, 1))), Cropping2D(1), UpSampling2D(2),
                  UpSampling2D(3, interpolation="bilinear"), Reshape((-1, 2))):
        y = layer(x)
        dx = layer.backward(np.ones_like(y))
        assert y.dtype == dx.dtype == dtype and dx.shape == x.shape, type(layer).__name__


# -- TensorFlow as the oracle ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle():
    """tensorflow, keras and tests/test_oracle_tf.py (its `report`), imported once."""
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras

    from tests import test_oracle_tf
    return tf, keras, test_oracle_tf


def keras_twin(keras, layer):
    config = {k: v for k, v in layer.get_config().items() if k not in ("input_shape", "dtype")}
    return getattr(keras.layers, type(layer).__name__)(**config)


@settings(max_examples=60)
@given(setup=st.one_of(side_setups("pad"), side_setups("crop"), upsampling_setups(),
                       reshape_setups()), seed=seeds())
def test_agrees_with_tensorflow(oracle, setup, seed):
    """y, and dx of sum(y * dout) for a random dout, against Keras's layer built from our
    config (float32). `-s` prints the margins."""
    tf, keras, oracle_tf = oracle
    layer, shape, _ = setup
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dout)
    xt = tf.Variable(x)
    with tf.GradientTape() as tape:
        y_tf = keras_twin(keras, layer)(xt)
        f = tf.reduce_sum(y_tf * dout)
    what = f"{type(layer).__name__} {layer.get_config()} on {shape}"
    oracle_tf.report(f"{what}: y", y, y_tf.numpy(), TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    oracle_tf.report(f"{what}: dx", dx, tape.gradient(f, xt).numpy(), TF_GRAD_RTOL,
                     TF_GRAD_ATOL)


CONFIGS = [ZeroPadding2D, {}], [ZeroPadding2D, {"padding": 2}], [
    ZeroPadding2D, {"padding": (1, 3)}], [ZeroPadding2D, {"padding": ((0, 2), (3, 1))}], [
    Cropping2D, {}], [Cropping2D, {"cropping": 1}], [Cropping2D, {"cropping": (2, 0)}], [
    Cropping2D, {"cropping": ((1, 0), (0, 2))}], [UpSampling2D, {}], [
    UpSampling2D, {"size": 3, "interpolation": "bilinear"}], [
    UpSampling2D, {"size": (1, 4), "interpolation": "Nearest"}], [
    Reshape, {"target_shape": (-1,)}], [Reshape, {"target_shape": [6, -1, 1]}]


@pytest.mark.parametrize(("cls", "kwargs"), CONFIGS)
def test_configs_and_output_shapes_are_keras(oracle, cls, kwargs):
    """Our config holds Keras's keys and values (tuples written as lists, as a JSON file keeps
    them), and compute_output_shape gives Keras's, unknown sizes included."""
    _, keras, _ = oracle
    ours, theirs = cls(**kwargs), getattr(keras.layers, cls.__name__)(**kwargs)
    config, keras_config = ours.get_config(), theirs.get_config()

    def as_lists(v):
        return [as_lists(e) for e in v] if isinstance(v, (tuple, list)) else v

    for key in set(config) - {"name", "dtype"}:
        assert config[key] == as_lists(keras_config[key]), key
    assert cls.from_config(config).get_config() == config
    for shape in [(None, 6, 8, 3), (None, None, 8, 3), (None, 6, None, 3)]:
        assert ours.compute_output_shape(shape) == tuple(theirs.compute_output_shape(shape))


# -- in models ------------------------------------------------------------------------------------
def sequential():
    return Sequential([
        Input((7, 6, 2)), ZeroPadding2D(((1, 0), (2, 1))), Conv2D(3, 3, activation="tanh"),
        Cropping2D((1, 0)), UpSampling2D(2, interpolation="bilinear"), Conv2D(2, 2),
        UpSampling2D((1, 2)), Reshape((-1, 4)), Flatten(), Dense(3, activation="softmax"),
    ], seed=0)


def functional():
    inputs = Input((6, 5, 3))
    a = Cropping2D(((0, 1), (1, 0)))(UpSampling2D((1, 2))(inputs))  # (6, 10) -> (5, 9)
    b = Conv2D(3, 2, padding="valid")(ZeroPadding2D(((0, 0), (2, 3)))(inputs))  # -> (5, 9)
    x = Reshape((9, 5, 3))(add([a, b]))
    outputs = Dense(2)(Flatten()(UpSampling2D(interpolation="bilinear")(x)))
    return Model(inputs, outputs)


def test_shapes_and_summary_in_a_sequential_and_a_functional_model():
    clear_session()
    model, graph = sequential(), functional()
    assert [layer.output_shape for layer in model.layers[:7]] == [
        (None, 8, 9, 2), (None, 6, 7, 3), (None, 4, 7, 3), (None, 8, 14, 3), (None, 7, 13, 2),
        (None, 7, 26, 2), (None, 91, 4)]
    assert graph.output_shape == (None, 2)
    for m in (model, graph):
        lines = []
        m.summary(print_fn=lines.append)
        lines = "\n".join(lines).splitlines()
        for layer in m.layers:
            if isinstance(layer, (ZeroPadding2D, Cropping2D, UpSampling2D, Reshape)):
                # the row's first line: name (type), output shape, params (, connected to)
                cells = next(line for line in lines if line.startswith(f"│ {layer.name} "))
                cells = [c.strip() for c in cells.split("│")]
                assert cells[2] == shape_str(layer.output_shape) and cells[3] == "0", cells
                assert layer.count_params() == 0 and layer.weights == []
        total = sum(layer.count_params() for layer in m.layers)
        assert any(line.strip().startswith(f"Total params: {total:,} ") for line in lines)


def test_a_model_of_them_is_gradient_checked_and_trains_in_both_tiers():
    """The stack's gradients by central differences, and one Adam step of the fast plan (which
    runs these layers as they are) equal to the reference layers'."""
    model = sequential()
    x = np.random.default_rng(2).standard_normal((2, 7, 6, 2))
    assert_passes(check_layers(model.layers[:-1], x, max_checks=60))
    y = np.eye(3, dtype=np.float32)[[0, 2]]
    after = []
    for fast in (True, False):
        m = sequential()
        m.compile("adam", "categorical_crossentropy", fast=fast)
        m.train_on_batch(x.astype(np.float32), y)
        after.append(m.get_weights())
    for a, b in zip(*after, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)


def test_save_load_and_to_keras_round_trip(tmp_path, oracle):
    rng = np.random.default_rng(3)
    for make, shape in ((sequential, (4, 7, 6, 2)), (functional, (4, 6, 5, 3))):
        model = make()
        x = rng.standard_normal(shape).astype(np.float32)
        model.save(tmp_path / "m.npz")
        loaded = load_model(tmp_path / "m.npz")
        assert loaded.get_config() == model.get_config()
        ours = model.predict(x, verbose=0)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), ours)
        theirs = to_keras(model).predict(x, verbose=0)
        assert np.abs(ours - theirs).max() <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * np.abs(
            theirs).max()


def test_unknown_sizes_are_worked_out_per_input():
    """Built for (None, None, 3), each call takes its own height and width."""
    inputs = Input((None, None, 3))
    outputs = Reshape((-1, 3))(Cropping2D(1)(UpSampling2D(2)(ZeroPadding2D(1)(inputs))))
    model = Model(inputs, outputs)
    assert model.output_shape == (None, None, 3)
    for H, W in ((1, 1), (4, 2)):
        # model(x), not predict: predict allocates its output from the model's output shape
        assert model(np.ones((2, H, W, 3), np.float32)).shape == (
            2, (2 * H + 2) * (2 * W + 2), 3)
    crop = Cropping2D(1)
    crop.build((None, None, None, 3))
    with pytest.raises(ValueError, match=r"Expected values smaller than the input's height "
                                         r"and width.*input shape \(2, 2, 5, 3\)"):
        crop(np.ones((2, 2, 5, 3)))


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "message"), [
    (lambda: ZeroPadding2D(-1), r"Invalid value for argument `padding`. Expected an int >= 0, "
                                r"a tuple of 2 ints >= 0.*Received padding=-1"),
    (lambda: ZeroPadding2D(((1, -2), (0, 0))), r"Received padding=\(\(1, -2\), \(0, 0\)\)"),
    (lambda: ZeroPadding2D((1, 2, 3)), r"Received padding=\(1, 2, 3\)"),
    (lambda: ZeroPadding2D(1.5), r"Received padding=1.5"),
    (lambda: Cropping2D((-1, 0)), r"Invalid value for argument `cropping`.*cropping=\(-1, 0\)"),
    (lambda: ZeroPadding2D(data_format="channels_first"),
     r"Invalid value for argument `data_format`. Expected 'channels_last' or None: minicnn "
     r"keeps images as \(batch, height, width, channels\).*Received "
     r"data_format='channels_first'"),
    (lambda: Cropping2D(data_format="channels_first"), "data_format='channels_first'"),
    (lambda: UpSampling2D(data_format="channels_first"), "data_format='channels_first'"),
    (lambda: Cropping2D(((2, 2), (0, 0)), name="crop").build((None, 4, 6, 3)),
     r"Invalid value for argument `cropping`. Expected values smaller than the input's height "
     r"and width \(top \+ bottom < height, left \+ right < width\) of layer 'crop' "
     r"\(Cropping2D\). Received cropping=\(\(2, 2\), \(0, 0\)\) for input shape "
     r"\(None, 4, 6, 3\)"),
    (lambda: Cropping2D((0, 3)).build((None, 4, 6, 3)), r"cropping=\(\(0, 0\), \(3, 3\)\)"),
    (lambda: UpSampling2D(0), r"Invalid value for argument `size`.*Received size=0"),
    (lambda: UpSampling2D(interpolation="bicubic"),
     r"Invalid value for argument `interpolation`. Expected one of \('nearest', 'bilinear'\). "
     r"Received interpolation='bicubic'"),
    (lambda: UpSampling2D().build((None, 4, 3)), r"Layer 'up_sampling2d\w*' \(UpSampling2D\) "
                                                 r"expects 4-D input.*\(None, 4, 3\)"),
    (lambda: Reshape((5, 5), name="r").build((None, 4, 6, 3)),
     r"Layer 'r' \(Reshape\) cannot reshape input of shape \(None, 4, 6, 3\) \(72 elements per "
     r"sample\) to target_shape=\(5, 5\): the total size of each sample must be unchanged, "
     r"but the target holds 25."),
    (lambda: Reshape((-1, 5), name="r")(np.ones((2, 4, 6, 3))),
     r"Layer 'r' \(Reshape\).*\(None, 4, 6, 3\).*target_shape=\(-1, 5\).*divisible by the known "
     r"dimensions' product 5"),
    (lambda: Reshape((-1, -1)), r"Invalid value for argument `target_shape`. Expected a tuple "
                                r"of ints, each >= 0 or -1 for a single unknown.*\(-1, -1\)"),
    (lambda: Reshape((3, -2)), r"Received target_shape=\(3, -2\)"),
    (lambda: Reshape(12), r"Received target_shape=12"),
])
def test_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_built_layer_refuses_another_shape():
    layer = ZeroPadding2D(1)
    layer(np.ones((2, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"expected shape \(None, 4, 4, 3\), received shape "
                                         r"\(2, 5, 4, 3\)"):
        layer(np.ones((2, 5, 4, 3)))
