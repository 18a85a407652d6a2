"""Average pooling and the merge layers on the fast plan: PoolStep, MergeStep, the graph's sums.

The pool kernels (minicnn/fast/kernels/pool.py) agree with their NumPy twins and their un-jitted
twins bit for bit, NaN and infinities included, and backward with the layer too (each input's
shares of the windows over it, added in the layer's order); forward the layer's mean adds a
window in NumPy's own order, so the step's output equals it to rounding. MergeStep uses the
layers' own NumPy operations in their order: equal bit for bit. The
graph tests train the same model with fast=True and fast=False: Adds and Averages with the ReLU
after them fused, a tensor read by several nodes (the in-place fan-out sums) and a merge's one
gradient array handed to two slots, one of which waits while the other's sum is made.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import layers
from minicnn.fast import graph_plan, make_plan
from minicnn.fast.kernels.pool import (
    GATHER_MAX_CHANNELS,
    _avgpool_backward,
    _avgpool_forward,
    avgpool_backward,
    avgpool_backward_reference,
    avgpool_forward,
    avgpool_forward_reference,
)
from minicnn.fast.merge import MergeStep
from minicnn.fast.pool import PoolStep
from minicnn.fast.step import LayerStep
from minicnn.models import Model, recipes
from tests.strategies import dtypes, seeds, standard_normal, window_setups
from tests.test_plan import scale_close
from tests.test_plan_winograd import conv_algorithm
from tests.test_signatures import kernel_signatures
from tests.tolerances import PLAN_TRAINING_ATOL, PLAN_TRAINING_ATOL_WINOGRAD4


def sprinkle_nonfinite(rng, a: np.ndarray) -> np.ndarray:
    """a with about one element in eight replaced by NaN, +inf or -inf."""
    a = a.copy()
    hit = rng.random(a.shape) < 0.125
    a[hit] = rng.choice([np.nan, np.inf, -np.inf], size=int(hit.sum()))
    return a


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal element for element (NaN where the other has NaN), in the same dtype and shape."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


# -- kernels ------------------------------------------------------------------------------------
@given(s=window_setups("pool"), dtype=dtypes(), seed=seeds(), nonfinite=st.booleans())
def test_avgpool_forward_matches_reference_and_twin(s, dtype, seed, nonfinite):
    """Any pool size, stride (overlapping windows) and padding ('same' border windows divided
    by what they hold). The output starts as NaN, so an element not written shows up."""
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, s.x_shape, dtype)
    if nonfinite:
        x = sprinkle_nonfinite(rng, x)
    window = (s.KH, s.KW, s.SH, s.SW, s.PT, s.PL)
    with np.errstate(invalid="ignore"):  # inf - inf in a window: NaN, as the layer gives
        expected = avgpool_forward_reference(x, *window, s.H_out, s.W_out)
        for kernel in (avgpool_forward, _avgpool_forward):
            out = np.full(s.out_shape, np.nan, dtype=dtype)
            kernel(x, *window, out)
            assert_same(out, expected)


@given(s=window_setups("pool"), dtype=dtypes(), seed=seeds(), nonfinite=st.booleans())
def test_avgpool_backward_matches_reference_and_twin(s, dtype, seed, nonfinite):
    """dx starts as NaN: inputs no window reads (a 'valid' pool's odd last row) must get 0."""
    rng = np.random.default_rng(seed)
    dout = standard_normal(rng, s.out_shape, dtype)
    if nonfinite:
        dout = sprinkle_nonfinite(rng, dout)
    window = (s.KH, s.KW, s.SH, s.SW, s.PT, s.PL)
    with np.errstate(invalid="ignore"):
        expected = avgpool_backward_reference(dout, *window, s.H, s.W)
        for kernel in (avgpool_backward, _avgpool_backward):
            dx = np.full(s.x_shape, np.nan, dtype=dtype)
            kernel(dout, *window, dx)
            assert_same(dx, expected)


@given(s=window_setups("pool"), dtype=dtypes(), seed=seeds(), nonfinite=st.booleans())
def test_avgpool_kernels_on_both_sides_of_the_gather_threshold(s, dtype, seed, nonfinite):
    """With GATHER_MAX_CHANNELS - 1 channels, windows inside the input (forward) and windows
    that do not overlap (backward) take the gathered rows; with GATHER_MAX_CHANNELS, the
    channel loops. Both give the reference bit for bit (the tests above draw 1..5 channels)."""
    rng = np.random.default_rng(seed)
    window = (s.KH, s.KW, s.SH, s.SW, s.PT, s.PL)
    for C in (GATHER_MAX_CHANNELS - 1, GATHER_MAX_CHANNELS):
        t = dataclasses.replace(s, C=C)
        x, dout = (standard_normal(rng, shape, dtype) for shape in (t.x_shape, t.out_shape))
        if nonfinite:
            x, dout = sprinkle_nonfinite(rng, x), sprinkle_nonfinite(rng, dout)
        out, dx = np.full(t.out_shape, np.nan, dtype), np.full(t.x_shape, np.nan, dtype)
        with np.errstate(invalid="ignore"):
            avgpool_forward(x, *window, out)
            assert_same(out, avgpool_forward_reference(x, *window, t.H_out, t.W_out))
            avgpool_backward(dout, *window, dx)
            assert_same(dx, avgpool_backward_reference(dout, *window, t.H, t.W))


def test_avgpool_kernels_by_hand():
    """A 3x3 pool with stride 2 and one row and column of padding before a 3x4 map, worked
    out by hand: each window's mean counts only the elements inside it (padding is never
    averaged in), and backward each input gets its windows' dout / count."""
    x = np.arange(12.0).reshape(1, 3, 4, 1)
    out = np.full((1, 2, 2, 1), np.nan)
    avgpool_forward(x, 3, 3, 2, 2, 1, 1, out)  # windows rows -1..1, 1..3; cols -1..1, 1..3
    np.testing.assert_array_equal(out[0, :, :, 0], [[2.5, 4.0], [6.5, 8.0]])
    dout = np.array([4.0, 6.0, 8.0, 12.0]).reshape(1, 2, 2, 1)
    dx = np.full(x.shape, np.nan)
    avgpool_backward(dout, 3, 3, 2, 2, 1, 1, dx)
    # window (0, 0) holds 4 inputs, (0, 1) 6, (1, 0) 4, (1, 1) 6: shares 1, 1, 2, 2
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1, 1],
                                                   [3, 6, 3, 3],
                                                   [2, 4, 2, 2]])


# -- steps against their layers ----------------------------------------------------------------
@given(s=window_setups("pool"), dtype=dtypes(), seed=seeds(), n=st.integers(1, 12))
def test_pool_step_equals_its_layer(s, dtype, seed, n):
    """dx bit for bit, the output to rounding (NumPy's mean adds a window's elements in an order
    of its own), on up to 12 samples (8 chunks: some of one sample)."""
    rng = np.random.default_rng(seed)
    x = standard_normal(rng, (n, *s.x_shape[1:]), dtype)
    layer = layers.AveragePooling2D((s.KH, s.KW), strides=(s.SH, s.SW), padding=s.padding)
    y_ref = layer.forward(x, training=True)
    dout = standard_normal(rng, y_ref.shape, dtype)
    dx_ref = layer.backward(dout)
    (step,) = make_plan([layer])
    assert isinstance(step, PoolStep) and step.layers == (layer,)
    scale_close(step.forward(x, training=True), y_ref, dtype.name)
    assert_same(step.backward(dout), dx_ref)


MERGES = {"add": layers.Add, "average": layers.Average}
RELUS = {"none": None, "activation": lambda: layers.Activation("relu"), "layer": layers.ReLU}


@given(merge=st.sampled_from(sorted(MERGES)), relu=st.sampled_from(sorted(RELUS)),
       inputs=st.integers(2, 3), shape=st.sampled_from([(5,), (3, 4, 2), (1, 1, 7)]),
       n=st.integers(1, 12), nonfinite=st.booleans(), dtype=dtypes(), seed=seeds())
def test_merge_step_equals_its_layers(merge, relu, inputs, shape, n, nonfinite, dtype, seed):
    """Add or Average of 2-3 inputs, with or without the ReLU after it: output and every dx
    bit for bit, NaN and infinities in the inputs and in dout included."""
    rng = np.random.default_rng(seed)
    xs = [standard_normal(rng, (n, *shape), dtype) for _ in range(inputs)]
    if nonfinite:
        xs = [sprinkle_nonfinite(rng, x) for x in xs]
    chain = [MERGES[merge]()] + ([RELUS[relu]()] if RELUS[relu] else [])
    dout = standard_normal(rng, (n, *shape), dtype)
    if nonfinite:
        dout = sprinkle_nonfinite(rng, dout)
    with np.errstate(invalid="ignore"):  # inf - inf, inf * 0: NaN, in both
        y_ref = xs
        for layer in chain:
            y_ref = layer.forward(y_ref, training=True)
        g = dout
        for layer in reversed(chain):
            g = layer.backward(g)
    assert MergeStep.takes(chain, 0) == len(chain)
    step = MergeStep.of(chain, True)
    with np.errstate(invalid="ignore"):
        assert_same(step.forward(xs, training=True), y_ref)
        dxs = step.backward(dout)
    assert len(dxs) == inputs
    for dx, dx_ref in zip(dxs, g, strict=True):
        assert_same(dx, dx_ref)
    assert step.new_dx == (relu != "none" or merge == "average")


def test_merge_step_takes_only_what_computes_as_add_or_average():
    class LoudAdd(layers.Add):
        def forward(self, inputs, training=False):
            return super().forward(inputs, training) * 2

    class PlainAdd(layers.Add):
        pass

    assert MergeStep.takes([PlainAdd(), layers.ReLU()], 0) == 2
    assert MergeStep.takes([layers.Average(), layers.Activation("tanh")], 0) == 1
    assert MergeStep.takes([layers.Add(), layers.LeakyReLU()], 0) == 1
    for layer in (LoudAdd(), layers.Subtract(), layers.Multiply(), layers.Concatenate()):
        assert MergeStep.takes([layer, layers.ReLU()], 0) == 0
    with pytest.raises(ValueError, match="MergeStep"):
        MergeStep(layers.Concatenate())


# -- graphs -------------------------------------------------------------------------------------
def fan_out_graph(seed: int = 0, dtype: str = "float32") -> Model:
    """Every way a merge meets the fan-out sums: a residual block ending in Add -> ReLU (the
    block input read by the conv and the Add); an Add + ReLU of p and q whose one dx goes to
    both, where r's gradient reaches p while q's slot still waits (the graph orders the nodes
    q, s, p, r, the Add: backward, r runs before q's other reader s), so it must not be added
    into that shared array; an Average of four, one of them read three times; an Add of a
    tensor with itself; merges on the model's input, which needs no gradient."""
    L = layers
    inputs = L.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    h = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(x))
    a = L.Activation("relu")(L.add([x, h]))
    q = L.Conv2D(4, 1)(a)
    s = L.Conv2D(4, 1)(q)
    p = L.Conv2D(4, 1)(a)
    r = L.Conv2D(4, 1, activation="tanh")(p)
    m = L.ReLU()(L.add([p, q]))
    o = L.average([s, r, m, a])
    t = L.add([o, o])
    u = L.add([inputs, inputs])
    v = L.Conv2D(4, 3, padding="same")(u)
    w = L.GlobalAveragePooling2D()(L.add([t, v]))
    model = Model(inputs, L.Dense(3, activation="softmax")(w), seed=seed)
    return model.set_dtype(dtype) if dtype != "float32" else model


def twins(dtype: str = "float32") -> dict[bool, Model]:
    """fan_out_graph compiled with fast=True and with fast=False, with the same weights."""
    models = {fast: fan_out_graph(dtype=dtype) for fast in (True, False)}
    models[False].set_weights(models[True].get_weights())
    for fast, model in models.items():
        model.compile("sgd", "categorical_crossentropy", fast=fast)
    return models


def plan_kinds(model) -> list[tuple[str, list[str]]]:
    return [(type(step).__name__, [type(layer).__name__ for layer in step.layers])
            for step in model.graph_plan.steps]


def test_the_graph_plan_runs_merges_as_merge_steps():
    model = fan_out_graph()
    model.compile("sgd", "categorical_crossentropy")
    kinds = plan_kinds(model)
    merges = [k for k in kinds if k[0] == "MergeStep"]
    assert merges == [("MergeStep", ["Add", "Activation"]), ("MergeStep", ["Add", "ReLU"]),
                      ("MergeStep", ["Average"]), ("MergeStep", ["Add"]),
                      ("MergeStep", ["Add"]), ("MergeStep", ["Add"])]
    model.compile("sgd", "categorical_crossentropy", fast=False)
    assert all(k[0] == "LayerStep" and len(k[1]) == 1 for k in plan_kinds(model))
    # ResNet-20: each block's Add and the ReLU after it, one step; the other ReLUs join the BNs
    resnet = recipes.resnet20(seed=0, augment=False)
    assert plan_kinds(resnet).count(("MergeStep", ["Add", "Activation"])) == 9
    assert not any(k[0] == "ActivationStep" for k in plan_kinds(resnet))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fan_out_graph_gradients_equal_the_reference(dtype):
    """One forward and backward: the loss and every weight's gradient, fast against fast=False
    from the same weights. The convs round differently (Winograd, chunked sums), hence
    scale_close rather than equality."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 6, 6, 2)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 10)]
    results = []
    for model in twins(dtype).values():
        passes = model.training_pass()
        out = passes.forward([x], training=True)
        loss = passes.loss(y, out)
        passes.backward(y, out)
        results.append((loss, [p.grad.copy() for p in model.params]))
    (loss_fast, grads_fast), (loss_ref, grads_ref) = results
    scale_close(np.asarray(loss_fast), np.asarray(loss_ref), dtype)
    for got, want in zip(grads_fast, grads_ref, strict=True):
        scale_close(got, want, dtype)


def test_fan_out_graph_trains_like_the_reference(monkeypatch):
    """Three SGD steps, fast against fast=False; and the fast plan adds the fan-out gradients
    into arrays it owns: fewer new arrays than the reference plan makes."""
    sums = {True: 0, False: 0}
    running = {"fast": True}
    original = graph_plan._add

    def counting(total, g):
        if total is not None and g is not None:
            sums[running["fast"]] += 1
        return original(total, g)
    monkeypatch.setattr(graph_plan, "_add", counting)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 6, 6, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 12)]
    models = twins()
    for fast, model in models.items():
        running["fast"] = fast
        for _ in range(3):
            model.train_on_batch(x, y)
    for a, b in zip(models[True].get_weights(), models[False].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=PLAN_TRAINING_ATOL)
    assert 0 < sums[True] < sums[False], sums


@pytest.mark.parametrize(("setting", "atol"), [("winograd", PLAN_TRAINING_ATOL),
                                               ("auto", PLAN_TRAINING_ATOL_WINOGRAD4)])
def test_resnet20_trains_like_the_reference(setting, atol):
    """Two SGD steps of the real thing at batch 4: 9 Add + ReLU steps, their sums in place;
    with F(2x2) Winograd the plan rounds as closely as im2col, with the plan's own choice
    (F(4x4) for 16 convs) to F(4x4)'s float32 rounding."""
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 4)]
    with conv_algorithm(setting):
        models = [recipes.resnet20(seed=0, augment=False) for _ in range(2)]
        models[1].set_weights(models[0].get_weights())
        models[1].compile("sgd", "categorical_crossentropy", fast=False)
        models[0].compile("sgd", "categorical_crossentropy")
        for _ in range(2):  # the plan is built by the first step
            losses = [m.train_on_batch(x, y) for m in models]
            np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for a, b in zip(models[0].get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


def test_lenet_plan_runs_its_pools_as_pool_steps():
    model = recipes.lenet(seed=0)
    assert [type(s).__name__ for s in model.plan if "Pool" in type(s.layers[0]).__name__] == [
        "PoolStep", "PoolStep"]
    model.compile("sgd", "categorical_crossentropy", fast=False)
    assert all(isinstance(s, LayerStep) for s in model.plan)


@pytest.mark.slow
def test_float32_training_compiles_each_pool_kernel_once():
    """As tests/test_signatures.py checks ALL_KERNELS: a float32 fit and predict of LeNet
    compiles each average-pool kernel once, for float32 arrays."""
    script = """
import json
import numpy as np
from minicnn.fast.kernels import pool
from minicnn.models import recipes
rng = np.random.default_rng(0)
model = recipes.lenet(seed=0)
x = rng.random((20, 28, 28, 1), dtype=np.float32)
y = np.eye(10)[rng.integers(0, 10, 20)]
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
model.predict(x[:3])
print(json.dumps({f.py_func.__name__: [str(s) for s in f.signatures]
                  for f in (pool.avgpool_forward, pool.avgpool_backward)}))
"""
    (signatures,) = kernel_signatures(script)
    for name, sigs in signatures.items():
        assert len(sigs) == 1 and "Array(float64" not in sigs[0], (name, sigs)
