"""minicnn's thread pool: every task runs once, errors surface, chunks cover the batch, and BLAS
gets its threads back after fit."""

import itertools
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

from minicnn.fast import parallel
from minicnn.models import mnist_cnn
from minicnn.utils import to_categorical


@given(n=st.integers(0, 300), threads=st.integers(1, 8))
def test_chunks_cover_the_range_in_order_whatever_the_thread_count(n, threads):
    before = parallel.get_num_threads()
    try:
        parallel.set_num_threads(threads)
        pieces = parallel.chunks(n)
    finally:
        parallel.set_num_threads(before)
    assert pieces == parallel.chunks(n)  # the cut depends on n only
    assert pieces[0][0] == 0 and pieces[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert len(pieces) == max(1, min(parallel.CHUNKS, n))


def test_every_task_runs_once_and_errors_surface():
    seen = []
    lock = threading.Lock()

    def task(k):
        with lock:
            seen.append(k)

    parallel.run([lambda k=k: task(k) for k in range(50)])
    assert sorted(seen) == list(range(50))

    def boom():
        raise ValueError("a task failed")

    with pytest.raises(ValueError, match="a task failed"):
        parallel.run([boom, lambda: None, lambda: None])


def test_fit_gives_blas_its_threads_back():
    def blas_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas"}

    before = blas_threads()
    model = mnist_cnn(seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    model.fit(x, to_categorical(rng.integers(0, 10, 16), 10), epochs=1, verbose=0)
    model.predict(x)
    after = blas_threads()
    # (numba may load scipy's own OpenBLAS on its first call; only numpy's is minicnn's)
    assert {path: after[path] for path in before} == before


def test_a_task_that_runs_tasks_runs_them_itself_in_order():
    # predict runs whole batches as tasks, and their steps call run() in turn: the inner tasks
    # must run on the outer task's thread, in order, never waiting on the pool (whose threads
    # are the ones running the outer tasks: waiting on them could wait forever).
    before = parallel.get_num_threads()
    parallel.set_num_threads(2)
    seen: dict[int, list] = {k: [] for k in range(6)}

    def outer(k):
        thread = threading.get_ident()
        parallel.run([lambda j=j: seen[k].append((j, threading.get_ident() == thread))
                      for j in range(5)])

    try:
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (parallel.run([lambda k=k: outer(k) for k in range(6)]), done.set()))
        worker.start()
        worker.join(timeout=60)
        assert done.is_set(), "nested run() did not finish"
    finally:
        parallel.set_num_threads(before)
    assert seen == {k: [(j, True) for j in range(5)] for k in range(6)}
    parallel.run([lambda: seen[0].append("after")])  # the calling thread is not left marked
    assert seen[0][-1] == "after"
