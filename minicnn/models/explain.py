"""Which pixels made the prediction: saliency maps and Grad-CAM, from one forward and one
backward pass (`model.explain(images)`, `plots.plot_saliency`, `minicnn predict --explain`).

For each image and the class c it is explained for (the predicted one by default), the loss is
L = -log p_c, the cross-entropy with c as the label, and one pass of the reference layers in
inference mode (Dropout off, BatchNormalization on its moving statistics) gives, through the
plan's hooks:

- **Saliency** (Simonyan et al., 2014): |dL/dx|, the largest over the colour channels, per
  pixel: how much a small change of that pixel moves the prediction.
- **Grad-CAM** (Selvaraju et al., 2017) at a conv layer (by default the last one): with A its
  output (H', W', K) and dL/dA what reached it backward, each channel's weight is
  alpha_k = -mean over (h, w) of dL/dA_k (the minus: evidence *for* c lowers L), and the map is
  ReLU(sum_k alpha_k A_k), upsampled bilinearly to the input's size and scaled to [0, 1]:
  where in the image the features that speak for c are.

Both come from the same pass: no second backward, and the model's weights and caches are
untouched (the pass runs on shallow copies, as predict's does). A conv layer inside a nested
model is not reachable by name here; pass a layer of the outer graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minicnn import activations, losses
from minicnn.fast.graph_plan import GraphPlan
from minicnn.layers.conv import Conv2D


@dataclass
class Explanation:
    probabilities: np.ndarray  # (N, K) the model's output (probabilities, or logits)
    labels: np.ndarray  # (N,) the class each image is explained for
    saliency: np.ndarray  # (N, H, W) max over channels of |dL/dx|
    grad_cam: np.ndarray | None  # (N, H, W) in [0, 1]; None for a model without a conv layer
    layer: str | None  # the conv layer Grad-CAM looked at


def _resize(maps: np.ndarray, H: int, W: int) -> np.ndarray:
    """(N, h, w) -> (N, H, W), bilinear with half-pixel centres, as one matrix per axis."""
    def matrix(n_out: int, n_in: int) -> np.ndarray:
        position = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), low] += 1 - (position - low)
        m[np.arange(n_out), high] += position - low
        return m
    return np.einsum("Hh,nhw,Ww->nHW", matrix(H, maps.shape[1]), maps, matrix(W, maps.shape[2]))


def explain(model, x, labels=None, layer: str | None = None) -> Explanation:
    """Saliency and Grad-CAM of `model` for images x (N, H, W, C) (see the module)."""
    graph = model._graph
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(f"explain(): model '{model.name}' has {len(graph.inputs)} inputs and "
                         f"{len(graph.outputs)} outputs; saliency needs one image input and one "
                         "class output")
    xs = [np.asarray(model._as_inputs(x, "explain")[0], dtype=model.dtype)]
    if xs[0].ndim != 4:
        raise ValueError(f"explain(): expected images (N, H, W, C), received shape "
                         f"{xs[0].shape}")
    convs = [node.layer for node in graph.nodes if isinstance(node.layer, Conv2D)]
    if layer is not None and layer not in [c.name for c in convs]:
        raise ValueError(f"explain(): no Conv2D layer named {layer!r} in model '{model.name}'; "
                         f"its conv layers are {[c.name for c in convs]}")
    target = layer or (convs[-1].name if convs else None)

    plan = GraphPlan(graph, fast=False, clone=True, inputs_need_gradient=True)
    last = plan.output_layers[0]
    seen: dict[str, np.ndarray] = {}

    def forward_hook(step_layer, x_in, y):
        if step_layer.name == target and "A" not in seen:
            seen["A"] = np.array(y, dtype=np.float64)

    def backward_hook(step_layer, dout, dx):
        if step_layer.name == target and "dA" not in seen and dout is not None:
            seen["dA"] = np.array(dout, dtype=np.float64)

    out = plan.forward(xs, training=False, hook=forward_hook)[0]
    K = out.shape[-1]
    ends_in = getattr(last, "activation", None)
    probabilities_given = ends_in in (activations.softmax, activations.sigmoid)
    if K == 1:
        loss = losses.BinaryCrossentropy(from_logits=not probabilities_given)
        scores = out if probabilities_given else 1 / (1 + np.exp(-out))
        predicted = (scores[:, 0] > 0.5).astype(np.int64)
    else:
        loss = losses.SparseCategoricalCrossentropy(from_logits=not probabilities_given)
        predicted = out.argmax(axis=1)
    labels = predicted if labels is None else np.asarray(labels).reshape(-1).astype(np.int64)
    if labels.shape != (len(out),):
        raise ValueError(f"explain(): expected one label per image, {len(out)}; received "
                         f"{labels.shape}")
    # L = -log p_label summed (not averaged) over the images: each image's maps are its own.
    loss = type(loss)(**{**loss.get_config(), "reduction": "sum"})
    head = losses.LossHead(loss, last)
    y = labels if K > 1 else labels[:, None].astype(out.dtype)
    dxs = plan.backward([None], heads={0: lambda step: head.backward(y, out, step)},
                        hook=backward_hook)
    saliency = np.abs(np.asarray(dxs[0], dtype=np.float64)).max(axis=-1)
    grad_cam = None
    if target is not None and "A" in seen and "dA" in seen:
        A, dA = seen["A"], seen["dA"]
        alpha = -dA.mean(axis=(1, 2))  # (N, K): evidence for the class lowers L
        cam = np.maximum(np.einsum("nhwk,nk->nhw", A, alpha), 0)
        cam = _resize(cam, *xs[0].shape[1:3])
        top = cam.reshape(len(cam), -1).max(axis=1)
        grad_cam = cam / np.where(top > 0, top, 1)[:, None, None]
    return Explanation(np.array(out), labels, saliency, grad_cam, target)
