"""Threads: concurrent inference is safe, training is one call at a time, BLAS gets its threads
back whatever happens, and the number of threads never changes a result."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import minicnn
from minicnn.fast import parallel
from minicnn.layers import Layer
from minicnn.models import mnist_cnn
from minicnn.utils import to_categorical


def blas_threads() -> dict[str, int]:
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"}


def run_in_threads(targets) -> list:
    """Run each callable on its own thread, all released at once; their results in order."""
    results: list = [None] * len(targets)
    errors: list = []
    start = threading.Barrier(len(targets))

    def body(k, target):
        start.wait()
        try:
            results[k] = target()
        except Exception as e:  # re-raised in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(k, t)) for k, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_threads_predicting_at_once_get_the_serial_results_bit_for_bit(fast):
    model = mnist_cnn(seed=0)
    model.compile("adam", "categorical_crossentropy", fast=fast)
    rng = np.random.default_rng(0)
    inputs = [rng.random((40 + 7 * k, 28, 28, 1), dtype=np.float32) for k in range(4)]
    serial = [model.predict(x, batch_size=16) for x in inputs]
    for _ in range(3):
        together = run_in_threads([lambda x=x: model.predict(x, batch_size=16) for x in inputs])
        for got, want in zip(together, serial, strict=True):
            np.testing.assert_array_equal(got, want)


def test_threads_evaluating_at_once_get_the_serial_results():
    model = mnist_cnn(seed=0)
    rng = np.random.default_rng(1)
    data = [(rng.random((30, 28, 28, 1), dtype=np.float32),
             to_categorical(rng.integers(0, 10, 30), 10)) for _ in range(3)]
    serial = [model.evaluate(x, y, verbose=0) for x, y in data]
    together = run_in_threads([lambda x=x, y=y: model.evaluate(x, y, verbose=0)
                               for x, y in data] + [lambda: model(data[0][0])])
    assert together[:3] == serial


class Gate(Layer):
    """Passes x through; in training, waits at `entered`/`release` so a test can act meanwhile."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.entered, self.release = threading.Event(), threading.Event()

    def forward(self, x, training=False):
        self.cache = x.shape
        if training:
            self.entered.set()
            self.release.wait(timeout=30)
        return x

    def backward(self, dout):
        return dout


def test_a_second_training_call_is_refused_before_it_touches_anything():
    from minicnn.layers import Dense, Flatten
    from minicnn.models import Sequential

    gate = Gate()
    model = Sequential([Flatten(input_shape=(4, 4, 1)), gate, Dense(3, activation="softmax")],
                       seed=0)
    model.compile("adam", "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 4, 4, 1), dtype=np.float32), to_categorical(rng.integers(0, 3, 8), 3)
    before_blas = blas_threads()
    worker = threading.Thread(target=lambda: model.fit(x, y, epochs=1, verbose=0))
    worker.start()
    try:
        assert gate.entered.wait(timeout=30)
        weights, epochs = model.get_weights(), model.epochs_trained
        for call in (lambda: model.fit(x, y, verbose=0), lambda: model.train_on_batch(x, y),
                     lambda: model.backward_summary(x, y, print_fn=False)):
            with pytest.raises(RuntimeError, match="another training call"):
                call()
        assert model.predict(x).shape == (8, 3)  # inference still works meanwhile
        for a, b in zip(weights, model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert model.epochs_trained == epochs
    finally:
        gate.release.set()
        worker.join()
    assert blas_threads() == before_blas
    model.fit(x, y, epochs=1, verbose=0)  # and once it is done, training goes on


def test_blas_threads_come_back_after_concurrent_calls_and_after_an_error():
    before = blas_threads()
    model = mnist_cnn(seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((24, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 24), 10)

    def fit_then_fail():
        model.fit(x, y, batch_size=8, verbose=0)
        with pytest.raises(ValueError):
            model.fit(x, y[:3], verbose=0)

    run_in_threads([fit_then_fail] + [lambda: model.predict(x, batch_size=8)] * 3)
    assert blas_threads() == before


def test_one_thread_and_two_give_the_same_weights_bit_for_bit():
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 64), 10)
    weights = {}
    before = minicnn.get_num_threads()
    try:
        for n in (1, 2, 3):
            minicnn.set_num_threads(n)
            assert minicnn.get_num_threads() == n
            model = mnist_cnn(seed=0)
            model.fit(x, y, batch_size=32, epochs=2, verbose=0)  # 4 steps
            weights[n] = model.get_weights()
    finally:
        minicnn.set_num_threads(before)
    for n in (2, 3):
        for a, b in zip(weights[1], weights[n], strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_thread_knob_refuses_nonsense(monkeypatch):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="Invalid value for argument `n`"):
            minicnn.set_num_threads(bad)
    default = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    monkeypatch.setenv("MINICNN_NUM_THREADS", "many")  # named in a warning, then ignored
    with pytest.warns(UserWarning, match="MINICNN_NUM_THREADS.*'many'"):
        assert parallel._default_threads() == (default or parallel._default_threads())
    monkeypatch.setenv("MINICNN_NUM_THREADS", "")  # empty: unset, as OMP_NUM_THREADS
    assert parallel._default_threads() >= 1
    monkeypatch.setenv("MINICNN_NUM_THREADS", "3")
    assert parallel._default_threads() == 3


def test_an_empty_or_bad_thread_variable_does_not_break_import():
    import subprocess
    import sys

    for value in ("", "junk"):
        proc = subprocess.run([sys.executable, "-c", "import minicnn.models; print('ok')"],
                              env={**os.environ, "MINICNN_NUM_THREADS": value},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_predict_runs_small_batches_side_by_side_as_model_calls_would():
    # Batches of up to SIDE_BY_SIDE_MAX_BATCH rows run whole, one per thread at once: each
    # batch's outputs are what the model gives that batch alone (to float rounding: the
    # steps cut it differently), in its own rows, whatever the thread count, with `steps`.
    from minicnn.models import training

    model = mnist_cnn(seed=0)
    x = np.random.default_rng(3).random((203, 28, 28, 1), dtype=np.float32)
    want = np.concatenate([np.asarray(model.predict_on_batch(x[a:a + 16]))
                           for a in range(0, 203, 16)])
    before = parallel.get_num_threads()
    try:
        got = {}
        for n in (1, 2, 3):
            minicnn.set_num_threads(n)
            got[n] = model.predict(x, batch_size=16, verbose=0)
    finally:
        minicnn.set_num_threads(before)
    assert 16 <= training.SIDE_BY_SIDE_MAX_BATCH
    np.testing.assert_allclose(got[2], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got[1], got[2])
    np.testing.assert_array_equal(got[3], got[2])
    np.testing.assert_array_equal(model.predict(x, batch_size=16, steps=5, verbose=0),
                                  got[2][:80])


def test_predict_with_callbacks_tells_them_batch_by_batch():
    events = []

    class Listen(minicnn.callbacks.Callback):
        def on_predict_batch_begin(self, batch, logs=None):
            events.append(("begin", batch))

        def on_predict_batch_end(self, batch, logs=None):
            events.append(("end", batch))

    model = mnist_cnn(seed=0)
    x = np.random.default_rng(4).random((50, 28, 28, 1), dtype=np.float32)
    got = model.predict(x, batch_size=8, verbose=0, callbacks=[Listen()])
    assert events == [(kind, k) for k in range(7) for kind in ("begin", "end")]
    np.testing.assert_allclose(got, model.predict(x, batch_size=8, verbose=0),
                               rtol=1e-5, atol=1e-7)


def test_evaluate_runs_small_batches_side_by_side_with_metrics_in_batch_order():
    # The batches' losses and outputs come from the threads; the metrics take them in batch
    # order: the same numbers as one batch at a time (to float rounding: the steps cut a batch
    # differently), bit for bit on any number of threads, sample weights included.
    model = mnist_cnn(seed=0)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"])
    rng = np.random.default_rng(5)
    x = rng.random((203, 28, 28, 1), dtype=np.float32)
    y = to_categorical(rng.integers(0, 10, 203), 10)
    w = rng.random(203).astype(np.float32)

    class Listen(minicnn.callbacks.Callback):  # a user callback: batch by batch, as before
        pass

    one_by_one = model.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0,
                                callbacks=[Listen()])
    before = parallel.get_num_threads()
    try:
        got = {}
        for n in (1, 2, 3):
            minicnn.set_num_threads(n)
            got[n] = model.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0)
    finally:
        minicnn.set_num_threads(before)
    assert got[1] == got[2] == got[3]
    np.testing.assert_allclose(got[2], one_by_one, rtol=1e-5)
    assert got[2] != model.evaluate(x, y, batch_size=16, verbose=0)  # the weights count
