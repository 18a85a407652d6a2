"""The public contract between the fast tier and what builds on it (docs/distributed.md).

- Steps match layers by what they compute, not by their exact class: a Conv2D subclass that
  overrides neither forward nor backward keeps the fast path, one that does keeps its own code.
- `parallel.cut_batches(pieces)` makes this thread's steps cut a batch where it says, and no
  other thread's; a chunked step's `partials()` are the per-chunk gradients it summed.
- `step.per_sample` says which steps a data-parallel worker may run on its rows.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import layers
from minicnn.fast import ConvPoolStep, ConvStep, LayerStep, make_plan, parallel
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from tests.test_plan import assert_step_equals_layers


class NamedConv(Conv2D):
    """A Conv2D with extra bookkeeping and the base class's arithmetic."""

    def __init__(self, *args, note: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.note = note


class DoubledConv(Conv2D):
    """A Conv2D whose forward computes something else: the fast steps must not run it."""

    def forward(self, x, training=False):
        return 2 * super().forward(x, training)

    def backward(self, dout):
        return super().backward(2 * dout)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 3), pool=st.booleans(),
       input_gradient=st.booleans())
def test_a_subclass_with_the_base_arithmetic_keeps_the_fast_path(seed, n, pool, input_gradient):
    rng = np.random.default_rng(seed)
    conv = NamedConv(3, 3, activation="relu", note="mine")
    conv.rng = rng
    x = rng.standard_normal((n, 8, 8, 2)).astype(np.float32)
    chain = [conv, MaxPooling2D(2)] if pool else [conv]
    h = x
    for layer in chain:
        h = layer(h)
    (step,) = make_plan(chain, upstream_params=input_gradient)
    assert type(step) is (ConvPoolStep if pool else ConvStep)
    assert_step_equals_layers(step, x, rng, "float32", input_gradient)


def test_a_subclass_that_changes_the_math_runs_its_own_code():
    conv, pool = DoubledConv(3, 3, activation="relu"), MaxPooling2D(2)
    pool(conv(np.ones((1, 8, 8, 2), np.float32)))
    plan = make_plan([conv, pool])
    assert [type(s) for s in plan] == [LayerStep, LayerStep]


def test_cut_batches_applies_to_this_thread_only_and_checks_its_pieces():
    pieces = [(0, 3), (3, 4), (4, 10)]
    seen = {}

    def other_thread():
        seen["other"] = parallel.chunks(10)

    with parallel.cut_batches(pieces):
        assert parallel.chunks(10) == pieces
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        with pytest.raises(RuntimeError, match="a step of 9 rows ran inside cut_batches"):
            parallel.chunks(9)
    assert seen["other"] == parallel.chunks(10) != pieces
    for bad in ([], [(1, 3)], [(0, 3), (4, 5)], [(0, 0)]):
        with pytest.raises(ValueError, match="Expected contiguous, non-empty"):
            with parallel.cut_batches(bad):
                pass


def conv_and_input(rng, filters: int, x_shape: tuple):
    """A built Conv2D(filters, 3, relu) with weights from rng, and an input x of x_shape."""
    conv = Conv2D(filters, 3, activation="relu")
    conv.rng = rng
    x = rng.standard_normal(x_shape).astype(np.float32)
    conv(x)
    return conv, x


def test_a_chunked_steps_partials_follow_the_cut_and_sum_to_its_gradient():
    rng = np.random.default_rng(0)
    conv, x = conv_and_input(rng, 4, (7, 6, 6, 2))
    step = ConvStep(conv, input_gradient=False)
    pieces = [(0, 2), (2, 7)]
    with parallel.cut_batches(pieces):
        y = step.forward(x, training=True)
        step.backward(rng.standard_normal(y.shape).astype(np.float32))
    kernel, bias = step.partials()
    assert kernel.shape == (2, 3 * 3 * 2, 4) and bias.shape == (2, 4)
    np.testing.assert_array_equal(np.sum(kernel, axis=0), conv.kernel.grad.reshape(18, 4))
    np.testing.assert_array_equal(np.sum(bias, axis=0), conv.bias.grad)
    assert step.params == [conv.kernel, conv.bias]
    with pytest.raises(NotImplementedError):
        LayerStep(Dense(2)).partials()


def test_a_frozen_conv_hands_over_no_partials():
    conv, x = conv_and_input(np.random.default_rng(0), 2, (3, 6, 6, 1))
    conv.trainable = False
    step = ConvStep(conv, input_gradient=False)
    step.backward(np.ones_like(step.forward(x, training=True)))
    assert step.params == [] and step.partials() == [] and step.per_sample


def test_which_steps_are_per_sample():
    x = np.ones((2, 6, 6, 1), np.float32)
    conv, flat, dense = Conv2D(2, 3), Flatten(), Dense(2)
    dense(flat(conv(x)))
    shared_mask = Dropout(0.5, noise_shape=(1, None, None, None))
    shared_mask(x)
    assert ConvStep(conv).per_sample and LayerStep(flat).per_sample
    assert not LayerStep(dense).per_sample  # its weights: a worker has no copy to update
    assert LayerStep(Dropout(0.5)).per_sample and not LayerStep(shared_mask).per_sample
    bn = layers.BatchNormalization()
    bn(x)
    assert not LayerStep(bn).per_sample  # batch statistics
