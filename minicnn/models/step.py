"""TrainingPass: one training pass of a model over one plan, the only copy of it.

    passes = model.training_pass()            # over the plan fit runs (model.graph_plan)
    passes.seed_draws(model.optimizer.iterations)
    out = passes.forward([x], training=True)  # every step, first to last
    loss_sum = passes.loss(y, out)            # Keras's loss, penalties included, times N
    passes.backward(y, out)                   # the loss head, every step in reverse, penalties
    model.optimizer.step(model.params)        # the only place weights change

The trainer (fit, train_on_batch, evaluate, predict, backward_summary), the gradient checks of
graph models, DataParallel's driver and the benchmarks all run these methods; a `Recording`
passed in sees every step of the pass (model.record() opens one).

The loss head (losses.LossHead: the fused (p - y) / N when the output is a softmax) is built
once per pass, i.e. once per plan and loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from minicnn import losses
from minicnn.fast.graph_plan import BackwardHook, ForwardHook, GraphPlan
from minicnn.recording import Recording


def step_generator(model_seed: int, layer, iterations: int, k: int) -> np.random.Generator:
    """The generator a drawing layer (Dropout, RandomFlip) at node `k` of the model uses in the
    training step after `iterations` steps: seeded from (its seed or the model's, the step
    number, its place), so that a run resumed from a model file, which keeps the step count,
    draws exactly what a run straight through would (and a data-parallel worker draws what the
    local run draws). In a Sequential, node k is layer k."""
    seed = getattr(layer, "seed", None)
    return np.random.default_rng((model_seed if seed is None else seed, iterations, k))


class TrainingPass:
    """Forward, loss, backward and penalties of `model` over `plan` (a GraphPlan of its graph,
    or the tail of one: `plan.tail(k)`)."""

    def __init__(self, model, plan: GraphPlan) -> None:
        self.model, self.plan = model, plan
        self.head = losses.LossHead(model.loss, plan.output_layers[0])

    def seed_draws(self, iterations: int) -> None:
        """Give each node that draws in training (Dropout, RandomFlip) the generator of the
        step after `iterations` steps."""
        for k, layer in enumerate(self.plan.node_layers):
            if getattr(layer, "draws_in_training", False):
                layer.rng = step_generator(self.model.seed, layer, iterations, k)

    def forward(self, xs: Sequence[np.ndarray], training: bool,
                recording: Recording | None = None, hook: ForwardHook | None = None):
        """The output for xs (one array per model input) of a one-output model, else the list
        of outputs. `hook(layer, x, y)` is called after each step (a recording's, when one is
        given): how the study tools and the profiler see the pass."""
        if recording is not None:
            recording.start(xs[0])
            hook = recording.forward
        outs = self.plan.forward(xs, training=training, hook=hook)
        return outs[0] if len(outs) == 1 else outs

    def loss(self, y: np.ndarray, out: np.ndarray, sample_weight=None) -> float:
        """The batch's loss (its reduction over the weighted samples, plus the weights'
        penalties, as Keras reports it) times the batch's size: what an epoch's mean adds up,
        as Keras's loss tracker weighs each batch by its size."""
        return (self.head.value(y, out, sample_weight) + self.penalty()) * len(out)

    def penalty(self) -> float:
        """The weight penalties of every layer (`layer.penalties()`: a kernel_regularizer's,
        SeparableConv2D's two), each shared layer once."""
        return sum(reg(p.value) for layer in self.model._compute_layers
                   for p, reg in layer.penalties())

    def backward(self, y: np.ndarray, out: np.ndarray, recording: Recording | None = None,
                 penalties: bool = True, hook: BackwardHook | None = None,
                 sample_weight=None) -> list[np.ndarray | None]:
        """Fill every trainable parameter's .grad with dL/dW of the mean loss over (y, out),
        plus the penalties' gradients unless `penalties=False` (DataParallel adds them after
        the workers' gradients arrive); returns dL/dx of each input (None where unneeded).
        `hook(layer, dout, dx)` is called after each step's backward (dout None for the loss
        head's step); a recording, when given, is shown dL/dy_pred there instead."""
        if recording is not None:
            def hook(layer, dout, dx):
                # The head's step is shown dL/dy_pred, whatever the fused pass started from.
                recording.backward(layer, self.model.loss.gradient(y, out, sample_weight)
                                   if dout is None else dout, dx)
        dxs = self.plan.backward(
            [None], heads={0: lambda step: self.head.backward(y, out, step, sample_weight)},
            hook=hook)
        if penalties:
            self.add_penalty_gradients()
        return dxs

    def add_penalty_gradients(self) -> None:
        """d(penalty)/dW added to each regularized, trainable weight's .grad."""
        for layer in self.model._compute_layers:
            trainable = layer.params
            for p, reg in layer.penalties():
                if any(p is q for q in trainable):
                    p.grad += reg.gradient(p.value)
