"""fit(verbose=1)'s progress bar: redrawn in place on a terminal and in Jupyter, written once,
finished, on a pipe or a file; the finished line is the same everywhere."""

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

LOGS = {"loss": 0.5, "accuracy": 0.75}
STEPS = 10
FINISHED = (r"10/10 \[={30}\] - \d+s \d+(?:ms|us)/step - loss: 0\.5000 - accuracy: 0\.7500")
REDRAW = r"\r *\d+/10 \[=*>?\.*\] - ETA: \d+s - loss: 0\.5000 - accuracy: 0\.7500"


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


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves 0.1 s per reading: every batch is past the bar's redraw interval."""
    now = [0.0]

    def perf_counter():
        now[0] += 0.1
        return now[0]

    # Only the progress bar's view of `time` changes; the rest of the process keeps the real
    # clock.
    monkeypatch.setattr(progbar, "time", types.SimpleNamespace(perf_counter=perf_counter))


def run_epoch(stream) -> str:
    """One epoch of STEPS batches through ProgbarLogger(verbose=1); what it wrote."""
    bar = callbacks.ProgbarLogger(verbose=1, stream=stream)
    bar.set_params({"epochs": 1, "steps": STEPS})
    bar.on_epoch_begin(0)
    for batch in range(STEPS):
        bar.params["steps_done"] = batch + 1
        bar.on_train_batch_end(batch, LOGS)
    bar.on_epoch_end(0, LOGS)
    return stream.getvalue() if isinstance(stream, io.StringIO) else ""


def test_a_terminal_gets_the_bar_redrawn_in_place(clock):
    text = run_epoch(Terminal())
    redraws = re.findall(REDRAW + r"\033\[K", text)
    assert len(redraws) == STEPS - 1, repr(text)  # every batch but the last, then the finished
    assert redraws[0].startswith("\r 1/10 [===>")
    assert re.fullmatch(r"Epoch 1/1\n(?:" + REDRAW + r"\033\[K)+\r" + FINISHED + r"\n", text), \
        repr(text)


def test_a_pipe_gets_only_the_finished_line(clock):
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        assert not pipe.isatty()
        run_epoch(pipe)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    assert re.fullmatch(r"Epoch 1/1\n" + FINISHED + r"\n", text), repr(text)


def test_a_file_gets_only_the_finished_line(clock, tmp_path):
    with open(tmp_path / "log.txt", "w") as f:
        run_epoch(f)
    text = (tmp_path / "log.txt").read_text()
    assert re.fullmatch(r"Epoch 1/1\n" + FINISHED + r"\n", text), repr(text)


def test_jupyter_gets_the_bar_redrawn_in_place(clock, jupyter):
    stream = jupyter.OutStream()
    assert not stream.isatty()  # as in a real kernel: no tty, yet front ends honour "\r"
    text = run_epoch(stream)
    # "\r" alone: a notebook replaces the whole line, and would only store an escape as noise.
    assert re.fullmatch(r"Epoch 1/1\n(?:" + REDRAW + r")+\r" + FINISHED + r"\n", text), repr(text)
    assert len(re.findall(REDRAW, text)) == STEPS - 1
    assert "\033" not in text


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
    assert re.fullmatch(r"Epoch 1/1\n(?:\r[ \d]/4 \[[=>.]{30}\] - ETA: [^\r]*)+"
                        r"\r4/4 \[={30}\] - \d+s \d+(?:ms|us)/step - accuracy: \d\.\d{4}"
                        r" - loss: \d\.\d{4}\n", text), repr(text)


def test_ipykernel_merely_imported_is_not_jupyter(clock, jupyter):
    # Keras redraws whenever "ipykernel" is in sys.modules; jupyter_client imports it to look up
    # the "python3" kernel, so a process that ran a notebook would then write "\r"s into pipes.
    text = run_epoch(io.StringIO())
    assert re.fullmatch(r"Epoch 1/1\n" + FINISHED + r"\n", text), repr(text)


def test_the_finished_line_is_the_same_everywhere(clock, jupyter):
    lines = [run_epoch(stream).rsplit("\r", 1)[-1].splitlines()[-1]
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
    assert re.fullmatch(r"3/3 \[=+\] - \d+s \d+[mu]?s/step - accuracy: [\d.]+ - loss: [\d.]+\n",
                        out), out
    assert f"accuracy: {accuracy:.4f} - loss: {loss:.4f}" in out
    model.evaluate(x, y, verbose=2)
    assert re.fullmatch(r"3/3 - \d+s - \d+[mu]?s/step - accuracy: [\d.]+ - loss: [\d.]+\n",
                        capsys.readouterr().out)
    model.predict(x, batch_size=10)
    assert re.fullmatch(r"7/7 \[=+\] - \d+s \d+[mu]?s/step\n", capsys.readouterr().out)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
