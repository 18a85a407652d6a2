"""examples/mnist_cnn.py, the notebook's port: it runs headless, saves its figures, and its final
accuracy check passes on a short run and fails when the bar is out of reach. The runs, which
train on MNIST, are marked `slow`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist_cnn.py"
DATA = os.environ.get("MINICNN_DATA")
needs_mnist = pytest.mark.skipif(
    not DATA or not os.path.isdir(DATA),
    reason="MINICNN_DATA is not set to a directory with the MNIST files")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUBPROCESS_TIMEOUT = 900  # seconds; generous, the machine is shared


@pytest.fixture(scope="module")
def example():
    """The example script as a module (its `main` only runs when called)."""
    spec = importlib.util.spec_from_file_location("mnist_cnn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_bar(example):
    assert example.accuracy_bar(20, 54_000, full_data=True) == 0.985
    assert example.accuracy_bar(30, 54_000, full_data=True) == 0.985
    assert example.accuracy_bar(1, 54_000, full_data=True) == 0.95
    assert example.accuracy_bar(20, 2_700, full_data=False) == 0.95  # 54,000 images seen
    assert example.accuracy_bar(1, 2_700, full_data=False) == 0.60
    assert example.accuracy_bar(1, 900, full_data=False) == 0.20


@pytest.mark.slow
@needs_mnist
def test_example_runs_headless(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--epochs", "1", "--limit", "3000", "--out", str(tmp_path),
         "--seed", "0"],
        cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg", "MINICNN_DATA": DATA},
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    accuracy = re.search(r"^Test accuracy: (\d\.\d{4})$", proc.stdout, re.M)
    assert accuracy and float(accuracy.group(1)) >= 0.60, proc.stdout
    assert re.search(r"^Test loss: \d+\.\d{4}$", proc.stdout, re.M)
    assert re.search(r"^Seconds per epoch: \d+\.\d$", proc.stdout, re.M)
    assert f"OK: test accuracy {accuracy.group(1)} >= 0.600" in proc.stdout
    pictures = ["history.png", "predictions.png"]
    if importlib.util.find_spec("visualkeras") is not None:
        pictures.append("model.png")
    for name in pictures:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000, name


@pytest.mark.slow
@needs_mnist
def test_example_fails_below_its_bar(example, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINICNN_DATA", DATA)
    for display in ("DISPLAY", "WAYLAND_DISPLAY"):  # so the script never opens a window here
        monkeypatch.delenv(display, raising=False)
    monkeypatch.setitem(sys.modules, "visualkeras", None)  # keep TensorFlow out of this process
    import matplotlib.pyplot as plt

    try:
        with pytest.raises(SystemExit, match=r"FAILED: test accuracy 0\.\d{4} is below the bar "
                                             r"of 1\.010"):
            example.main(["--epochs", "1", "--limit", "256", "--out", str(tmp_path), "--seed",
                          "0", "--min-accuracy", "1.01"])
    finally:
        plt.close("all")
    assert "visualkeras is not installed: skipping model.png" in capsys.readouterr().out
