"""examples/fashion_mnist.py and examples/cifar10_cnn.py, the lessons after the notebook: each
runs on a small subset, prints what it reached and exits 0; without --compare-tf neither loads
TensorFlow; with it, Keras gets minicnn's initial weights (checked here: the same predictions)
and both accuracies are printed. CIFAR-10 itself is never needed: pointed at an empty folder, the
example falls back to its generated pictures and says so. The training runs are marked `slow`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tolerances import TF_FORWARD_ATOL, TF_FORWARD_RTOL

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FASHION_DATA = os.environ.get("MINICNN_FASHION_MNIST_DATA") or str(ROOT.parent / "shared" /
                                                                   "fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not os.path.isdir(FASHION_DATA),
    reason="MINICNN_FASHION_MNIST_DATA is not set to a directory with the Fashion-MNIST files")
HAS_TF = importlib.util.find_spec("tensorflow") is not None
SUBPROCESS_TIMEOUT = 900  # seconds; generous, the machine is shared
# Runs a script as `python script ...` would, then reports whether TensorFlow got imported.
DRIVER = """import runpy, sys
path, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(path, run_name="__main__")
finally:
    print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fashion():
    return load_example("fashion_mnist")


@pytest.fixture(scope="module")
def cifar():
    return load_example("cifar10_cnn")


def run_example(name: str, *args: str, env: dict | None = None) -> str:
    """Run examples/<name>.py in a fresh process; assert it exits 0 without TensorFlow."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(EXAMPLES / f"{name}.py"), *args], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", **(env or {})},
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "tensorflow imported: False" in proc.stdout, proc.stdout[-2000:]
    return proc.stdout


def check_report(out: str) -> float:
    """The lines every example prints at its end; returns the test accuracy."""
    accuracy = re.search(r"^Test accuracy: (\d\.\d{4})", out, re.M)
    assert accuracy, out[-3000:]
    assert re.search(r"^Test loss: \d+\.\d{4}$", out, re.M)
    assert re.search(r"^Seconds per epoch: \d+\.\d$", out, re.M)
    assert re.search(rf"^OK: test accuracy {accuracy.group(1)} >= \d\.\d{{3}}$", out, re.M)
    return float(accuracy.group(1))


def test_accuracy_bars(fashion, cifar):
    assert fashion.accuracy_bar(10, 54_000, full_data=True) == 0.88
    assert fashion.accuracy_bar(1, 54_000, full_data=True) == 0.65
    assert fashion.accuracy_bar(1, 2_700, full_data=False) == 0.30
    assert fashion.accuracy_bar(1, 270, full_data=False) == 0.0
    assert cifar.accuracy_bar(1, 50_000, synthetic=True) == 0.80
    assert cifar.accuracy_bar(1, 2_000, synthetic=True) == 0.25
    assert cifar.accuracy_bar(10, 50_000, synthetic=False) == 0.40
    assert cifar.accuracy_bar(1, 50_000, synthetic=False) == 0.0


def test_synthetic_cifar10_has_cifar10s_format_and_is_reproducible(cifar):
    (x_train, y_train), (x_test, y_test) = cifar.synthetic_cifar10(2_100, 300, seed=1)
    assert x_train.shape == (2_100, 32, 32, 3) and x_test.shape == (300, 32, 32, 3)
    assert y_train.shape == (2_100, 1) and y_test.shape == (300, 1)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert set(np.unique(y_train)) == set(range(10))
    again = cifar.synthetic_cifar10(2_100, 300, seed=1)[0][0]
    np.testing.assert_array_equal(x_train, again)
    # Learnable by construction: a class's stripes run across (k < 5) or down (k >= 5), so the
    # brightness varies more down the rows than along them for k < 5, and the other way round.
    gray = x_train.astype(np.float32).mean(axis=3)
    down_rows = np.abs(np.diff(gray, axis=1)).mean(axis=(1, 2))
    along_rows = np.abs(np.diff(gray, axis=2)).mean(axis=(1, 2))
    across = y_train[:, 0] < 5
    assert ((down_rows > along_rows) == across).mean() > 0.9


@pytest.mark.slow
@needs_fashion
def test_fashion_mnist_example_runs_without_tensorflow():
    out = run_example("fashion_mnist", "--epochs", "1", "--limit", "300",
                      "--seed", "0", env={"MINICNN_FASHION_MNIST_DATA": FASHION_DATA})
    assert "Fashion-MNIST: 300 training images (10% held out for validation), 300 test images" \
        in out
    assert re.search(r"^3/3 - ", out, re.M)  # fit's verbose=2 line: 270 images, batch 128
    check_report(out)
    assert re.search(r"^Test image 0: predicted .+, label Ankle boot$", out, re.M)


@pytest.mark.slow
def test_cifar10_example_falls_back_to_generated_data(tmp_path):
    out = run_example("cifar10_cnn", "--epochs", "1", "--limit", "256", "--seed", "0",
                      env={"MINICNN_CIFAR10_DATA": str(tmp_path)})  # an empty folder
    assert "# CIFAR-10 is not available: " in out
    assert "# SYNTHETIC DATA, NOT CIFAR-10: 256 training and 256 test pictures" in out
    assert re.search(r"^8/8 - ", out, re.M)  # batch 32, the recipe's
    check_report(out)
    assert "(Trained and tested on generated pictures, not on CIFAR-10.)" in out


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TF, reason="TensorFlow is not installed")
@needs_fashion
def test_compare_tf_runs_both_from_the_same_weights(fashion, cifar, monkeypatch, capsys):
    from minicnn import models
    from minicnn.models import to_keras

    fashion.import_keras()
    # The twin starts where minicnn starts: the same predictions, BatchNormalization included
    # (tests/test_to_keras.py checks every recipe and layer).
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    model = models.fashion_mnist_cnn(seed=3)
    np.testing.assert_allclose(to_keras(model, compile=True).predict(x, verbose=0),
                               model.predict(x), rtol=TF_FORWARD_RTOL, atol=TF_FORWARD_ATOL)

    monkeypatch.setenv("MINICNN_FASHION_MNIST_DATA", FASHION_DATA)
    assert fashion.main(["--epochs", "1", "--limit", "200", "--seed", "0", "--compare-tf"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Epoch 1/1  \| minicnn +\d+\.\d s - loss: .+  \| TensorFlow +\d+\.\d s",
                     out, re.M)
    check_report(out)
    assert re.search(r"^TensorFlow test accuracy: \d\.\d{4}$", out, re.M)
    assert re.search(r"^Difference \(minicnn - TensorFlow\): [+-]\d+\.\d\d points", out, re.M)

    assert cifar.main(["--epochs", "1", "--limit", "64", "--seed", "0", "--synthetic",
                       "--compare-tf"]) == 0
    out = capsys.readouterr().out
    assert "# SYNTHETIC DATA, NOT CIFAR-10: 64 training and 64 test pictures" in out
    check_report(out)
    assert re.search(r"^TensorFlow test accuracy: \d\.\d{4}$", out, re.M)


def test_the_resnet_example_writes_out_the_recipe():
    """examples/resnet_cifar10.py's functional code builds models.resnet20: the same layers in
    the same order, the same weights from the same seed, the same predictions."""
    example = load_example("resnet_cifar10")
    from minicnn import layers, models

    layers.clear_session()
    ours = example.build(seed=3)
    layers.clear_session()
    recipe = models.resnet20(seed=3)
    assert [type(a).__name__ for a in ours.layers] == [type(b).__name__ for b in recipe.layers]
    assert [a.name for a in ours.layers] == [b.name for b in recipe.layers]
    for a, b in zip(ours.get_weights(), recipe.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(ours.predict(x, verbose=0), recipe.predict(x, verbose=0))


@pytest.mark.slow
def test_resnet_example_trains_on_generated_data_and_compares_plain(tmp_path):
    out = run_example("resnet_cifar10", "--epochs", "1", "--limit", "256", "--seed", "0",
                      "--batch-size", "64", env={"MINICNN_CIFAR10_DATA": str(tmp_path)})
    assert "# SYNTHETIC DATA, NOT CIFAR-10: 256 training and 256 test pictures" in out
    assert re.search(r"^4/4 - ", out, re.M)
    check_report(out)
    out = run_example("resnet_cifar10", "--compare-plain")
    assert re.search(r"^plain-20: weight-gradient norms span 10\.4x; first/last 5\.6x$", out,
                     re.M), out
    assert re.search(r"^ResNet-20: weight-gradient norms span 2\.8x; first/last 1\.4x$", out,
                     re.M), out
