"""A model file is checked for the values of its state, not only shapes and dtypes (issue 21,
defects 6 and 10): a BatchNormalization moving variance below 0 or not finite, Adam's second
moment below 0 or NaN, a wrong number of optimizer arrays per weight, a negative step count:
each one ModelFileError naming the file, instead of NaN predictions or a crash in fit."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import layers, optimizers
from minicnn.models import ModelFileError, Sequential, load_model


def trained(optimizer="adam"):
    model = Sequential([layers.Conv2D(2, 3, input_shape=(6, 6, 1)),
                        layers.BatchNormalization(), layers.Activation("relu"),
                        layers.Flatten(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer, "categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.random((8, 6, 6, 1)), np.eye(3)[rng.integers(0, 3, 8)])
    return model


def rewrite(path, change):
    """The .npz at `path` with `change(arrays)` applied to its arrays (a dict by member name)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    np.savez(path, **arrays)


def member(arrays, *words):
    return next(k for k in arrays if all(w in k for w in words))


@pytest.mark.parametrize("value", [-1.0, np.nan, np.inf])
def test_a_bad_moving_variance_is_refused(tmp_path, value):
    model = trained()
    path = tmp_path / "m.npz"
    model.save(path)
    names = [p.name for p in model.weights]
    k = names.index(next(n for n in names if n.endswith("moving_variance")))

    def poison(arrays):
        key = [a for a in arrays if a.startswith("weight")][k] if any(
            a.startswith("weight") for a in arrays) else None
        assert key is not None, sorted(arrays)
        arrays[key] = arrays[key].copy()
        arrays[key][0] = value

    rewrite(path, poison)
    with pytest.raises(ModelFileError, match="moving_variance cannot hold") as raised:
        load_model(path)
    assert str(path) in str(raised.value)


def test_set_weights_refuses_it_too_and_keeps_the_old_values():
    model = trained()
    before = [w.copy() for w in model.get_weights()]
    weights = [w.copy() for w in before]
    k = [p.name for p in model.weights].index(model.layers[1].moving_variance.name)
    weights[k][1] = -0.5
    with pytest.raises(ValueError, match="moving_variance cannot hold values below 0"):
        model.set_weights(weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize("problem, match", [
    ("negative v", "is a mean of squares but holds"),
    ("nan m", "holds values that are not finite"),
    ("one array", "has 1 arrays; Adam with these settings keeps 2"),
])
def test_bad_optimizer_state_is_refused(problem, match):
    model = trained()
    opt = model.optimizer
    slots = [tuple(a.copy() for a in s) for s in opt.slots(model.params)]
    if problem == "negative v":
        slots[0][1][...] = -1.0
    elif problem == "nan m":
        slots[0][0][...] = np.nan
    else:
        slots[0] = slots[0][:1]
    with pytest.raises(ValueError, match=match):
        opt.set_slots(model.params, slots, opt.iterations)
    with pytest.raises(ValueError, match="iterations should be a count"):
        opt.set_slots(model.params, [()] * len(model.params), -3)


def test_the_slot_count_follows_the_optimizers_settings():
    assert optimizers.SGD().slot_names() == ()
    assert optimizers.SGD(momentum=0.9).slot_names() == ("velocity",)
    assert optimizers.RMSprop(momentum=0.5, centered=True).slot_names() == ("v", "m", "a")
    assert optimizers.Adam().slot_names() == ("m", "v")


def test_a_file_with_a_wrong_slot_count_names_the_file(tmp_path):
    model = trained()
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as f:
        slot_keys = [k for k in f.files if "slot" in k]
    assert slot_keys, "the model file keeps optimizer slots"
    rewrite(path, lambda arrays: arrays.pop(sorted(slot_keys)[-1]))
    with pytest.raises(ModelFileError) as raised:
        load_model(path)
    assert str(path) in str(raised.value)
