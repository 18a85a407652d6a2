"""examples/mnist_autoencoder.py (Conv2DTranspose, UpSampling2D, MSE) trains and beats the best
constant guess, on MNIST when it is there and on generated strokes otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist_autoencoder.py"


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.skipif(not os.path.isdir(os.environ.get("MINICNN_DATA", "")),
                    reason="needs MNIST: set MINICNN_DATA")
def test_the_autoencoder_learns_mnist(tmp_path):
    out = run("--epochs", "1", "--limit", "2000", "--out", str(tmp_path))
    assert "Test MSE" in out and (tmp_path / "reconstructions.png").exists()


def test_the_denoising_autoencoder_runs_on_generated_strokes(tmp_path):
    out = run("--epochs", "1", "--synthetic", "--limit", "1500", "--noise", "0.3", "--out",
              str(tmp_path))
    assert "Test MSE" in out
