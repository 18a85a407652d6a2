"""Training beyond one process, on Ray: data-parallel fit and hyperparameter sweeps.

    model.fit(x, y, distribute=DataParallel(workers=2))   # same weights as model.fit(x, y)
    sweep(x, y, {"learning_rate": [1e-3, 3e-4], "seed": [0, 1]}, out_dir="sweep")

Ray is imported inside the functions that use it: importing this package (or minicnn) never
imports Ray. See docs/distributed.md.
"""

from minicnn.distributed.data_parallel import DataParallel
from minicnn.distributed.sweep import SweepInterrupted, SweepResult, sweep

__all__ = ["DataParallel", "SweepInterrupted", "SweepResult", "sweep"]
