"""The training loop: compile, fit, evaluate, predict, and the passes the study tools look at.

One training step, in `_train_step`, is the model's `TrainingPass` (step.py):
    forward through every step of the plan (each keeps what its backward needs),
    the loss and the first backward step, from the loss head (`losses.LossHead`: the fused
    (p - y) / N when the output is a softmax),
    backward through every step in reverse (each fills its parameters' .grad),
    one optimizer step (the only place weights change).
The plan (`model.graph_plan`, see minicnn/fast/) decides how the layers run: fused and on
threads by default, or the reference layers one by one with `compile(fast=False)`. Layers get
`training=True` in fit and `training=False` in predict, evaluate and the validation pass.

Threads: `predict`, `evaluate` and `model(x)` each take a plan no other call is using, over
shallow copies of the layers (the same weights, their own caches and scratch arrays), so any
number of threads may call them at once; plans are kept for the next call. Training changes
the model's state, so one training call at a time: `fit`, `train_on_batch` or
`backward_summary` while another runs in another thread raises a RuntimeError before touching
anything (an inference call during training reads the weights as they are at that moment).

`Trainer` is the half of `Model` that runs passes; `Model` (functional.py) holds the layers,
their graph and their weights.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import threading
from collections.abc import Callable, Iterator

import numpy as np

from minicnn import gradcheck, losses, optimizers
from minicnn import metrics as metrics_module
from minicnn._tensor import as_tensor
from minicnn.callbacks import Callback, CallbackList, History, LearningCheck, ProgbarLogger
from minicnn.fast import Step, parallel
from minicnn.fast.graph_plan import GraphPlan
from minicnn.layers.base import shape_fits, shape_str
from minicnn.layers.node import KerasTensor
from minicnn.models import data, warmup
from minicnn.models.compiled import CompiledMetrics
from minicnn.models.step import TrainingPass
from minicnn.recording import BackwardSummary, Recording

# predict and evaluate run batches of up to this many rows side by side, one whole batch per
# thread (`_side_by_side`), and tell the progress bar and the metrics after every
# SIDE_BY_SIDE_GROUP batches per thread.
SIDE_BY_SIDE_MAX_BATCH = 256
SIDE_BY_SIDE_GROUP = 8

# What a deep copy of a model makes anew rather than copies.
_NOT_COPIED = ("_plans", "_idle", "_idle_lock", "_nested_plans", "_local", "_training",
               "_chain_graph")


def _is_chain(model) -> bool:
    """A model whose layers run one after the other, each once (what check_layers checks)."""
    graph = model._graph
    return (len(graph.inputs) == 1 and len(graph.nodes) == len(model._compute_layers)
            and not any(node.multi_input for node in graph.nodes)
            and all(node.inputs[0] is (graph.nodes[k - 1].output if k else graph.inputs[0])
                    for k, node in enumerate(graph.nodes))
            and not any(hasattr(layer, "_graph") for layer in model._compute_layers))


def _side_by_side(steps: range, run: Callable[[int], None], done: Callable[[int], None]) -> None:
    """run(step) for each of `steps`, as many at once as there are threads, then done(step) for
    each in order, a group of SIDE_BY_SIDE_GROUP batches per thread at a time: how predict and
    evaluate run batches of up to SIDE_BY_SIDE_MAX_BATCH rows.

    Why: a step cuts its batch into pieces for the threads and waits for them all, several
    times a batch; at Keras's default batch of 32 that is pieces of 4 images and a wait every
    few hundred microseconds. Whole batches side by side give each thread a batch's worth of
    work between waits (MNIST's model, predict on 10,000 images at batch 32, two threads:
    0.44 s cut, 0.33 s side by side, alternating). `run` runs its batch through
    `Model._batch_pass(rows)`: a plan of its own, so that no scratch array is shared, and the
    batch whole, so that it is cut the same way on any number of threads.
    `done` runs on the calling thread: the progress bar and the metrics hear of the batches
    in order, a group at a time."""
    group = SIDE_BY_SIDE_GROUP * parallel.get_num_threads()
    for first in range(steps.start, steps.stop, group):
        part = range(first, min(first + group, steps.stop))
        parallel.run([functools.partial(run, step) for step in part])
        for step in part:
            done(step)


def _optional_count(value, argument: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Invalid value for argument `{argument}`. Expected a strictly "
                         f"positive integer or None. Received {argument}={value!r}")
    return int(value)


def _compile_option(key: str, value) -> None:
    """Keras's other compile() arguments: those that change nothing here are accepted."""
    if key in ("run_eagerly", "jit_compile", "auto_scale_loss"):
        return  # minicnn always runs eagerly, its kernels always compiled by numba
    if (key == "steps_per_execution" and value == 1) or (key == "loss_weights" and value is None):
        return
    raise TypeError(f"compile() got an argument minicnn does not support: {key}={value!r}. "
                    "minicnn's compile takes optimizer, loss, metrics, weighted_metrics and "
                    "fast (and accepts run_eagerly, jit_compile, steps_per_execution=1).")


class Trainer:
    """compile / fit / evaluate / predict over the model's graph (a mixin of Model)."""

    def _init_training(self) -> None:
        self.optimizer = self.loss = None
        # What compile() was given: names ("accuracy", "mse") and metric objects, as given.
        self.metrics: list = []
        self.weighted_metrics: list = []
        self._train_metrics: CompiledMetrics | None = None
        self.compiled = False
        self.fast = True
        self.stop_training = False
        self.history: History | None = None
        # fit() warns about any layer that did not learn in its first steps (LearningCheck).
        self.learning_check = True
        # Epochs trained so far, over every fit() call: epoch k's shuffle is drawn from
        # (seed, k), so fit(epochs=1) three times shuffles as fit(epochs=3) does.
        self.epochs_trained = 0
        # The training plans (one per fast/reference and set of frozen layers) and the idle
        # inference plans: an inference call takes one (or builds one) and gives it back, so
        # plans are built once, yet no two calls ever share one.
        self._init_locks()

    def _init_locks(self) -> None:
        self._plans: dict[tuple, GraphPlan] = {}
        self._idle: dict[tuple, list[GraphPlan]] = {}
        self._idle_lock = threading.Lock()
        self._nested_plans = {}
        self._local = threading.local()  # what is one thread's own: an open recording
        self._training = threading.RLock()  # a callback inside fit may call backward_summary

    # -- compile and the plan -------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None,
                fast: bool = True, **options) -> None:
        """Keras's compile, plus `fast`: run the fast plan (the default) or, with fast=False,
        the reference layers one by one (slower, the textbook code, same results to float
        rounding). `metrics` are reported without sample weights, `weighted_metrics` with
        them, as in Keras 3."""
        for key, value in options.items():
            _compile_option(key, value)
        self.optimizer = optimizers.get(optimizer)
        if loss is None:
            raise ValueError("Argument `loss` is required, e.g. loss='categorical_crossentropy'")
        if isinstance(loss, (list, tuple, dict)):
            raise NotImplementedError(
                f"compile(loss={loss!r}): one loss per output is not supported yet; minicnn "
                "trains models with one output and one loss.")
        self.loss = losses.get(loss)
        chosen = []
        for given in (metrics, weighted_metrics):
            if isinstance(given, (str, metrics_module.Metric)):
                given = [given]
            for metric in given or []:
                if not metrics_module.known(metric):
                    metrics_module.get(metric, np.zeros(1), np.zeros((1, 2)))  # raises, naming it
            # a saved metric object ({class_name, config}) comes back as the object
            chosen.append([metrics_module.get(m, None, None) if isinstance(m, dict) else m
                           for m in given or []])
        self.metrics, self.weighted_metrics = chosen
        self._train_metrics = None
        self.fast = bool(fast)
        self.compiled = True

    def _compile_config(self) -> dict:
        """What compile() was given, as JSON data, for the model file."""
        config = {"optimizer": {"class_name": type(self.optimizer).__name__,
                                "config": self.optimizer.get_config(),
                                "iterations": self.optimizer.iterations},
                  "loss": losses.serialize(self.loss),
                  "metrics": [metrics_module.serialize(m) for m in self.metrics],
                  "fast": self.fast}
        if self.weighted_metrics:
            config["weighted_metrics"] = [metrics_module.serialize(m)
                                          for m in self.weighted_metrics]
        return config

    def _log_names(self) -> list[str]:
        """The names fit logs (before "val_"), in Keras 3's (sorted) order."""
        names = {"loss"}
        plain = set()
        for weighted, given in ((False, self.metrics), (True, self.weighted_metrics)):
            for m in given:
                name = m if isinstance(m, str) else (
                    m.get("config", {}).get("name") if isinstance(m, dict) else m.name)
                if weighted and name in plain:
                    name = f"weighted_{name}"
                (names.add(name), plain.add(name) if not weighted else None)
        return sorted(names)

    def _new_metrics(self, y: np.ndarray, fresh: bool) -> CompiledMetrics:
        probe = np.zeros((1, *self.output_shape[1:]), dtype=self.dtype)
        return CompiledMetrics(self.metrics, self.weighted_metrics, y[:1], probe, fresh)

    def _reset_plans(self) -> None:
        """Forget every plan: the layers changed."""
        self._plans.clear()
        with self._idle_lock:
            self._idle.clear()

    def _plan_key(self, fast: bool) -> tuple:
        # A frozen layer changes the plan (which steps skip their input gradient, how a
        # BatchNormalization runs), so the plans are kept per set of trainable weights.
        return (fast, self.dtype, tuple(layer.trainable for layer in self._compute_layers),
                tuple(id(p) for p in self.params))

    @property
    def plan(self) -> tuple[Step, ...]:
        """The steps fit, evaluate and predict run, in order; `step.layers` are the layers each
        covers. Read-only: rebuilt when layers are added or `compile(fast=...)` changes."""
        return self._graph_plan(self.fast).steps

    @property
    def graph_plan(self) -> GraphPlan:
        """The plan with its graph: which tensors each step reads and writes
        (minicnn/fast/graph_plan.py)."""
        return self._graph_plan(self.fast)

    def _graph_plan(self, fast: bool) -> GraphPlan:
        if not self.built:
            raise ValueError(f"Model '{self.name}' has no plan before it is built: give the "
                             "first layer input_shape=... or call the model on data.")
        key = self._plan_key(fast)
        if key not in self._plans:
            self._plans[key] = GraphPlan(self._graph, fast=fast)
        return self._plans[key]

    def _steps(self) -> GraphPlan:
        """The plan a training pass runs. A recording shows every layer's own pass, so it runs
        the reference layers."""
        return self._graph_plan(self._fast_now())

    def _fast_now(self) -> bool:
        """Whether this call runs the fast plan: compile(fast=True), no recording, and its
        kernels compiled (on a fresh machine they compile in the background meanwhile, and
        the reference layers run: minicnn/models/warmup.py)."""
        return self.fast and self._recording is None and warmup.ready(self)

    @property
    def _flow(self):
        """callbacks.GradientFlow's hook, set for the steps it records (this thread's only)."""
        return getattr(self._local, "flow", None)

    @contextlib.contextmanager
    def _inference_plan(self) -> Iterator[GraphPlan]:
        """A plan for one inference call, over shallow copies of the layers: the same Parameter
        objects, but caches and scratch arrays of the call's own, so that calls from several
        threads never write to anything they share. Plans are reused from call to call."""
        if not self.built:
            self._graph_plan(self.fast)  # raises the not-built error
        key = self._plan_key(self._fast_now())
        with self._idle_lock:
            idle = self._idle.get(key)
            plan = idle.pop() if idle else None
        if plan is None:
            plan = GraphPlan(self._graph, fast=key[0], clone=True)
        try:
            yield plan
        finally:
            with self._idle_lock:
                self._idle.setdefault(key, []).append(plan)

    @contextlib.contextmanager
    def _batch_pass(self, whole_rows: int | None = None) -> Iterator[TrainingPass]:
        """The training pass over an inference plan of this call's own (`_inference_plan`).
        whole_rows: the rows of the batch it will run, which its steps then run as one piece
        on this thread rather than cut for the threads (how `_side_by_side` runs a batch);
        None: cut as usual."""
        cut = (contextlib.nullcontext() if whole_rows is None
               else parallel.cut_batches([(0, whole_rows)]))
        with cut, self._inference_plan() as plan:
            yield self.training_pass(plan)

    @property
    def _recording(self) -> Recording | None:
        return getattr(self._local, "recording", None)

    @contextlib.contextmanager
    def _one_training_call(self, method: str) -> Iterator[None]:
        if not self._training.acquire(blocking=False):
            raise RuntimeError(f"`{method}()` was called on model '{self.name}' while another "
                               "training call (fit, train_on_batch or backward_summary) runs on "
                               "it in another thread; a model trains one call at a time.")
        try:
            with parallel.single_threaded_blas():
                yield
        finally:
            self._training.release()

    def _require_compiled(self, method: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"You must call `compile()` before using the model "
                               f"(called `{method}()` on model '{self.name}').")
        if self._graph is not None and len(self._graph.outputs) > 1:
            raise NotImplementedError(
                f"`{method}()`: model '{self.name}' has {len(self._graph.outputs)} outputs; "
                "minicnn trains and evaluates models with one output (one loss per output is "
                "not supported yet). predict() and model(x) work on it.")

    # -- one batch: the training pass (step.py) ----------------------------------------------
    def training_pass(self, plan: GraphPlan | None = None) -> TrainingPass:
        """The pass (forward, loss, backward, penalties, draws) over `plan`, by default the one
        fit runs; made once per plan and loss (minicnn/models/step.py)."""
        if plan is None:
            plan = self._steps()
        passes = getattr(plan, "training_pass", None)
        # A pass belongs to one plan, model and loss; `plan.tail(k)` copies the plan's
        # attributes, this cache included, so the plan is checked too.
        if (passes is None or passes.plan is not plan or passes.model is not self
                or passes.head.loss is not self.loss):
            passes = plan.training_pass = TrainingPass(self, plan)
        return passes

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None,
                       return_dict: bool = False):
        """One optimizer step on the batch (x, y); returns [loss, *metrics] of that batch (the
        loss alone without metrics, the logs with return_dict=True), as Keras's."""
        self._require_compiled("train_on_batch")
        xs, y, sw = self._as_data(x, y, "train_on_batch", sample_weight, class_weight)
        with self._one_training_call("train_on_batch"):
            loss_sum, out = self._train_step(xs, y, sw)
            tracker = self._new_metrics(y, fresh=True)
            tracker.update(loss_sum, y, out, sw)
        return self._returned(tracker, return_dict)

    def _train_step(self, xs: list[np.ndarray], y: np.ndarray, sample_weight=None
                    ) -> tuple[float, np.ndarray]:
        """Forward, loss, backward, optimizer step on xs (one array per model input); returns
        the batch's loss times its size (what the epoch's mean adds up) and the output."""
        passes, rec = self.training_pass(), self._recording
        self._local.last_batch = xs  # LearningCheck reads it at the end of an epoch
        passes.seed_draws(self.optimizer.iterations)
        out = passes.forward(xs, training=True, recording=rec, hook=self._flow)
        batch = passes.loss(y, out, sample_weight)
        if rec is not None:
            rec.loss = batch / len(y)
        passes.backward(y, out, recording=rec, sample_weight=sample_weight)
        self.optimizer.step(self.params)
        return batch, out

    # -- data checks ----------------------------------------------------------------------------
    def _as_inputs(self, x, method: str) -> list[np.ndarray]:
        """x as one contiguous array per model input, in the model's dtype, checked."""
        if not self.built and not isinstance(x, (list, tuple, dict)):
            self.build((None, *np.shape(x)[1:]))
        inputs = self._graph.inputs
        if isinstance(x, dict):
            missing = [t.name for t in inputs if t.name not in x]
            if missing:
                raise ValueError(f"{method}(): the inputs are given by name, and {missing} "
                                 f"is missing; model '{self.name}' takes "
                                 f"{[t.name for t in inputs]}")
            xs = [x[t.name] for t in inputs]
        elif isinstance(x, (list, tuple)) and len(inputs) > 1:
            xs = list(x)
        else:
            xs = [x]
        if len(xs) != len(inputs):
            raise ValueError(f"{method}(): model '{self.name}' takes {len(inputs)} inputs "
                             f"({[t.name for t in inputs]}), received {len(xs)}")
        out = []
        for t, a in zip(inputs, xs, strict=True):
            a = np.asarray(a)
            if a.dtype.kind not in "biuf":
                # complex input would lose its imaginary part in the cast, silently
                raise ValueError(f"{method}(): input '{t.name}' is {a.dtype}; minicnn takes "
                                 f"real numbers (bool, integer or float arrays)")
            expected = t.shape
            if not shape_fits(expected, a.shape):
                where = (f"layer '{self.layers[0].name}' ({type(self.layers[0]).__name__})"
                         if len(inputs) == 1 and not getattr(self.layers[0], "is_input_layer",
                                                             False)
                         else f"input '{t.name}' of model '{self.name}'")
                raise ValueError(
                    f"{method}(): Input to {where} is incompatible: expected shape "
                    f"{shape_str(expected)}, received shape {shape_str(a.shape)}")
            # Like Keras, data of another dtype (uint8 images, float64 arrays) is cast to the
            # model's dtype once here, at the boundary; layers themselves never change a dtype.
            out.append(np.ascontiguousarray(a, dtype=self.dtype))
        if len({len(a) for a in out}) > 1:
            raise ValueError(f"{method}(): all inputs must have the same number of samples; "
                             f"received {[len(a) for a in out]}")
        return out

    def _as_input(self, x, method: str) -> np.ndarray:
        """x for a one-input model (the study tools' and the CLI's case)."""
        return self._as_inputs(x, method)[0]

    def _as_data(self, x, y, method: str, sample_weight=None, class_weight=None
                 ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
        """Inputs, targets and per-sample weights (None when all weigh 1), checked."""
        if y is None:
            raise ValueError(f"{method}(): the targets y are missing; pass y=... with arrays x "
                             "(or a generator/iterable of (x, y) batches as x)")
        xs = self._as_inputs(x, method)
        y = np.asarray(y)
        if y.ndim == 0 or len(xs[0]) != len(y):
            raise ValueError(f"{method}(): x and y must have the same number of samples; x has "
                             f"{len(xs[0])}, y has {1 if y.ndim == 0 else len(y)}")
        probe = np.zeros((1, *self.output_shape[1:]), dtype=self.dtype)
        self.loss.targets(y[:1], probe)  # raises with a hint when labels have the wrong form
        if y.dtype.kind == "f" or not isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            y = y.astype(self.dtype, copy=False)
        return xs, y, data.sample_weights(y, sample_weight, class_weight, method)

    @staticmethod
    def _check_batch_size(batch_size) -> int:
        if batch_size is None:
            return 32  # Keras's default
        if (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool)
                or batch_size <= 0):
            raise ValueError(f"Invalid value for argument `batch_size`. Expected a strictly "
                             f"positive integer. Received batch_size={batch_size!r}")
        return int(batch_size)

    # -- fit / evaluate / predict ---------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = 1, callbacks: list[Callback] | None = None,
            validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            class_weight: dict | None = None, sample_weight=None, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, distribute=None) -> History:
        """Train for `epochs` epochs; returns the History (also kept in `model.history`).

        Keras's semantics: x and y are arrays (a list or dict of arrays for several inputs), or
        x is a generator or an iterable of (x, y[, sample_weight]) batches (models/data.py);
        `validation_split` holds out the *last* fraction of x and y (and sample_weight), before
        any shuffling; each epoch reshuffles the training part only; the last, partial batch is
        trained; logged values are means over the epoch so far, by Keras 3's names and order.
        `class_weight` {class: weight} or `sample_weight` (N,) weigh each sample's loss (and
        the weighted_metrics); `steps_per_epoch` cuts epochs short (or sets a generator's).

        `distribute`: None trains here; `minicnn.distributed.DataParallel(workers=N)` splits
        each batch over N Ray workers, with the same weights at the end (docs/distributed.md).
        Any object with `session(model, x, y, sample_weight)`, a context manager whose value
        has `train_step(idx) -> (batch loss times its size, output)`, can take its place: the
        loop, callbacks, history, validation and progress output stay the same.
        """
        self._require_compiled("fit")
        options = dict(batch_size=batch_size, epochs=epochs, verbose=verbose,
                       callbacks=callbacks, validation_split=validation_split,
                       validation_data=validation_data, shuffle=shuffle,
                       class_weight=class_weight, sample_weight=sample_weight,
                       initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                       validation_steps=validation_steps,
                       validation_batch_size=validation_batch_size, distribute=distribute)
        with self._one_training_call("fit"):
            return self._fit(x, y, **options)

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, shuffle, class_weight, sample_weight, initial_epoch,
             steps_per_epoch, validation_steps, validation_batch_size, distribute) -> History:
        batch_size = self._check_batch_size(batch_size)
        steps_per_epoch = _optional_count(steps_per_epoch, "steps_per_epoch")
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"Invalid value for argument `epochs`. Expected a non-negative "
                             f"integer. Received epochs={epochs!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"Invalid value for argument `validation_split`. Expected a value "
                             f"in [0, 1). Received validation_split={validation_split!r}")
        if data.is_batches(x):
            source = self._batch_source(x, y, sample_weight, class_weight, steps_per_epoch,
                                        "fit")
            if validation_split:
                raise ValueError("fit(): `validation_split` is only supported for arrays; with "
                                 "a generator or a dataset, pass validation_data instead.")
            if distribute is not None:
                raise NotImplementedError("fit(distribute=...) trains on arrays; a generator "
                                          "or a dataset is trained here (distribute=None).")
            y_probe = None
        else:
            data.check_array_like(x, "x", "fit")
            xs, y, sw = self._as_data(x, y, "fit", sample_weight, class_weight)
            y_probe = y
        val = None
        if validation_data is not None:
            val = self._validation(validation_data, validation_steps)
        elif validation_split and y_probe is not None:
            split_at = math.floor(len(y) * (1.0 - validation_split))
            if split_at in (0, len(y)):
                raise ValueError(f"Training data contains {len(y)} samples, too few to split "
                                 f"with validation_split={validation_split}.")
            val = (([a[split_at:] for a in xs], y[split_at:],
                    None if sw is None else sw[split_at:]), None)
            xs, y = [a[:split_at] for a in xs], y[:split_at]
            sw = None if sw is None else sw[:split_at]
        if y_probe is not None:
            source = data.ArrayBatches(len(y), batch_size, shuffle, steps_per_epoch, self.seed)
        self.history = History()
        params = {"verbose": verbose, "epochs": epochs, "steps": source.steps}
        self.history.params = params
        defaults = [LearningCheck()] if initial_epoch == 0 and self.learning_check else []
        cbs = CallbackList([*defaults, *(callbacks or []), ProgbarLogger(verbose),
                            self.history], self, params)
        self.stop_training = False
        # A model whose weights came from a run of `initial_epoch` epochs (load_weights) goes on
        # with that run's shuffles.
        self.epochs_trained = max(self.epochs_trained, initial_epoch)
        val_batch = validation_batch_size or batch_size
        if y_probe is None:
            def batches():
                for bx, by, bw in source.epoch():
                    bxs, by, bw = self._as_data(bx, by, "fit", bw, class_weight)
                    yield lambda bxs=bxs, by=by, bw=bw: (self._train_step(bxs, by, bw), by, bw)
            self._fit_epochs(batches, val, val_batch, epochs, initial_epoch, cbs, params)
        elif distribute is None:
            def batches():
                for idx in source.epoch(self.epochs_trained - 1):
                    by, bw = y[idx], None if sw is None else sw[idx]
                    yield lambda idx=idx, by=by, bw=bw: (
                        self._train_step([a[idx] for a in xs], by, bw), by, bw)
            self._fit_epochs(batches, val, val_batch, epochs, initial_epoch, cbs, params)
        else:
            if len(xs) > 1:
                raise NotImplementedError(f"fit(distribute=...) trains models with one input; "
                                          f"model '{self.name}' has {len(xs)}")
            with distribute.session(self, xs[0], y, sw) as session:
                def batches():
                    for idx in source.epoch(self.epochs_trained - 1):
                        yield lambda idx=idx: (session.train_step(idx), y[idx],
                                               None if sw is None else sw[idx])
                self._fit_epochs(batches, val, val_batch, epochs, initial_epoch, cbs, params)
        return self.history

    def _batch_source(self, x, y, sample_weight, class_weight, steps, method: str):
        if y is not None or sample_weight is not None:
            raise ValueError(f"{method}(): `y` and `sample_weight` must not be given when x is "
                             f"a generator or a dataset ({type(x).__name__}); yield batches "
                             "(x, y) or (x, y, sample_weight) from it instead.")
        return data.IterableBatches(x, steps, method)

    def _validation(self, validation_data, validation_steps):
        """validation_data as (arrays (xs, y, sw), None) or (None, a batch source)."""
        if data.is_batches(validation_data):
            return None, data.IterableBatches(validation_data, validation_steps, "fit")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("Invalid value for argument `validation_data`. Expected a tuple "
                             "(x_val, y_val) or (x_val, y_val, val_sample_weight), or a "
                             f"generator/dataset of batches. Received {type(validation_data)}")
        x_val, y_val, *w = validation_data
        return self._as_data(x_val, y_val, "fit (validation_data)", *w), None

    def _fit_epochs(self, batches, val, val_batch, epochs, initial_epoch, callbacks,
                    params) -> None:
        """The epochs of fit; `batches()` yields one epoch's training steps, each a function
        that runs it and returns ((batch loss times its size, output), targets, weights)."""
        if self.fast and params["verbose"] != 0:
            warmup.announce(self)  # one line, on a fresh machine only
        callbacks.on_train_begin()
        tracker = None
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            # Each epoch's order depends only on (seed, epochs trained so far): models/data.py.
            self.epochs_trained += 1
            logs, steps_done = {}, 0
            for step, run in enumerate(batches()):
                callbacks.on_train_batch_begin(step)
                (batch_loss, out), by, bw = run()
                if tracker is None:
                    tracker = self._train_metrics = self._new_metrics(by, fresh=False)
                if step == 0:
                    tracker.reset()
                tracker.update(batch_loss, by, out, bw)
                logs = tracker.logs()
                steps_done = params["steps_done"] = step + 1
                callbacks.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if steps_done == 0:  # the data ran out (models/data.py warned)
                break
            if params["steps"] is None:
                params["steps"] = steps_done  # a generator's length, known after one epoch
            if val is not None:
                logs.update({f"val_{k}": v for k, v in
                             self._evaluate(val[0], val[1], val_batch).logs().items()})
                logs = dict(sorted(logs.items()))  # Keras 3 sorts the epoch's logs as a whole
            callbacks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callbacks.on_train_end()

    @staticmethod
    def _returned(tracker: CompiledMetrics, return_dict: bool = False):
        """What Keras's train_on_batch, evaluate and test_on_batch return: the logs as a dict,
        or [loss, *metrics], or the loss alone when there are no metrics."""
        if return_dict:
            return tracker.logs()
        values = tracker.ordered()
        return values if len(values) > 1 else values[0]

    def _evaluate(self, arrays, source, batch_size: int, callbacks=None,
                  params=None, side_by_side: bool = True) -> CompiledMetrics:
        """The loss and metrics over arrays (xs, y, sw), or over a batch source's batches.
        side_by_side: arrays of several batches of up to SIDE_BY_SIDE_MAX_BATCH rows may run
        whole batches on the threads at once (not with user callbacks, which hear of each
        batch as it runs)."""
        if (side_by_side and arrays is not None and self._recording is None
                and batch_size < len(arrays[1]) and batch_size <= SIDE_BY_SIDE_MAX_BATCH):
            return self._evaluate_side_by_side(arrays, batch_size, callbacks, params)
        tracker = None
        with self._inference_plan() as plan:
            passes = self.training_pass(plan)
            if arrays is not None:
                xs, y, sw = arrays
                batches = ((start, [a[start:start + batch_size] for a in xs],
                            y[start:start + batch_size],
                            None if sw is None else sw[start:start + batch_size])
                           for start in range(0, len(y), batch_size))
            else:
                batches = ((None, *self._as_data(bx, by, "evaluate", bw))
                           for bx, by, bw in source.epoch())
            for step, (_, bxs, by, bw) in enumerate(batches):
                if callbacks:
                    callbacks.on_test_batch_begin(step)
                out = passes.forward(bxs, training=False, recording=self._recording)
                if tracker is None:
                    tracker = self._new_metrics(by, fresh=True)
                tracker.update(passes.loss(by, out, bw), by, out, bw)
                if params is not None:
                    params["steps_done"] = step + 1
                if callbacks:
                    callbacks.on_test_batch_end(step, tracker.logs())
        if tracker is None:
            raise ValueError("evaluate(): the data gave no batch to evaluate.")
        return tracker

    def _evaluate_side_by_side(self, arrays, batch_size: int, callbacks=None,
                               params=None) -> CompiledMetrics:
        """`_evaluate` over arrays, whole batches side by side (`_side_by_side`): each batch's
        loss and output on a thread, the metrics updated in batch order on this one."""
        xs, y, sw = arrays
        starts = range(0, len(y), batch_size)
        results: list = [None] * len(starts)
        tracker = self._new_metrics(y[:batch_size], fresh=True)

        def rows(step: int) -> slice:
            return slice(starts[step], starts[step] + batch_size)

        def run(step: int) -> None:
            r, bw = rows(step), None if sw is None else sw[rows(step)]
            with self._batch_pass(len(y[r])) as passes:
                out = passes.forward([a[r] for a in xs], training=False)
                results[step] = (passes.loss(y[r], out, bw), np.copy(out))

        def done(step: int) -> None:
            r, bw = rows(step), None if sw is None else sw[rows(step)]
            if callbacks:
                callbacks.on_test_batch_begin(step)
            loss, out = results[step]
            results[step] = None
            tracker.update(loss, y[r], out, bw)
            if params is not None:
                params["steps_done"] = step + 1
            if callbacks:
                callbacks.on_test_batch_end(step, tracker.logs())

        _side_by_side(range(len(starts)), run, done)
        return tracker

    def evaluate(self, x=None, y=None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight=None, steps: int | None = None,
                 callbacks: list[Callback] | None = None, return_dict: bool = False):
        """[loss, *metrics] over (x, y) (a plain float when there are no metrics; the logs with
        return_dict=True); x may be a generator or dataset of batches, `steps` of them;
        verbose=1 ("auto") draws a progress bar, 2 prints one line, 0 nothing, as Keras."""
        self._require_compiled("evaluate")
        batch_size = self._check_batch_size(batch_size)
        steps = _optional_count(steps, "steps")
        if data.is_batches(x):
            arrays, source = None, self._batch_source(x, y, sample_weight, None, steps,
                                                      "evaluate")
            total = source.steps
        else:
            data.check_array_like(x, "x", "evaluate")
            arrays, source = self._as_data(x, y, "evaluate", sample_weight), None
            if steps is not None:
                arrays = tuple(None if a is None else (
                    [b[:steps * batch_size] for b in a] if isinstance(a, list)
                    else a[:steps * batch_size]) for a in arrays)
            total = math.ceil(len(arrays[1]) / batch_size)
        params = {"verbose": verbose, "steps": total}
        cbs = CallbackList([*(callbacks or []), ProgbarLogger(verbose)], self, params)
        cbs.on_test_begin()
        with parallel.single_threaded_blas():
            tracker = self._evaluate(arrays, source, batch_size, cbs, params,
                                     side_by_side=not callbacks)
        cbs.on_test_end(tracker.logs())
        return self._returned(tracker, return_dict)

    def predict(self, x, batch_size: int | None = None, verbose: int | str = "auto",
                steps: int | None = None,
                callbacks: list[Callback] | None = None) -> np.ndarray:
        """The model's outputs (class probabilities for a softmax head), (N, *output_shape), or
        a list of them for a model with several outputs; x may be a generator or dataset of
        batches (x, or (x, y[, w]) whose x is used), `steps` of them; verbose as in
        `evaluate`."""
        batch_size = self._check_batch_size(batch_size)
        steps = _optional_count(steps, "steps")
        if data.is_batches(x):
            return self._predict_batches(data.IterableBatches(x, steps, "predict"), verbose,
                                         callbacks)
        data.check_array_like(x, "x", "predict")
        xs = self._as_inputs(x, "predict")
        n = len(xs[0]) if steps is None else min(len(xs[0]), steps * batch_size)
        cbs = CallbackList([*(callbacks or []), ProgbarLogger(verbose)], self,
                           {"verbose": verbose, "steps": math.ceil(n / batch_size)})
        cbs.on_predict_begin()
        outs: list[np.ndarray] | None = None
        starts = range(0, n, batch_size)
        side_by_side = (not callbacks and self._recording is None and len(starts) > 1
                        and batch_size <= SIDE_BY_SIDE_MAX_BATCH)
        with parallel.single_threaded_blas():
            # The first batch sizes outs (an output may have None sizes); side by side, the
            # others then run on all the threads at once.
            for step, start in enumerate(starts[:1] if side_by_side else starts):
                cbs.on_predict_batch_begin(step)
                outs = self._predict_into(outs, xs, start, min(start + batch_size, n), n,
                                          whole=side_by_side)
                cbs.on_predict_batch_end(step)
            if side_by_side:
                self._predict_side_by_side(xs, outs, starts, batch_size, cbs)
        if outs is None:
            outs = [np.empty((0, *(d or 0 for d in t.shape[1:])), dtype=self.dtype)
                    for t in self._graph.outputs]
        cbs.on_predict_end()
        return outs[0] if len(outs) == 1 else outs

    def _predict_into(self, outs: list[np.ndarray] | None, xs: list[np.ndarray], start: int,
                      stop: int, n: int, whole: bool = False) -> list[np.ndarray]:
        """outs[k][start:stop] <- output k for rows start..stop-1 of xs; outs (one array of n
        rows per output) is made from the first batch if None (an output's shape may have None
        sizes). Copied before the plan goes back for another call to reuse. whole: as
        `_batch_pass`."""
        with self._batch_pass(stop - start if whole else None) as passes:
            got = passes.forward([a[start:stop] for a in xs], False, self._recording)
            got = got if isinstance(got, list) else [got]
            if outs is None:
                outs = [np.empty((n, *g.shape[1:]), dtype=g.dtype) for g in got]
            for o, g in zip(outs, got, strict=True):
                o[start:stop] = g
        return outs

    def _predict_side_by_side(self, xs: list[np.ndarray], outs: list[np.ndarray],
                              starts: range, batch_size: int, cbs: CallbackList) -> None:
        """predict's batches after the first into outs, side by side (`_side_by_side`)."""
        n = len(outs[0])

        def run(step: int) -> None:
            self._predict_into(outs, xs, starts[step], min(starts[step] + batch_size, n), n,
                               whole=True)

        def done(step: int) -> None:
            cbs.on_predict_batch_begin(step)
            cbs.on_predict_batch_end(step)

        _side_by_side(range(1, len(starts)), run, done)

    def _predict_batches(self, source, verbose, callbacks):
        params = {"verbose": verbose, "steps": source.steps}
        cbs = CallbackList([*(callbacks or []), ProgbarLogger(verbose)], self, params)
        cbs.on_predict_begin()
        parts: list[list[np.ndarray]] = [[] for _ in self._graph.outputs]
        with parallel.single_threaded_blas(), self._inference_plan() as plan:
            for step, (bx, _, _) in enumerate(source.epoch()):
                cbs.on_predict_batch_begin(step)
                got = self.training_pass(plan).forward(self._as_inputs(bx, "predict"), False,
                                                       self._recording)
                for part, g in zip(parts, got if len(parts) > 1 else [got], strict=True):
                    part.append(np.copy(g))
                params["steps_done"] = step + 1
                cbs.on_predict_batch_end(step)
        cbs.on_predict_end()
        if not parts[0]:
            raise ValueError("predict(): the data gave no batch to predict on.")
        outs = [np.concatenate(p) for p in parts]
        return outs[0] if len(outs) == 1 else outs

    def predict_on_batch(self, x) -> np.ndarray:
        """The outputs for one batch x, as Keras's `predict_on_batch` (no progress output)."""
        return self(x, training=False)

    def test_on_batch(self, x, y, sample_weight=None, return_dict: bool = False):
        """[loss, *metrics] of one batch (a plain float without metrics), as Keras's
        `test_on_batch`: no weight changes, layers in inference mode."""
        self._require_compiled("test_on_batch")
        arrays = self._as_data(x, y, "test_on_batch", sample_weight)
        with parallel.single_threaded_blas():
            tracker = self._evaluate(arrays, None, max(len(arrays[1]), 1))
        return self._returned(tracker, return_dict)

    def __call__(self, x, training: bool | None = None) -> np.ndarray:
        """The model's output for x, (N, *output_shape), as Keras's `model(x, training=...)`.
        training=None, as in Keras 3, leaves each layer its own default: random augmentation
        layers augment (a `data_augmentation` Sequential called on images does), Dropout and
        BatchNormalization infer."""
        if isinstance(x, KerasTensor) or (isinstance(x, (list, tuple)) and x
                                          and isinstance(x[0], KerasTensor)):
            return self._call_symbolic(x)  # the model as a layer of another model
        xs = self._as_inputs(x, "call")
        with self._inference_plan() as plan:
            out = self.training_pass(plan).forward(xs, training, self._recording)
        # a copy (the plan reuses its buffers) that also answers .numpy(), as Keras's tensors
        if isinstance(out, list):
            return [as_tensor(np.copy(o)) for o in out]
        return as_tensor(np.copy(out))

    # -- looking inside -------------------------------------------------------------------------
    @contextlib.contextmanager
    def record(self) -> Iterator[Recording]:
        """Record every layer's input, output, dout, dx and parameter gradients of each pass
        run inside the block (the last one is kept): see minicnn/recording.py. Inside the block
        the model runs its reference layers one by one, whatever `fast` is."""
        self._local.recording = Recording()
        try:
            yield self._local.recording
        finally:
            self._local.recording = None

    def backward_summary(self, x=None, y=None, print_fn=None) -> BackwardSummary:
        """The backward pass as a table like summary(): per layer the shape and norm of dL/dy,
        the norms of dL/dx and dL/dW, the last step's update-to-weight ratio, and the share of
        ReLU zeros, dead units, pool ties. Runs one forward and backward pass on (x, y), without an
        optimizer step; printed (and returned) like summary()."""
        self._require_compiled("backward_summary")
        if x is None or y is None:
            raise ValueError("backward_summary() needs a batch: backward_summary(x, y), e.g. "
                             "the first 128 training images and their labels")
        xs, y, _ = self._as_data(x, y, "backward_summary")
        with self._one_training_call("backward_summary"), self.record() as rec:
            passes = self.training_pass()
            out = passes.forward(xs, training=True, recording=rec)
            rec.loss = passes.loss(y, out) / len(y)
            passes.backward(y, out, recording=rec)
        summary = BackwardSummary(self.name, rec, self.optimizer, self._compute_layers)
        if print_fn is not False:
            (print_fn or print)(str(summary))
        return summary

    def explain(self, x, labels=None, layer: str | None = None):
        """Saliency (|dL/dx| per pixel) and Grad-CAM at a conv layer (the last by default) for
        images x, each explained for its label (the predicted class by default), from one
        forward and one backward pass: see minicnn/models/explain.py."""
        from minicnn.models.explain import explain

        return explain(self, x, labels, layer)

    def gradient_check(self, x, y, max_checks: int | None = 20, seed: int = 0,
                       epsilon: float | None = None, tolerance: float | None = None):
        """Check every layer's gradients, the loss included, against float64 central
        differences on (x, y): see minicnn/gradcheck.py. `max_checks` elements are sampled per
        tensor (None checks every one). The model itself is not changed."""
        self._require_compiled("gradient_check")
        xs, y, _ = self._as_data(x, y, "gradient_check")
        epsilon = gradcheck.EPSILON if epsilon is None else epsilon
        tolerance = gradcheck.TOLERANCE if tolerance is None else tolerance
        if not _is_chain(self):
            return self._graph_gradient_check(xs, y, max_checks, seed, epsilon, tolerance)
        return gradcheck.check_layers(
            self._compute_layers, xs[0], y=y, loss=self.loss, seed=seed,
            epsilon=epsilon, tolerance=tolerance, max_checks=max_checks,
            title=f"model '{self.name}' with {self.loss.name}")

    def _graph_gradient_check(self, xs, y, max_checks, seed, epsilon, tolerance):
        """The whole graph checked at once: each weight and the input against central
        differences of the loss, on a float64 copy run on its reference layers."""
        twin = copy.deepcopy(self).set_dtype(np.float64)
        passes = TrainingPass(twin, GraphPlan(twin._graph, fast=False,
                                              inputs_need_gradient=True))
        xs = [a.astype(np.float64) for a in xs]
        y = y.astype(np.float64) if y.dtype.kind == "f" else y
        iterations = twin.optimizer.iterations

        def f() -> float:
            passes.seed_draws(iterations)
            return passes.loss(y, passes.forward(xs, training=True)) / len(y)

        passes.seed_draws(iterations)
        dxs = passes.backward(y, passes.forward(xs, training=True))
        tensors = [(p.name, p.value, p.grad.copy()) for p in twin.params]
        tensors += [(f"input {t.name}", a, dx) for t, a, dx in
                    zip(twin._graph.inputs, xs, dxs, strict=True) if dx is not None]
        return gradcheck.check_function(tensors, f, seed=seed, epsilon=epsilon,
                                        tolerance=tolerance, max_checks=max_checks,
                                        title=f"model '{self.name}' with {self.loss.name}")

    def __deepcopy__(self, memo):
        """A model copy with copies of every layer and weight (and the optimizer's state), and
        locks and plans of its own."""
        clone = copy.copy(self)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key not in _NOT_COPIED:
                clone.__dict__[key] = copy.deepcopy(value, memo)
        clone.__dict__.pop("_chain_graph", None)
        clone._init_locks()
        return clone
