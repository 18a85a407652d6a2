"""to_categorical against hand-built one-hots and the Keras contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minicnn.utils import to_categorical


def test_matches_hand_built_one_hot():
    expected = np.array(
        [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=np.float32
    )
    result = to_categorical([0, 2, 1, 3, 0])
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)


def test_num_classes_widens_and_dtype_is_honoured():
    result = to_categorical(np.array([1, 0], dtype=np.uint8), num_classes=4, dtype="int64")
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, [[0, 1, 0, 0], [1, 0, 0, 0]])
    assert to_categorical([1], 2, dtype=bool).tolist() == [[False, True]]


def test_trailing_one_is_dropped_like_keras():
    assert to_categorical(np.array([[1], [0], [2]])).shape == (3, 3)
    assert to_categorical(np.zeros((2, 5, 1), dtype=int), 3).shape == (2, 5, 3)
    assert to_categorical(np.zeros((2, 5), dtype=int), 3).shape == (2, 5, 3)
    assert to_categorical(np.zeros((1,), dtype=int), 3).shape == (1, 3)  # 1-D (1,) stays
    np.testing.assert_array_equal(to_categorical(2, 4), [0, 0, 1, 0])  # a scalar label


def test_whole_floats_and_bools_are_labels():
    np.testing.assert_array_equal(to_categorical([2.0, 0.0]), to_categorical([2, 0]))
    np.testing.assert_array_equal(to_categorical([True, False]), [[0, 1], [1, 0]])


def test_empty_input_with_num_classes():
    assert to_categorical(np.array([], dtype=int), num_classes=3).shape == (0, 3)


@settings(max_examples=100)  # cheap examples: more dtype, shape and label combinations
@given(
    y=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int32, np.int64, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
        elements=st.integers(0, 11),
    ),
    extra=st.integers(0, 3),
)
def test_drawn_labels(y, extra):
    num_classes = int(y.max()) + 1 + extra
    result = to_categorical(y, num_classes)
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    assert result.shape == (*shape, num_classes)
    # Exactly one 1 per label, at the label's index, which argmax recovers.
    np.testing.assert_array_equal(result.sum(axis=-1), 1)
    np.testing.assert_array_equal(result.argmax(axis=-1), y.reshape(shape))
    assert to_categorical(y).shape[-1] == int(y.max()) + 1


@pytest.mark.parametrize(
    "y, kwargs, message",
    [
        ([0, -1, 2], {}, "negative label -1"),
        ([0, 1.5], {}, "non-integer label 1.5"),
        ([0, np.nan], {}, "non-integer label nan"),
        ([0, 3, 10], {"num_classes": 10}, "below num_classes=10. Received the label 10"),
        (np.array([], dtype=int), {}, "infer num_classes"),
        (["a", "b"], {}, "dtype=<U1"),
        ([1], {"num_classes": 0}, "num_classes=0"),
        ([1], {"num_classes": 2.0}, "num_classes=2.0"),
    ],
)
def test_errors(y, kwargs, message):
    with pytest.raises(ValueError) as info:
        to_categorical(y, **kwargs)
    assert message in str(info.value)
