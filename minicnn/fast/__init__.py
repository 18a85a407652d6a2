"""The fast plan: how fit, evaluate and predict run a model's layers (the second tier).

The layers in `minicnn.layers` are the reference: the textbook algorithm, one layer at a time.
This package runs the same arithmetic faster, as a plan of steps, each covering one or two
layers (`model.plan` lists them, `step.layers` names what each covers):
- a Conv2D(relu) and the MaxPooling2D after it run as one pass that skips the conv outputs the
  pool never reads (`ConvPoolStep`, kernels in `fast/kernels/conv_pool.py`); with leaky_relu,
  elu, sigmoid or tanh (which max commutes with) the activation runs first, the pool after;
- every other Conv2D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D, with any activation
  of minicnn.activations (linear, relu, leaky_relu and elu of any slope or alpha, sigmoid, tanh,
  softmax), runs chunked on threads, bias and activation in one epilogue (`ConvStep`,
  `ConvTransposeStep`, `DepthwiseStep`; a sigmoid or softmax one that ends the model, which a
  loss may fuse with, runs its layer);
- an Activation, ReLU, LeakyReLU or Softmax layer runs its activation in one pass, or a NumPy
  ufunc between two (`ActivationStep`, `fast/activation.py`, kernels in
  `fast/kernels/activations.py`);
- a first conv with a tiny receptive field convolves directly, without an im2col matrix;
- a stride-1 conv with <= 3 channels and <= 8 filters (d2l's LeNet's first) convolves along its
  output rows, forward and backward, without an im2col matrix (`kernels/conv_along_rows.py`);
- a 3x3 stride-1 conv with >= 16 input channels and outputs >= 6x6 runs Winograd, F(4x4, 3x3)
  or, where its coarser tile grid would compute many outputs to drop, F(2x2, 3x3)
  (`winograd.py`; the rules in `conv_algorithm.py`, shown as `step.algorithm`;
  MINICNN_CONV_ALGORITHM=im2col|winograd|winograd4|rows|auto forces one when the plan is built);
- every batch is cut into chunks that run on one pool of threads, with BLAS single-threaded
  (`parallel.py`), and the chunks' partial weight gradients are added in a fixed order;
- scratch buffers (im2col matrices, gradient temporaries) are reused from step to step
  (`workspace.py`);
- a BatchNormalization (with the non-overlapping MaxPooling2D or the ReLU after it, if any) and
  a Dropout run in two passes and one (`BatchNormStep`, `DropoutStep`), equal to the layers bit
  for bit;
- an AveragePooling2D runs one numba pass each way, chunked on threads (`PoolStep`,
  `fast/pool.py`, kernels in `fast/kernels/pool.py`);
- in a graph, an Add or an Average and the ReLU after it run as one pass each way (`MergeStep`,
  `fast/merge.py`, picked from `graph_plan.MERGE_REGISTRY`), and a tensor read by several
  nodes gets their gradients added in place into an array nothing else holds (`graph_plan.py`);
- the first step with weights skips its input gradient, and the steps before it never run
  backward (`backward_pass`).
Every step computes what its layers compute, to float rounding, and tests/test_plan.py proves it
on shapes hypothesis draws; every kernel here has a plain reference twin. `compile(fast=False)`
runs the reference layers instead (as `record()` and `gradient_check()` always do).

make_plan asks the steps of `plan.REGISTRY` in order which layers they take (`Step.takes`);
a step matches a layer by what it computes (`step.computes_as`), so a subclass that keeps
forward and backward keeps the fast path. Code built on the plan (minicnn/distributed) uses
only public names: `parallel.chunks` and `parallel.cut_batches`, `step.per_sample`,
`step.chunked`, `step.params` and `step.partials()` (docs/distributed.md lists what each
promises; tests/test_layering.py fails on an underscore name of this package used outside it).
"""

from minicnn.fast.activation import ActivationStep
from minicnn.fast.batch_norm import BatchNormStep
from minicnn.fast.conv import ConvStep
from minicnn.fast.conv_pool import ConvPoolStep
from minicnn.fast.dropout import DropoutStep
from minicnn.fast.plan import backward_pass, make_plan
from minicnn.fast.step import LayerStep, Step

__all__ = ["ActivationStep", "BatchNormStep", "ConvPoolStep", "ConvStep", "DropoutStep",
           "LayerStep", "Step", "backward_pass", "make_plan"]
