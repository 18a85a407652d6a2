"""Graph models (the functional API): the same graph in minicnn and Keras, by changing imports.

One builder makes the graph with either library: a residual Add, a Concatenate, a shared Dense
(called on two tensors) and a nested Sequential. Predictions agree with Keras's from the same
weights, and so do three SGD steps; float64 central differences check every weight's gradient
through the fan-out and shared-layer sums; the fast plan equals the reference layers.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn
from minicnn import layers
from minicnn.gradcheck import _check_tensor
from minicnn.models import Model, Sequential
from tests.tolerances import GRADCHECK_TOL, KERNEL_ATOL, KERNEL_RTOL, TF_FORWARD_ATOL

# Three SGD steps from the same weights: the L2 norm of (our change - Keras's change) over that
# of Keras's change, per weight. The bar; float32 rounding gives ~1e-5.
STEP_CHANGE_RTOL = 0.02


def graph(L, Model, Input, Sequential, activation="relu", size=8):
    """The test graph, built by `L` (minicnn.layers or keras.layers) with explicit names."""
    inputs = Input((size, size, 3), name="image")
    x = L.Conv2D(4, 3, padding="same", activation=activation, name="stem")(inputs)
    y = L.Conv2D(4, 3, padding="same", name="branch")(x)
    z = L.Activation(activation, name="act")(L.add([x, y], name="residual"))
    c = L.concatenate([z, x], name="concat")
    p = L.GlobalAveragePooling2D(name="gap")(c)
    q = L.GlobalMaxPooling2D(name="gmp")(c)
    shared = L.Dense(6, activation="tanh", name="shared")
    s = L.add([shared(p), shared(q)], name="sum_shared")
    head = Sequential([L.Dense(5, activation=activation, name="hidden"),
                       L.Dense(3, activation="softmax", name="probs")], name="head")
    return Model(inputs, head(s), name="graph")


def minicnn_graph(seed: int = 0, **kwargs) -> Model:
    """The test graph in minicnn, its weights drawn from `seed` (every test sees the same)."""
    model = graph(layers, Model, layers.Input, Sequential, **kwargs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.4, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def data(seed: int, n: int = 6, size: int = 8, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size, size, 3)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
    return x, y


def named_layers(model):
    """Every layer with weights, by name, nested models included."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from named_layers(layer)
        elif layer.weights:
            yield layer.name, layer


# -- structure ------------------------------------------------------------------------------------
def test_the_graph_lists_layers_once_and_shares_weights():
    model = minicnn_graph()
    names = [layer.name for layer in model.layers]
    assert names == ["image", "stem", "branch", "residual", "act", "concat", "gap", "gmp",
                     "shared", "sum_shared", "head"]
    shared = model.get_layer("shared")
    assert len(shared._inbound_nodes) == 2
    # Weights counted once: stem 112, branch 148, shared 8*6+6, head 6*5+5 + 5*3+3
    assert model.count_params() == 112 + 148 + 54 + 35 + 18
    assert len(model.weights) == len({id(p) for p in model.weights}) == 10


def test_summary_matches_keras_character_for_character():
    keras = pytest.importorskip("keras")
    ours, theirs = [], []
    minicnn_graph().summary(print_fn=ours.append)
    graph(keras.layers, keras.Model, keras.Input, keras.Sequential).summary(
        print_fn=lambda line, *a, **k: theirs.append(line))
    assert "\n".join(ours).splitlines() == "\n".join(theirs).splitlines()


def test_a_disconnected_graph_and_a_non_tensor_are_clear_errors():
    a, b = layers.Input((4,), name="a"), layers.Input((4,), name="b")
    out = layers.add([layers.Dense(2)(a), layers.Dense(2)(b)])
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(a, out)
    with pytest.raises(ValueError, match="Expected symbolic tensors"):
        Model(a, np.zeros((1, 4)))
    with pytest.raises(TypeError, match="no values until the model runs"):
        np.asarray(a)


# -- against Keras -------------------------------------------------------------------------------
def keras_twin(model):
    keras = pytest.importorskip("keras")
    twin = graph(keras.layers, keras.Model, keras.Input, keras.Sequential)
    theirs = dict(named_layers(twin))
    for name, layer in named_layers(model):
        theirs[name].set_weights(layer.get_weights())
    return twin


def test_predictions_equal_keras_from_the_same_weights():
    model = minicnn_graph()
    twin = keras_twin(model)
    x, _ = data(0, n=16)
    ours, theirs = model.predict(x, verbose=0), twin.predict(x, verbose=0)
    assert np.abs(ours - theirs).max() < 1e-5
    np.testing.assert_allclose(model(x), ours, atol=TF_FORWARD_ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False])
def test_three_sgd_steps_equal_keras(fast):
    keras = pytest.importorskip("keras")
    model = minicnn_graph()
    twin = keras_twin(model)
    before = {name: layer.get_weights() for name, layer in named_layers(model)}
    model.compile(minicnn.optimizers.SGD(0.1), "categorical_crossentropy", fast=fast)
    twin.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    for seed in range(3):
        x, y = data(seed, n=16)
        model.train_on_batch(x, y)
        twin.train_on_batch(x, y)
    theirs = dict(named_layers(twin))
    for name, layer in named_layers(model):
        for w0, ours, them in zip(before[name], layer.get_weights(), theirs[name].get_weights(),
                                  strict=True):
            change = np.linalg.norm(them - w0)
            assert change > 0, name
            assert np.linalg.norm((ours - w0) - (them - w0)) <= STEP_CHANGE_RTOL * change, name


# -- gradients ----------------------------------------------------------------------------------
def check_graph_gradients(model: Model, x: np.ndarray, y: np.ndarray, fast: bool,
                          max_checks: int | None = None):
    """Central differences in float64 on every weight of `model` (already float64), against
    one backward pass through the model's plan; returns the TensorChecks."""
    model.compile("sgd", "categorical_crossentropy", fast=fast)
    passes = model.training_pass()

    def f() -> float:
        return passes.loss(y, passes.forward([x], training=True)) / len(x)

    passes.backward(y, passes.forward([x], training=True))
    grads = [p.grad.copy() for p in model.params]
    rng = np.random.default_rng(0)
    return [_check_tensor(p.name, p.value, g, f, 1e-6, GRADCHECK_TOL, max_checks, rng)
            for p, g in zip(model.params, grads, strict=True)]


@pytest.mark.parametrize("fast", [True, False])
def test_float64_gradient_check_through_fan_out_shared_and_nested(fast):
    model = minicnn_graph(activation="tanh").set_dtype("float64")
    x, y = data(1, n=4, dtype=np.float64)
    checks = check_graph_gradients(model, x, y, fast=fast)
    assert len(checks) == 10
    for check in checks:
        assert check.passed, (check.name, check.error, check.verdict)


def test_the_check_fails_when_the_fan_out_sum_is_dropped(monkeypatch):
    """A graph backward that keeps only the last gradient reaching a tensor is caught."""
    from minicnn.fast import graph_plan

    monkeypatch.setattr(graph_plan, "_add", lambda total, g: g if g is not None else total)
    model = minicnn_graph(activation="tanh").set_dtype("float64")
    x, y = data(1, n=4, dtype=np.float64)
    checks = check_graph_gradients(model, x, y, fast=False)
    assert not all(c.passed for c in checks)
    assert not {c.name for c in checks if not c.passed}.isdisjoint({"stem/kernel", "stem/bias"})


def test_the_check_fails_when_a_shared_layers_calls_are_not_summed(monkeypatch):
    from minicnn.fast import graph_plan

    monkeypatch.setattr(graph_plan.GraphPlan, "_run",
                        lambda self, step, backward, touched: backward())
    model = minicnn_graph(activation="tanh").set_dtype("float64")
    x, y = data(1, n=4, dtype=np.float64)
    failed = {c.name for c in check_graph_gradients(model, x, y, fast=False) if not c.passed}
    assert failed >= {"shared/kernel", "shared/bias"}


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 5), size=st.integers(5, 9),
       activation=st.sampled_from(["relu", "tanh"]))
def test_the_fast_plan_equals_the_reference_layers_on_a_graph(seed, n, size, activation):
    """Outputs and every weight's gradient, fan-out and shared layers included."""
    model = graph(layers, Model, layers.Input, Sequential, activation=activation, size=size)
    x, y = data(seed, n=n, size=size)
    results = {}
    for fast in (True, False):
        model.compile("sgd", "categorical_crossentropy", fast=fast)
        passes = model.training_pass()
        out = passes.forward([x], training=True)
        passes.backward(y, out)
        results[fast] = (np.array(out), [p.grad.copy() for p in model.params])
    (out_fast, g_fast), (out_ref, g_ref) = results[True], results[False]
    np.testing.assert_allclose(out_fast, out_ref, rtol=KERNEL_RTOL["float32"],
                               atol=KERNEL_ATOL["float32"])
    for a, b in zip(g_fast, g_ref, strict=True):
        scale = max(np.abs(b).max(), 1e-3)
        assert np.abs(a - b).max() <= KERNEL_RTOL["float32"] * 10 * scale


# -- trainable ----------------------------------------------------------------------------------
def test_a_frozen_layer_is_bit_identical_after_fit_and_counted_as_keras_counts():
    model = minicnn_graph()
    model.get_layer("stem").trainable = False
    model.get_layer("head").trainable = False
    stem, head = model.get_layer("stem").get_weights(), model.get_layer("head").get_weights()
    branch = model.get_layer("branch").get_weights()
    model.compile("adam", "categorical_crossentropy")
    x, y = data(2, n=32)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(stem + head, model.get_layer("stem").get_weights()
                    + model.get_layer("head").get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(branch[0], model.get_layer("branch").get_weights()[0])
    assert sum(p.value.size for p in model.params) == 148 + 54
    assert sum(p.value.size for p in model.non_trainable_params) == 112 + 53

    twin = keras_twin(model)
    twin.get_layer("stem").trainable = False
    twin.get_layer("head").trainable = False
    ours, theirs = [], []
    model.summary(print_fn=ours.append)
    twin.summary(print_fn=lambda line, *a, **k: theirs.append(line))
    def counts(lines):  # ours also counts Adam's state (Optimizer params); the twin has none
        return [line for line in "\n".join(lines).splitlines() if "rainable params" in line]

    assert counts(ours) == counts(theirs)
    assert counts(ours) == [" Trainable params: 202 (808.00 B)",
                            " Non-trainable params: 165 (660.00 B)"]


def test_a_frozen_batch_norm_uses_its_moving_statistics_in_fit():
    model = Sequential([layers.Input((4,)), layers.Dense(3), layers.BatchNormalization(),
                        layers.Dense(2, activation="softmax")], seed=0)
    bn = model.layers[1]
    bn.trainable = False
    moving = [w.copy() for w in bn.get_weights()]
    model.compile("sgd", "categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(16) % 2]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(moving, bn.get_weights(), strict=True))
    # In fit the output is the inference output: no batch statistics.
    out = bn.forward(x[:, :3], training=True)
    np.testing.assert_array_equal(out, bn.forward(x[:, :3], training=False))


def test_freezing_a_whole_model_freezes_every_layer_and_unfreezing_restores():
    model = minicnn_graph()
    n = len(model.params)
    model.trainable = False
    assert model.params == [] and len(model.non_trainable_params) == n
    model.trainable = True
    assert len(model.params) == n


# -- saving, nesting and the Keras namespace ------------------------------------------------------
def test_save_and_load_a_graph_model(tmp_path):
    model = minicnn_graph()
    model.get_layer("stem").trainable = False
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    x, y = data(3, n=16)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "graph.npz")
    loaded = minicnn.models.load_model(tmp_path / "graph.npz")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert not loaded.get_layer("stem").trainable
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_in_a_sequential_and_two_inputs():
    base = Sequential([layers.Input((6,)), layers.Dense(4, activation="relu")], name="base")
    outer = Sequential([base, layers.Dense(2, activation="softmax")], seed=0)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_allclose(outer.predict(x, verbose=0),
                               outer.layers[1](base.predict(x, verbose=0)), rtol=1e-6)

    a, b = layers.Input((3,), name="a"), layers.Input((4,), name="b")
    out = layers.Dense(2, activation="softmax")(layers.concatenate([a, b]))
    model = Model([a, b], out)
    xa, xb = np.ones((7, 3), "float32"), np.zeros((7, 4), "float32")
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit([xa, xb], np.zeros(7, int), epochs=1, verbose=0)
    assert model.predict({"a": xa, "b": xb}, verbose=0).shape == (7, 2)
    with pytest.raises(ValueError, match="takes 2 inputs"):
        model.predict(xa, verbose=0)


@pytest.mark.slow
def test_import_minicnn_as_keras_in_a_fresh_process():
    import subprocess
    import sys

    code = (
        "import sys, minicnn as keras\n"
        "names = ['Sequential', 'Model', 'Input', 'layers', 'models', 'datasets', 'callbacks',"
        " 'optimizers', 'losses', 'metrics', 'utils', 'regularizers', 'initializers']\n"
        "missing = [n for n in names if not hasattr(keras, n)]\n"
        "inputs = keras.Input(shape=(4,))\n"
        "model = keras.Model(inputs, keras.layers.Dense(2)(inputs))\n"
        "model.compile(optimizer=keras.optimizers.Adam(), loss='mse' if False else "
        "'categorical_crossentropy')\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'ray', 'keras')]\n"
        "print(missing, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[] []"


@pytest.mark.slow
def test_visualkeras_draws_a_graph_model(tmp_path):
    pytest.importorskip("visualkeras")
    from PIL import Image

    from minicnn import plots

    path = plots.plot_model(minicnn_graph(), tmp_path / "graph.png")
    with Image.open(path) as image:
        assert image.width > 100 and image.height > 50


def test_to_keras_mirrors_a_graph_with_its_frozen_layers():
    pytest.importorskip("keras")
    model = minicnn_graph()
    model.get_layer("branch").trainable = False
    twin = minicnn.models.to_keras(model)
    assert [layer.name for layer in twin.layers] == [layer.name for layer in model.layers]
    assert not twin.get_layer("branch").trainable
    x, _ = data(5, n=8)
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=TF_FORWARD_ATOL)
    assert len(twin.get_layer("shared")._inbound_nodes) == 2


@st.composite
def random_graphs(draw):
    """A random small graph over (N, H, W, C) images: convs (fused with a pool or not), batch
    norms, merges of equal-shaped tensors, tensors read by several layers, a shared conv; then
    Flatten and a softmax head. Returns (model, x, y)."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n, size, channels = draw(st.integers(1, 4)), draw(st.sampled_from([6, 8])), 2
    inputs = layers.Input((size, size, channels))
    shared = layers.Conv2D(channels, 3, padding="same")
    tensors = [inputs, shared(inputs)]
    for _ in range(draw(st.integers(2, 8))):
        kind = draw(st.sampled_from(["conv", "conv_pool", "bn", "add", "concat", "multiply",
                                     "shared"]))
        x = tensors[draw(st.integers(0, len(tensors) - 1))]
        same = [t for t in tensors if t.shape == x.shape and t is not x]
        if kind == "conv":
            act = draw(st.sampled_from(["relu", None, "tanh"]))
            y = layers.Conv2D(channels, 3, padding="same", activation=act)(x)
        elif kind == "conv_pool" and x.shape[1] >= 4:  # a ConvPoolStep
            y = layers.Conv2D(channels, 3, activation="relu")(x)
            y = layers.MaxPooling2D(2)(y)
        elif kind == "bn":
            y = layers.BatchNormalization()(x)
        elif kind in ("add", "multiply", "concat") and same:
            other = same[draw(st.integers(0, len(same) - 1))]
            merge = {"add": layers.add, "multiply": layers.multiply,
                     "concat": layers.concatenate}[kind]
            y = merge([x, other])
            if kind == "concat":
                y = layers.Conv2D(channels, 1)(y)
        elif kind == "shared" and x.shape == inputs.shape:  # built for the input's shape
            y = shared(x)
        elif kind == "shared":
            y = layers.add([shared(inputs), tensors[1]])  # one tensor read twice by a merge
        else:
            continue
        tensors.append(y)
    # Every tensor nothing reads joins the head, so no drawn layer is left out of the graph.
    read = {id(u) for t in tensors[1:] for u in t.node.inputs}
    leaves = [layers.Flatten()(t) for t in tensors if id(t) not in read]
    joined = leaves[0] if len(leaves) == 1 else layers.concatenate(leaves)
    head = layers.Dense(3, activation="softmax")(joined)
    model = Model(inputs, head)
    for layer in model.layers:  # distinct pool values and no ReLU inputs near 0, by seed
        for w in layer.weights:
            if w.trainable:
                w.value[...] = rng.normal(0, 0.5, w.value.shape)
    x = rng.normal(size=(n, size, size, channels)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return model, x, y


@settings(max_examples=40, deadline=None)
@given(setup=random_graphs())
def test_every_fast_step_on_a_random_graph_equals_the_layers(setup):
    """The fast plan of a drawn graph (chains fused, fan-out, merges, shared layers) against the
    reference layers one by one: outputs, every weight's gradient, the moving statistics."""
    model, x, y = setup
    results = {}
    state = [w.value.copy() for w in model.weights]
    for fast in (True, False):
        model.set_weights(state)  # BatchNormalization's moving statistics move in training
        model.compile("sgd", "categorical_crossentropy", fast=fast)
        passes = model.training_pass()
        out = passes.forward([x], training=True)
        passes.backward(y, out)
        results[fast] = (np.array(out), [p.grad.copy() for p in model.params],
                         [w.value.copy() for w in model.non_trainable_params])
    flat = {fast: [out, *grads, *moving] for fast, (out, grads, moving) in results.items()}
    for a, b in zip(flat[True], flat[False], strict=True):
        scale = max(float(np.abs(b).max()), 1.0)
        assert np.abs(a - b).max() <= 10 * KERNEL_RTOL["float32"] * scale


def test_config_json_and_clone_rebuild_the_same_graph():
    model = minicnn_graph()
    x, _ = data(4, n=5)
    for twin in (Model.from_config(model.get_config()),
                 minicnn.models.model_from_json(model.to_json()),
                 minicnn.models.clone_model(model)):
        assert [(type(a), a.name) for a in twin.layers] == [(type(b), b.name)
                                                            for b in model.layers]
        assert len(twin.get_layer("shared")._inbound_nodes) == 2
        assert twin.count_params() == model.count_params()
        assert all(a is not b for a, b in zip(twin.weights, model.weights, strict=True))
        twin.set_weights(model.get_weights())
        np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="json_string"):
        minicnn.models.model_from_json("{not json")


def test_a_sequential_feeds_the_functional_api_as_keras_does():
    """Keras 3 builds a Sequential as a graph: `model.inputs` and `layer.output` start a
    feature extractor sharing its layers (the transfer-learning tutorials' pattern)."""
    model = minicnn.models.mnist_cnn(seed=0)
    features = Model(model.inputs, model.layers[-2].output)
    assert features.output_shape == (None, 64)
    assert features.layers[-1] is model.layers[-2]
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    h = features.predict(x, verbose=0)
    np.testing.assert_allclose(model.layers[-1](h), model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-7)
    model.add(layers.Dense(2))  # a rebuild leaves one node per layer, not two
    assert len(model.layers[0]._inbound_nodes) == 1


def test_a_tail_of_a_trained_plan_gets_a_pass_of_its_own():
    """`plan.tail(k)` copies the plan's attributes; the pass cached on the full plan (after a
    local fit) must not serve the tail, whose input is what the front makes."""
    model = minicnn.models.mnist_cnn(seed=0)
    x = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    y = np.eye(10, dtype="float32")[np.arange(8)]
    model.train_on_batch(x, y)  # caches a pass on the full plan
    plan = model.graph_plan
    tail = plan.tail(2)
    passes = model.training_pass(tail)
    assert passes.plan is tail and passes is not model.training_pass(plan)
    h = x
    for step in plan.steps[:2]:
        h = step.forward(h, training=False)
    np.testing.assert_allclose(passes.forward([h], training=False),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
