"""The benchmarks run end to end: a --quick smoke run of each script, no speed asserted.

The smoke runs are in the default `pytest -q` run on purpose (CI runs them there): they check
that the scripts work on this checkout, write their JSON and Markdown, and say what they
measured. Each takes one to two minutes, so they are marked `slow` and `pytest -m "not slow"`
leaves them out. Without MINICNN_DATA they run on random data, so no test downloads; the other
recipes read Fashion-MNIST from ../shared/fashion-mnist when it is there (the benchmark itself
never downloads anything but MNIST) and run CIFAR-10's recipe on random images of its shapes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
DATA = os.environ.get("MINICNN_DATA")
FASHION_DATA = os.environ.get("MINICNN_FASHION_MNIST_DATA") or str(ROOT.parent / "shared" /
                                                                   "fashion-mnist")
HAS_TF = importlib.util.find_spec("tensorflow") is not None
SUBPROCESS_TIMEOUT = 900  # seconds; generous, the machine is shared


def run_quick(script: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    data = [] if DATA and os.path.isdir(DATA) else ["--random-data"]
    env = {**os.environ, "MPLBACKEND": "Agg", "MINICNN_CIFAR10_DATA": str(out / "no-cifar10")}
    if os.path.isdir(FASHION_DATA):
        env["MINICNN_FASHION_MNIST_DATA"] = FASHION_DATA
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out), *data, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def read_results(out: Path, kind: str) -> tuple[dict, str]:
    """The one JSON result of `kind` in `out`, and its Markdown, which -latest.md repeats."""
    (json_path,) = out.glob(f"{kind}-*.json")
    markdown = json_path.with_suffix(".md").read_text()
    assert (out / f"{kind}-latest.md").read_text() == markdown
    data = json.loads(json_path.read_text())
    for key in ("cpu_model", "cores", "ram_gb", "os", "python", "versions", "blas", "date"):
        assert key in data["machine"], key
    assert {"load_before", "load_after"} <= set(data["load"])
    assert data["machine"]["versions"]["numpy"] and data["machine"]["versions"]["numba"]
    assert "- CPU: " in markdown and "- Machine load: " in markdown
    return data, markdown


@pytest.mark.slow
def test_bench_kernels_quick(tmp_path):
    proc = run_quick("bench_kernels.py", tmp_path)
    data, markdown = read_results(tmp_path, "kernels")
    frameworks = ["minicnn", "tensorflow"] if HAS_TF else ["minicnn"]
    assert set(frameworks) <= set(data["frameworks"])
    rows = {(r["layer"], r["pass"]): r for r in data["rows"]}
    for layer in ("conv1", "conv2", "conv3"):
        for p in ("fwd", "bwd", "bwd_w", "bwd_x"):
            assert (layer, p) in rows
    for key in [("pool1", "fwd"), ("pool2", "bwd"), ("dense1", "fwd"), ("dense2_ce", "bwd"),
                ("adam", "step"), ("train", "step")]:
        for fw in frameworks:
            assert rows[key][fw]["median"] > 0, (key, fw)
    if HAS_TF:
        assert rows[("conv2", "fwd")]["ratio_minicnn_tf"] > 0
    assert "| layer | pass | MFLOP |" in markdown
    assert "## One training step" in markdown
    assert "| layer | pass | MFLOP |" in proc.stdout


@pytest.mark.slow
def test_bench_train_quick(tmp_path):
    proc = run_quick("bench_train.py", tmp_path, "--frameworks", "minicnn,tensorflow")
    data, markdown = read_results(tmp_path, "train")
    frameworks = ["minicnn", "tensorflow"] if HAS_TF else ["minicnn"]
    assert set(data["epochs"]) == set(frameworks)
    for fw in frameworks:
        epochs = data["epochs"][fw]
        assert len(epochs["epoch_seconds"]) == 3  # the warm-start epoch and 2 timed ones
        assert epochs["epoch_s"]["median"] > 0 and epochs["peak_rss_mb"] > 0
        assert data["steps"][fw]["median"] > 0
        assert data["inference"][fw]["predict@32"]["images_per_s"] > 0
        assert data["inference"][fw]["evaluate@32"]["accuracy"] >= 0
        assert fw in data["cold_start"], proc.stderr[-4000:]  # a failed probe says why there
        assert data["cold_start"][fw]["cold"]["first_step_s"] > 0
        for threads in ("default", "one_thread"):
            assert set(data["scaling"][threads][fw]) == {"32", "128"}
    # No thread variable is set for the default workers; the 1-thread minicnn worker gets one.
    threads = data["setup"]
    assert threads["default"]["minicnn"]["threads"]["OPENBLAS_NUM_THREADS"] == os.environ.get(
        "OPENBLAS_NUM_THREADS", "(default)")
    assert threads["one_thread"]["minicnn"]["threads"]["OPENBLAS_NUM_THREADS"] == "1"
    assert threads["one_thread"]["minicnn"]["threads"]["MINICNN_NUM_THREADS"] == 1
    if HAS_TF:
        assert threads["one_thread"]["tensorflow"]["threads"]["intra_op"] == 1
    assert "| framework | epoch time (median) |" in markdown
    assert "## Scaling: step time by batch size and threads" in markdown
    if HAS_TF:
        assert "minicnn/TF epoch ratio (target <= 0.80" in markdown
    assert "| framework | epoch time (median) |" in proc.stdout
    # The other recipes: a training step each, at the recipe's batch size, against TensorFlow.
    assert list(data["recipes"]) == ["fashion_mnist_cnn", "cifar10_cnn"]
    for name, batch_size in (("fashion_mnist_cnn", 128), ("cifar10_cnn", 32)):
        recipe = data["recipes"][name]
        assert recipe["batch_size"] == batch_size
        assert set(recipe["steps"]) == set(frameworks)
        assert all(step["median"] > 0 and step["n"] == 6 for step in recipe["steps"].values())
        setups = recipe["setup"]
        if HAS_TF:  # the same model in both: layer classes and weight shapes
            assert setups["minicnn"]["architecture"] == setups["tensorflow"]["architecture"]
            assert recipe["ratio_minicnn_tf"] > 0
            assert f"| {name}: training step, batch {batch_size} (issue 11: <= 1.5x TF) |" \
                in markdown
        assert f"{name} step (batch {batch_size})" in markdown  # a column of the headline
    assert data["recipes"]["cifar10_cnn"]["data"] == "random, CIFAR-10's shapes"
    classes = [layer for layer, _ in data["recipes"]["fashion_mnist_cnn"]["setup"]["minicnn"][
        "architecture"]]
    assert classes.count("BatchNormalization") == 2 and classes.count("Dropout") == 3
    assert "## The other recipes: one training step" in markdown


def test_bench_train_refuses_unknown_models():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_train", BENCHMARKS / "bench_train.py")
        bench_train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_train)
        args = bench_train.parse_args(["--models", "cifar10_cnn"])
        assert args.models == ["cifar10_cnn"] and args.notebook_batch_size == 128
        with pytest.raises(SystemExit):
            bench_train.parse_args(["--models", "resnet50"])
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_flop_counts_match_the_issue():
    """2.10 GFLOP per training step at batch 128 (every forward, every weight gradient, the input
    gradient of every layer but the first), 82% of it in conv2."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_kernels",
                                                      BENCHMARKS / "bench_kernels.py")
        bench_kernels = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_kernels)
    finally:
        sys.path.remove(str(BENCHMARKS))
    flops = bench_kernels.layer_flops(128)
    assert flops["conv2"] == 2 * 128 * 11 * 11 * 64 * 3 * 3 * 32
    step = 3 * sum(flops.values()) - flops["conv1"]
    # The issue's figures as it prints them, to 3 and 2 digits: no tolerance beyond that rounding.
    assert round(step / 1e9, 2) == 2.10
    assert round(3 * flops["conv2"] / step, 2) == 0.82
