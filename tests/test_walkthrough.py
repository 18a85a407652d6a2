"""The two backprop study examples run on a short setting and say what they should.

examples/backprop_walkthrough.py --short runs in a subprocess (on MNIST's first digit when
$MINICNN_DATA is set, on its synthetic "7" otherwise) and must report every check passed, with
a relative error below the project's gradient-check tolerance; run in-process with a planted bug
in max pooling's backward, it must fail. examples/keras_parity.py --steps 5 needs TensorFlow
and is skipped without it. The subprocess runs are marked `slow`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn.layers import MaxPooling2D
from tests.tolerances import GRADCHECK_TOL, PARITY_FIRST_STEP_BOUND, PARITY_FIVE_STEP_BOUND

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "examples" / "backprop_walkthrough.py"
PARITY = ROOT / "examples" / "keras_parity.py"
SUBPROCESS_TIMEOUT = 300  # seconds; generous, the machine is shared


needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                      reason="keras_parity.py needs TensorFlow")


def run(script: Path, *args: str) -> str:
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return proc.stdout


@pytest.mark.slow
def test_walkthrough_short_run_passes_every_check():
    out = run(WALKTHROUGH, "--short")
    source = "first MNIST training image" if os.environ.get("MINICNN_DATA") else "synthetic '7'"
    assert source in out
    # The conv section shows the im2col matrix and the GEMMs, for the notebook's first layer.
    assert "im2col matrix cols (676, 9) = (N*H_out*W_out, KH*KW*C) = (1*26*26, 3*3*1)" in out
    assert "forward GEMM: z = cols @ K + b: (676, 9) @ (9, 32) -> (676, 32)" in out
    assert "dK = cols.T @ dz: (9, 676) @ (676, 32) -> (9, 32)" in out
    assert "dcols = dz @ K.T: (676, 32) @ (32, 9) -> (676, 9), then dx = col2im(dcols)" in out
    assert "(p - y) / N" in out
    # Each layer's rebuilt gradients match the layer's, and elements match central differences.
    smooth = re.search(r"^Largest relative error of the (\d+) smooth elements checked: (\S+) "
                       rf"\(bar {GRADCHECK_TOL:g}\)$", out, re.M)
    assert smooth, out
    assert int(smooth.group(1)) >= 10
    assert float(smooth.group(2)) < GRADCHECK_TOL
    table = out[out.index("5. The same check, automated"):]
    assert re.search(r"^PASSED$", table, re.M), table
    adam = re.search(r"differences from the hand computation: (\S+), (\S+), (\S+)$", out, re.M)
    assert adam and all(float(d) == 0.0 for d in adam.groups()), out
    assert out.rstrip().splitlines()[-2].startswith("OK: ")


def test_walkthrough_fails_on_a_broken_backward(monkeypatch, capsys):
    """A pool backward that doubles its gradient must make the walkthrough report a failure."""
    spec = importlib.util.spec_from_file_location("backprop_walkthrough", WALKTHROUGH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("MINICNN_DATA", raising=False)  # the synthetic digit: no file read
    correct = MaxPooling2D.backward

    def doubled(self, dout: np.ndarray) -> np.ndarray:
        return 2 * correct(self, dout)

    monkeypatch.setattr(MaxPooling2D, "backward", doubled)
    assert module.main(["--short"]) == 1
    out = capsys.readouterr().out
    assert "synthetic '7'" in out
    failed = out.rstrip().splitlines()[-1]
    assert failed.startswith("FAILED: ") and "max_pooling2d" in failed, failed


@pytest.mark.slow
@needs_tensorflow
@pytest.mark.parametrize("options", [(), ("--match-adam-scalars",)], ids=["default", "matched"])
def test_keras_parity_short_run(options):
    out = run(PARITY, "--steps", "5", *options)
    assert "initial weights: 10 tensors, 93,322 values, identical in both" in out
    assert len(re.findall(r"^\s+\d/5\s+\d+\.\d{7}\s+\d+\.\d{7}\s+[+-]\d\.\d\de[+-]\d\d$", out,
                          re.M)) == 5, out
    largest = re.search(r"^Largest \|loss difference\| over 5 steps: (\S+) \(step \d\); first "
                        r"step (\S+), last step (\S+)$", out, re.M)
    assert largest, out
    print(largest.group(0))  # visible with -s
    assert float(largest.group(2)) < PARITY_FIRST_STEP_BOUND
    assert float(largest.group(1)) < PARITY_FIVE_STEP_BOUND
    assert "Known, intended differences" in out
