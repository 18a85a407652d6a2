"""Keras 3's files both ways: `.keras` archives and `.weights.h5`, written by minicnn and read
by Keras 3, and written by Keras 3 and read by minicnn, predicting the same (TF_FORWARD_*
tolerances, 1e-5); the HDF5 layout equal to Keras's own, group by group; the errors for a layer
minicnn lacks, damaged files, a shape that does not fit, and names that are not a format.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

from minicnn import layers, models, optimizers
from minicnn.models import ModelFileError, Sequential, load_model
from tests.tolerances import TF_FORWARD_ATOL, TF_FORWARD_RTOL

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
pytest.importorskip("tensorflow")

RNG = np.random.default_rng(0)
X = RNG.random((8, 8, 8, 3), dtype=np.float32)
Y = RNG.integers(0, 3, 8)


def assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    error = np.max(np.abs(ours - theirs))
    assert error <= TF_FORWARD_ATOL + TF_FORWARD_RTOL * np.max(np.abs(theirs)), error


def layout(path) -> dict:
    """{group or dataset path: (attrs, shape, dtype)} of an HDF5 file."""
    found = {}
    with h5py.File(path, "r") as f:
        assert dict(f.attrs) == {}
        f.visititems(lambda name, obj: found.__setitem__(name, (
            dict(obj.attrs), getattr(obj, "shape", None), str(getattr(obj, "dtype", "")))))
    return found


def minicnn_sequential(optimizer) -> Sequential:
    model = Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3), kernel_regularizer="l2"),
        layers.BatchNormalization(momentum=0.5), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dropout(0.25), layers.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer, "sparse_categorical_crossentropy", ["accuracy"])
    model.learning_check = False
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    return model


def minicnn_graph() -> models.Model:
    """Add and Concatenate, a Dense called twice, a nested Sequential with BatchNormalization."""
    inputs = layers.Input((6, 6, 2), name="img")
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.Flatten()(layers.Concatenate()([layers.Add()([a, b]), a]))
    shared = layers.Dense(5, activation="tanh")
    x = shared(layers.Dense(5)(x))
    inner = Sequential([layers.Input((5,)), layers.Dense(5), layers.BatchNormalization()],
                       name="inner")
    outputs = layers.Dense(3, activation="softmax")(shared(inner(x)))
    model = models.Model(inputs, outputs, seed=0)
    bn = inner.layers[-1]
    bn.moving_mean.value[...] = RNG.random(5)  # moving statistics that are not the defaults
    bn.moving_variance.value[...] = 1 + RNG.random(5)
    return model


def test_minicnn_sequential_loads_in_keras_with_optimizer_state(tmp_path):
    model = minicnn_sequential(optimizers.SGD(0.05, momentum=0.9))
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it skips anything
        twin = keras.models.load_model(tmp_path / "m.keras")
    assert_close(model.predict(X, verbose=0), twin.predict(X, verbose=0))
    assert type(twin.optimizer).__name__ == "SGD" and twin.optimizer.momentum == 0.9
    assert int(twin.optimizer.iterations.numpy()) == model.optimizer.iterations == 4
    kernel = model.layers[0].kernel
    (velocity,) = model.optimizer.slots([kernel])[0]
    np.testing.assert_array_equal(twin.optimizer.momentums[0].numpy(), velocity)
    assert twin.loss.name == "sparse_categorical_crossentropy"
    fresh = keras.models.clone_model(twin)
    fresh.load_weights(tmp_path / "m.weights.h5")
    assert_close(model.predict(X, verbose=0), fresh.predict(X, verbose=0))
    # Keras's own file of the same model has the same layout, group by group
    twin.save_weights(tmp_path / "keras.weights.h5")
    assert layout(tmp_path / "m.weights.h5") == layout(tmp_path / "keras.weights.h5")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json",
                                              "model.weights.h5"]


def test_keras_sequential_loads_in_minicnn_compiled(tmp_path):
    keras.utils.set_random_seed(0)
    twin = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.BatchNormalization(momentum=0.5), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dropout(0.25),
        keras.layers.Dense(3, activation="softmax", kernel_initializer="he_uniform")])
    twin.compile(optimizer=keras.optimizers.Adam(0.002), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    twin.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    twin.save(tmp_path / "k.keras")
    twin.save_weights(tmp_path / "k.weights.h5")
    with pytest.warns(UserWarning, match="kernel_initializer HeUniform"):
        model = load_model(tmp_path / "k.keras")
    assert_close(model.predict(X, verbose=0), twin.predict(X, verbose=0))
    bn, keras_bn = model.layers[1], twin.layers[1]
    np.testing.assert_array_equal(bn.moving_mean.value, keras_bn.moving_mean.numpy())
    np.testing.assert_array_equal(bn.moving_variance.value, keras_bn.moving_variance.numpy())
    assert type(model.optimizer).__name__ == "Adam" and model.optimizer.learning_rate == 0.002
    assert model.optimizer.iterations == 4
    m, v = model.optimizer.slots([model.layers[0].kernel])[0]
    np.testing.assert_array_equal(m, twin.optimizer._momentums[0].numpy())
    np.testing.assert_array_equal(v, twin.optimizer._velocities[0].numpy())
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy"
    assert model.metrics == ["accuracy"]
    model.fit(X, Y, epochs=1, batch_size=4, verbose=0)  # and it trains on
    same = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3)),
                       layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
                       layers.Dropout(0.25), layers.Dense(3, activation="softmax")])
    same.load_weights(tmp_path / "k.weights.h5")
    assert_close(same.predict(X, verbose=0), twin.predict(X, verbose=0))


def test_functional_graphs_both_ways(tmp_path):
    x = RNG.random((4, 6, 6, 2), dtype=np.float32)
    model = minicnn_graph()
    model.save(tmp_path / "g.keras")
    model.save_weights(tmp_path / "g.weights.h5")
    twin = keras.models.load_model(tmp_path / "g.keras")
    assert_close(model.predict(x, verbose=0), twin.predict(x, verbose=0))
    assert [layer.name for layer in twin.layers] == [layer.name for layer in model.layers]
    twin.save_weights(tmp_path / "keras.weights.h5")
    assert layout(tmp_path / "g.weights.h5") == layout(tmp_path / "keras.weights.h5")
    assert "layers/sequential/layers/batch_normalization/vars/3" in layout(
        tmp_path / "g.weights.h5")
    # Keras's file of the same graph, read back by minicnn (uncompiled: no warning)
    twin.save(tmp_path / "k.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_model(tmp_path / "k.keras")
    assert not back.compiled
    assert_close(back.predict(x, verbose=0), twin.predict(x, verbose=0))
    for source in ("keras.weights.h5", "k.keras"):  # a weights file, or an archive's
        fresh = minicnn_graph()
        fresh.load_weights(tmp_path / source)
        assert_close(fresh.predict(x, verbose=0), twin.predict(x, verbose=0))


def test_a_layer_minicnn_lacks_is_one_clear_error(tmp_path):
    twin = keras.Sequential([keras.Input((10, 3)), keras.layers.Conv1D(2, 3),
                             keras.layers.Flatten(), keras.layers.Dense(2)])
    twin.save(tmp_path / "conv1d.keras")
    with pytest.raises(ModelFileError, match=r"layer 'conv1d' is a Keras `Conv1D`.*minicnn has "
                                             r"no layer `Conv1D`.*custom_objects="):
        load_model(tmp_path / "conv1d.keras")


def test_an_optimizer_minicnn_lacks_loads_uncompiled_with_a_warning(tmp_path):
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    twin.compile(optimizer="adagrad", loss="mse")
    twin.save(tmp_path / "adagrad.keras")
    with pytest.warns(UserWarning, match="optimizer 'Adagrad'.*not compiled"):
        model = load_model(tmp_path / "adagrad.keras")
    assert not model.compiled
    x = RNG.random((3, 4), dtype=np.float32)
    assert_close(model.predict(x, verbose=0), twin.predict(x, verbose=0))


def test_damaged_files_and_misfits_are_named_errors(tmp_path):
    model = minicnn_graph()
    model.save(tmp_path / "g.keras")
    model.save_weights(tmp_path / "g.weights.h5")
    data = (tmp_path / "g.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.keras': it is truncated, corrupt or "
                                             r"not a \.keras archive"):
        load_model(tmp_path / "cut.keras")
    with zipfile.ZipFile(tmp_path / "g.keras") as src, \
            zipfile.ZipFile(tmp_path / "bad.keras", "w") as dst:
        for name in src.namelist():
            body = src.read(name)
            dst.writestr(name, body[: len(body) // 3] if name.endswith(".h5") else body)
    with pytest.raises(ModelFileError, match=r"bad\.keras.*weights are not a readable HDF5"):
        load_model(tmp_path / "bad.keras")
    for config, problem in ((b"{not json", "config.json is not readable JSON"),
                            (b"[1, 2]", "config.json holds a list, not a model")):
        with zipfile.ZipFile(tmp_path / "g.keras") as src, \
                zipfile.ZipFile(tmp_path / "json.keras", "w") as dst:
            for name in src.namelist():
                dst.writestr(name, config if name == "config.json" else src.read(name))
        with pytest.raises(ModelFileError, match=problem):
            load_model(tmp_path / "json.keras")
    weights = (tmp_path / "g.weights.h5").read_bytes()
    (tmp_path / "cut.weights.h5").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.weights\.h5"):
        minicnn_graph().load_weights(tmp_path / "cut.weights.h5")
    with h5py.File(tmp_path / "g.weights.h5", "r+") as f:  # a variance below 0
        f["layers/sequential/layers/batch_normalization/vars/3"][0] = -1.0
    with pytest.raises(ModelFileError, match=r"moving_variance cannot hold values below 0"):
        minicnn_graph().load_weights(tmp_path / "g.weights.h5")
    other = models.Model(*_graph_with_units(7))
    with pytest.raises(ModelFileError, match=r"layer 'dense_\d+' \(Dense\)'s dense_\d+/kernel "
                                             r"has shape \(\d+, 7\).*layers/dense/vars/0"):
        other.load_weights(tmp_path / "g.weights.h5")


def _graph_with_units(units: int):
    inputs = layers.Input((6, 6, 2))
    return inputs, layers.Dense(3)(layers.Dense(units)(layers.Flatten()(inputs)))


def test_names_that_are_not_a_format_are_refused_and_nothing_is_written(tmp_path):
    model = minicnn_graph()
    for name in ("m.h5", "m.hdf5"):
        with pytest.raises(ValueError, match=r"Keras 2's legacy HDF5.*`.keras`"):
            model.save(tmp_path / name)
    with pytest.raises(ValueError, match=r"legacy HDF5.*`.weights.h5`"):
        model.save_weights(tmp_path / "w.h5")
    for name in ("m", "m.txt", "m.keras.bak"):
        with pytest.raises(ValueError, match="Invalid filepath extension"):
            model.save(tmp_path / name)
    with pytest.raises(ValueError, match=r"weights only: .*save_weights\(\)"):
        model.save(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        model.save_weights(tmp_path / "w.keras")
    assert not list(tmp_path.iterdir())
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    twin.save(tmp_path / "legacy.h5")  # Keras 2's format, which Keras 3 still writes
    with pytest.raises(ModelFileError, match=r"HDF5 file.*save\('m.keras'\)"):
        load_model(tmp_path / "legacy.h5")


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    class Square(layers.Layer):
        def forward(self, x, training=False):
            return x * x

    path = tmp_path / "m.keras"
    minicnn_graph().save(path)
    before = path.read_bytes()
    odd = Sequential([layers.Flatten(input_shape=(2, 2)), Square(), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"Square.*Keras has no twin.*\.npz"):
        odd.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_import_minicnn_does_not_import_h5py():
    code = "import sys, minicnn, minicnn.models; print('h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_every_layer_goes_both_ways_with_no_code_of_its_own(tmp_path):
    """Each layer's Keras config is its get_config(): the layers added since work unchanged."""
    model = Sequential([
        layers.Input((12, 12, 3)), layers.Rescaling(0.5, offset=0.1),
        layers.RandomFlip("horizontal"), layers.RandomTranslation(0.1, 0.1),
        layers.ZeroPadding2D(1), layers.Conv2D(8, 3, activation="relu"),
        layers.BatchNormalization(), layers.Cropping2D(((1, 0), (0, 1))),
        layers.UpSampling2D(2), layers.MaxPooling2D(),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
        layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
                      kernel_initializer="he_normal"),
        layers.ReLU(), layers.LeakyReLU(negative_slope=0.2),
        layers.AveragePooling2D(pool_size=(1, 1)), layers.Activation("tanh"),
        layers.Reshape((-1, 8)), layers.Flatten(), layers.Dropout(0.3),
        layers.Dense(5, kernel_regularizer="l2"), layers.Softmax()], seed=4)
    model.compile(optimizer=optimizers.RMSprop(momentum=0.5), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    model.learning_check = False
    x = RNG.random((4, 12, 12, 3), dtype=np.float32)
    model.fit(x, np.eye(5, dtype=np.float32)[[0, 1, 2, 3]], epochs=1, verbose=0)
    model.save(tmp_path / "every.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin = keras.models.load_model(tmp_path / "every.keras")
    assert_close(model.predict(x, verbose=0), twin.predict(x, verbose=0))
    kernel = model.layers[4].kernel  # RMSprop's velocity, then momentum, each per weight
    v, m = model.optimizer.slots([kernel])[0]
    np.testing.assert_array_equal(twin.optimizer._velocities[0].numpy(), v)
    np.testing.assert_array_equal(twin.optimizer._momentums[0].numpy(), m)
    twin.save(tmp_path / "every_keras.keras")
    back = load_model(tmp_path / "every_keras.keras")
    assert_close(back.predict(x, verbose=0), twin.predict(x, verbose=0))
    assert back.get_config()["layers"] == model.get_config()["layers"]
