"""GraphPlan: a model's graph as steps, and the two rules that make backprop on a graph work.

A graph is cut into segments. A segment is either a chain (nodes that each read the one
tensor the node before them made, nothing else reading it), run as the steps `make_plan` gives
that chain, so fusion (conv + pool, BatchNorm + pool) applies along it; or one node of a layer
that reads several tensors (a merge layer: Add, Concatenate...). A Sequential is one chain, so
its plan is exactly `make_plan(model.layers)`.

Backward runs the segments in reverse with one gradient slot per tensor, and two rules:
- **fan-out**: a tensor read by several nodes gets the *sum* of the gradients they send back
  (y = f(g(x), h(x)) has dy/dx = df/dg g'(x) + df/dh h'(x));
- **shared layers**: a layer called at several nodes owns one set of weights, so its gradient
  is the sum over its calls. Each call after the first runs on a shallow copy of the layer (the
  same Parameter objects, a cache of its own, so no call overwrites what another's backward
  needs), and the gradient a call's backward writes is added to what the calls before it wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from minicnn.fast.plan import make_plan
from minicnn.fast.step import LayerStep, Step


@dataclass
class Segment:
    """Steps run one after the other, reading the tensors in slots `inputs` and writing slot
    `output`. `multi_input`: one step whose forward takes a list and whose backward returns one."""

    steps: tuple[Step, ...]
    inputs: tuple[int, ...]
    output: int
    multi_input: bool = False


# Called after each step with (its first layer, its input, its output), and after each backward
# step with (its first layer, its dout, its dx): how a recording sees a pass.
ForwardHook = Callable[[object, object, np.ndarray], None]
BackwardHook = Callable[[object, np.ndarray, object], None]


class GraphPlan:
    """The steps that run `graph` (minicnn.layers.node.Graph, every layer built).

    fast: fused steps (make_plan) or the reference layers one by one.
    clone: run every node on a shallow copy of its layer (an inference call's own caches and
        scratch arrays, so calls from several threads share nothing they write).
    inputs_need_gradient: compute dL/d(inputs) even when no weight comes before (a model run as
        a layer of another model, whose earlier layers need it).
    """

    def __init__(self, graph, fast: bool = True, clone: bool = False,
                 inputs_need_gradient: bool = False) -> None:
        self.graph = graph
        slots: dict[int, int] = {}

        def slot(tensor) -> int:
            return slots.setdefault(id(tensor), len(slots))

        self.input_slots = tuple(slot(t) for t in graph.inputs)
        readers = graph.consumers()
        is_output = {id(t) for t in graph.outputs}
        # Which tensors have trainable weights somewhere upstream: only those need a gradient.
        upstream = {id(t): inputs_need_gradient for t in graph.inputs}
        seen: set[int] = set()
        shared: set[int] = set()  # layers called at more than one node
        # Each chain: [instances, input slots, output slot, multi-input, upstream has weights]
        chains: list[list] = []
        self.node_layers: list = []  # the instance that runs each node, in graph.nodes order
        for node in graph.nodes:
            first_call = id(node.layer) not in seen
            seen.add(id(node.layer))
            if not first_call:
                shared.add(id(node.layer))
            layer = node.layer if first_call and not clone else _call_clone(node.layer)
            self.node_layers.append(layer)
            ins = tuple(slot(t) for t in node.inputs)
            out = slot(node.output)
            up = any(upstream.get(id(t), False) for t in node.inputs)
            upstream[id(node.output)] = up or bool(node.layer.params)
            last = chains[-1] if chains else None
            if (not node.multi_input and last is not None and not last[3]
                    and ins == (last[2],) and len(readers.get(id(node.inputs[0]), ())) == 1
                    and id(node.inputs[0]) not in is_output):
                last[0].append(layer)
                last[2] = out
            else:
                chains.append([[layer], ins, out, node.multi_input, up])
        self.segments: list[Segment] = []
        for layers, ins, out, multi, up in chains:
            steps = ((LayerStep(layers[0]),) if multi
                     else make_plan(layers, fast=fast, upstream_params=up))
            self.segments.append(Segment(steps, ins, out, multi))
        self.output_slots = tuple(slot(t) for t in graph.outputs)
        self.n_slots = len(slots)
        self.steps: tuple[Step, ...] = tuple(s for seg in self.segments for s in seg.steps)
        # The last layer of each output: where a loss head starts backward.
        self.output_layers = [self.node_layers[graph.nodes.index(t.node)]
                              for t in graph.outputs]
        # Per step, the trainable Parameters another call of the same layer also writes to.
        self._shared = {id(step): [p for layer in step.layers
                                   if id(_origin(layer)) in shared for p in layer.params]
                        for step in self.steps}

    # -- cutting off the front -------------------------------------------------------------------
    def front(self) -> tuple[Step, ...]:
        """The chain the model's input goes through before anything else reads it (the first
        segment, when only it reads the one input): what a data-parallel worker may run."""
        seg = self.segments[0]
        readers = sum(s in self.input_slots for seg_ in self.segments for s in seg_.inputs)
        if len(self.input_slots) != 1 or seg.multi_input or readers != 1:
            return ()
        return seg.steps

    def tail(self, k: int) -> GraphPlan:
        """This plan without the first k steps of `front()`: its input is what they make."""
        if k == 0:
            return self
        rest = copy.copy(self)
        seg = self.segments[0]
        if k < len(seg.steps):
            rest.segments = [Segment(seg.steps[k:], seg.inputs, seg.output), *self.segments[1:]]
        else:
            rest.segments, rest.input_slots = self.segments[1:], (seg.output,)
        rest.steps = tuple(s for sg in rest.segments for s in sg.steps)
        return rest

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, xs: Sequence[np.ndarray], training: bool | None = False,
                hook: ForwardHook | None = None) -> list[np.ndarray]:
        """The outputs for inputs xs (one array per model input), each (N, ...). With
        training=None (`model(x)`, as Keras 3) each step runs in its layers' own default mode:
        random augmentation augments, everything else infers; a nested model passes None on."""
        values: list = [None] * self.n_slots
        for s, x in zip(self.input_slots, xs, strict=True):
            values[s] = x
        for seg in self.segments:
            x = [values[s] for s in seg.inputs] if seg.multi_input else values[seg.inputs[0]]
            for step in seg.steps:
                y = step.forward(x, training=_mode(step, training))
                if hook is not None:
                    hook(step.layers[0], x, y)
                x = y
            values[seg.output] = x
        return [values[s] for s in self.output_slots]

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, douts: Sequence[np.ndarray | None],
                 heads: dict[int, Callable[[Step], np.ndarray | None]] | None = None,
                 hook: BackwardHook | None = None) -> list[np.ndarray | None]:
        """Backward from dL/d(output k) = douts[k], filling every trainable Parameter's .grad;
        returns dL/dx for each model input (None where nothing needed it).

        heads[k], when given, runs in place of output k's last step's backward (a loss head
        that starts from the logits: losses.LossHead) and returns that step's dx.
        """
        heads = heads or {}
        grads: list = [None] * self.n_slots
        for k, s in enumerate(self.output_slots):
            grads[s] = _add(grads[s], douts[k] if k < len(douts) else None)
        head_of = {self.output_slots[k]: head for k, head in heads.items()}
        touched: set[int] = set()
        for seg in reversed(self.segments):
            g, head = grads[seg.output], head_of.pop(seg.output, None)
            if g is None and head is None:
                continue
            steps = seg.steps
            for j in range(len(steps) - 1, -1, -1):
                step = steps[j]
                at_head = head is not None and j == len(steps) - 1
                if at_head:
                    dx = self._run(step, lambda step=step, head=head: head(step), touched)
                elif g is None:
                    break
                else:
                    dx = self._run(step, lambda step=step, g=g: step.backward(g), touched)
                if hook is not None:
                    hook(step.layers[0], None if at_head else g, dx)
                g = dx
            else:
                if g is None:  # the chain's first step skipped its input gradient
                    continue
                dxs = g if seg.multi_input else [g]
                for s, dx in zip(seg.inputs, dxs, strict=True):
                    grads[s] = _add(grads[s], dx)
        return [grads[s] for s in self.input_slots]

    def _run(self, step: Step, backward: Callable[[], object], touched: set[int]):
        shared = self._shared[id(step)]
        before = [(p, p.grad.copy()) for p in shared if id(p) in touched]
        dx = backward()
        for p, g in before:
            p.grad += g
        touched.update(id(p) for p in shared)
        return dx


def _mode(step: Step, training: bool | None) -> bool | None:
    if training is not None:
        return training
    if any(hasattr(layer, "_graph") for layer in step.layers):
        return None  # a model run as a layer decides for each of its own layers
    return any(getattr(layer, "training_by_default", False) for layer in step.layers)


def _add(total: np.ndarray | None, g: np.ndarray | None) -> np.ndarray | None:
    """The fan-out sum. A new array: a step may hand back a scratch buffer it reuses."""
    if g is None:
        return total
    return g if total is None else total + g


def _call_clone(layer):
    """A copy of `layer` for one more call: the same weights, its own cache."""
    clone = layer._call_clone() if hasattr(layer, "_call_clone") else copy.copy(layer)
    clone._origin = _origin(layer)
    return clone


def _origin(layer):
    return getattr(layer, "_origin", layer)
