"""A layer minicnn does not have (`layers.LSTM`, a model file naming an unknown class) is an
error that says so, lists what exists, and points at the guide to writing your own layer."""

from pathlib import Path

import numpy as np
import pytest

from minicnn import layers
from minicnn.layers import Dense, Flatten, Layer
from minicnn.models import ModelFileError, Sequential, load_model

GUIDE = "How to write and check your own layer"
ANCHOR = "docs/backprop.md#how-to-write-and-check-your-own-layer"


@pytest.mark.parametrize("name", ["LSTM", "Conv1D", "Embedding", "Maxpooling2D"])
def test_a_missing_layer_points_at_the_custom_layer_guide(name):
    with pytest.raises(AttributeError) as raised:
        getattr(layers, name)
    message = str(raised.value)
    assert f"minicnn has no layer `{name}`" in message
    assert GUIDE in message and ANCHOR in message
    assert not hasattr(layers, name)
    # What exists: every layer class, and nothing that is not one (Layer, Parameter, ...).
    listed = message.split("Its layers are: ")[1].split(". ")[0].split(", ")
    classes = {n for n in layers.__all__ if isinstance(getattr(layers, n), type)
               and issubclass(getattr(layers, n), Layer) and getattr(layers, n) is not Layer}
    assert set(listed) == classes | {"Input", "InputLayer"}, listed


def test_a_typo_is_told_the_name_it_meant_another_layer_is_not():
    with pytest.raises(AttributeError, match=r"Did you mean `MaxPooling2D`\?"):
        layers.Maxpooling2D  # noqa: B018
    with pytest.raises(AttributeError) as raised:
        layers.Conv1D  # noqa: B018
    assert "Did you mean" not in str(raised.value)  # Conv1D is not a misspelt Conv2D


def test_the_guide_the_error_names_exists():
    doc = (Path(__file__).parent.parent / "docs" / "backprop.md").read_text()
    assert f"## {GUIDE}\n" in doc


@pytest.mark.parametrize("name", ["__wrapped__", "__file_name__", "_private"])
def test_private_and_dunder_names_get_the_plain_attribute_error(name):
    with pytest.raises(AttributeError) as raised:
        getattr(layers, name)
    assert str(raised.value) == f"module 'minicnn.layers' has no attribute {name!r}"


def test_existing_names_and_imports_are_untouched():
    assert layers.Dense is Dense and layers.__path__ and layers.__name__ == "minicnn.layers"
    from minicnn.layers import BatchNormalization, Dropout  # noqa: F401
    with pytest.raises(ImportError):
        from minicnn.layers import LSTM  # noqa: F401


class Square(Layer):
    def forward(self, x, training=False):
        self.cache = x
        return x * x

    def backward(self, dout):
        return 2 * self.cache * dout


def test_load_model_of_an_unknown_layer_class_points_at_the_guide(tmp_path):
    model = Sequential([Flatten(input_shape=(2, 2, 1)), Square(), Dense(3)], seed=0)
    path = tmp_path / "square.npz"
    model.save(path)
    with pytest.raises(ModelFileError) as raised:
        load_model(path)
    message = str(raised.value)
    assert "unknown layer class 'Square'" in message and "custom_objects=" in message
    assert GUIDE in message and ANCHOR in message and "\n" not in message
    loaded = load_model(path, custom_objects={"Square": Square})
    x = np.random.default_rng(0).standard_normal((2, 2, 2, 1)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("module, name, kind, way_round", [
    ("losses", "KLDivergence", "loss", "subclass `minicnn.losses.Loss`"),
    ("metrics", "F1Score", "metric", "subclass `minicnn.metrics.Metric`"),
    ("optimizers", "Nadam", "optimizer", "subclass `minicnn.optimizers.Optimizer`")])
def test_a_missing_loss_metric_or_optimizer_says_so_and_the_way_round(module, name, kind,
                                                                     way_round):
    import importlib

    with pytest.raises(AttributeError) as raised:
        getattr(importlib.import_module(f"minicnn.{module}"), name)
    message = str(raised.value)
    assert f"minicnn has no {kind} `{name}`" in message and way_round in message


def test_a_missing_keras_module_names_the_way_round():
    import minicnn

    with pytest.raises(AttributeError, match=r"no `keras.ops`.*NumPy's functions"):
        minicnn.ops  # noqa: B018
