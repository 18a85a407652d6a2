"""The reference engine's kernels: plain loops over ndarrays and ints, compiled with numba.

Each kernel `foo` is bound at module level as `foo = Kernel(njit(...)(_foo), ...)`, so the un-jitted
twin `_foo` stays importable, and each has a plain NumPy reference `foo_reference` that the tests
compare it with; on a fresh machine that reference stands in for it while numba compiles in the
background (`_stand_in.py`). Kernels know nothing of layers. Debug them with `NUMBA_DISABLE_JIT=1`.

These are the loops a textbook would write (im2col / col2im, max pooling, the Adam update); the
kernels that exist only for speed (a direct convolution, fused conv + ReLU + pool) live with the
fast plan in `minicnn/fast/kernels/`. Their rules, shared by both:
- outputs are preallocated by the caller and passed in (`out=`-style);
- every size and stride is a Python int and every array float32 or float64, so each kernel
  compiles once per dtype (a test checks it);
- they run serially on the calling thread and release the GIL (`nogil`): the fast plan runs
  them on chunks of a batch on its own threads (minicnn/fast/parallel.py).
"""

from minicnn.kernels.adam import adam_update, adam_update_reference
from minicnn.kernels.conv import col2im, col2im_reference, im2col, im2col_reference
from minicnn.kernels.pool import (
    maxpool_backward,
    maxpool_backward_reference,
    maxpool_forward,
    maxpool_forward_reference,
)

ALL_KERNELS = (im2col, col2im, maxpool_forward, maxpool_backward, adam_update)

__all__ = [
    "ALL_KERNELS",
    "adam_update",
    "adam_update_reference",
    "col2im",
    "col2im_reference",
    "im2col",
    "im2col_reference",
    "maxpool_backward",
    "maxpool_backward_reference",
    "maxpool_forward",
    "maxpool_forward_reference",
]
