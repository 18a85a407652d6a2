"""The fast plan's kernels: what the reference layers compute, in fewer passes over memory.

The same rules as `minicnn.kernels` (numba `njit(cache=True, nogil=True)` over plain arrays and
ints, outputs passed in, an un-jitted twin `_foo` and a plain NumPy `foo_reference` beside each,
compared by property tests in tests/test_fast_kernels.py), for kernels that exist only for speed:
- `conv_direct`: a convolution without the im2col matrix, for a tiny receptive field;
- `conv_rows`, `conv_rows_backward`: a stride-1 convolution with few channels and filters and
  its gradients, SIMD along the output rows;
- `bias_relu`, `relu_backward`: bias + ReLU and its mask, one pass each;
- `bias_activation`, `activation_finish`, `activation_backward` (`ACTIVATION_KERNELS`): every
  other activation by an integer code, its bias + activation epilogue (`activation_forward`
  puts NumPy's exp, expm1 or tanh between the two passes) and its derivative from y;
- `bias_relu_maxpool`, `maxpool_relu_backward`, `conv_relu_maxpool`,
  `conv_relu_maxpool_backward`: a Conv2D(relu) and the MaxPooling2D after it, as one pass.
"""

from minicnn.fast.kernels.activations import (
    activation_backward,
    activation_backward_reference,
    activation_finish,
    activation_forward,
    bias_activation,
    bias_activation_reference,
    bias_relu,
    bias_relu_reference,
    relu_backward,
    relu_backward_reference,
)
from minicnn.fast.kernels.conv import conv_direct, conv_direct_reference
from minicnn.fast.kernels.conv_along_rows import (
    conv_rows,
    conv_rows_backward,
    conv_rows_backward_reference,
    conv_rows_reference,
)
from minicnn.fast.kernels.conv_pool import (
    bias_relu_maxpool,
    bias_relu_maxpool_reference,
    conv_relu_maxpool,
    conv_relu_maxpool_backward,
    conv_relu_maxpool_backward_reference,
    conv_relu_maxpool_reference,
    maxpool_relu_backward,
    maxpool_relu_backward_reference,
)

ALL_KERNELS = (conv_direct, bias_relu, relu_backward, bias_relu_maxpool, maxpool_relu_backward,
               conv_relu_maxpool, conv_relu_maxpool_backward, conv_rows, conv_rows_backward)
# Tested in tests/test_fast_activations.py (their references: `bias_activation_reference` for
# the pair `activation_forward` runs, `activation_backward_reference`), with their own check
# that float32 training compiles each once.
ACTIVATION_KERNELS = (bias_activation, activation_finish, activation_backward)

__all__ = [
    "ACTIVATION_KERNELS",
    "ALL_KERNELS",
    "activation_backward",
    "activation_backward_reference",
    "activation_finish",
    "activation_forward",
    "bias_activation",
    "bias_activation_reference",
    "bias_relu",
    "bias_relu_maxpool",
    "bias_relu_maxpool_reference",
    "bias_relu_reference",
    "conv_direct",
    "conv_direct_reference",
    "conv_relu_maxpool",
    "conv_relu_maxpool_backward",
    "conv_relu_maxpool_backward_reference",
    "conv_relu_maxpool_reference",
    "conv_rows",
    "conv_rows_backward",
    "conv_rows_backward_reference",
    "conv_rows_reference",
    "maxpool_relu_backward",
    "maxpool_relu_backward_reference",
    "relu_backward",
    "relu_backward_reference",
]
