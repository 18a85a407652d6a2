"""GraphPlan: a model's graph as steps, and the two rules that make backprop on a graph work.

A graph is cut into segments. A segment is either a chain (nodes that each read the one
tensor the node before them made, nothing else reading it), run as the steps `make_plan` gives
that chain, so fusion (conv + pool, BatchNorm + pool) applies along it; or a node of a layer
that reads several tensors (a merge layer: Add, Concatenate...), with the fast plan followed by
the chain after it, its first step picked from MERGE_REGISTRY (ResNet's Add and the ReLU after
it: one MergeStep) and the rest from `make_plan`. A Sequential is one chain, so its plan is
exactly `make_plan(model.layers)`.

Backward runs the segments in reverse with one gradient slot per tensor, and two rules:
- **fan-out**: a tensor read by several nodes gets the *sum* of the gradients they send back
  (y = f(g(x), h(x)) has dy/dx = df/dg g'(x) + df/dh h'(x)), added in place where no one
  else holds the array (`_accumulate`);
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

from minicnn.fast.merge import MergeStep
from minicnn.fast.plan import make_plan
from minicnn.fast.step import LayerStep, Step

# The steps that may run a merge node (a layer reading several tensors) and the nodes chained
# after it, asked in order as plan.REGISTRY is (`Step.takes` at position 0); a merge none of
# them takes runs as a LayerStep. A step matches by what its layer computes (`computes_as`).
MERGE_REGISTRY: tuple[type[Step], ...] = (MergeStep,)


@dataclass
class Segment:
    """Steps run one after the other, reading the tensors in slots `inputs` and writing slot
    `output`. `multi_input`: the first step's forward takes a list and its backward returns
    one (a merge); the steps after it, if any, are a chain's."""

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
            if (not node.multi_input and last is not None and (fast or not last[3])
                    and ins == (last[2],) and len(readers.get(id(node.inputs[0]), ())) == 1
                    and id(node.inputs[0]) not in is_output):
                last[0].append(layer)
                last[2] = out
            else:
                chains.append([[layer], ins, out, node.multi_input, up])
        self.segments: list[Segment] = []
        for layers, ins, out, multi, up in chains:
            if multi:
                steps = _merge_plan(layers, up) if fast else (LayerStep(layers[0]),)
            else:
                steps = make_plan(layers, fast=fast, upstream_params=up)
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
        owned: dict[int, np.ndarray] = {}  # the gradients the fan-out may add into in place
        for seg in reversed(self.segments):
            g, head = grads[seg.output], head_of.pop(seg.output, None)
            grads[seg.output] = None  # read once: the slot no longer holds on to g
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
                new = hook is None and getattr(steps[0], "new_dx", False)
                for s, dx in zip(seg.inputs, dxs, strict=True):
                    grads[s] = _accumulate(grads, s, dx, owned, new)
        return [grads[s] for s in self.input_slots]

    def _run(self, step: Step, backward: Callable[[], object], touched: set[int]):
        shared = self._shared[id(step)]
        before = [(p, p.grad.copy()) for p in shared if id(p) in touched]
        dx = backward()
        for p, g in before:
            p.grad += g
        touched.update(id(p) for p in shared)
        return dx


def _merge_plan(layers: list, upstream_params: bool) -> tuple[Step, ...]:
    """The steps of a chain that starts at a merge node: the first step of MERGE_REGISTRY that
    takes the merge (and maybe the layers after it), then make_plan for the rest. A chain of
    the reference plan holds the merge alone, which this runs as a LayerStep."""
    cls, n = next(((cls, n) for cls in MERGE_REGISTRY if (n := cls.takes(layers, 0))),
                  (LayerStep, 1))
    rest = make_plan(layers[n:], upstream_params=upstream_params) if n < len(layers) else ()
    return (cls.of(layers[:n], True), *rest)


def _mode(step: Step, training: bool | None) -> bool | None:
    if training is not None:
        return training
    if any(hasattr(layer, "_graph") for layer in step.layers):
        return None  # a model run as a layer decides for each of its own layers
    return any(getattr(layer, "training_by_default", False) for layer in step.layers)


def _accumulate(grads: list, s: int, dx: np.ndarray | None, owned: dict[int, np.ndarray],
                new: bool) -> np.ndarray | None:
    """grads[s] + dx, the fan-out sum, added in place into grads[s] where that is safe.

    `owned` (by id, holding the arrays so no id is reused) lists the arrays no step or caller
    holds: the plan's own sums, and a step's dx made by its backward (`new`: a step whose
    `new_dx` says so, and no hook that could keep it). A step that read such an array as its
    dout has finished with it (steps keep no dout past their backward), so the sum may be
    written into it, unless a slot still waiting for its segment's backward holds it or a view
    of it (a merge hands one array to all its inputs: ResNet's Add + ReLU gives the same dx to
    the shortcut and to the residual branch, and the shortcut's sum waits until the branch has
    run). Saves a fresh array per ResNet block (its pages faulted in, one more pass).
    """
    total = grads[s]
    if dx is None:
        return total
    if total is None:
        if new:
            owned[id(dx)] = dx
        return dx
    if (id(total) in owned and total.shape == dx.shape
            and np.result_type(total, dx) == total.dtype
            and not any(t is not None and k != s and np.may_share_memory(t, total)
                        for k, t in enumerate(grads))):
        np.add(total, dx, out=total)  # NumPy copies dx first if it overlaps total
        return total
    result = _add(total, dx)
    if result is not total and result is not dx:
        owned[id(result)] = result
    return result


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
