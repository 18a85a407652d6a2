"""Low-level kernels: plain functions over ndarrays and ints, compiled with numba.

Each kernel `foo` is bound at module level as `foo = njit(...)(_foo)`, so the un-jitted twin `_foo`
stays importable, and each has a plain NumPy reference `foo_reference` that the tests compare it
with. Kernels know nothing of layers. Debug them with `NUMBA_DISABLE_JIT=1`.

Performance rules they follow:
- outputs are preallocated by the caller and passed in (`out=`-style);
- every size and stride is a Python int and every array float32 or float64, so each kernel
  compiles once per dtype (a test checks it);
- they run serially, on the calling thread. These kernels move memory more than they compute,
  and on this 2-core machine a parallel (prange) build was no faster (26.5 against 26.8 ms per
  training step at batch 128), while numba's thread pool fought OpenBLAS's: with OpenBLAS's
  default thread timeout, 2 of 3 runs had steps of 2.2 s instead of 27 ms. Serial kernels leave
  the threads to BLAS, whose GEMMs are where parallelism pays, in any environment and whatever
  the import order, so minicnn sets no environment variables.
"""

from minicnn.kernels.activations import (
    bias_relu,
    bias_relu_reference,
    relu_backward,
    relu_backward_reference,
)
from minicnn.kernels.adam import adam_update, adam_update_reference
from minicnn.kernels.conv import (
    col2im,
    col2im_reference,
    conv_direct,
    conv_direct_reference,
    im2col,
    im2col_reference,
)
from minicnn.kernels.fused import (
    bias_relu_maxpool,
    conv_relu_maxpool,
    conv_relu_maxpool_backward,
    maxpool_relu_backward,
)
from minicnn.kernels.pool import (
    maxpool_backward,
    maxpool_backward_reference,
    maxpool_forward,
    maxpool_forward_reference,
)

ALL_KERNELS = (im2col, col2im, conv_direct, maxpool_forward, maxpool_backward, bias_relu,
               relu_backward, adam_update, bias_relu_maxpool, maxpool_relu_backward,
               conv_relu_maxpool, conv_relu_maxpool_backward)

__all__ = [
    "ALL_KERNELS",
    "adam_update",
    "adam_update_reference",
    "bias_relu",
    "bias_relu_maxpool",
    "bias_relu_reference",
    "col2im",
    "col2im_reference",
    "conv_direct",
    "conv_direct_reference",
    "conv_relu_maxpool",
    "conv_relu_maxpool_backward",
    "im2col",
    "im2col_reference",
    "maxpool_backward",
    "maxpool_backward_reference",
    "maxpool_forward",
    "maxpool_forward_reference",
    "maxpool_relu_backward",
    "relu_backward",
    "relu_backward_reference",
]
