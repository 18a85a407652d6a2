"""The first run on a fresh machine: kernels compile in the background (minicnn/models/warmup.py).

The end-to-end test runs in a fresh process with an empty numba cache (NUMBA_CACHE_DIR), as a
fresh install is; the others drive the module's decisions in this process with a fake
"compiler" process.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from minicnn import layers
from minicnn.models import recipes, warm_process, warmup
from minicnn.models.sequential import Sequential

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FRESH_MACHINE = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    from minicnn.models import warmup
    from minicnn.models import recipes

    missing_at_start = len(warmup.missing_kernels())
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
    model = recipes.mnist_cnn(seed=1)
    twin = recipes.mnist_cnn(seed=1)
    model.fit(x, y, batch_size=32, epochs=1, verbose=2, shuffle=False)  # prints the one line
    first_steps = time.perf_counter() - t0
    modes = []
    for _ in range(3):
        modes.append(model._fast_now())
        model.train_on_batch(x, y)
    waited = time.perf_counter()
    while not warmup.ready(model) and time.perf_counter() - waited < 600:
        time.sleep(0.1)
    for _ in range(3):
        modes.append(model._fast_now())
        model.train_on_batch(x, y)
    steps = len(modes)
    # The same steps in one tier from the start: switching tiers mid-run changes nothing but
    # float rounding (the optimizer's state belongs to the weights, not to a plan).
    twin.compile(optimizer="adam", loss="categorical_crossentropy", fast=False)
    twin.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    for _ in range(steps):
        twin.train_on_batch(x, y)
    gap = max(float(np.max(np.abs(a - b))) for a, b in
              zip(model.get_weights(), twin.get_weights()))
    warmup._background.process.wait(600)
    print("RESULT " + json.dumps({
        "missing_at_start": missing_at_start, "first_steps_s": first_steps,
        "modes": modes, "steps": steps, "gap": gap,
        "iterations": int(model.optimizer.iterations),
        "exit": warmup._background.process.returncode,
        "missing_after": warmup.missing_kernels()}))
""")


@pytest.mark.slow
def test_a_fresh_machine_trains_at_once_and_switches_to_the_fast_plan(tmp_path):
    """Empty numba cache: the first fit trains on the reference layers while the background
    process compiles, says so in one line, switches to the fast plan when the model is warm, and
    leaves every kernel in the cache (the zoo covers them all)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": ROOT}
    env.pop("MINICNN_COMPILE")  # the default: background
    run = subprocess.run([sys.executable, "-c", FRESH_MACHINE], env=env, capture_output=True,
                         text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert result["missing_at_start"] > 10
    assert result["modes"] == [False] * 3 + [True] * 3, result
    assert result["exit"] == 0
    assert result["missing_after"] == []
    assert result["gap"] < 1e-5, result
    assert result["iterations"] == 2 + result["steps"]  # the optimizer went on across the switch
    lines = [line for line in run.stdout.splitlines() if "compiling" in line]
    assert len(lines) == 1 and "in the background" in lines[0], run.stdout
    again = subprocess.run([sys.executable, "-m", "minicnn", "warmup"], env=env,
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and "already in numba's cache" in again.stdout, again


def test_the_warmup_command_says_when_the_cache_does_not_keep_them(monkeypatch, capsys):
    from minicnn.cli import main

    monkeypatch.setattr(warmup, "missing_kernels", lambda: ["_im2col", "_col2im"])
    monkeypatch.setattr(warm_process, "warm_all", lambda progress=None: 1.0)
    assert main(["warmup"]) != 0
    captured = capsys.readouterr()
    assert "compiling 2 numba kernels" in captured.out
    assert "still not in numba's cache after compiling (_im2col, _col2im)" in captured.err


@pytest.fixture
def background(monkeypatch):
    """The background mode with an incomplete cache, this module's state reset around it."""
    monkeypatch.setenv("MINICNN_COMPILE", "background")
    monkeypatch.setattr(warmup, "missing_kernels", lambda: ["_conv_relu_maxpool"])
    monkeypatch.setattr(warmup, "_complete", False)
    monkeypatch.setattr(warmup, "_background", None)
    monkeypatch.setattr(warmup, "_warm", type(warmup._warm)())
    monkeypatch.setattr(warmup, "_foreground_announced", False)
    yield monkeypatch
    if warmup._background is not None:
        warmup._background.stop()


def _until_ready(model, timeout=60.0) -> int:
    start, calls = time.monotonic(), 0
    while not warmup.ready(model):
        calls += 1
        assert time.monotonic() - start < timeout, "never ready"
        time.sleep(0.01)
    return calls


def _fake_compiler(background, tmp_path, code: str) -> None:
    """Make the background process a script of ours (its argv: -m minicnn.models.warmup DIR)."""
    script = tmp_path / "fake.py"
    script.write_text("import sys, pathlib\nfolder = pathlib.Path(sys.argv[-1])\n" + code)
    real_popen = subprocess.Popen

    def popen(argv, **kwargs):
        return real_popen([sys.executable, str(script), argv[-1]], **kwargs)

    background.setattr(warmup.subprocess, "Popen", popen)


def test_the_model_goes_fast_when_the_background_process_has_warmed_it(background, tmp_path):
    _fake_compiler(background, tmp_path, textwrap.dedent("""
        import time
        assert (folder / "model.json").exists()
        time.sleep(0.5)
        (folder / "model.done").touch()
        time.sleep(60)
    """))
    model = recipes.mnist_cnn(seed=0)
    assert not model._fast_now()
    assert _until_ready(model) > 0
    assert model._fast_now()
    other = recipes.mnist_cnn(seed=0)  # not the model it warmed: it waits for the whole set
    assert not warmup.ready(other)


def test_a_failed_background_compile_warns_and_compiles_here(background, tmp_path):
    _fake_compiler(background, tmp_path, "print('numba exploded'); sys.exit(3)\n")
    model = recipes.mnist_cnn(seed=0)
    with pytest.warns(RuntimeWarning, match=r"(?s)exit code 3.*numba exploded"):
        _until_ready(model)
    assert warmup.ready(recipes.mnist_cnn(seed=0))  # every model from now on


def test_a_model_the_background_cannot_rebuild_waits_for_every_kernel(background, tmp_path):
    class Halve(layers.Layer):
        def forward(self, x, training=False):
            return x / 2

        def backward(self, dout):
            return dout / 2

    _fake_compiler(background, tmp_path, "import time; time.sleep(0.5)\n")
    model = Sequential([layers.Conv2D(2, 3, input_shape=(6, 6, 1)), Halve()])
    _until_ready(model)
    assert warmup._background.process.returncode == 0
    assert not (warmup._background.dir / "model.done").exists()


def test_fit_says_so_in_one_line_and_only_while_compiling(background, tmp_path, capsys):
    _fake_compiler(background, tmp_path, "import time; time.sleep(60)\n")
    x = np.zeros((8, 28, 28, 1), np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(8) % 10]
    model = recipes.mnist_cnn(seed=0)
    model.fit(x, y, epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert out.count("compiling its numba kernels") == 1, out
    model.fit(x, y, epochs=1, verbose=0)
    assert "compiling" not in capsys.readouterr().out
    background.setattr(warmup, "_complete", True)
    model.fit(x, y, epochs=1, verbose=2)
    assert "compiling" not in capsys.readouterr().out


def test_fit_in_the_foreground_mode_says_so_once_when_kernels_are_missing(background, capsys):
    background.setenv("MINICNN_COMPILE", "foreground")
    x = np.zeros((8, 28, 28, 1), np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(8) % 10]
    model = recipes.mnist_cnn(seed=0)
    model.fit(x, y, epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert out.count("compiling its numba kernels for this CPU (once") == 1, out
    model.fit(x, y, epochs=1, verbose=2)  # compiled here by the first fit: nothing to say
    assert "compiling" not in capsys.readouterr().out
    assert warmup._background is None


def test_foreground_and_a_complete_cache_never_start_a_process(background, monkeypatch):
    model = recipes.mnist_cnn(seed=0)
    monkeypatch.setenv("MINICNN_COMPILE", "foreground")
    assert warmup.ready(model) and warmup._background is None
    monkeypatch.setenv("MINICNN_COMPILE", "background")
    monkeypatch.setattr(warmup, "missing_kernels", lambda: [])
    assert warmup.ready(model) and warmup._background is None


def test_an_unknown_mode_is_a_warning_naming_the_choices(monkeypatch):
    monkeypatch.setenv("MINICNN_COMPILE", "later")
    with pytest.warns(UserWarning, match="MINICNN_COMPILE='later'.*background, foreground"):
        assert warmup.mode() == "background"


def test_every_kernel_is_found_and_each_is_cached_or_missing():
    kernels = warmup.kernels()
    names = {k.py_func.__qualname__ for k in kernels}
    assert {"_im2col", "_conv_relu_maxpool", "_winograd_input_transform",
            "_bn_normalize"} <= names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(warmup.missing_kernels()) <= names


def test_each_stand_in_computes_what_its_kernel_computes():
    """The NumPy references standing in for the reference layers' kernels while the background
    compiles (minicnn/kernels/_stand_in.py) write what the kernels write."""
    from minicnn import kernels

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 6, 4)).astype(np.float32)
    geometry = (3, 2, 2, 1, 1, 0, 4, 3)  # KH, KW, SH, SW, PT, PL, H_out, W_out
    cases = [(kernels.im2col, lambda: (x, *geometry, np.empty((36, 24), np.float32))),
             (kernels.col2im, lambda: (rng.standard_normal((36, 24)).astype(np.float32),
                                       *geometry, np.empty_like(x))),
             (kernels.maxpool_forward, lambda: (x, 2, 3, 2, 1, 0, 1, np.empty((3, 3, 4, 4),
                                                np.float32), np.empty((3, 3, 4, 4), np.int32)))]
    for kernel, make in cases:
        args = make()
        theirs = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        kernel.dispatcher(*args)
        kernel.stand_in(*theirs)
        for a, b in zip(args, theirs, strict=True):
            if isinstance(a, np.ndarray):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    out, argmax = np.empty((3, 3, 4, 4), np.float32), np.empty((3, 3, 4, 4), np.int32)
    kernels.maxpool_forward(x, 2, 3, 2, 1, 0, 1, out, argmax)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dx_np = np.empty_like(x), np.empty_like(x)
    kernels.maxpool_backward.dispatcher(dout, argmax, dx)
    kernels.maxpool_backward.stand_in(dout, argmax, dx_np)
    np.testing.assert_allclose(dx, dx_np, rtol=1e-6, atol=1e-6)
    w, g, m, v = (rng.random(50).astype(np.float32) for _ in range(4))
    ours = [a.copy() for a in (w, g, m, v)]
    step = kernels.adam_update.dispatcher(w, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
    step_np = kernels.adam_update.stand_in(*ours, 1e-3, 0.9, 0.999, 1e-7)
    for a, b in zip((w, m, v), (ours[0], ours[2], ours[3]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert step_np == pytest.approx(step, rel=1e-4)


def test_a_kernel_not_compiled_here_runs_its_stand_in_only_while_compiling(monkeypatch):
    from numba import njit

    from minicnn.kernels import _stand_in

    def _twice(a, out):
        for k in range(a.shape[0]):
            out[k] = 2 * a[k]

    def stand_in(a, out):
        out[:] = -1.0  # not what the kernel computes: which one ran shows

    kernel = _stand_in.Kernel(njit(_twice), stand_in)
    a, out = np.arange(3.0), np.zeros(3)
    monkeypatch.setattr(_stand_in, "active", True)
    kernel(a, out)
    assert out.tolist() == [-1.0, -1.0, -1.0] and not kernel.signatures
    monkeypatch.setattr(_stand_in, "active", False)
    kernel(a, out)
    assert out.tolist() == [0.0, 2.0, 4.0] and kernel.signatures
    monkeypatch.setattr(_stand_in, "active", True)  # compiled here now: itself from now on
    out[:] = 0
    kernel(a, out)
    assert out.tolist() == [0.0, 2.0, 4.0]


def test_a_background_process_that_cannot_start_is_a_warning_and_compiles_here(background):
    def popen(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    background.setattr(warmup.subprocess, "Popen", popen)
    with pytest.warns(RuntimeWarning, match="could not start its background compile"):
        assert warmup.ready(recipes.mnist_cnn(seed=0))
    assert warmup.ready(recipes.mnist_cnn(seed=0))  # once
