"""ConvPool (a Conv2D(relu) + MaxPooling2D pair run as one step) against the two layers in turn.

The layers are the reference: the fused step must give the same pooled output (bit for bit
where both sum in the same order, the direct path; to float rounding where BLAS sums a GEMM of
another height) and the same gradients to float rounding, on shapes hypothesis draws: odd maps
whose last row and column no window reads, both the direct path (tiny receptive field) and the
im2col path, with and without the input gradient.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.layers import Conv2D, MaxPooling2D
from minicnn.layers.conv import DIRECT_MAX_FIELD
from minicnn.layers.fused import ConvPool
from minicnn.models import Sequential
from tests.strategies import seeds
from tests.tolerances import KERNEL_ATOL, KERNEL_RTOL


def scale_close(got, want, dtype):
    """|got - want| <= atol + rtol * max|want|: summation order changes each element's rounding."""
    scale = float(np.abs(want).max(initial=0.0))
    bound = KERNEL_ATOL[dtype] + 10 * KERNEL_RTOL[dtype] * scale
    assert np.abs(got - want).max(initial=0.0) <= bound, (np.abs(got - want).max(), bound)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), size=st.integers(4, 11), channels=st.integers(1, 5),
       filters=st.integers(1, 6), kernel=st.integers(1, 3), pool=st.integers(2, 3),
       needs_dx=st.booleans(), dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_conv_pool_equals_the_two_layers(n, size, channels, filters, kernel, pool, needs_dx,
                                         dtype, seed):
    rng = np.random.default_rng(seed)
    if size - kernel + 1 < pool:
        size = kernel + pool - 1
    x = rng.standard_normal((n, size, size, channels)).astype(dtype)
    conv = Conv2D(filters, kernel, activation="relu", bias_initializer="he_normal")
    conv.rng = rng
    pool_layer = MaxPooling2D(pool)
    assert ConvPool.applies(conv, pool_layer)
    reference = pool_layer(conv(x))
    dout = rng.standard_normal(reference.shape).astype(dtype)
    conv.needs_input_gradient = needs_dx
    dx_reference = conv.backward(pool_layer.backward(dout))
    grads_reference = [p.grad.copy() for p in conv.params]

    fused = ConvPool(conv, pool_layer)
    out = fused.forward(x)
    if kernel * kernel * channels <= DIRECT_MAX_FIELD:
        np.testing.assert_array_equal(out, reference)  # same sums in the same order
    else:
        scale_close(out, reference, dtype)
    dx = fused.backward(dout)
    for p, want in zip(conv.params, grads_reference, strict=True):
        scale_close(p.grad, want, dtype)
    if needs_dx:
        scale_close(dx, dx_reference, dtype)
    else:
        assert dx is None and dx_reference is None


def test_only_qualifying_pairs_are_fused():
    relu, pool = Conv2D(4, 3, activation="relu"), MaxPooling2D(2)
    assert ConvPool.applies(relu, pool)
    assert not ConvPool.applies(Conv2D(4, 3), pool)  # no ReLU
    assert not ConvPool.applies(Conv2D(4, 3, activation="relu", strides=2), pool)
    assert not ConvPool.applies(Conv2D(4, 3, activation="relu", padding="same"), pool)
    assert not ConvPool.applies(Conv2D(4, 3, activation="relu", use_bias=False), pool)
    assert not ConvPool.applies(relu, MaxPooling2D(3, strides=2))  # overlapping windows
    assert not ConvPool.applies(relu, MaxPooling2D(2, padding="same"))
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)), MaxPooling2D(2),
                        Conv2D(4, 3), MaxPooling2D(2)])
    assert [type(step).__name__ for step in model._steps] == [
        "ConvPool", "Conv2D", "MaxPooling2D"]


def test_a_fused_model_trains_like_the_layers_run_one_by_one():
    """Two Adam steps of the MNIST model, fused against unfused, from the same weights."""
    from minicnn.models import mnist_cnn
    from minicnn.utils import to_categorical

    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 16), 10)
    fused, plain = mnist_cnn(seed=1), mnist_cnn(seed=1)
    plain._plan = list(plain.layers)  # run every layer on its own
    assert len(fused._steps) == 6 and len(plain._steps) == 8
    for _ in range(2):
        fused.train_on_batch(x, y)
        plain.train_on_batch(x, y)
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        # Adam moves each weight by ~1e-3 per step; rounding differences in the gradients
        # change that move by far less.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fused.predict(x), plain.predict(x), rtol=0, atol=1e-5)
