"""One pool of threads for all of minicnn's parallel work, with BLAS kept single-threaded.

Why not numba's prange and OpenBLAS's own threads? Two pools on two cores fight: the threads of
one spin while the other's run, and a GEMM that splits its work in fixed halves waits a whole
scheduler tick (4 ms) whenever one half's thread is descheduled, which on a shared machine is
often (measured: conv2's forward GEMM took 2.4 ms at best but 8 ms at the median under load,
and 2.2 s steps once the pools fought). So minicnn splits a batch into a few chunks itself, runs
each chunk's numba kernels (compiled nogil) and single-threaded GEMMs to the end on whichever
thread is free, and sums the chunks' partial weight gradients in a fixed order, so results do
not depend on which thread ran what. A busy core then slows a step in proportion instead of
stalling it, and on a quiet machine both cores work (conv1 + pool1 forward: 2.55 ms on one
thread, 1.36 ms on two).

The model makes BLAS single-threaded (through threadpoolctl) only while it runs fit, evaluate
or predict, and puts it back after; outside those, the chunks still run, each with whatever
threads BLAS was given.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

THREADS = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1, 8))
# More chunks than threads, so a thread that loses its core leaves chunks to the others.
CHUNKS_PER_THREAD = 2
MAX_CHUNKS = 16  # the most chunks() ever makes (THREADS is capped at 8)

_pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="minicnn") if THREADS > 1 else None
_blas = None


def chunks(n: int, min_size: int = 1) -> list[tuple[int, int]]:
    """Split range(n) into up to THREADS * CHUNKS_PER_THREAD contiguous (start, stop) pieces of
    at least `min_size` (one piece when n is small)."""
    parts = max(1, min(THREADS * CHUNKS_PER_THREAD, n // max(min_size, 1)))
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


def run(tasks: list[Callable[[], None]]) -> None:
    """Run every task, on the calling thread and the pool's, each task once; re-raise the first
    exception. Tasks must not call run() themselves."""
    if _pool is None or len(tasks) < 2:
        for task in tasks:
            task()
        return
    pending = iter(tasks)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                task = next(pending, None)
            if task is None:
                return
            task()

    helpers = [_pool.submit(work) for _ in range(min(THREADS - 1, len(tasks) - 1))]
    try:
        work()
    finally:
        for helper in helpers:
            helper.result()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (minicnn splits the work itself)."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        yield
