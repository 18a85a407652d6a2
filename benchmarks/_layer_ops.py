"""Each layer of the notebook's model, one pass at a time, in each framework: `bench_kernels.py`.

Every framework gets the same arrays: the first `batch_size` training images, the same
Glorot-uniform weights (Keras layouts; PyTorch gets them transposed to its own), the same
random upstream gradients `dout` for each layer's output and the same random gradients for the
Adam step. Each framework then computes its own layer inputs by running its own forward pass,
so every layer sees the activations it would see in training.

An op is a no-argument callable; the names are `<layer>/<pass>`, where a layer may be a fused
pair such as `conv1+pool1` (minicnn's fast plan, `model.plan`, runs each Conv2D(relu) +
MaxPooling2D pair as one step, and a Conv2D alone as a ConvStep; the other frameworks get the
same pair as one compiled function or autograd graph), with the passes
    fwd      forward, as in training (minicnn keeps its backward cache; TensorFlow's fused
             conv + bias + ReLU; PyTorch records its autograd graph)
    bwd      the full backward from dout: ReLU mask, weight and bias gradients, input gradient
    bwd_w    the backward without the input gradient (weights and bias only)
    step     one Adam step over all 93,322 parameters, or (train/step) a whole training step
"""

from __future__ import annotations

import _common
import numpy as np
from _frameworks import keras_model, torch_model

# (name, input shape, output shape) of each layer at batch N, without the batch dimension.
LAYERS = (
    ("conv1", (28, 28, 1), (26, 26, 32)),
    ("pool1", (26, 26, 32), (13, 13, 32)),
    ("conv2", (13, 13, 32), (11, 11, 64)),
    ("pool2", (11, 11, 64), (5, 5, 64)),
    ("conv3", (5, 5, 64), (3, 3, 64)),
    ("dense1", (576,), (64,)),
    ("dense2_ce", (64,), (10,)),
)
# Keras's weight shapes, in Keras's order (kernel, bias per layer).
WEIGHT_SHAPES = ((3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,),
                 (576, 64), (64,), (64, 10), (10,))


class SharedArrays:
    """What every framework computes on: x0 (N, 28, 28, 1), one-hot y (N, 10), weights, douts."""

    def __init__(self, batch_size: int, data_dir: str | None):
        x, y, _, _ = _common.load_arrays(data_dir, limit_train=batch_size, limit_test=1)
        if len(x) < batch_size:
            raise ValueError(f"--batch-size {batch_size} is larger than the {len(x)} training "
                             "images")
        self.x0, self.y = x, y
        rng = np.random.default_rng(0)
        self.weights = []
        for shape in WEIGHT_SHAPES:
            if len(shape) == 1:
                self.weights.append(np.zeros(shape, np.float32))  # Keras's zeros
                continue
            receptive = int(np.prod(shape[:-2]))
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = np.sqrt(6 / (fan_in + fan_out))
            self.weights.append(rng.uniform(-limit, limit, shape).astype(np.float32))
        N = batch_size
        self.douts = {name: (rng.standard_normal((N, *out)) / N).astype(np.float32)
                      for name, _, out in LAYERS[:-1]}
        self.adam_grads = [(rng.standard_normal(w.shape) * 1e-3).astype(np.float32)
                           for w in self.weights]


PAIRS = (("conv1", "pool1"), ("conv2", "pool2"))  # each Conv2D(relu) + MaxPooling2D


def plan_name(parts) -> str:
    return "+".join(parts)


_MINICNN_BLAS_LIMIT = None


def minicnn_ops(a: SharedArrays) -> tuple[dict, list[str]]:
    """(ops, plan): per-layer ops, plus one op per fused step of the model's plan; the plan
    names the steps a training step runs, in order (`model.plan`, minicnn/fast/)."""
    # Time the layers as fit, evaluate and predict run them: BLAS single-threaded while
    # minicnn splits each pass over its own threads. Entered once, for the worker's lifetime.
    from minicnn.fast import ConvStep, LayerStep, parallel
    from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from minicnn.layers.base import Parameter
    from minicnn.losses import LossHead
    from minicnn.models import mnist_cnn
    from minicnn.optimizers import Adam

    global _MINICNN_BLAS_LIMIT
    if _MINICNN_BLAS_LIMIT is None:
        _MINICNN_BLAS_LIMIT = parallel.single_threaded_blas()
        _MINICNN_BLAS_LIMIT.__enter__()

    model = mnist_cnn(seed=0)
    model.set_weights(a.weights)
    kinds = (Conv2D, MaxPooling2D, Conv2D, MaxPooling2D, Conv2D, Flatten, Dense, Dense)
    if len(model.layers) != len(kinds) or not all(
            isinstance(layer, kind) for layer, kind in zip(model.layers, kinds, strict=False)):
        raise TypeError(f"mnist_cnn() no longer has the notebook's layers: {model.layers}")
    names = ("conv1", "pool1", "conv2", "pool2", "conv3", "flatten", "dense1", "dense2_ce")
    label = {id(layer): name for name, layer in zip(names, model.layers, strict=True)}
    inputs, x = {}, a.x0
    for name, layer in zip(names, model.layers, strict=True):
        inputs[name] = x
        x = layer.forward(x, training=True)

    def step_for(layer_or_step):
        """Each layer alone as the fast plan would run it: a Conv2D as a ConvStep."""
        return ConvStep(layer_or_step) if isinstance(layer_or_step, Conv2D) else layer_or_step

    # Every layer on its own, then every step of the plan that covers more than one layer.
    units = {name: ((layer,), step_for(layer)) for name, layer in zip(names, model.layers,
                                                                      strict=True)
             if name not in ("flatten", "dense2_ce")}
    plan = []
    for step in model.plan:
        name = plan_name([label[id(layer)] for layer in step.layers])
        plan.append(name)
        if len(step.layers) > 1:
            units[name] = (step.layers, step)

    ops = {}
    for name, (covered, step) in units.items():
        x, dout = inputs[label[id(covered[0])]], a.douts[label[id(covered[-1])]]
        ops[f"{name}/fwd"] = lambda step=step, x=x: step.forward(x, training=True)
        if hasattr(step, "input_gradient"):  # a fast step can skip its input gradient
            for key, flag in (("bwd", True), ("bwd_w", False)):
                twin = type(step)(*covered, input_gradient=flag)
                twin.forward(x, training=True)
                ops[f"{name}/{key}"] = lambda twin=twin, dout=dout: twin.backward(dout)
        else:
            ops[f"{name}/bwd"] = lambda step=step, dout=dout: step.backward(dout)

    dense2 = model.layers[-1]
    head, x, y = LossHead(model.loss, dense2), inputs["dense2_ce"], a.y
    p = LayerStep(dense2).forward(x, training=True)

    def softmax_ce_forward():
        return head.per_sample(y, dense2.forward(x, training=True))

    ops["dense2_ce/fwd"] = softmax_ce_forward
    ops["dense2_ce/bwd"] = lambda: head.backward(y, p, dense2)

    # Adam on copies, so that the layers above keep fixed weights.
    params = [Parameter(p.name, p.value.copy()) for p in model.params]
    for param, grad in zip(params, a.adam_grads, strict=True):
        param.grad[...] = grad
    adam = Adam()
    ops["adam/step"] = lambda: adam.step(params)

    whole = mnist_cnn(seed=0)
    whole.set_weights(a.weights)
    ops["train/step"] = lambda: whole.train_on_batch(a.x0, a.y)
    # Which convolution each unit runs (for the roofline's count of the FLOPs it executes).
    MINICNN_ALGORITHMS.clear()
    MINICNN_ALGORITHMS.update({name: step.algorithm for name, (_, step) in units.items()
                               if hasattr(step, "algorithm")})
    return ops, [name for name in plan if name != "flatten"]


MINICNN_ALGORITHMS: dict[str, str] = {}  # filled by minicnn_ops: unit name -> algorithm


# -- the conv algorithms, per layer ----------------------------------------------------------------
# Whose convs the algorithm study times: the notebook's and the CIFAR-10 recipe's (its
# augmentation layers left out: they do not change the convs' shapes).
ALGORITHM_MODELS = ("mnist_cnn", "cifar10_cnn")
# The direct kernel runs any field, but its loops lose to a GEMM long before this; past it,
# timing it would cost minutes and say nothing (the rule's threshold is DIRECT_MAX_FIELD = 16).
DIRECT_TIMED_MAX_FIELD = 64


def minicnn_algorithm_ops(batch_size: int) -> tuple[dict, list[dict]]:
    """(ops, units): every conv step of the models in ALGORITHM_MODELS, as their fast plan builds
    it, once per algorithm that applies (im2col always; Winograd for 3x3 stride 1; direct for
    a receptive field up to DIRECT_TIMED_MAX_FIELD), forward and backward; the op names are
    `algo/<model>/<step>/<algorithm>/<fwd|bwd>`. A unit says the step's shapes and the
    algorithm the plan picked (by minicnn/fast/conv_algorithm.py's rule, or
    MINICNN_CONV_ALGORITHM when set). Each step's input is what the reference layers before it
    compute from random images (seed 1); its dout is random. The backward computes the input
    gradient unless the step is its model's first, as in training."""
    from minicnn.fast import ConvPoolStep, ConvStep
    from minicnn.fast.conv_algorithm import algorithm_setting
    from minicnn.models import recipes

    rng = np.random.default_rng(1)
    ops, units = {}, []
    for model_name in ALGORITHM_MODELS:
        options = {"augment": False} if model_name == "cifar10_cnn" else {}
        model = recipes.RECIPES[model_name](seed=0, **options)
        x = rng.random((batch_size, *model.input_shape[1:]), dtype=np.float32)
        inputs, short, counts = {}, {}, {}
        for layer in model.layers:
            inputs[id(layer)] = x
            x = layer.forward(x, training=False)
            kind = {"Conv2D": "conv", "MaxPooling2D": "pool"}.get(type(layer).__name__)
            if kind:  # conv1, pool1, conv2, ...: the names the tables use
                counts[kind] = counts.get(kind, 0) + 1
                short[id(layer)] = f"{kind}{counts[kind]}"
        for k, step in enumerate(model.plan):
            if not isinstance(step, ConvStep | ConvPoolStep):
                continue
            conv = step.layers[0]
            x = inputs[id(conv)]
            (KH, KW), (SH, SW) = conv.kernel_size, conv.strides
            C, (_, H_out, W_out, F) = x.shape[-1], conv.output_shape
            candidates = ["im2col"]
            if (KH, KW, SH, SW) == (3, 3, 1, 1):
                candidates += ["winograd", "winograd4"]
            if KH * KW * C <= DIRECT_TIMED_MAX_FIELD:
                candidates.append("direct")
            out_shape = step.layers[-1].output_shape[1:]
            dout = (rng.standard_normal((batch_size, *out_shape)) / batch_size).astype(
                np.float32)
            name = "+".join(short[id(layer)] for layer in step.layers)
            region = (H_out, W_out)
            if isinstance(step, ConvPoolStep):
                (PH, PW) = step.pool.pool_size
                region = (H_out // PH * PH, W_out // PW * PW)
            units.append({"model": model_name, "step": name, "kind": type(step).__name__,
                          "input": list(x.shape[1:]), "output": [H_out, W_out, F],
                          "kernel": [KH, KW], "strides": [SH, SW], "padding": conv.padding,
                          "computed": list(region), "first": k == 0,
                          "picked": step.algorithm, "setting": algorithm_setting(),
                          "algorithms": candidates})
            for algorithm in candidates:
                twin = type(step)(*step.layers, input_gradient=k > 0)
                twin.algorithm = algorithm  # forced; `forward` and `backward` read it
                twin.forward(x, training=True)
                key = f"algo/{model_name}/{name}/{algorithm}"
                ops[f"{key}/fwd"] = lambda twin=twin, x=x: twin.forward(x, training=True)
                ops[f"{key}/bwd"] = lambda twin=twin, dout=dout: twin.backward(dout)
    return ops, units


def tensorflow_ops(a: SharedArrays) -> tuple[dict, list[str]]:
    """(ops, plan): tf.function-compiled ops; gradients by the ops TensorFlow's own gradient
    functions use (Conv2DBackpropFilter / Conv2DBackpropInput, BiasAddGrad, ReluGrad,
    MaxPoolGrad), so each pass is exactly the work a GradientTape would do for it."""
    import keras
    import tensorflow as tf

    raw = tf.raw_ops
    ones, window = [1, 1, 1, 1], [1, 2, 2, 1]

    def conv_grads(x, k, y, dout, input_gradient):
        dz = raw.ReluGrad(gradients=dout, features=y)
        grads = [raw.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k), out_backprop=dz,
                                          strides=ones, padding="VALID"),
                 raw.BiasAddGrad(out_backprop=dz)]
        if input_gradient:
            grads.append(raw.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k,
                                                 out_backprop=dz, strides=ones, padding="VALID"))
        return grads

    def pool_grad(x, y, dout):
        return raw.MaxPoolGrad(orig_input=x, orig_output=y, grad=dout, ksize=window,
                               strides=window, padding="VALID")

    def dense_grads(x, k, dz, input_gradient):
        grads = [tf.matmul(x, dz, transpose_a=True), tf.reduce_sum(dz, 0)]
        if input_gradient:
            grads.append(tf.matmul(dz, k, transpose_b=True))
        return grads

    conv = tf.function(lambda x, k, b: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "VALID"),
                                                                   b)))
    conv_bwd = tf.function(conv_grads)
    pool = tf.function(lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"))
    pool_bwd = tf.function(pool_grad)
    conv_pool = tf.function(lambda x, k, b: tf.nn.max_pool2d(
        tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, 1, "VALID"), b)), 2, 2, "VALID"))
    conv_pool_bwd = tf.function(lambda x, k, c, p, dout, input_gradient: conv_grads(
        x, k, c, pool_grad(c, p, dout), input_gradient))
    dense = tf.function(lambda x, k, b: tf.nn.relu(tf.nn.bias_add(tf.matmul(x, k), b)))
    dense_bwd = tf.function(lambda x, k, y, dout, input_gradient: dense_grads(
        x, k, raw.ReluGrad(gradients=dout, features=y), input_gradient))

    @tf.function
    def softmax_ce(x, k, b, labels):
        logits = tf.nn.bias_add(tf.matmul(x, k), b)
        return tf.nn.softmax(logits), tf.nn.softmax_cross_entropy_with_logits(labels, logits)

    # The fused gradient (p - y) / N, then the Dense layer's.
    softmax_ce_bwd = tf.function(lambda x, k, p, labels: dense_grads(
        x, k, (p - labels) / tf.cast(tf.shape(p)[0], p.dtype), True))

    w = [tf.Variable(v) for v in a.weights]
    d = {name: tf.constant(v) for name, v in a.douts.items()}
    labels, x0 = tf.constant(a.y), tf.constant(a.x0)
    c1 = conv(x0, w[0], w[1])
    p1 = pool(c1)
    c2 = conv(p1, w[2], w[3])
    p2 = pool(c2)
    c3 = conv(p2, w[4], w[5])
    f = tf.reshape(c3, (c3.shape[0], -1))
    d1 = dense(f, w[6], w[7])
    p, _ = softmax_ce(d1, w[8], w[9], labels)
    ops = {}
    for name, x, y, k, b in (("conv1", x0, c1, w[0], w[1]), ("conv2", p1, c2, w[2], w[3]),
                             ("conv3", p2, c3, w[4], w[5])):
        ops[f"{name}/fwd"] = lambda x=x, k=k, b=b: conv(x, k, b)
        ops[f"{name}/bwd"] = lambda x=x, k=k, y=y, g=d[name]: conv_bwd(x, k, y, g, True)
        ops[f"{name}/bwd_w"] = lambda x=x, k=k, y=y, g=d[name]: conv_bwd(x, k, y, g, False)
    for name, x, y in (("pool1", c1, p1), ("pool2", c2, p2)):
        ops[f"{name}/fwd"] = lambda x=x: pool(x)
        ops[f"{name}/bwd"] = lambda x=x, y=y, g=d[name]: pool_bwd(x, y, g)
    for (cname, pname), x, c, y, k, b in ((PAIRS[0], x0, c1, p1, w[0], w[1]),
                                          (PAIRS[1], p1, c2, p2, w[2], w[3])):
        name, g = plan_name((cname, pname)), d[pname]
        ops[f"{name}/fwd"] = lambda x=x, k=k, b=b: conv_pool(x, k, b)
        ops[f"{name}/bwd"] = lambda x=x, k=k, c=c, y=y, g=g: conv_pool_bwd(x, k, c, y, g, True)
        ops[f"{name}/bwd_w"] = lambda x=x, k=k, c=c, y=y, g=g: conv_pool_bwd(x, k, c, y, g,
                                                                               False)
    ops["dense1/fwd"] = lambda: dense(f, w[6], w[7])
    ops["dense1/bwd"] = lambda: dense_bwd(f, w[6], d1, d["dense1"], True)
    ops["dense1/bwd_w"] = lambda: dense_bwd(f, w[6], d1, d["dense1"], False)
    ops["dense2_ce/fwd"] = lambda: softmax_ce(d1, w[8], w[9], labels)
    ops["dense2_ce/bwd"] = lambda: softmax_ce_bwd(d1, w[8], p, labels)

    variables = [tf.Variable(v) for v in a.weights]  # copies: the layers keep fixed weights
    grads = [tf.constant(g) for g in a.adam_grads]
    adam = keras.optimizers.Adam()
    adam.build(variables)

    @tf.function
    def adam_step():
        adam.apply_gradients(zip(grads, variables, strict=True))

    ops["adam/step"] = adam_step

    model = keras_model()
    model.set_weights(a.weights)
    ops["train/step"] = lambda: model.train_on_batch(x0, labels)
    return ops, [name for name, _, _ in LAYERS]


def pytorch_ops(a: SharedArrays) -> tuple[dict, list[str]]:
    """(ops, plan): PyTorch's own layout (NCHW, weights (out, in, kh, kw)); autograd."""
    import torch
    import torch.nn.functional as F

    def nchw(v):
        return torch.from_numpy(np.ascontiguousarray(v.transpose(0, 3, 1, 2)))

    def param(v):
        v = v.transpose(3, 2, 0, 1) if v.ndim == 4 else v.T if v.ndim == 2 else v
        return torch.from_numpy(np.ascontiguousarray(v)).requires_grad_()

    def leaf(t):
        return t.detach().requires_grad_()

    w = [param(v) for v in a.weights]
    labels = torch.from_numpy(a.y.argmax(axis=1))
    d = {name: nchw(v) if v.ndim == 4 else torch.from_numpy(v) for name, v in a.douts.items()}
    ops, pair_inputs = {}, {}
    x = leaf(nchw(a.x0))
    for i, name in enumerate(("conv1", "pool1", "conv2", "pool2", "conv3")):
        pair_inputs[name] = x
        if name.startswith("conv"):
            k, b = w[i], w[i + 1]

            def forward(x=x, k=k, b=b):
                return torch.relu(F.conv2d(x, k, b))

            wrt = [k, b]
        else:
            def forward(x=x):
                return F.max_pool2d(x, 2)

            wrt = []
        y = forward()
        ops[f"{name}/fwd"] = forward
        ops[f"{name}/bwd"] = lambda y=y, x=x, wrt=wrt, g=d[name]: torch.autograd.grad(
            y, [x, *wrt], g, retain_graph=True)
        if wrt:
            ops[f"{name}/bwd_w"] = lambda y=y, wrt=wrt, g=d[name]: torch.autograd.grad(
                y, wrt, g, retain_graph=True)
        x = leaf(y)
    x = leaf(x.flatten(1))
    for (cname, pname), i in zip(PAIRS, (0, 2), strict=True):
        name, k, b, inp = plan_name((cname, pname)), w[i], w[i + 1], pair_inputs[cname]

        def forward(x=inp, k=k, b=b):
            return F.max_pool2d(torch.relu(F.conv2d(x, k, b)), 2)

        y = forward()
        ops[f"{name}/fwd"] = forward
        ops[f"{name}/bwd"] = lambda y=y, x=inp, k=k, b=b, g=d[pname]: torch.autograd.grad(
            y, [x, k, b], g, retain_graph=True)
        ops[f"{name}/bwd_w"] = lambda y=y, k=k, b=b, g=d[pname]: torch.autograd.grad(
            y, [k, b], g, retain_graph=True)
    y = torch.relu(F.linear(x, w[6], w[7]))
    ops["dense1/fwd"] = lambda x=x: torch.relu(F.linear(x, w[6], w[7]))
    ops["dense1/bwd"] = lambda x=x, y=y: torch.autograd.grad(
        y, [x, w[6], w[7]], d["dense1"], retain_graph=True)
    ops["dense1/bwd_w"] = lambda y=y: torch.autograd.grad(
        y, [w[6], w[7]], d["dense1"], retain_graph=True)
    x = leaf(y)

    def softmax_ce_forward(x=x):
        logits = F.linear(x, w[8], w[9])
        return torch.softmax(logits, 1), F.cross_entropy(logits, labels)

    loss = softmax_ce_forward()[1]
    ops["dense2_ce/fwd"] = softmax_ce_forward
    ops["dense2_ce/bwd"] = lambda x=x: torch.autograd.grad(
        loss, [x, w[8], w[9]], retain_graph=True)

    params = [leaf(p.detach().clone()) for p in w]
    for p, g in zip(params, a.adam_grads, strict=True):
        p.grad = param(g).detach()
    adam = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    ops["adam/step"] = adam.step

    model = torch_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    x0 = nchw(a.x0)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x0), labels).backward()
        optimizer.step()

    ops["train/step"] = train_step
    return ops, [name for name, _, _ in LAYERS]


OPS = {"minicnn": minicnn_ops, "tensorflow": tensorflow_ops, "pytorch": pytorch_ops}


def call_overhead(framework: str) -> float:
    """Seconds per call of an op that does nothing, in the framework's calling convention."""
    import time

    if framework == "tensorflow":
        import tensorflow as tf

        nop = tf.function(lambda x: x)
        arg = tf.constant(0.0)
        call = lambda: nop(arg)  # noqa: E731
    else:
        call = lambda: None  # noqa: E731
    for _ in range(20):
        call()
    samples = []
    for _ in range(200):
        t = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t)
    return float(np.median(samples))
