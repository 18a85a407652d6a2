"""The gradient checker on the layers learners write: a Dropout that draws random numbers, a
backward that forgets its `return`, changes dout in place or adds to its gradients, a broken
layer inside a stack, and checks that compare nothing. Each is reported in plain words. Then a
learner's layer saved with its constructor arguments and loaded back.

The test layers live here, not in minicnn.layers: they are what a learner would write.
"""

import numpy as np
import pytest

from minicnn import layers
from minicnn.gradcheck import EPSILON, TOLERANCE, check_layer, check_layers
from minicnn.layers import Dense, Layer, ReLU
from minicnn.losses import CategoricalCrossentropy
from minicnn.models import Sequential, load_model
from tests.tolerances import GRADCHECK_TOL


class Dropout(Layer):
    """A learner's Dropout, Keras-like: in training, zero `rate` of the inputs and scale the
    rest by 1 / (1 - rate). The mask is drawn from self.rng, a generator made from `seed`, which
    the gradient checker replays."""

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.rng = np.random.default_rng(seed)

    def forward(self, x, training=False):
        if not training:
            self.cache = None
            return x
        self.cache = (self.rng.random(x.shape) >= self.rate) / (1 - self.rate)
        return x * self.cache

    def backward(self, dout):
        return dout if self.cache is None else dout * self.cache


class GlobalDropout(Dropout):
    """CS231n's dropout: the mask from numpy's global generator, np.random.rand."""

    def forward(self, x, training=False):
        self.cache = (np.random.rand(*x.shape) >= self.rate) / (1 - self.rate)  # noqa: NPY002
        return x * self.cache


class FreshDropout(Dropout):
    """A new unseeded generator on every call: nothing can replay its draws."""

    def forward(self, x, training=False):
        self.cache = (np.random.default_rng().random(x.shape) >= self.rate) / (1 - self.rate)
        return x * self.cache


def data(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def tiny_model(middle: Layer) -> Sequential:
    model = Sequential([Dense(4, input_shape=(5,)), middle, Dense(3, activation="softmax")],
                       seed=0)
    model.compile("sgd", "categorical_crossentropy")
    return model


# -- modes and random draws -----------------------------------------------------------------------
SEEN: list[bool] = []  # the `training` flag of every forward call of a ModeScale, copies included


class ModeScale(Layer):
    """y = 2x in training and 3x in inference; backward uses the factor forward used."""

    def forward(self, x, training=False):
        SEEN.append(training)
        self.cache = 2.0 if training else 3.0
        return self.cache * x

    def backward(self, dout):
        return self.cache * dout


@pytest.mark.parametrize("training", [True, False])
def test_analytic_and_numeric_passes_run_in_the_same_mode(training):
    layer = ModeScale()
    layer.build(data().shape)  # its output shape comes from a forward(training=False)
    SEEN.clear()
    report = check_layers([layer], data(), training=training)  # check_layer's forward checks
    assert report.passed, str(report)                         # run both modes on purpose
    assert SEEN and set(SEEN) == {training}
    assert check_layer(layer, data(), training=training).passed
    SEEN.clear()
    report = check_layers([layer, Dense(3, activation="softmax")], data(),
                          y=np.eye(3)[[0, 1, 2]], loss=CategoricalCrossentropy(),
                          training=training)
    assert report.passed, str(report)
    assert set(SEEN) == {training}


@pytest.mark.parametrize("layer", [Dropout(0.5, seed=1), Dropout(0.5), GlobalDropout(0.5)],
                         ids=["seeded self.rng", "self.rng from its seed=None", "np.random.rand"])
def test_a_correct_dropout_passes_with_its_draws_held_fixed(layer):
    x = data()
    layer.build(x.shape)
    # It does draw: two calls drop different inputs, so unreplayed differences would be noise
    # (before the replay: numeric slopes of 5e5 called kinks, and FAILED).
    assert not np.array_equal(layer(x, training=True), layer(x, training=True))
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002 - GlobalDropout draws there
    report = check_layer(layer, x)
    assert report.passed, str(report)
    assert report.tolerance == GRADCHECK_TOL and not report["input"].kinks
    assert "moved" not in report.title
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002


def test_a_dropout_inside_a_model_passes_the_model_gradient_check():
    model = tiny_model(Dropout(0.5, seed=3))
    rng = np.random.default_rng(1)
    report = model.gradient_check(rng.standard_normal((4, 5)), np.eye(3)[[0, 1, 2, 0]],
                                  max_checks=None)
    assert report.passed, str(report)


def test_a_layer_whose_draws_cannot_be_replayed_is_reported_in_plain_words():
    report = check_layer(FreshDropout(0.5), data())
    assert not report.passed
    text = str(report)
    assert "this layer draws random numbers on every call" in text and "self.rng" in text
    assert "sat within eps of a kink" not in text and "moved" not in report.title
    assert text.endswith("FAILED: 'fresh_dropout' (FreshDropout) (draws random numbers on "
                         "every call)")
    # In a model the other layers are still checked, against the dout they received.
    model = tiny_model(FreshDropout(0.5))
    report = model.gradient_check(data((4, 5)), np.eye(3)[[0, 1, 2, 0]], max_checks=None)
    assert [p.layer for p in report.problems] == [f"'{model.layers[1].name}' (FreshDropout)"]
    assert all(t.passed for t in report.tensors) and len(report.tensors) == 6, str(report)


# -- what backward must do ------------------------------------------------------------------------
class NoReturn(Layer):
    def forward(self, x, training=False):
        self.cache = x
        return 2 * x

    def backward(self, dout):
        2 * dout  # the learner's bug: no `return`


class WrongShape(Layer):
    def forward(self, x, training=False):
        return x.sum(axis=1, keepdims=True)

    def backward(self, dout):
        return dout  # should be broadcast back to x's shape


class InPlace(Layer):
    def forward(self, x, training=False):
        return 3 * x

    def backward(self, dout):
        dout *= 3  # correct, and changes the caller's array
        return dout


class Accumulates(Layer):
    def build(self, input_shape):
        self.gamma = self.add_weight("gamma", (input_shape[-1],), "he_normal")
        super().build(input_shape)

    def forward(self, x, training=False):
        self.cache = x
        return x * self.gamma.value

    def backward(self, dout):
        self.gamma.grad += (dout * self.cache).sum(axis=0)  # should be `[...] =`
        return dout * self.gamma.value


def test_backward_returning_none_or_a_wrong_shape_is_reported():
    report = check_layer(NoReturn(), data())
    assert not report.passed and report.tensors == []
    assert "backward of 'no_return' (NoReturn) returned None" in str(report)
    assert "FAILED: 'no_return' (NoReturn) (backward returned None)" in str(report)
    report = check_layer(WrongShape(), data())
    assert "returned dx of shape (3, 1) for an input of shape (3, 4)" in str(report)
    # In a stack, the layers below are said not to be checked, not silently skipped.
    report = check_layers([Dense(4, name="low"), NoReturn(name="broken"), Dense(3, name="top")],
                          data())
    assert "The layers below 'broken' (NoReturn) were not checked" in str(report)
    assert [t.name for t in report.tensors] == ["top/input", "top/kernel", "top/bias"]


def test_backward_may_change_dout_in_place():
    report = check_layer(InPlace(), data())
    assert report.passed, str(report)  # before: 6.67e-01, FAILED, for a correct layer


def test_gradients_added_to_instead_of_set_are_reported():
    report = check_layer(Accumulates(), data())
    assert report["accumulates/gamma"].passed  # the first backward, from zero, is right
    assert not report.passed
    assert "twice its first value" in str(report) and "`grad += ...`" in str(report)
    assert "FAILED: 'accumulates' (Accumulates) (accumulates/gamma.grad accumulates)" in str(
        report)


class LeakyBug(Layer):
    """A leaky ReLU whose backward forgot the slope 0.1 of the negative side."""

    def forward(self, x, training=False):
        self.cache = x
        return np.where(x > 0, x, 0.1 * x)

    def backward(self, dout):
        return dout  # should be np.where(self.cache > 0, dout, 0.1 * dout)


def test_in_a_stack_the_broken_layer_is_named_not_the_layers_below_it():
    rng = np.random.default_rng(2)
    stack = [Dense(4, bias_initializer="he_normal"), LeakyBug(), Dense(3, activation="softmax")]
    report = check_layers(stack, rng.standard_normal((3, 5)), y=np.eye(3)[[0, 2, 1]],
                          loss=CategoricalCrossentropy(), seed=2)
    failed = [t.name for t in report.tensors if not t.passed]
    # Before: "input", "dense/kernel" and "dense/bias" failed, and the LeakyBug was not named.
    assert failed == [f"{stack[1].name}/input"], str(report)
    assert report["input"].passed and report[f"{stack[0].name}/kernel"].passed


# -- checks that compare nothing ------------------------------------------------------------------
class Zeros(Layer):
    def forward(self, x, training=False):
        return np.zeros_like(x)

    def backward(self, dout):
        return np.zeros_like(dout)


def test_a_check_that_compared_nothing_says_so():
    report = check_layer(Zeros(), data())  # before: "ok" and PASSED
    assert not report.passed and report["input"].verdict == "nothing compared (all 0)"
    assert "Nothing was compared for input" in str(report)
    on_kinks = np.zeros((2, 3))  # every ReLU input exactly at its kink
    report = check_layer(ReLU(), on_kinks, move_kinks=False)  # before: "kinks only"
    assert report["input"].verdict == "nothing compared (all kinks)" and not report.passed
    assert check_layer(ReLU(), on_kinks).passed  # moved off the kinks, compared there


def test_sampled_checks_compare_a_sparse_gradient():
    """A pool's input gradient is 0 at 3 of every 4 elements: half the sampled elements come
    from the non-zero ones, so two samples always compare something."""
    x = np.random.default_rng(0).permutation(64).reshape(1, 8, 8, 1) / 64.0  # no ties
    for seed in range(10):
        report = check_layer(layers.MaxPooling2D(2), x, seed=seed, max_checks=2)
        assert report.passed and report["input"].verdict == "ok", str(report)


# -- the kink rule and the error measure ----------------------------------------------------------
def test_a_kink_a_third_of_a_step_away_is_detected():
    """A kink at eps/3 makes the slopes' disagreement at eps/2 exactly half the one at eps, as
    on a smooth function; only a second halving tells them apart."""
    x = np.array([[0.5, -0.7, 1.2, -EPSILON / 3]])
    report = check_layer(ReLU(), x, move_kinks=False)
    assert report["input"].kinks == [(0, 3)], str(report)  # before: 5.5e-02, FAILED
    assert report.passed


class OneWrongElement(Layer):
    """y = x * [100, 200, 300, 400]; backward adds 1 to one element of dx."""

    scale = np.array([100.0, 200.0, 300.0, 400.0])

    def forward(self, x, training=False):
        return x * self.scale

    def backward(self, dout):
        dx = dout * self.scale
        dx[0, 0] += 1.0
        return dx


def test_one_wrong_element_scores_its_error_over_the_largest_gradient():
    """Not "near 1": the error of a tensor is relative to its largest gradient."""
    dout = data(seed=1)
    report = check_layer(OneWrongElement(), data(), dout=dout)
    numeric = dout * OneWrongElement.scale
    analytic = numeric.copy()
    analytic[0, 0] += 1.0
    scale = max(np.abs(analytic).max(), np.abs(numeric).max())
    assert report["input"].error == pytest.approx(1.0 / scale, rel=1e-4)
    assert TOLERANCE < report["input"].error < 1e-2 and not report.passed
    assert report["input"].worst_index == (0, 0)


# -- a learner's layer saved with its arguments ---------------------------------------------------
class KeptAs(Layer):
    """Keeps its argument under another name, so it saves it Keras's way."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self._factor = factor

    def get_config(self):
        return {**super().get_config(), "factor": self._factor}

    def forward(self, x, training=False):
        return x * self._factor

    def backward(self, dout):
        return dout * self._factor


class NoKwargs(Layer):
    """An __init__ that takes no name or dtype: from_config sets those afterwards."""

    def __init__(self, factor=1.0):
        super().__init__()
        self.factor = factor

    def forward(self, x, training=False):
        return x * self.factor

    def backward(self, dout):
        return dout * self.factor


class Forgets(Layer):
    def __init__(self, factor=1.0):
        super().__init__()
        self.gain = factor  # neither `self.factor` nor a get_config of its own

    def forward(self, x, training=False):
        return x * self.gain

    def backward(self, dout):
        return dout * self.gain


def test_a_custom_layer_keeps_its_constructor_arguments_through_save_and_load(tmp_path):
    model = Sequential([Dense(4, input_shape=(5,)), Dropout(0.3, seed=7), KeptAs(2.5),
                        NoKwargs(4.0), Dense(3, activation="softmax")], seed=0)
    model.compile("sgd", "categorical_crossentropy")
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz", custom_objects={
        "Dropout": Dropout, "KeptAs": KeptAs, "NoKwargs": NoKwargs})
    dropout, kept, plain = loaded.layers[1:4]
    assert (dropout.rate, dropout.seed) == (0.3, 7)  # before: (0.5, None), the defaults
    assert kept._factor == 2.5 and plain.factor == 4.0
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = data((2, 5))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_custom_layer_that_cannot_be_saved_says_which_argument_at_save_time(tmp_path):
    model = Sequential([Dense(4, input_shape=(5,)), Forgets(3.0)], seed=0)
    with pytest.raises(NotImplementedError, match=r"__init__ takes `factor`, which it does not "
                                                  r"keep as `self.factor`"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
