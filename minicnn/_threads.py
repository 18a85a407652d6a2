"""Keep OpenBLAS's and numba's thread pools from fighting over the cores.

numpy's OpenBLAS and numba's parallel kernels each keep a pool of worker threads. Left at their
defaults, the threads of one pool spin (busy-wait) for a long time after a call while the other
pool is trying to run, and on a 2-core machine a training step got 5.5x slower (32.9 s against
6.0 s per epoch). The settings below make idle workers sleep soon instead of spinning. OpenBLAS
reads its variables when the library is loaded, so this module must run before numpy is first
imported; `minicnn/__init__.py` imports it first. Values a user has set are never overridden.
"""

import os

_DEFAULTS = {
    # OpenBLAS workers spin for 2**N cycles before sleeping; 2**14 cycles is a few microseconds.
    "OPENBLAS_THREAD_TIMEOUT": "14",
    # OpenMP (numba's "omp" threading layer, OpenBLAS builds on OpenMP): sleep when idle.
    "OMP_WAIT_POLICY": "PASSIVE",
    # numba's own pool sleeps on a condition variable, it never spins.
    "NUMBA_THREADING_LAYER": "workqueue",
}


def configure() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)


configure()
