"""Sample and class weights (equal to Keras's losses and first steps), and data given as
generators, PyDataset-like objects and iterables of batches (minicnn/models/data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import layers, losses
from minicnn.models import Sequential


def conv_model(head: str, units: int, seed: int = 0) -> Sequential:
    return Sequential([layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 2)),
                       layers.Flatten(), layers.Dense(units, activation=head)], seed=seed)


def data(n: int, kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 6, 2)).astype(np.float32)
    if kind == "sparse":
        return x, rng.integers(0, 4, n)
    if kind == "binary":
        return x, rng.integers(0, 2, (n, 1)).astype(np.float32)
    return x, rng.standard_normal((n, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras
    return keras


SETUPS = [
    ("sparse", "softmax", 4, "sparse_categorical_crossentropy", {"class_weight": {0: 0.5, 2: 3}}),
    ("sparse", "softmax", 4, "sparse_categorical_crossentropy", {"sample_weight": "random"}),
    ("binary", "sigmoid", 1, "binary_crossentropy", {"class_weight": {0: 2.0, 1: 0.25}}),
    ("real", None, 2, "mse", {"sample_weight": "random"}),
]


@pytest.mark.parametrize("kind, head, units, loss, weighting", SETUPS,
                         ids=[f"{s[3]}-{next(iter(s[4]))}" for s in SETUPS])
def test_weighted_fit_equals_keras(keras, kind, head, units, loss, weighting):
    """Three SGD steps from the same weights, in the same order: the same epoch loss and
    weighted metric, and the same weights after (so the same gradients at every step)."""
    x, y = data(20, kind)
    if weighting.get("sample_weight") == "random":
        weighting = {"sample_weight": np.random.default_rng(1).uniform(0, 3, 20)}
    ours = conv_model(head, units)
    ours.compile("sgd", loss, weighted_metrics=["mae" if kind == "real" else "accuracy"])
    twin = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(units, activation=head)])
    twin.set_weights(ours.get_weights())
    twin.compile(keras.optimizers.SGD(), loss,
                 weighted_metrics=["mae" if kind == "real" else "accuracy"])
    mine = ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, **weighting).history
    theirs = twin.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                      **weighting).history
    assert list(mine) == list(theirs)
    for key in theirs:
        assert mine[key][0] == pytest.approx(theirs[key][0], rel=1e-4), key
    for a, b in zip(ours.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    w = weighting.get("sample_weight")
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0, sample_weight=w),
                               twin.evaluate(x, y, verbose=0, sample_weight=w), rtol=1e-4)


def test_train_on_batch_with_weights_equals_keras(keras):
    x, y = data(10, "sparse")
    w = np.linspace(0, 2, 10)
    ours = conv_model("softmax", 4)
    ours.compile("adam", losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    twin = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])
    twin.set_weights(ours.get_weights())
    twin.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    for _ in range(2):
        np.testing.assert_allclose(ours.train_on_batch(x, y, sample_weight=w),
                                   twin.train_on_batch(x, y, sample_weight=w), rtol=1e-4)


def test_zero_weights_leave_samples_out():
    """A sample of weight 0 changes nothing: training on it equals training without it, as
    the batch's loss still divides by the batch's size (Keras's sum_over_batch_size)."""
    x, y = data(8, "sparse")
    a, b = conv_model("softmax", 4), conv_model("softmax", 4)
    for m in (a, b):
        m.compile("sgd", "sparse_categorical_crossentropy")
    w = np.array([1, 1, 1, 1, 0, 0, 0, 0.0])
    a.train_on_batch(x, y, sample_weight=w)
    double = np.concatenate([x[:4], x[:4]]), np.concatenate([y[:4], y[:4]])
    b.train_on_batch(*double, sample_weight=np.full(8, 0.5))
    for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-7)


def test_weight_errors_are_clear():
    x, y = data(6, "sparse")
    model = conv_model("softmax", 4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="cannot `class_weight` and `sample_weight`"):
        model.fit(x, y, verbose=0, sample_weight=np.ones(6), class_weight={0: 1})
    with pytest.raises(ValueError, match=r"one number per sample, shape \(6,\)"):
        model.fit(x, y, verbose=0, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="Expected a dict"):
        model.fit(x, y, verbose=0, class_weight=[1, 2])
    with pytest.raises(ValueError, match="unrecognized data type"):
        model.fit({1, 2}, y, verbose=0)


# -- generators and datasets ----------------------------------------------------------------------
class Batches:
    """A keras.utils.PyDataset-like object: __len__, __getitem__, on_epoch_end."""

    def __init__(self, x, y, batch_size, weights=None):
        self.x, self.y, self.batch_size, self.weights = x, y, batch_size, weights
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        if self.weights is None:
            return self.x[s], self.y[s]
        return self.x[s], self.y[s], self.weights[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def trained(source, **fit_args):
    model = conv_model("softmax", 4, seed=2)
    model.compile("sgd", "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    history = model.fit(source, verbose=0, **fit_args).history
    return model, history


def test_a_dataset_trains_as_the_same_arrays_unshuffled():
    x, y = data(20, "sparse")
    w = np.linspace(0.5, 2, 20)
    ref, ref_history = trained(x, y=y, batch_size=8, epochs=2, shuffle=False, sample_weight=w)
    dataset = Batches(x, y, 8, w)
    model, history = trained(dataset, epochs=2)
    assert history == pytest.approx(ref_history) and dataset.epochs_ended == 2
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    generator = (dataset[i % 3] for i in range(6))
    model, history = trained(generator, epochs=2, steps_per_epoch=3)
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    class Iterable:  # re-iterable, no length: a list of batches behind __iter__
        def __iter__(self):
            return iter([dataset[i] for i in range(3)])

    listed, _ = trained(Iterable(), epochs=2)
    assert all(np.array_equal(a, b) for a, b in zip(listed.get_weights(), ref.get_weights(),
                                                     strict=True))
    assert model.evaluate(dataset, verbose=0) == pytest.approx(
        model.evaluate(x, y, batch_size=8, sample_weight=w, verbose=0))
    np.testing.assert_array_equal(model.predict(Batches(x, y, 8), verbose=0),
                                  model.predict(x, batch_size=8, verbose=0))
    np.testing.assert_array_equal(model.predict(iter([x[:5], x[5:]]), verbose=0),
                                  model.predict(x, verbose=0))


def test_a_generator_that_runs_out_stops_training_with_keras_warning():
    """Epoch 2 gets the generator's last batch and ends there, epoch 3 gets none: training
    stops after epoch 2, with Keras's warning."""
    x, y = data(16, "sparse")
    generator = ((x[i:i + 8], y[i:i + 8]) for i in (0, 8, 0))
    with pytest.warns(UserWarning, match="ran out of data"):
        _, history = trained(generator, epochs=3, steps_per_epoch=2)
    assert len(history["loss"]) == 2


def test_steps_per_epoch_on_arrays_goes_on_where_the_last_epoch_stopped():
    """As Keras 3: with 3 batches per pass and steps_per_epoch=2, epoch 2 trains the pass's
    last batch (and warns that it ran out), epoch 3 starts a new pass."""
    x, y = data(24, "sparse")
    model = conv_model("softmax", 4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    seen = []
    original = model._train_step
    model._train_step = lambda xs, by, bw: (seen.append(len(by)), original(xs, by, bw))[1]
    with pytest.warns(UserWarning, match="ran out of data"):
        model.fit(x, y, batch_size=8, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    assert seen == [8, 8, 8, 8, 8]


def test_data_errors_are_clear():
    x, y = data(8, "sparse")
    model = conv_model("softmax", 4)
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="`y` and `sample_weight` must not be given"):
        model.fit(Batches(x, y, 4), y, verbose=0)
    with pytest.raises(ValueError, match="tuple of 4 items"):
        model.fit(iter([(x, y, y, y)]), verbose=0)
    with pytest.raises(ValueError, match="targets y are missing"):
        model.fit(iter([x]), verbose=0)
    with pytest.raises(ValueError, match="`steps_per_epoch`"):
        model.fit(x, y, steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match=r"`epochs`. Expected a non-negative integer"):
        model.fit(x, y, epochs=1.5, verbose=0)


def test_predict_on_an_output_of_unknown_size():
    """The output array is sized from the first batch: an output shape with None sizes (a
    Reshape after an Input of unknown height and width) predicts as model(x) does."""
    import minicnn as keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, layers.Reshape((-1, 3))(inputs))
    x = np.random.default_rng(0).random((5, 4, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, batch_size=2, verbose=0), x.reshape(5, -1, 3))
