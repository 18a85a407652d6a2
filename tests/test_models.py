"""Sequential: Keras's fit semantics, summary, epoch lines, save/load/resume, callbacks, errors."""

import json
import os
import re
import zipfile

import numpy as np
import pytest

from minicnn import callbacks, layers
from minicnn.layers import Layer, clear_session
from minicnn.models import Sequential, load_model, mnist_cnn
from minicnn.utils import to_categorical
from tests.tolerances import FLOAT32_RTOL

KERAS_SUMMARY = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_2 (Conv2D)               │ (None, 3, 3, 64)       │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 576)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 64)             │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 93,322 (364.54 KB)
 Trainable params: 93,322 (364.54 KB)
 Non-trainable params: 0 (0.00 B)"""
# The line Keras 3 adds once Adam has its slots: m and v per weight, plus iterations and rate.
KERAS_OPTIMIZER_LINE = " Optimizer params: 186,646 (729.09 KB)"


def notebook_model():
    """The notebook's cells, verbatim but for the imports."""
    model = Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class Recorder(Layer):
    """Passes x through and records, per call, training flag and the id carried in x[:, 0]."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, training=True):
        self.calls.append((training, x[:, 0].astype(int).tolist()))
        return x

    def backward(self, dout):
        return dout


def tiny_model(seed=0, recorder=None):
    model = Sequential(([recorder] if recorder else [])
                       + [layers.Dense(3, activation="softmax")], seed=seed)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def tiny_data(n=1000, features=4, seed=0):
    """x[:, 0] carries the sample's index so a Recorder can see which samples went where."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    x[:, 0] = np.arange(n)
    return x, to_categorical(rng.integers(0, 3, n), 3)


def test_summary_is_keras_table_exactly():
    clear_session()
    model = notebook_model()
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0] == KERAS_SUMMARY
    x, y = np.zeros((4, 28, 28, 1), np.float32), to_categorical([0, 1, 2, 3], 10)
    model.fit(x, y, epochs=1, verbose=0)
    lines.clear()
    model.summary(print_fn=lines.append)
    after = lines[0].splitlines()
    assert after[-1] == KERAS_OPTIMIZER_LINE
    assert after[-4] == " Total params: 279,968 (1.07 MB)"


def test_validation_split_takes_the_last_fraction_and_shuffles_only_training():
    rec = Recorder()
    model = tiny_model(recorder=rec)
    x, y = tiny_data(1000)
    history = model.fit(x, y, batch_size=128, epochs=2, validation_split=0.1, verbose=0)
    train_calls = [ids for training, ids in rec.calls if training]
    val_calls = [ids for training, ids in rec.calls if not training]
    # 900 training samples: 8 steps per epoch, the last one a partial batch of 4, trained.
    assert history.params["steps"] == 8
    assert [len(ids) for ids in train_calls] == ([128] * 7 + [4]) * 2
    epoch1 = [i for ids in train_calls[:8] for i in ids]
    epoch2 = [i for ids in train_calls[8:] for i in ids]
    assert sorted(epoch1) == sorted(epoch2) == list(range(900))
    assert epoch1 != epoch2 and epoch1 != list(range(900))  # reshuffled every epoch
    # The validation samples are the last 100, in order, once per epoch.
    assert [i for ids in val_calls for i in ids] == list(range(900, 1000)) * 2


def test_mnist_sized_split_gives_422_steps_with_a_final_batch_of_112():
    rec = Recorder()
    model = Sequential([rec, layers.Flatten(), layers.Dense(10, activation="softmax")], seed=0)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    model.learning_check = False  # all-zero images give the kernel no gradient, rightly warned
    x = np.zeros((60_000, 28, 28, 1), np.float32)
    y = to_categorical(np.arange(60_000) % 10, 10)
    rec.forward = lambda x, training=True: (rec.calls.append((training, len(x))), x)[1]
    history = model.fit(x, y, epochs=1, batch_size=128, validation_split=0.1, verbose=0)
    sizes = [n for training, n in rec.calls if training]
    assert history.params["steps"] == 422 and len(sizes) == 422
    assert sum(sizes) == 54_000 and sizes[-1] == 112
    assert sum(n for training, n in rec.calls if not training) == 6_000


def test_epoch_metrics_are_sample_weighted_and_val_matches_evaluate(capsys):
    model = tiny_model(seed=3)
    x, y = tiny_data(300, seed=1)
    x[:, 0] /= 300  # keep the index feature small for this test
    history = model.fit(x, y, batch_size=64, epochs=1, validation_split=0.2, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1  # one epoch: no "Epoch 1/1" line, as Keras 3
    assert re.fullmatch(r"4/4 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
                        r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}", out[0]), out[0]
    val_loss, val_acc = model.evaluate(x[240:], y[240:], batch_size=7, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(val_loss, rel=FLOAT32_RTOL)
    assert history.history["val_accuracy"][0] == pytest.approx(val_acc)
    p = model.predict(x[240:])
    assert val_acc == pytest.approx(np.mean(p.argmax(1) == y[240:].argmax(1)))
    assert val_loss == pytest.approx(-np.mean(np.log((p * y[240:]).sum(1))), rel=FLOAT32_RTOL)


def test_verbose_levels(capsys):
    model = tiny_model()
    x, y = tiny_data(100)
    x[:, 0] = 0
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=1, batch_size=50, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # not a terminal: the finished line only, without colours
    assert re.fullmatch(r"2/2 ━{20} \d+s \d+(ms|us)/step - accuracy: \d\.\d{4} - loss: "
                        r"\d\.\d{4}", lines[0]), lines[0]
    model.fit(x, y, epochs=2, batch_size=50, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(r"2/2 - \d+s - \d+(ms|us)/step - accuracy: \d\.\d{4} - loss: "
                        r"\d\.\d{4}", lines[3]), lines[3]


def test_live_progress_bar_shows_eta_on_a_terminal():
    class Terminal:
        def __init__(self):
            self.text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return True

    bar = callbacks.ProgbarLogger(verbose=1, stream=Terminal())
    bar.set_params({"epochs": 1, "steps": 10})
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(2, {"loss": 0.5, "accuracy": 0.75})
    # Keras 3's bar: the count in bold, 6 of 20 marks green, the time left in bold
    assert re.search(r"\r\x1b\[1m 3/10\x1b\[0m \x1b\[32m━{6}\x1b\[0m\x1b\[37m━{14}\x1b\[0m "
                     r"\x1b\[1m\d+s\x1b\[0m \d+(ms|us)/step - loss: 0\.5000 - accuracy: 0\.7500",
                     bar.stream.text), bar.stream.text


def test_same_seed_same_run_bit_for_bit():
    x, y = tiny_data(200)
    x[:, 0] = 0
    a, b = tiny_model(seed=11), tiny_model(seed=11)
    a.fit(x, y, epochs=2, batch_size=32, verbose=0)
    b.fit(x, y, epochs=2, batch_size=32, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    c = tiny_model(seed=12)
    c.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def small_cnn(seed):
    model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                        layers.MaxPooling2D(2), layers.Flatten(),
                        layers.Dense(3, activation="softmax")], seed=seed)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return model


def test_save_load_and_resume_equals_training_straight_through(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((96, 10, 10, 1)).astype(np.float32)
    y = to_categorical(rng.integers(0, 3, 96), 3)
    straight = small_cnn(seed=5)
    straight.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    first = small_cnn(seed=5)
    first.fit(x, y, epochs=1, batch_size=16, validation_split=0.25, verbose=0)
    first.save(tmp_path / "ckpt.npz")
    resumed = load_model(tmp_path / "ckpt.npz")
    assert [type(layer).__name__ for layer in resumed.layers] == [
        "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    resumed.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                initial_epoch=1)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 15
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


def test_bad_model_files_give_clear_errors(tmp_path):
    model = small_cnn(seed=1)
    path = tmp_path / "m.npz"
    model.save(path)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.npz.*truncated, corrupt"):
        load_model(tmp_path / "truncated.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=r"junk\.npz"):
        load_model(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
    # Hand-edited: one more filter in the architecture than the weights hold.
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arch = json.loads(str(arrays["architecture"]))
    arch["layers"][0]["config"]["filters"] = 5
    arrays["architecture"] = np.array(json.dumps(arch))
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(ValueError, match=r"edited\.npz.*creates a kernel of shape \(3, 3, 1, 5\)"
                                         r", but the file's weight/0 has shape \(3, 3, 1, 4\)"):
        load_model(tmp_path / "edited.npz")
    other = Sequential([layers.Flatten(input_shape=(10, 10, 1)), layers.Dense(3)])
    with pytest.raises(ValueError, match=r"do not fit model.*conv2d"):
        other.load_weights(path)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a minicnn model file"):
        load_model(tmp_path / "plain.npz")
    assert zipfile.is_zipfile(path)


def test_errors_at_the_boundaries():
    x, y = np.zeros((8, 28, 28, 1), np.float32), to_categorical(np.arange(8) % 10, 10)
    model = mnist_cnn(seed=0, compile=False)
    with pytest.raises(RuntimeError, match=r"must call `compile\(\)` before"):
        model.fit(x, y)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    with pytest.raises(ValueError, match=r"expected shape \(None, 28, 28, 1\), received shape "
                                         r"\(8, 28, 28\)"):
        model.fit(x[..., 0], y)
    with pytest.raises(ValueError, match="x has 8, y has 7"):
        model.fit(x, y[:7])
    with pytest.raises(ValueError, match="one-hot encode them with to_categorical"):
        model.fit(x, np.arange(8))
    with pytest.raises(ValueError, match=r"`batch_size`.*Received batch_size=0"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"`validation_split`.*in \[0, 1\).*=1.0"):
        model.fit(x, y, validation_split=1.0)
    with pytest.raises(ValueError, match="`optimizer`"):
        model.compile("adamax2", "categorical_crossentropy")
    with pytest.raises(ValueError, match="`metrics`"):
        model.compile("adam", "categorical_crossentropy", ["f1"])
    with pytest.raises(TypeError, match="Only minicnn Layer instances"):
        model.add("dense")


def test_callbacks(tmp_path, capsys):
    x, y = tiny_data(200, seed=2)
    x[:, 0] = 0
    model = tiny_model(seed=1)
    stop = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0,
                                   restore_best_weights=True)
    ckpt = callbacks.ModelCheckpoint(tmp_path / "best-{epoch:02d}.npz", monitor="loss",
                                     save_best_only=True)
    log = callbacks.CSVLogger(tmp_path / "log.csv")
    history = model.fit(x, y, epochs=10, verbose=0, validation_split=0.1,
                        callbacks=[stop, ckpt, log])
    # min_delta=10 means no epoch after the first counts as an improvement: stop after epoch 2.
    assert history.epoch == [0, 1]
    assert sorted(os.listdir(tmp_path)) == ["best-01.npz", "best-02.npz", "log.csv"]
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(rows) == 3
    np.testing.assert_array_equal(model.get_weights()[0], stop.best_weights[0])

    class Explode(Layer):
        def forward(self, x, training=True):
            return x * np.float32(np.inf) if training else x

        def backward(self, dout):
            return dout

    nan_model = Sequential([Explode(), layers.Dense(3, activation="softmax")])
    nan_model.compile("sgd", "categorical_crossentropy")
    history = nan_model.fit(x, y, epochs=3, batch_size=50, verbose=0,
                            callbacks=[callbacks.TerminateOnNaN()])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert len(history.epoch) == 1


def test_visualkeras_draws_a_minicnn_model():
    visualkeras = pytest.importorskip("visualkeras", reason="visualkeras is in the dev extra")
    image = visualkeras.layered_view(notebook_model(), legend=True)
    assert image.size[0] > 200 and image.size[1] > 50
    pixels = np.asarray(image.convert("L"))
    assert pixels.min() < 200  # something was drawn on the white background


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MINICNN_DATA"), reason="needs MNIST: set MINICNN_DATA")
def test_one_epoch_on_a_few_thousand_mnist_images_learns():
    from minicnn.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data()
    x = (x[:6000].astype("float32") / 255).reshape(-1, 28, 28, 1)
    xt = (xt[:1000].astype("float32") / 255).reshape(-1, 28, 28, 1)
    model = mnist_cnn(seed=0)
    model.fit(x, to_categorical(y[:6000]), epochs=1, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(xt, to_categorical(yt[:1000], 10), verbose=0)
    assert accuracy > 0.9, (loss, accuracy)
    assert list(model.predict(xt[:3]).argmax(axis=1)) == [7, 2, 1]
