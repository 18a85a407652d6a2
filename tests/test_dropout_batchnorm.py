"""Dropout and BatchNormalization: float64 gradient checks in both modes on shapes hypothesis
draws, TensorFlow as the oracle with the same weights, and the model around them (modes, the
plan, training, saving, the summary's non-trainable line)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.fast.batch_norm import BatchNormStep
from minicnn.fast.dropout import DropoutStep
from minicnn.gradcheck import check_layer
from minicnn.layers import (
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    clear_session,
)
from minicnn.models import Sequential, load_model
from minicnn.utils import to_categorical
from tests.tolerances import (
    DROPOUT_KEEP_ATOL,
    GRADCHECK_TOL,
    TF_FORWARD_ATOL,
    TF_FORWARD_RTOL,
    TF_GRAD_ATOL,
    TF_GRAD_RTOL,
)

# Dense (N, F) and Conv2D (N, H, W, C) outputs.
shapes = st.one_of(
    st.tuples(st.integers(2, 6), st.integers(1, 4)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
)


def built_batch_norm(shape, rng, dtype="float64", **kwargs) -> BatchNormalization:
    """A BatchNormalization with random gamma, beta and moving statistics."""
    layer = BatchNormalization(dtype=dtype, **kwargs)
    layer.build((None, *shape[1:]))
    C = shape[-1]
    if layer.gamma is not None:
        layer.gamma.value[...] = rng.uniform(0.5, 2, C)
    if layer.beta is not None:
        layer.beta.value[...] = rng.standard_normal(C)
    layer.moving_mean.value[...] = rng.standard_normal(C)
    layer.moving_variance.value[...] = rng.uniform(0.5, 2, C)
    return layer


def worst(report) -> float:
    return max(t.error for t in report.tensors)


# -- gradient checks ------------------------------------------------------------------------------
@given(shape=shapes, training=st.booleans(), center=st.booleans(), scale=st.booleans(),
       seed=st.integers(0, 2**16))
def test_batch_norm_gradcheck(shape, training, center, scale, seed):
    rng = np.random.default_rng(seed)
    if training:  # with M <= 2 elements per channel xhat is about +-1 whatever x: dx ~ 0
        shape = (max(shape[0], 4), *shape[1:])
    layer = built_batch_norm(shape, rng, center=center, scale=scale)
    x = rng.standard_normal(shape) * 3 + 1
    # A random dout, plus a part along the normalized x: dgamma = sum(dout * xhat) is then about
    # M per channel rather than a random sum near 0 that one float64 rounding of f could swamp
    # (dgamma is a tensor of C elements, its error relative to its largest). The random part
    # still reaches dx, which removes the part along xhat.
    axes = tuple(range(len(shape) - 1))
    xhat = (x - x.mean(axis=axes)) / (x.std(axis=axes) + 1e-12)
    dout = rng.standard_normal(shape) + xhat
    report = check_layer(layer, x, dout=dout, training=training, seed=seed + 1)
    assert report.passed, str(report)


@given(shape=shapes, training=st.booleans(), rate=st.sampled_from([0.0, 0.2, 0.5, 0.9]),
       broadcast=st.booleans(), seed=st.integers(0, 2**16))
def test_dropout_gradcheck_with_its_draws_held_fixed(shape, training, rate, broadcast, seed):
    rng = np.random.default_rng(seed)
    noise_shape = (None, *([1] * (len(shape) - 1))) if broadcast else None
    layer = Dropout(rate, noise_shape=noise_shape, seed=seed, dtype="float64")
    report = check_layer(layer, rng.standard_normal(shape), training=training, seed=seed + 1)
    if training and rate > 0 and report.tensors[0].all_zero:  # every unit dropped, as it
        mask = Dropout(rate, noise_shape=noise_shape, seed=seed)(np.ones(shape), training=True)
        assert not mask.any()  # was: nothing to compare, and reported as such
        return
    assert report.passed, str(report)


def test_gradcheck_reports_largest_errors(capsys):
    rng = np.random.default_rng(7)
    errors = {}
    for training in (True, False):
        for shape in [(8, 5), (3, 4, 5, 3)]:
            layer = built_batch_norm(shape, rng)
            errors[("bn", training, shape)] = worst(
                check_layer(layer, rng.standard_normal(shape) * 2, training=training, seed=3))
            drop = Dropout(0.5, seed=1, dtype="float64")
            errors[("dropout", training, shape)] = worst(
                check_layer(drop, rng.standard_normal(shape), training=training, seed=3))
    with capsys.disabled():
        print(f"\nlargest gradcheck error: {max(errors.values()):.2e} "
              f"({max(errors, key=errors.get)})")
    assert max(errors.values()) < GRADCHECK_TOL


def test_a_broken_batch_norm_backward_is_caught():
    """The short form without its last term (xhat * sum(dxhat * xhat)) fails the check."""
    class Broken(BatchNormalization):
        def backward(self, dout):
            xhat, inv_sigma, _ = self._cached()
            self.gamma.grad[...] = (dout * xhat).sum(axis=0)
            self.beta.grad[...] = dout.sum(axis=0)
            dxhat = dout * self.gamma.value
            return inv_sigma * (dxhat - dxhat.mean(axis=0))

    rng = np.random.default_rng(0)
    layer = Broken(dtype="float64")
    layer.build((None, 4))
    assert not check_layer(layer, rng.standard_normal((6, 4)), training=True, seed=1).passed


# -- Dropout -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None])
def test_dropout_rate_errors_name_the_argument(rate):
    with pytest.raises(ValueError, match=rf"argument `rate`.*Received: rate={rate!r}"):
        Dropout(rate)


def test_dropout_statistics_and_inference_identity():
    x = np.ones((200, 50), np.float32)
    layer = Dropout(0.3, seed=0)
    y = layer(x, training=True)
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)  # inverted: scaled by 1/(1 - rate)
    assert abs(kept.mean() - 0.7) < DROPOUT_KEEP_ATOL
    assert abs(y.mean() - 1) < DROPOUT_KEEP_ATOL / 0.7  # the expected output is the input
    np.testing.assert_array_equal(layer.backward(np.full_like(x, 2)), 2 * y)  # dx = dout * mask
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(x * 3), x * 3)
    # noise_shape: one draw per (sample, channel), shared over the other axes.
    z = Dropout(0.5, noise_shape=(None, 1, 1, 8), seed=1)(np.ones((4, 3, 3, 8)), training=True)
    assert (z == z[:, :1, :1, :]).all()


def test_dropout_draws_are_reproducible_from_seed_and_model():
    x = np.ones((6, 10), np.float32)
    a, b = Dropout(0.5, seed=3)(x, training=True), Dropout(0.5, seed=3)(x, training=True)
    np.testing.assert_array_equal(a, b)

    def run(seed):
        model = Sequential([Dense(10, input_shape=(10,)), Dropout(0.5)], seed=seed)
        return model(x, training=True)
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_dropout_matches_keras_at_inference_and_its_config():
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(keras.layers.Dropout(0.5)(x, training=False).numpy(),
                                  Dropout(0.5)(x, training=False))
    layer = Dropout(0.25, noise_shape=(None, 1), seed=4)
    again = Dropout.from_config(layer.get_config())
    assert (again.rate, again.noise_shape, again.seed) == (0.25, (None, 1), 4)


# -- BatchNormalization against Keras ----------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 6), (4, 5, 5, 3)])
def test_batch_norm_matches_keras(shape):
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    ours = built_batch_norm(shape, rng, dtype="float32", momentum=0.9, epsilon=1e-3)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    theirs.build((None, *shape[1:]))
    theirs.set_weights(ours.get_weights())
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    diffs = {}

    def close(name, a, b, rtol, atol):
        diffs[name] = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
        np.testing.assert_array_less(np.abs(a - b), atol + rtol * np.abs(b).max())

    for training in (False, True):
        xt = tf.Variable(x)
        with tf.GradientTape() as tape:
            y_tf = theirs(xt, training=training)
            f = tf.reduce_sum(y_tf * dout)
        dx_tf, dgamma_tf, dbeta_tf = tape.gradient(f, [xt, theirs.gamma, theirs.beta])
        y = ours.forward(x, training=training)
        dx = ours.backward(dout)
        close(f"y {training}", y, y_tf.numpy(), TF_FORWARD_RTOL, TF_FORWARD_ATOL)
        close(f"dx {training}", dx, dx_tf.numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)
        close(f"dgamma {training}", ours.gamma.grad, dgamma_tf.numpy(), TF_GRAD_RTOL,
              TF_GRAD_ATOL)
        close(f"dbeta {training}", ours.beta.grad, dbeta_tf.numpy(), TF_GRAD_RTOL, TF_GRAD_ATOL)
    for _ in range(3):  # three more training forwards: the moving statistics follow Keras's
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        ours.forward(x, training=True)
        theirs(x, training=True)
    for name, a, b in zip(["gamma", "beta", "moving_mean", "moving_variance"],
                          ours.get_weights(), theirs.get_weights(), strict=True):
        close(name, a, b, TF_FORWARD_RTOL, TF_FORWARD_ATOL)
    print(f"\nlargest difference from TensorFlow, {shape}: {max(diffs.values()):.2e} "
          f"({max(diffs, key=diffs.get)})")


# -- in a model --------------------------------------------------------------------------------
def bn_model(seed=0) -> Sequential:
    return Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), BatchNormalization(),
                       Dropout(0.5), Flatten(), Dense(8, activation="relu"),
                       BatchNormalization(momentum=0.9), Dense(3, activation="softmax")],
                      seed=seed)


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 1), dtype=np.float32)
    y = to_categorical((x[:, :4].sum(axis=(1, 2, 3)) > x[:, 4:].sum(axis=(1, 2, 3))) * 2, 3)
    return x, y


def test_weights_params_and_counts():
    clear_session()
    model = bn_model()
    bn = model.layers[1]
    assert [p.name for p in bn.weights] == ["batch_normalization/gamma", "batch_normalization/beta",
                                            "batch_normalization/moving_mean",
                                            "batch_normalization/moving_variance"]
    assert bn.params == bn.weights[:2] and bn.non_trainable_params == bn.weights[2:]
    assert bn.count_params() == 16
    assert len(model.get_weights()) == 2 + 4 + 2 + 4 + 2
    assert len(model.params) == 2 + 2 + 2 + 2 + 2
    model.set_weights(model.get_weights())


def test_plan_runs_them_as_their_steps_and_modes_reach_them(monkeypatch):
    model = bn_model()
    model.compile("adam", "categorical_crossentropy")
    # LearningCheck's end-of-epoch look at the moving statistics runs an inference pass
    model.learning_check = False
    steps = {step.layers[0].name: step for step in model.plan if len(step.layers) == 1}
    for layer in model.layers:
        if isinstance(layer, (BatchNormalization, Dropout)):
            want = BatchNormStep if isinstance(layer, BatchNormalization) else DropoutStep
            assert isinstance(steps[layer.name], want)
    seen: list[tuple[str, bool]] = []
    for cls in (BatchNormStep, DropoutStep):
        original = cls.forward

        def spying(self, x, training=False, _original=original):
            seen.append((type(self).__name__, training))
            return _original(self, x, training=training)
        monkeypatch.setattr(cls, "forward", spying)
    x, y = data(8)
    model.fit(x, y, batch_size=4, verbose=0)
    assert {flag for _, flag in seen} == {True} and len(seen) == 2 * 3
    seen.clear()
    model.predict(x)
    assert {flag for _, flag in seen} == {False} and len(seen) == 3


def test_model_trains_and_predict_is_deterministic():
    x, y = data(64)
    model = bn_model()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    bn = model.layers[1]
    assert not np.array_equal(bn.moving_mean.value, 0)  # the moving statistics moved
    np.testing.assert_array_equal(model.predict(x), model.predict(x))


def test_save_load_keeps_moving_stats(tmp_path):
    x, y = data(32)
    model = bn_model(seed=2)
    model.compile("adam", "categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(loaded.layers[1].moving_variance.value, 1)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("seed", [None, 5], ids=["model-seeded", "layer-seeded"])
def test_resume_with_batch_norm_and_dropout_is_bit_exact(tmp_path, seed):
    """Each training step's masks come from (seed, step number), and the step number is in the
    model file, so a resumed run draws what a run straight through draws."""
    def model_with_both():
        model = Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), BatchNormalization(),
                            Dropout(0.3, seed=seed), Flatten(),
                            Dense(3, activation="softmax")], seed=2)
        model.compile("adam", "categorical_crossentropy")
        return model
    x, y = data(32)
    straight = model_with_both()
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)
    first = model_with_both()
    first.fit(x, y, epochs=1, batch_size=8, verbose=0)
    first.save(tmp_path / "m.npz")
    resumed = load_model(tmp_path / "m.npz")
    resumed.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = model_with_both()  # and the masks do change from step to step
    other.fit(x, y, epochs=1, batch_size=8, verbose=0)
    masks = []
    for _ in range(2):
        with other.record() as rec:
            other.train_on_batch(x[:8], y[:8])
        masks.append(rec[other.layers[2].name].mask)
    assert not np.array_equal(*masks)


def test_model_gradient_check_through_batch_norm_and_dropout():
    """A bias right before a BatchNormalization gets a gradient of exactly 0 (the batch mean
    takes it out again), which the checker reports as "nothing compared"; Keras models leave it
    out with use_bias=False, and so does this one."""
    model = Sequential([Conv2D(4, 3, use_bias=False, input_shape=(8, 8, 1)),
                        BatchNormalization(), Dropout(0.5), Flatten(),
                        Dense(3, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy")
    x, y = data(4)
    report = model.gradient_check(x, y)
    assert report.passed, str(report)


def test_summary_non_trainable_line_matches_keras():
    keras = pytest.importorskip("keras")
    clear_session()
    ours = bn_model()
    theirs = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.5), keras.layers.Flatten(), keras.layers.Dense(8, "relu"),
        keras.layers.BatchNormalization(momentum=0.9), keras.layers.Dense(3, "softmax")])
    lines_ours, lines_theirs = [], []
    ours.summary(print_fn=lines_ours.append)
    theirs.summary(print_fn=lambda s, **kwargs: lines_theirs.append(s))

    def footer(lines):
        text = "\n".join(lines).splitlines()
        return [t for t in text if t.lstrip().startswith(("Total", "Trainable", "Non-trainable"))]
    assert footer(lines_ours) == footer(lines_theirs)
    assert footer(lines_ours)[2] == " Non-trainable params: 24 (96.00 B)"


def test_a_layer_of_ones_own_keeps_params_and_weights_equal():
    class Scale(Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", (input_shape[-1],), "zeros")
            super().build(input_shape)

        def forward(self, x, training=False):
            return x * self.w.value

    layer = Scale()
    layer.build((None, 3))
    assert layer.params == layer.weights and layer.non_trainable_params == []
