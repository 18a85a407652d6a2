"""Optimizers, schedules and learning-rate callbacks without TensorFlow: Keras-style argument
errors, updates and schedule values worked out by hand, the callbacks on a tiny model, and the
optimizer's config through save and load. tests/test_optimizers_tf.py compares with Keras."""

from __future__ import annotations

import math
import re
import types
import warnings

import numpy as np
import pytest

from minicnn import layers, optimizers
from minicnn.callbacks import LearningRateScheduler, ReduceLROnPlateau
from minicnn.layers import Parameter
from minicnn.models import Sequential, load_model
from minicnn.optimizers import SGD, Adam, AdamW, RMSprop, schedules
from minicnn.utils import to_categorical
from tests.tolerances import KERNEL_RTOL


# -- argument errors --------------------------------------------------------------------------
@pytest.mark.parametrize("make, argument", [
    (lambda: SGD(learning_rate=0), "learning_rate"),
    (lambda: Adam(learning_rate="fast"), "learning_rate"),
    (lambda: SGD(momentum=1.5), "momentum"),
    (lambda: Adam(beta_1=1.0), "beta_1"),
    (lambda: AdamW(weight_decay=-0.1), "weight_decay"),
    (lambda: RMSprop(clipnorm=-1.0), "clipnorm"),
    (lambda: SGD(clipvalue="big"), "clipvalue"),
])
def test_bad_arguments_are_named(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received {argument}="):
        make()


def test_only_one_kind_of_clipping():
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and "
                                         "`global_clipnorm` can be set"):
        Adam(clipnorm=1.0, clipvalue=0.5)


def test_adamw_needs_a_weight_decay():
    with pytest.raises(ValueError, match=re.escape("`weight_decay` must be a float. Received: "
                                                   "weight_decay=None")):
        AdamW(weight_decay=None)


@pytest.mark.parametrize("make", [
    lambda: schedules.ExponentialDecay(0.1, 0, 0.5),
    lambda: schedules.InverseTimeDecay(0.1, -1, 0.5),
    lambda: schedules.CosineDecay(0.1, 0),
])
def test_schedules_refuse_non_positive_decay_steps(make):
    with pytest.raises(ValueError, match=re.escape("Argument `decay_steps` must be > 0. "
                                                   "Received: decay_steps=")):
        make()


def test_piecewise_constant_needs_one_more_value_than_boundaries():
    with pytest.raises(ValueError, match="boundaries should be 1 less than the length of values"):
        schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5])


def test_adamw_defaults_are_keras_s():
    assert AdamW().get_config() == {"learning_rate": 0.001, "weight_decay": 0.004,
                                    "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    assert isinstance(optimizers.get(AdamW()), AdamW)


# -- updates by hand, float64 -----------------------------------------------------------------
def params64(*values) -> list[Parameter]:
    return [Parameter(f"w{k}", np.array(v, dtype=np.float64)) for k, v in enumerate(values)]


def test_nesterov_moves_by_momentum_times_velocity_minus_lr_g():
    (p,) = params64([1.0, -2.0])
    opt = SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    g1, g2 = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    p.grad[...] = g1
    opt.step([p])
    v1 = -0.1 * g1
    w1 = np.array([1.0, -2.0]) + 0.9 * v1 - 0.1 * g1
    np.testing.assert_allclose(p.value, w1, rtol=KERNEL_RTOL["float64"])
    p.grad[...] = g2
    opt.step([p])
    v2 = 0.9 * v1 - 0.1 * g2
    np.testing.assert_allclose(p.value, w1 + 0.9 * v2 - 0.1 * g2, rtol=KERNEL_RTOL["float64"])


def test_adamw_decays_the_weights_before_adam_s_step():
    (p,) = params64([1.0, -2.0, 0.5])
    g = np.array([0.3, -0.2, 1e-3])
    p.grad[...] = g
    lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-7
    AdamW(learning_rate=lr, weight_decay=wd).step([p])
    w = np.array([1.0, -2.0, 0.5])
    w = w - w * wd * lr
    m, v = (1 - b1) * g, (1 - b2) * g * g
    alpha = lr * math.sqrt(1 - b2) / (1 - b1)
    np.testing.assert_allclose(p.value, w - alpha * m / (np.sqrt(v) + eps),
                               rtol=KERNEL_RTOL["float64"])


def test_update_norms_of_a_decayed_step_measure_the_whole_move():
    (p,) = params64([1.0, -2.0, 0.5])
    p.grad[...] = [0.3, -0.2, 1e-3]
    before = p.value.copy()
    opt = AdamW(learning_rate=0.01, weight_decay=0.5)
    opt.step([p])
    assert opt.update_norms[p] == pytest.approx(np.linalg.norm(p.value - before), rel=1e-12)


def test_clipping_uses_copies_and_leaves_param_grad_as_backward_wrote_it():
    a, b = params64([0.0, 0.0], [0.0])
    a.grad[...], b.grad[...] = [3.0, 4.0], [12.0]
    SGD(learning_rate=1.0, clipnorm=1.0).step([a, b])  # each tensor to norm 1
    np.testing.assert_allclose(a.value, [-0.6, -0.8], rtol=KERNEL_RTOL["float64"])
    np.testing.assert_allclose(b.value, [-1.0], rtol=KERNEL_RTOL["float64"])
    assert a.grad.tolist() == [3.0, 4.0] and b.grad.tolist() == [12.0]

    a, b = params64([0.0, 0.0], [0.0])
    a.grad[...], b.grad[...] = [3.0, 4.0], [12.0]
    SGD(learning_rate=1.0, global_clipnorm=1.3).step([a, b])  # all together: norm 13 -> 1.3
    np.testing.assert_allclose(a.value, [-0.3, -0.4], rtol=KERNEL_RTOL["float64"])
    np.testing.assert_allclose(b.value, [-1.2], rtol=KERNEL_RTOL["float64"])

    (c,) = params64([0.0, 0.0, 0.0])
    c.grad[...] = [3.0, -0.25, -7.0]
    SGD(learning_rate=1.0, clipvalue=0.5).step([c])
    assert c.value.tolist() == [-0.5, 0.25, 0.5]
    assert c.grad.tolist() == [3.0, -0.25, -7.0]


# -- schedules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule, step, expected", [
    (schedules.ExponentialDecay(0.1, 10, 0.5), 5, 0.1 * 0.5**0.5),
    (schedules.ExponentialDecay(0.1, 10, 0.5), 20, 0.025),
    (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), 19, 0.05),
    (schedules.InverseTimeDecay(0.1, 10, 1.0), 10, 0.05),
    (schedules.InverseTimeDecay(0.1, 10, 1.0), 5, 0.1 / 1.5),
    (schedules.InverseTimeDecay(0.1, 10, 1.0, staircase=True), 19, 0.05),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 10, 1.0),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 11, 0.5),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 20, 0.5),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), 21, 0.1),
    (schedules.CosineDecay(0.1, 10), 0, 0.1),
    (schedules.CosineDecay(0.1, 10), 5, 0.05),
    (schedules.CosineDecay(0.1, 10), 30, 0.0),
    (schedules.CosineDecay(0.1, 10, alpha=0.1), 10, 0.01),
    (schedules.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=5), 2, 0.04),
    (schedules.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=5), 5, 0.1),
    (schedules.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=5), 10, 0.05),
])
def test_schedule_values_by_hand(schedule, step, expected):
    assert schedule(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_an_optimizer_takes_its_rate_from_the_schedule_at_its_step_count():
    (p,) = params64([0.0])
    opt = SGD(learning_rate=schedules.PiecewiseConstantDecay([1], [1.0, 0.1]))
    rates = []
    for _ in range(4):
        rates.append(opt.learning_rate)
        p.grad[...] = 1.0
        before = p.value.copy()
        opt.step([p])
        assert (before - p.value)[0] == pytest.approx(rates[-1])
    assert rates == [1.0, 1.0, 0.1, 0.1]  # iterations 0, 1 <= boundary 1; then 2, 3


def test_a_schedule_driven_rate_cannot_be_set():
    opt = Adam(learning_rate=schedules.CosineDecay(0.1, 10))
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.01


# -- callbacks ----------------------------------------------------------------------------------
def tiny_model(optimizer, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = to_categorical(rng.integers(0, 3, 64), 3)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))], seed=seed)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model, x, y


def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    model, x, y = tiny_model(SGD(learning_rate=0.1))
    seen = []

    def halve(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5

    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0,
                        callbacks=[LearningRateScheduler(halve)])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.025, 0.0125])
    assert model.optimizer.learning_rate == pytest.approx(0.0125)


def test_learning_rate_scheduler_takes_a_one_argument_schedule_and_checks_its_output():
    model, x, y = tiny_model(SGD(learning_rate=0.1))
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05])
    with pytest.raises(ValueError, match=re.escape("should be a float. Got: 1")):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: 1)])


def test_callbacks_refuse_to_set_a_schedule_driven_rate():
    model, x, y = tiny_model(Adam(learning_rate=schedules.ExponentialDecay(0.01, 10, 0.9)))
    with pytest.raises(TypeError, match="not settable"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[LearningRateScheduler(lambda e, lr: lr * 0.5)])


def plateau(values, optimizer, **kwargs):
    """Drive ReduceLROnPlateau with the given per-epoch val_loss; returns the logged rates."""
    callback = ReduceLROnPlateau(**kwargs)
    callback.set_model(types.SimpleNamespace(optimizer=optimizer))
    callback.on_train_begin()
    logged = []
    for epoch, value in enumerate(values):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    return logged


def test_reduce_lr_on_plateau_waits_patience_then_cools_down():
    # epochs 1 and 2 do not improve -> reduce after epoch 2; epoch 3 is cooldown (wait stays 0
    # there, then counts), epoch 4 reaches patience again; 0.5 at epoch 5 is an improvement.
    opt = SGD(learning_rate=0.1)
    logged = plateau([1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5], opt, factor=0.5, patience=2,
                     cooldown=1)
    assert logged == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    assert opt.learning_rate == pytest.approx(0.025)


def test_reduce_lr_on_plateau_respects_min_delta_and_min_lr():
    opt = SGD(learning_rate=0.1)
    # 1.0 -> 0.99995 is not an improvement by more than min_delta=1e-4
    logged = plateau([1.0, 0.99995, 0.9999, 0.9], opt, factor=0.1, patience=1, min_lr=0.05)
    assert logged == pytest.approx([0.1, 0.1, 0.05, 0.05])
    assert opt.learning_rate == 0.05


def test_reduce_lr_on_plateau_arguments_and_a_missing_metric():
    with pytest.raises(ValueError, match=re.escape("factor >= 1.0. Received factor=1")):
        ReduceLROnPlateau(factor=1.0)
    with pytest.warns(UserWarning, match="`val_loss` which is not available"):
        model, x, y = tiny_model(SGD(learning_rate=0.1))
        history = model.fit(x, y, epochs=1, verbose=0, callbacks=[ReduceLROnPlateau()])
    assert history.history["learning_rate"] == [0.1]


def test_reduce_lr_on_plateau_in_fit_reduces_on_training_loss_plateau():
    model, x, y = tiny_model(SGD(learning_rate=1e-9))  # too small to move: a plateau
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LearningCheck: the weights barely move
        history = model.fit(x, y, epochs=3, batch_size=64, verbose=0,
                            callbacks=[ReduceLROnPlateau(monitor="loss", patience=1)])
    assert history.history["learning_rate"] == pytest.approx([1e-9, 1e-9, 1e-10])


# -- saving -------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", [
    AdamW(learning_rate=schedules.CosineDecay(0.01, 100, alpha=0.1, warmup_target=0.02,
                                              warmup_steps=3), weight_decay=0.01, clipnorm=1.0),
    SGD(learning_rate=schedules.PiecewiseConstantDecay([2], [0.1, 0.01]), momentum=0.9,
        nesterov=True, clipvalue=0.5),
    Adam(learning_rate=schedules.ExponentialDecay(0.01, 5, 0.5, staircase=True),
         global_clipnorm=2.0),
    RMSprop(learning_rate=schedules.InverseTimeDecay(0.01, 5, 0.5)),
], ids=["AdamW-cosine", "SGD-piecewise", "Adam-exponential", "RMSprop-inverse-time"])
def test_optimizer_config_and_schedule_survive_save_and_load(optimizer, tmp_path):
    model, x, y = tiny_model(optimizer)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert loaded.optimizer.iterations == optimizer.iterations == 4
    assert loaded.optimizer.learning_rate == optimizer.learning_rate
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
