"""Metric objects (minicnn/metrics.py) against Keras's on the same batches and sample weights,
and what compile(metrics=...) reports: names, order, and the choice behind "accuracy"."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import layers, metrics
from minicnn.models import Sequential
from tests.tolerances import TF_FORWARD_ATOL, TF_FORWARD_RTOL


def batches(kind: str, rng: np.random.Generator):
    """Three batches (y_true, y_pred, sample_weight) of the targets a metric takes."""
    out = []
    for n in (7, 1, 12):
        w = rng.uniform(0, 2, n).astype(np.float32)
        if kind == "onehot":
            p = rng.dirichlet(np.ones(5), n).astype(np.float32)
            out.append((np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)], p, w))
        elif kind == "labels":
            out.append((rng.integers(0, 5, n), rng.dirichlet(np.ones(5), n).astype(np.float32),
                        w))
        elif kind == "binary":
            out.append((rng.integers(0, 2, (n, 3)).astype(np.float32),
                        rng.random((n, 3)).astype(np.float32), w))
        elif kind == "classes":
            out.append((rng.integers(0, 3, (n, 2)).astype(np.float32),
                        rng.integers(0, 3, (n, 2)).astype(np.float32), w))
        else:
            out.append((rng.standard_normal((n, 4, 3)).astype(np.float32),
                        rng.standard_normal((n, 4, 3)).astype(np.float32), w))
    return out


CASES = [
    ("Accuracy", {}, "classes"),
    ("CategoricalAccuracy", {}, "onehot"),
    ("SparseCategoricalAccuracy", {}, "labels"),
    ("BinaryAccuracy", {"threshold": 0.4}, "binary"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, "labels"),
    ("MeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": [0.3, 0.6]}, "binary"),
    ("Precision", {"top_k": 2}, "binary"),
    ("Recall", {"class_id": 1}, "binary"),
    ("Recall", {"thresholds": 0.7}, "binary"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"num_thresholds": 13, "summation_method": "minoring"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
]


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of these tests")
    import keras
    return keras


@pytest.mark.parametrize("name, kwargs, kind", CASES,
                         ids=[f"{n}{k}" for n, k, _ in CASES])
@pytest.mark.parametrize("weighted", [False, True])
def test_agrees_with_keras(keras, name, kwargs, kind, weighted):
    """Three batches (one of a single sample) through update_state: the same result as Keras's
    after each, and after reset_state."""
    rng = np.random.default_rng(len(name) + 7 * weighted)
    ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    for y, p, w in batches(kind, rng):
        ours.update_state(y, p, w if weighted else None)
        theirs.update_state(y, p, sample_weight=w if weighted else None)
        np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()),
                                   rtol=TF_FORWARD_RTOL, atol=TF_FORWARD_ATOL)
    ours.reset_state()
    assert np.all(np.asarray(ours.result()) == 0.0)


def test_config_round_trip_and_auto_names():
    auc = metrics.AUC(num_thresholds=50, curve="PR")
    again = metrics.get(metrics.serialize(auc), None, None)
    assert type(again) is metrics.AUC and again.get_config() == auc.get_config()
    first, second = metrics.Precision(), metrics.Precision()
    assert second.name != first.name and second.name.startswith("precision")
    assert metrics.BinaryAccuracy().name == "binary_accuracy"


@pytest.mark.parametrize("y, out, expected", [
    (np.zeros(4, int), np.zeros((4, 3)), metrics.SparseCategoricalAccuracy),
    (np.zeros((4, 1), int), np.zeros((4, 3)), metrics.SparseCategoricalAccuracy),
    (np.zeros((4, 3)), np.zeros((4, 3)), metrics.CategoricalAccuracy),
    (np.zeros((4, 1)), np.zeros((4, 1)), metrics.BinaryAccuracy),
    (np.zeros(4), np.zeros((4, 1)), metrics.BinaryAccuracy)])
def test_accuracy_is_chosen_as_keras_3_chooses(y, out, expected):
    metric = metrics.get("acc", y, out)
    assert type(metric) is expected and metric.name == "acc"


def test_history_names_and_order_equal_keras(keras):
    """The same compile() in both: History's keys, in the same order, and evaluate's list in
    compile order (loss first)."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    weights = [rng.standard_normal((4, 3)).astype(np.float32), np.zeros(3, np.float32)]
    asked = dict(metrics=["accuracy", "sparse_top_k_categorical_accuracy"],
                 weighted_metrics=["accuracy"])
    ours = Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    ours.compile("sgd", "sparse_categorical_crossentropy", **asked)
    ours.set_weights(weights)
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    twin.compile("sgd", "sparse_categorical_crossentropy", **asked)
    twin.set_weights(weights)
    w = rng.uniform(0.5, 2, 40)
    mine = ours.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w), sample_weight=w,
                    shuffle=False).history
    theirs = twin.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w), sample_weight=w,
                      shuffle=False).history
    assert list(mine) == list(theirs)
    for key in theirs:
        assert mine[key][0] == pytest.approx(theirs[key][0], rel=1e-4, abs=1e-5), key
    ours_list = ours.evaluate(x, y, verbose=0, sample_weight=w)
    theirs_list = twin.evaluate(x, y, verbose=0, sample_weight=w)
    np.testing.assert_allclose(ours_list, theirs_list, rtol=1e-4, atol=1e-5)


def test_unknown_metric_is_one_clear_error():
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"Invalid value in argument `metrics`.*'f1'"):
        model.compile("sgd", "mse", metrics=["f1"])


def test_loss_and_metric_objects_survive_the_model_file(tmp_path):
    from minicnn import losses
    from minicnn.models import load_model

    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))], seed=0)
    model.compile("adam", losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=["accuracy", metrics.AUC(num_thresholds=50)], weighted_metrics=["mse"])
    x = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
    model.save(tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    assert again.loss.get_config() == model.loss.get_config()
    assert again.metrics[1].get_config() == model.metrics[1].get_config()
    assert again.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(
        x, y, verbose=0, return_dict=True)
