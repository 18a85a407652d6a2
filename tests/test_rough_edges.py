"""Issue 21's rough edges, each a one-line error (or a kept result) instead of a traceback or a
silent wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import layers, schedules
from minicnn.cli import commands, main
from minicnn.cli.errors import CLIError
from minicnn.models import Sequential


def tiny():
    m = Sequential([layers.Dense(2, activation="softmax", input_shape=(3,))], seed=0)
    m.compile("sgd", "categorical_crossentropy")
    return m


def test_complex_input_is_refused_not_truncated():
    x = np.ones((4, 3), dtype=complex) * (1 + 2j)
    with pytest.raises(ValueError, match="complex128; minicnn takes real numbers"):
        tiny().predict(x, verbose=0)
    with pytest.raises(ValueError, match="real numbers"):
        tiny().fit(x, np.eye(2)[[0, 1, 0, 1]], verbose=0)


@pytest.mark.parametrize("epochs", [-1, 1.5, "2", True])
def test_epochs_that_are_not_a_count_are_named(epochs):
    with pytest.raises(ValueError, match=r"argument `epochs`. Expected a non-negative integer"):
        tiny().fit(np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]], epochs=epochs, verbose=0)


def test_unsorted_piecewise_boundaries_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        schedules.PiecewiseConstantDecay([100, 10], [0.1, 0.01, 0.001])


def test_cli_one_line_errors(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["sweep", "--seed", "0", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["train", "--workers", "1", "--address", "junk"]) == 2
    err = capsys.readouterr().err
    assert "Received address='junk'" in err and "Traceback" not in err


def test_a_model_that_cannot_be_saved_is_kept_elsewhere(tmp_path, monkeypatch):
    """A full disk at the end of train: the model goes to the temporary directory instead, and
    the one-line error says where."""
    model = tiny()
    real_save = type(model).save
    calls = []

    def full_disk(self, path, *args, **kwargs):
        calls.append(str(path))
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(type(model), "save", full_disk)
    with pytest.raises(CLIError, match=r"No space left on device.*saved to .*minicnn-trained"):
        commands._save_trained(model, str(tmp_path / "model.npz"))
    assert len(calls) == 2 and calls[1].endswith(".npz")
