"""fit(verbose=1)'s progress bar, Keras 3's: redrawn in place on a terminal and in Jupyter, written
once, finished and without colours, on a pipe or a file; character for character Keras 3's
ProgbarLogger when both are driven by the same calls and clock."""

from __future__ import annotations

import io
import os
import re
import sys
import types

import numpy as np
import pytest

from minicnn import callbacks, layers
from minicnn.callbacks import progbar
from minicnn.models import Sequential
from minicnn.utils import to_categorical

LOGS = {"accuracy": 0.75, "loss": 0.5}
STEPS = 10
BOLD, GREEN, WHITE, RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
# the finished line, plain (a pipe, a file) and coloured (a terminal, Jupyter)
FINISHED = r"10/10 ━{20} \d+s \d+(?:ms|us)/step - accuracy: 0\.7500 - loss: 0\.5000"
FINISHED_COLOURED = (r"\x1b\[1m10/10\x1b\[0m \x1b\[32m━{20}\x1b\[0m\x1b\[37m\x1b\[0m "
                     r"\x1b\[1m\d+s\x1b\[0m \d+(?:ms|us)/step - accuracy: 0\.7500 - loss: 0\.5000")
REDRAW = (r"\x08*\r\x1b\[1m *\d+/10\x1b\[0m (?:\x1b\[32m━+\x1b\[0m)?\x1b\[37m━*\x1b\[0m "
          r"\x1b\[1m\d+s\x1b\[0m \d+(?:ms|us)/step - accuracy: 0\.7500 - loss: 0\.5000 *")


class Terminal(io.StringIO):
    def isatty(self):
        return True


class FakeOutStream(io.StringIO):
    """Stands in for ipykernel.iostream.OutStream, what sys.stdout is inside a Jupyter kernel."""


@pytest.fixture
def jupyter(monkeypatch):
    """The process as a Jupyter kernel looks to the bar: ipykernel's iostream module is loaded,
    and its OutStream is the class of the kernel's stdout and stderr."""
    iostream = types.ModuleType("ipykernel.iostream")
    iostream.OutStream = FakeOutStream
    monkeypatch.setitem(sys.modules, "ipykernel.iostream", iostream)
    return iostream


def ticking(step: float = 0.1):
    """A clock that moves `step` seconds per reading."""
    now = [0.0]

    def read():
        now[0] += step
        return now[0]
    return read


@pytest.fixture
def clock(monkeypatch):
    """0.1 s per reading: every batch is past the bar's redraw interval. Only the progress
    bar's view of `time` changes; the rest of the process keeps the real clock."""
    monkeypatch.setattr(progbar, "time", types.SimpleNamespace(perf_counter=ticking()))


def run_epoch(stream, epochs: int = 2) -> str:
    """One epoch of STEPS batches through ProgbarLogger(verbose=1); what it wrote."""
    bar = callbacks.ProgbarLogger(verbose=1, stream=stream)
    bar.set_params({"epochs": epochs, "steps": STEPS})
    bar.on_epoch_begin(0)
    for batch in range(STEPS):
        bar.on_train_batch_end(batch, LOGS)
    bar.on_epoch_end(0, LOGS)
    return stream.getvalue() if isinstance(stream, io.StringIO) else ""


def test_a_terminal_gets_the_bar_redrawn_in_place(clock):
    text = run_epoch(Terminal())
    redraws = re.findall(REDRAW, text)
    assert len(redraws) == STEPS + 1, repr(text)  # every batch, then the finished line
    assert redraws[0].startswith("\r\x1b[1m 1/10\x1b[0m \x1b[32m━━\x1b[0m\x1b[37m━━")
    assert re.fullmatch(r"Epoch 1/2\n(?:" + REDRAW + r")+\x08*\r" + FINISHED_COLOURED + r"\n",
                        text), repr(text)


def test_a_pipe_gets_only_the_finished_line(clock):
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        assert not pipe.isatty()
        run_epoch(pipe)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    assert re.fullmatch(r"Epoch 1/2\n" + FINISHED + r"\n", text), repr(text)


def test_a_file_gets_only_the_finished_line(clock, tmp_path):
    with open(tmp_path / "log.txt", "w") as f:
        run_epoch(f, epochs=1)  # one epoch: no "Epoch 1/1" line, as Keras 3
    text = (tmp_path / "log.txt").read_text()
    assert re.fullmatch(FINISHED + r"\n", text), repr(text)


def test_jupyter_gets_the_bar_redrawn_in_place(clock, jupyter):
    stream = jupyter.OutStream()
    assert not stream.isatty()  # as in a real kernel: no tty, yet front ends honour "\r"
    text = run_epoch(stream)
    assert re.fullmatch(r"Epoch 1/2\n(?:" + REDRAW + r")+\x08*\r" + FINISHED_COLOURED + r"\n",
                        text), repr(text)


@pytest.mark.parametrize("verbose", [1, "auto"])  # "auto": Keras 3's default, which means 1
def test_fit_redraws_on_a_jupyter_stdout(clock, jupyter, monkeypatch, verbose):
    stdout = jupyter.OutStream()
    monkeypatch.setattr(sys, "stdout", stdout)
    rng = np.random.default_rng(0)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))], seed=0)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    model.fit(rng.random((40, 4)).astype(np.float32), to_categorical(rng.integers(0, 3, 40), 3),
              epochs=1, batch_size=10, verbose=verbose)
    text = stdout.getvalue()
    assert text.startswith("\r\x1b[1m1/4\x1b[0m") and text.endswith("\n"), repr(text)
    assert re.search(r"\r\x1b\[1m4/4\x1b\[0m \x1b\[32m━{20}\x1b\[0m\x1b\[37m\x1b\[0m "
                     r"\x1b\[1m\d+s\x1b\[0m \d+(?:ms|us)/step - accuracy: \d\.\d{4} - "
                     r"loss: \d\.\d{4} *\n$", text), repr(text)


def keras_and_ours(keras, monkeypatch, calls, params, verbose):
    """Drive Keras 3's ProgbarLogger and ours through the same callback calls, each with its own
    clock moving 0.3 s per reading, on a terminal-like stdout; what each wrote."""
    from keras.src.utils import progbar as keras_progbar

    outputs = []
    for which in ("keras", "minicnn"):
        stdout = Terminal()
        monkeypatch.setattr(sys, "stdout", stdout)
        if which == "keras":
            monkeypatch.setattr(keras_progbar, "time", types.SimpleNamespace(time=ticking(0.3)))
            logger = keras.callbacks.ProgbarLogger()
        else:
            monkeypatch.setattr(progbar, "time", types.SimpleNamespace(perf_counter=ticking(0.3)))
            logger = callbacks.ProgbarLogger(verbose)
        logger.set_params({**params, "verbose": verbose})
        for method, *args in calls:
            getattr(logger, method)(*args)
        outputs.append(stdout.getvalue())
        monkeypatch.undo()
    theirs, ours = outputs
    return ours, theirs


@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("steps", [7, None])
def test_character_for_character_keras_3(monkeypatch, verbose, steps):
    """Two epochs of 7 batches with validation logs, small and negative values and a value
    that shrinks the line, then evaluate's and predict's bars; and a generator's first epoch of
    unknown length (steps=None)."""
    pytest.importorskip("tensorflow", reason="Keras 3 is the oracle of this test")
    import keras

    rng = np.random.default_rng(0)
    calls = []
    for epoch in range(2):
        calls.append(("on_epoch_begin", epoch))
        for batch in range(7):
            logs = {"accuracy": float(rng.random()), "loss": float(rng.random() * 10 ** -epoch)}
            if batch == 3:
                logs["loss"] = 123456.5  # a long line, then shorter ones over it
            calls.append(("on_train_batch_end", batch, logs))
        calls.append(("on_epoch_end", epoch, {**logs, "val_accuracy": 0.5, "val_loss": -2e-4}))
    ours, theirs = keras_and_ours(keras, monkeypatch, [("on_train_begin",), *calls],
                                  {"epochs": 2, "steps": steps}, verbose)
    assert ours == theirs, f"\nminicnn: {ours!r}\nKeras:   {theirs!r}"
    tests = [("on_test_begin",)] + [("on_test_batch_end", b, {"loss": 0.25 * b})
                                    for b in range(3)] + [("on_test_end", {"loss": 0.5})]
    ours, theirs = keras_and_ours(keras, monkeypatch, tests, {"epochs": 1, "steps": 3}, verbose)
    assert ours == theirs, f"\nminicnn: {ours!r}\nKeras:   {theirs!r}"
    predicts = [("on_predict_begin",)] + [("on_predict_batch_end", b, {}) for b in range(4)] + [
        ("on_predict_end",)]
    ours, theirs = keras_and_ours(keras, monkeypatch, predicts, {"epochs": 1, "steps": 4},
                                  verbose)
    assert ours == theirs, f"\nminicnn: {ours!r}\nKeras:   {theirs!r}"


def test_ipykernel_merely_imported_is_not_jupyter(clock, jupyter):
    # Keras redraws whenever "ipykernel" is in sys.modules; jupyter_client imports it to look up
    # the "python3" kernel, so a process that ran a notebook would then write "\r"s into pipes.
    text = run_epoch(io.StringIO())
    assert re.fullmatch(r"Epoch 1/2\n" + FINISHED + r"\n", text), repr(text)


def test_the_finished_line_is_the_same_everywhere(clock, jupyter):
    """The same text on a terminal, in Jupyter and in a file, colours aside."""
    lines = [re.sub(r"\x1b\[\d+m", "", run_epoch(stream).rsplit("\r", 1)[-1]).splitlines()[-1]
             for stream in (Terminal(), jupyter.OutStream(), io.StringIO())]
    for line in lines:
        assert re.fullmatch(FINISHED, line), line


def test_evaluate_and_predict_draw_keras_bars_by_default(capsys):
    # Keras 3's evaluate and predict default to verbose="auto": a bar, then the final line.
    model = Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((70, 4), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(70) % 3]
    loss, accuracy = model.evaluate(x, y)
    out = capsys.readouterr().out
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+[mu]?s/step - accuracy: [\d.]+ - loss: [\d.]+\n",
                        out), out
    assert f"accuracy: {accuracy:.4f} - loss: {loss:.4f}" in out
    model.evaluate(x, y, verbose=2)
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step - accuracy: [\d.]+ - loss: [\d.]+\n",
                        capsys.readouterr().out)
    model.predict(x, batch_size=10)
    assert re.fullmatch(r"7/7 ━{20} \d+s \d+[mu]?s/step\n", capsys.readouterr().out)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
