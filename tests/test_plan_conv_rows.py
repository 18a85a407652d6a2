"""ConvStep's "rows" algorithm (minicnn/fast/kernels/conv_along_rows.py) against the reference
layer, where the rule picks it, and d2l's LeNet, whose first layer it was made for.

The kernels themselves are compared with their NumPy references in tests/test_fast_kernels.py;
here the step runs beside its Conv2D from the same weights and must give the same output, weight
gradients and dx to the tolerances of tests/test_plan.py, for every activation, 'same' and
'valid', odd maps, and batches the chunks do not divide evenly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.fast import ConvPoolStep, ConvStep
from minicnn.fast.conv_algorithm import ROWS_MAX_CHANNELS, ROWS_MAX_FILTERS, choose_algorithm
from minicnn.layers import Conv2D, MaxPooling2D
from minicnn.models import recipes
from tests.strategies import seeds
from tests.test_fast_activations import NAMES, activation_objects
from tests.test_fast_kernels import row_filters, row_setups
from tests.test_plan import assert_step_equals_layers
from tests.test_plan_winograd import conv_algorithm
from tests.test_signatures import kernel_signatures
from tests.tolerances import PLAN_TRAINING_ATOL


def rows_step(s, F, activation, use_bias, input_gradient, dtype, rng, batch):
    """A ConvStep with F filters forced to "rows" on setup s (its batch replaced by `batch`),
    and its input."""
    x = rng.standard_normal((batch, s.H, s.W, s.C)).astype(dtype)
    conv = Conv2D(F, (s.KH, s.KW), padding=s.padding, activation=activation, use_bias=use_bias,
                  bias_initializer="he_normal", dtype=dtype)
    conv.rng = rng
    conv(x)
    with conv_algorithm("rows"):
        step = ConvStep(conv, input_gradient=input_gradient)
    assert step.algorithm == "rows"
    return step, x


@pytest.mark.parametrize("name", NAMES)
@given(s=row_setups(), F=row_filters(), data=st.data(), use_bias=st.booleans(),
       input_gradient=st.booleans(), batch=st.integers(1, 11),
       dtype=st.sampled_from(["float32", "float64"]), seed=seeds())
def test_rows_conv_step_equals_its_layer(name, s, F, data, use_bias, input_gradient, batch,
                                         dtype, seed):
    """Batches of 1..11 samples: 9, 10 and 11 are cut into 8 uneven chunks on two threads."""
    rng = np.random.default_rng(seed)
    step, x = rows_step(s, F, data.draw(activation_objects(name)), use_bias, input_gradient,
                        dtype, rng, batch)
    assert_step_equals_layers(step, x, rng, dtype, input_gradient)


@given(s=row_setups(), F=row_filters(), seed=seeds())
def test_rows_conv_step_propagates_nan(s, F, seed):
    """A NaN in the input reaches every output whose window holds it, as in the layer, and the
    kernel gradient."""
    rng = np.random.default_rng(seed)
    step, x = rows_step(s, F, "sigmoid", True, True, "float64", rng, 2)
    x[0, rng.integers(s.H), rng.integers(s.W), rng.integers(s.C)] = np.nan
    y_ref = step.conv.forward(x, training=True)
    y = step.forward(x, training=True)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    assert np.isnan(y).any() == np.isnan(y_ref).any()
    dout = rng.standard_normal(y.shape)
    step.backward(dout)
    dkernel = step.conv.kernel.grad.copy()
    step.conv.backward(dout)
    assert not (np.isnan(step.conv.kernel.grad) & ~np.isnan(dkernel)).any()


# -- the rule --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "strides", "H_out", "C", "F", "expected"), [
    ((5, 5), (1, 1), 28, 1, 6, "rows"),      # d2l's LeNet conv1: 'same', field 25
    ((5, 5), (1, 1), 10, 6, 16, "im2col"),   # LeNet conv2: 16 filters
    ((3, 3), (1, 1), 32, 3, 8, "rows"),
    ((3, 3), (1, 1), 32, 3, 32, "im2col"),   # CIFAR conv1
    ((3, 3), (1, 1), 26, 1, 6, "direct"),    # a field of 9: direct first
    ((5, 5), (2, 2), 14, 1, 6, "im2col"),    # stride 2
    ((3, 3), (1, 1), 16, ROWS_MAX_CHANNELS, ROWS_MAX_FILTERS, "rows"),
    ((3, 3), (1, 1), 16, ROWS_MAX_CHANNELS + 1, ROWS_MAX_FILTERS, "im2col"),
    ((3, 3), (1, 1), 16, ROWS_MAX_CHANNELS, ROWS_MAX_FILTERS + 1, "im2col"),
])
def test_auto_picks_rows_where_the_thresholds_say(kernel, strides, H_out, C, F, expected):
    assert choose_algorithm(kernel, strides, H_out, H_out, C, F, "auto") == expected


def test_settings_and_conv_pool_steps():
    """im2col gives the plan as it was; rows forces it on any stride-1 conv; ConvPoolStep,
    which has no rows path, never gets it."""
    lenet_conv1 = ((5, 5), (1, 1), 28, 28, 1, 6)
    assert choose_algorithm(*lenet_conv1, "im2col") == "im2col"
    assert choose_algorithm(*lenet_conv1, "winograd") == "rows"  # not 3x3: the rule
    assert choose_algorithm(*lenet_conv1, "auto", rows_runs=False) == "im2col"
    assert choose_algorithm((3, 3), (1, 1), 8, 8, 64, 64, "rows") == "rows"
    assert choose_algorithm((5, 5), (2, 2), 8, 8, 1, 6, "rows") == "im2col"
    conv, pool = Conv2D(6, 5, activation="relu"), MaxPooling2D(2)
    pool(conv(np.zeros((1, 28, 28, 1), np.float32)))
    for setting in ("auto", "rows"):
        with conv_algorithm(setting):
            assert ConvPoolStep(conv, pool).algorithm == "im2col"


# -- LeNet -----------------------------------------------------------------------------------------
def test_lenet_runs_its_first_layer_by_rows_without_dx():
    with conv_algorithm(None):
        plan = recipes.lenet(seed=0).plan
    assert [getattr(step, "algorithm", None) for step in plan[:3]] == ["rows", None, "im2col"]
    assert plan[0].input_gradient is False  # the first layer: nothing upstream to train
    with conv_algorithm("im2col"):
        assert recipes.lenet(seed=0).plan[0].algorithm == "im2col"


def test_lenet_trains_the_same_by_rows_and_by_im2col():
    """Two SGD steps (d2l's learning rate 0.9) at batch 13, from the same weights."""
    rng = np.random.default_rng(0)
    x = rng.random((13, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 13)]
    models = {}
    for setting in ("auto", "im2col"):
        with conv_algorithm(setting):
            models[setting] = recipes.lenet(seed=0)
            # the plan is built here, under the setting
            assert models[setting].plan[0].algorithm == {"auto": "rows"}.get(setting, setting)
    for _ in range(2):
        losses = [models[s].train_on_batch(x, y) for s in models]
        np.testing.assert_allclose(*losses, rtol=1e-5)
    for a, b in zip(models["auto"].get_weights(), models["im2col"].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)


@pytest.mark.slow
def test_float32_training_compiles_each_rows_kernel_once():
    """As tests/test_signatures.py checks ALL_KERNELS: a float32 fit through two rows convs,
    the first without dx and the second with it, compiles each kernel once, for float32."""
    script = """
import json
import numpy as np
from minicnn import layers
from minicnn.fast.kernels import conv_along_rows as k
from minicnn.models import Sequential
rng = np.random.default_rng(0)
model = Sequential([layers.Conv2D(3, 5, padding="same", activation="sigmoid",
                                  input_shape=(12, 12, 1)),
                    layers.Conv2D(3, 3, activation="relu"), layers.Flatten(),
                    layers.Dense(3, activation="softmax")], seed=0)
model.compile("sgd", "categorical_crossentropy")
assert [s.algorithm for s in model.plan[:2]] == ["rows", "rows"], model.plan
x = rng.random((20, 12, 12, 1), dtype=np.float32)
y = np.eye(3)[rng.integers(0, 3, 20)]
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
model.predict(x[:3])
print(json.dumps({f.py_func.__name__: [str(s) for s in f.signatures] for f in
                  (k.conv_rows, k.conv_rows_backward)}))
"""
    (signatures,) = kernel_signatures(script)
    for name, sigs in signatures.items():
        assert len(sigs) == 1 and "Array(float64" not in sigs[0], (name, sigs)
