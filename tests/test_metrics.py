"""`minicnn.metrics`: the confusion matrix and accuracy against counts made by hand.

Labels come as class indices or as rows (one-hot, probabilities) and both forms must count alike;
bad labels give a ValueError that names the argument. `accuracy` must also agree with the
accuracy `evaluate` reports.
"""

from __future__ import annotations

import numpy as np
import pytest

from minicnn.metrics import ACCURACY_NAMES, accuracy, confusion_matrix
from minicnn.models import mnist_cnn

# By hand: y_true 0 1 2 2 1 0 2 against y_pred 0 2 2 1 1 0 2 counts, row = true, column = predicted,
#   true 0: predicted 0 twice;  true 1: 2 once, 1 once;  true 2: 2 twice, 1 once.
Y_TRUE = np.array([0, 1, 2, 2, 1, 0, 2])
Y_PRED = np.array([0, 2, 2, 1, 1, 0, 2])
HAND_COUNTED = np.array([[2, 0, 0],
                         [0, 1, 1],
                         [0, 1, 2]])
HAND_ACCURACY = 5 / 7  # the diagonal above: 2 + 1 + 2 right out of 7


# -- confusion_matrix ----------------------------------------------------------------------------
def test_confusion_matrix_matches_a_hand_count():
    counts = confusion_matrix(Y_TRUE, Y_PRED)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, HAND_COUNTED)
    # Rows sum to the class sizes, the diagonal to the correct predictions.
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(Y_TRUE))
    assert np.trace(counts) == np.sum(Y_TRUE == Y_PRED)


def test_confusion_matrix_takes_one_hot_labels_and_probability_rows():
    rng = np.random.default_rng(0)
    # Probability rows whose largest entry is the predicted class.
    probabilities = rng.dirichlet(np.ones(3), size=len(Y_PRED)) * 0.5
    probabilities[np.arange(len(Y_PRED)), Y_PRED] += 0.5
    np.testing.assert_array_equal(
        confusion_matrix(np.eye(3)[Y_TRUE], probabilities), HAND_COUNTED)
    # Float labels that are whole numbers are class indices too.
    np.testing.assert_array_equal(
        confusion_matrix(Y_TRUE.astype(float), Y_PRED), HAND_COUNTED)
    # A one-hot width or num_classes larger than the labels seen adds empty classes.
    wide = confusion_matrix(np.eye(5)[Y_TRUE], Y_PRED)
    assert wide.shape == (5, 5) and wide.sum() == len(Y_TRUE)
    np.testing.assert_array_equal(wide[:3, :3], HAND_COUNTED)
    assert confusion_matrix(Y_TRUE, Y_PRED, num_classes=4).shape == (4, 4)


@pytest.mark.parametrize(("y_true", "y_pred", "kwargs", "message"), [
    (Y_TRUE, Y_PRED[:-1], {}, r"`y_true` and `y_pred`.*7 labels and 6 predictions"),
    (Y_TRUE - 1, Y_PRED, {}, r"`y_true`.*>= 0"),
    (Y_TRUE + 0.5, Y_PRED, {}, r"`y_true`.*integer"),
    (Y_TRUE, Y_PRED[:, None, None], {}, r"`y_pred`.*shape \(7, 1, 1\)"),
    (Y_TRUE, Y_PRED, {"num_classes": 2}, r"`num_classes`.*at least 3"),
])
def test_confusion_matrix_rejects_bad_labels(y_true, y_pred, kwargs, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(y_true, y_pred, **kwargs)


# -- accuracy ------------------------------------------------------------------------------------
def test_accuracy_matches_a_hand_count_in_either_label_form():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(HAND_ACCURACY)
    assert isinstance(accuracy(Y_TRUE, Y_PRED), float)
    # One-hot labels against probability rows: the argmax of each row is its class.
    probabilities = np.eye(3)[Y_PRED] * 0.6 + 0.1
    assert accuracy(np.eye(3)[Y_TRUE], probabilities) == pytest.approx(HAND_ACCURACY)
    assert accuracy(Y_TRUE, Y_TRUE) == 1.0
    assert accuracy(Y_TRUE, (Y_TRUE + 1) % 3) == 0.0


def test_accuracy_rejects_bad_labels():
    with pytest.raises(ValueError, match="at least one sample"):
        accuracy([], [])
    with pytest.raises(ValueError, match=r"`y_true` and `y_pred`.*7 labels and 6 predictions"):
        accuracy(Y_TRUE, Y_PRED[:-1])


def test_accuracy_agrees_with_evaluate():
    """What `evaluate` reports under every accuracy name is `accuracy` of `predict`'s output."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, size=len(x))
    model = mnist_cnn(seed=0)
    probabilities = model.predict(x, batch_size=16)
    for name in ACCURACY_NAMES:
        # Keras's rule: a sparse accuracy reads integer labels, a categorical one one-hot rows
        sparse = name.startswith("sparse")
        model.compile(optimizer="adam", loss=f"{'sparse_' * sparse}categorical_crossentropy",
                      metrics=[name])
        logs = model.evaluate(x, labels if sparse else np.eye(10)[labels], batch_size=16,
                              verbose=0, return_dict=True)
        assert logs[name] == pytest.approx(accuracy(labels, probabilities)), name
