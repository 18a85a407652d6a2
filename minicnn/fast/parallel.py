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

Where a batch is cut is public (docs/distributed.md, "The contract with the fast tier"):
`chunks(n)` gives the pieces, and inside `with cut_batches(pieces):` the steps the calling
thread runs cut their batch into `pieces` instead. The cut is per thread (a threading.local):
a step asks `chunks` on its own thread before it hands the pieces to the pool, so the pool's
threads need not see it, and another thread's steps keep their own cut. A data-parallel worker
uses it to cut its rows of a batch where `chunks` cuts the whole batch, and then hands over
each piece's partial weight gradients (`step.partials()`) for the driver to add in order.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import threadpoolctl

# The batch is cut into this many chunks (fewer for a smaller batch), whatever the number of
# threads: the chunks' partial weight gradients are added in chunk order, so a seed gives the
# same weights bit for bit on 1, 2 or 8 cores. 8 keeps every thread of an 8-core machine busy
# and leaves chunks over for a thread that loses its core on a 2-core one.
CHUNKS = 8
MAX_THREADS = 64


def _default_threads() -> int:
    """$MINICNN_NUM_THREADS if set, else the cores this process may run on. An empty value
    counts as unset (as for OMP_NUM_THREADS); a bad one is named in a warning and ignored, as
    PyTorch does with OMP_NUM_THREADS, rather than making every import of minicnn fail."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    default = max(1, min(cores or 1, MAX_THREADS))
    text = os.environ.get("MINICNN_NUM_THREADS", "").strip()
    if not text:
        return default
    try:
        return _check_threads(int(text), "MINICNN_NUM_THREADS")
    except ValueError:
        warnings.warn(f"Invalid value for environment variable MINICNN_NUM_THREADS. Expected a "
                      f"positive integer up to {MAX_THREADS}. Received {text!r}; using "
                      f"{default} threads (the cores this process may run on).", stacklevel=2)
        return default


def check_threads(n, argument: str) -> int:
    """n, if it is a thread count minicnn accepts; else a ValueError naming `argument`."""
    return _check_threads(n, argument)


def _check_threads(n, argument: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"Invalid value for argument `{argument}`. Expected an integer in "
                         f"[1, {MAX_THREADS}]. Received {argument}={n!r}")
    return n


_threads = _default_threads()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def set_num_threads(n: int) -> None:
    """Run minicnn's passes on `n` threads (as torch.set_num_threads); results do not change."""
    global _threads, _pool
    n = _check_threads(n, "n")
    with _pool_lock:
        if n != _threads and _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None
        _threads = n


def get_num_threads() -> int:
    """The number of threads minicnn's passes run on."""
    return _threads


def _helpers() -> tuple[ThreadPoolExecutor | None, int]:
    global _pool
    with _pool_lock:
        if _pool is None and _threads > 1:
            _pool = ThreadPoolExecutor(_threads - 1, thread_name_prefix="minicnn")
        return _pool, _threads


def chunks(n: int) -> list[tuple[int, int]]:
    """Split range(n) into min(CHUNKS, n) contiguous (start, stop) pieces (at least one): the
    same pieces on any machine; inside `cut_batches(pieces)`, those pieces."""
    pieces = getattr(_cut, "pieces", None)
    if pieces is not None:
        if n != pieces[-1][1]:
            raise RuntimeError(f"a step of {n} rows ran inside cut_batches({pieces})")
        return list(pieces)
    parts = max(1, min(CHUNKS, n))
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


_cut = threading.local()


@contextlib.contextmanager
def cut_batches(pieces: list[tuple[int, int]]) -> Iterator[None]:
    """Inside the block, the steps this thread runs cut their batch into `pieces` (contiguous
    (start, stop) pairs from 0) instead of `chunks(n)`.

    This is how a data-parallel worker holding rows a:b of a batch of N cuts them where
    `chunks(N)` cuts the whole batch, so that the partial weight gradients it hands over
    (`step.partials()`) are the very ones the local step adds up. Steps call `chunks` on the
    thread that runs them, so the cut applies to them and to no other thread.
    """
    pieces = [(int(a), int(b)) for a, b in pieces]
    if not pieces or pieces[0][0] != 0 or any(
            a >= b or (k and a != pieces[k - 1][1]) for k, (a, b) in enumerate(pieces)):
        raise ValueError(f"Invalid value for argument `pieces`. Expected contiguous, non-empty "
                         f"(start, stop) pairs from 0. Received pieces={pieces}")
    previous = getattr(_cut, "pieces", None)
    _cut.pieces = pieces
    try:
        yield
    finally:
        _cut.pieces = previous


def run(tasks: list[Callable[[], None]]) -> None:
    """Run every task, on the calling thread and the pool's, each task once; re-raise the first
    exception. Safe to call from several threads at once: each call works on its own tasks too,
    so it never waits on another call's. A task that calls run() runs those tasks itself, in
    order: the threads are already busy with the outer tasks (predict runs whole batches as
    tasks, and their steps call run()), and a pool thread waiting on the pool could wait on
    itself."""
    pool, threads = _helpers()
    if pool is None or len(tasks) < 2 or getattr(_cut, "in_task", False):
        for task in tasks:
            task()
        return
    pending = iter(tasks)
    lock = threading.Lock()

    def work() -> None:
        outer = getattr(_cut, "in_task", False)
        _cut.in_task = True
        try:
            while True:
                with lock:
                    task = next(pending, None)
                if task is None:
                    return
                task()
        finally:
            _cut.in_task = outer

    helpers = [pool.submit(work) for _ in range(min(threads - 1, len(tasks) - 1))]
    try:
        work()
    finally:
        for helper in helpers:
            helper.result()


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None
_blas_controller = None  # made once: making one scans the process's libraries (~2 ms)


def _take_blas_control() -> None:
    """Let this thread set OpenBLAS's (process-wide) thread count. threadpoolctl 3.8 lets only
    the thread that first set a limit change it again and silently ignores the others, so a
    limit set in one thread could never be restored from another."""
    clear = getattr(threadpoolctl.OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (minicnn splits the work itself).

    The limit is process-wide, so it is counted: the first block to enter sets it and the last
    to leave restores what BLAS had before, whichever threads they run on and however they end.
    """
    global _blas_users, _blas_limit, _blas_controller
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controller is None:
                _blas_controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
            _take_blas_control()
            _blas_limit = _blas_controller.limit(limits=1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _take_blas_control()
                _blas_limit.restore_original_limits()
                _take_blas_control()  # and leave it free for anyone's next limit
                _blas_limit = None
