"""The training loop: compile, fit, evaluate, predict, and the passes the study tools look at.

One training step, in `_train_step`:
    forward through every step of the plan (each keeps what its backward needs),
    the loss and the first backward step, from the loss head (`losses.LossHead`: the fused
    (p - y) / N when the output is a softmax),
    backward through every step in reverse (each fills its parameters' .grad),
    one optimizer step (the only place weights change).
The plan (`model.plan`, see minicnn/fast/) decides how the layers run: fused and on threads by
default, or the reference layers one by one with `compile(fast=False)`. Layers get
`training=True` in fit and `training=False` in predict, evaluate and the validation pass.

Threads: `predict`, `evaluate` and `model(x)` run on a plan of their own for each call, over
shallow copies of the layers (the same weights, their own caches and scratch arrays), so any
number of threads may call them at once. Training changes the model's state, so one training
call at a time: `fit`, `train_on_batch` or `backward_summary` while another runs in another
thread raises a RuntimeError before touching anything (an inference call during training reads
the weights as they are at that moment).

`Trainer` is the half of `Sequential` that runs passes; `Sequential` (sequential.py) holds the
layers and their weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from collections.abc import Iterator

import numpy as np

from minicnn import gradcheck, losses, optimizers
from minicnn.callbacks import Callback, CallbackList, History, LearningCheck, ProgbarLogger
from minicnn.fast import Step, backward_pass, make_plan, parallel
from minicnn.metrics import ACCURACY_NAMES
from minicnn.recording import BackwardSummary, Recording


def step_generator(model_seed: int, layer, iterations: int, k: int) -> np.random.Generator:
    """The generator a drawing layer (Dropout, RandomFlip) at place `k` of the model uses in the
    training step after `iterations` steps: seeded from (its seed or the model's, the step
    number, its place), so that a run resumed from a model file, which keeps the step count,
    draws exactly what a run straight through would (and a data-parallel worker draws what the
    local run draws)."""
    seed = getattr(layer, "seed", None)
    return np.random.default_rng((model_seed if seed is None else seed, iterations, k))


class Trainer:
    """compile / fit / evaluate / predict over the model's `layers` (a mixin of Sequential)."""

    def _init_training(self) -> None:
        self.optimizer = self.loss = None
        self.metrics: list[str] = []
        self.compiled = False
        self.fast = True
        self.stop_training = False
        self.history: History | None = None
        # fit() warns about any layer that did not learn in its first steps (LearningCheck).
        self.learning_check = True
        # Epochs trained so far, over every fit() call: epoch k's shuffle is drawn from
        # (seed, k), so fit(epochs=1) three times shuffles as fit(epochs=3) does.
        self.epochs_trained = 0
        self._plans: dict[bool, tuple[Step, ...]] = {}
        self._local = threading.local()  # what is one thread's own: an open recording
        self._training = threading.RLock()  # a callback inside fit may call backward_summary

    # -- compile and the plan -------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, fast: bool = True) -> None:
        """Keras's compile, plus `fast`: run the fast plan (the default) or, with fast=False,
        the reference layers one by one (slower, the textbook code, same results to float
        rounding)."""
        self.optimizer = optimizers.get(optimizer)
        if loss is None:
            raise ValueError("Argument `loss` is required, e.g. loss='categorical_crossentropy'")
        self.loss = losses.get(loss)
        self.metrics = []
        for metric in metrics or []:
            if metric not in ACCURACY_NAMES:
                raise ValueError(f"Invalid value in argument `metrics`. Expected one of "
                                 f"{list(ACCURACY_NAMES)}. Received {metric!r}")
            self.metrics.append(metric)
        self.fast = bool(fast)
        self.compiled = True

    @property
    def plan(self) -> tuple[Step, ...]:
        """The steps fit, evaluate and predict run, in order; `step.layers` are the layers each
        covers. Read-only: rebuilt when layers are added or `compile(fast=...)` changes."""
        return self._plan(self.fast)

    def _plan(self, fast: bool) -> tuple[Step, ...]:
        if not self.built:
            raise ValueError(f"Model '{self.name}' has no plan before it is built: give the "
                             "first layer input_shape=... or call the model on data.")
        if fast not in self._plans:
            self._plans[fast] = make_plan(self.layers, fast=fast)
        return self._plans[fast]

    def _steps(self) -> tuple[Step, ...]:
        """The plan a training pass runs. A recording shows every layer's own pass, so it runs
        the reference layers."""
        return self._plan(self.fast and self._recording is None)

    def _inference_steps(self) -> tuple[Step, ...]:
        """A plan for one inference call, over shallow copies of the layers: the same Parameter
        objects, but caches and scratch arrays of the call's own, so that calls from several
        threads never write to anything they share."""
        if not self.built:
            self._plan(self.fast)  # raises the not-built error
        clones = [copy.copy(layer) for layer in self.layers]
        return make_plan(clones, fast=self.fast and self._recording is None)

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

    # -- one batch ------------------------------------------------------------------------------
    def _forward(self, x: np.ndarray, training: bool, steps: tuple[Step, ...]) -> np.ndarray:
        rec = self._recording
        if rec is not None:
            rec.start(x)
        for step in steps:
            y = step.forward(x, training=training)
            if rec is not None:
                rec.forward(step.layers[0], x, y)
            x = y
        return x

    def _backward(self, y: np.ndarray, out: np.ndarray) -> None:
        """Fill every parameter's .grad with dL/dW of the mean loss over the batch (y, out)."""
        self._backward_steps(y, out, self._steps())
        self._add_penalty_gradients()

    def _backward_steps(self, y: np.ndarray, out: np.ndarray,
                        steps: tuple[Step, ...]) -> np.ndarray | None:
        """Backward from the loss through `steps` (the plan, or its tail that ends in the output
        layer), in reverse; returns dL/dx of the first of them (None if it skips it)."""
        rec = self._recording
        head = losses.LossHead(self.loss, steps[-1].layers[-1])
        g = head.backward(y, out, steps[-1])
        if rec is not None:
            rec.backward(steps[-1].layers[0], self.loss.gradient(y, out), g)  # dL/dy_pred
        for step, dout, dx in backward_pass(steps[:-1], g):
            if rec is not None:
                rec.backward(step.layers[0], dout, dx)
            g = dx
        return g

    def _add_penalty_gradients(self) -> None:
        for layer in self.layers:  # the penalties' gradients: d(loss + penalty)/dW
            reg = getattr(layer, "kernel_regularizer", None)
            if reg is not None:
                layer.kernel.grad += reg.gradient(layer.kernel.value)

    def _loss_and_correct(self, y: np.ndarray, out: np.ndarray,
                          steps: tuple[Step, ...]) -> tuple[float, int]:
        """Summed loss and number of correct predictions over the batch `steps` just ran; the
        loss includes the weights' penalties (kernel_regularizer), as Keras reports it."""
        per_sample = losses.LossHead(self.loss, steps[-1].layers[-1]).per_sample(y, out)
        penalty = sum(reg(layer.kernel.value) for step in steps for layer in step.layers
                      if (reg := getattr(layer, "kernel_regularizer", None)) is not None)
        per_sample = per_sample + penalty
        targets = self.loss.targets(y, out)
        correct = int((targets.argmax(axis=-1) == out.argmax(axis=-1)).sum())
        return float(per_sample.sum(dtype=np.float64)), correct

    def train_on_batch(self, x, y) -> list[float] | float:
        """One optimizer step on the batch (x, y); returns [loss, *metrics] of that batch."""
        self._require_compiled("train_on_batch")
        x, y = self._as_data(x, y, "train_on_batch")
        with self._one_training_call("train_on_batch"):
            loss_sum, correct = self._train_step(x, y)
        values = list(self._logs(loss_sum, correct, len(x)).values())
        return values if len(values) > 1 else values[0]

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Forward, loss, backward, optimizer step; returns the batch's summed loss and hits."""
        self._seed_draws()
        steps = self._steps()
        out = self._forward(x, training=True, steps=steps)
        batch = self._loss_and_correct(y, out, steps)
        if self._recording is not None:
            self._recording.loss = batch[0] / len(x)
        self._backward(y, out)
        self.optimizer.step(self.params)
        return batch

    def _seed_draws(self) -> None:
        """Give each layer that draws in training (Dropout, RandomFlip) this step's generator."""
        for k, layer in enumerate(self.layers):
            if getattr(layer, "draws_in_training", False):
                layer.rng = step_generator(self.seed, layer, self.optimizer.iterations, k)

    # -- data checks ----------------------------------------------------------------------------
    def _as_input(self, x, method: str) -> np.ndarray:
        x = np.asarray(x)
        if not self.built:
            self.build((None, *x.shape[1:]))
        self.layers[0].check_input_shape(x.shape, context=f"{method}(): ")
        # Like Keras, data of another dtype (uint8 images, float64 arrays) is cast to the
        # model's dtype once here, at the boundary; layers themselves never change a dtype.
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _as_data(self, x, y, method: str) -> tuple[np.ndarray, np.ndarray]:
        x = self._as_input(x, method)
        y = np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"{method}(): x and y must have the same number of samples; x has "
                             f"{len(x)}, y has {len(y)}")
        probe = np.zeros((1, *self.output_shape[1:]), dtype=self.dtype)
        self.loss.targets(y[:1], probe)  # raises with a hint when labels have the wrong form
        if self.loss.name == "categorical_crossentropy":
            y = y.astype(self.dtype, copy=False)
        return x, y

    @staticmethod
    def _check_batch_size(batch_size) -> int:
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"Invalid value for argument `batch_size`. Expected a strictly "
                             f"positive integer. Received batch_size={batch_size!r}")
        return int(batch_size)

    # -- fit / evaluate / predict ---------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size: int = 32, epochs: int = 1, verbose: int | str = 1,
            callbacks: list[Callback] | None = None, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, initial_epoch: int = 0,
            distribute=None) -> History:
        """Train for `epochs` epochs; returns the History (also kept in `model.history`).

        Keras's semantics: `validation_split` holds out the *last* fraction of x and y, before
        any shuffling; each epoch reshuffles the training part only; the last, partial batch is
        trained; logged metrics are sample-weighted means over the epoch so far.

        `distribute`: None trains here; `minicnn.distributed.DataParallel(workers=N)` splits
        each batch over N Ray workers, with the same weights at the end (docs/distributed.md).
        Any object with `session(model, x, y)`, a context manager whose value has
        `train_step(idx) -> (summed loss, correct)`, can take its place: the loop, callbacks,
        history, validation and progress output stay the same.
        """
        self._require_compiled("fit")
        with self._one_training_call("fit"):
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                             validation_data, shuffle, initial_epoch, distribute)

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
             validation_data, shuffle, initial_epoch, distribute=None) -> History:
        batch_size = self._check_batch_size(batch_size)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"Invalid value for argument `validation_split`. Expected a value "
                             f"in [0, 1). Received validation_split={validation_split!r}")
        x, y = self._as_data(x, y, "fit")
        if validation_data is not None:
            x_val, y_val = self._as_data(*validation_data[:2], "fit (validation_data)")
        elif validation_split:
            split_at = math.floor(len(x) * (1.0 - validation_split))
            if split_at in (0, len(x)):
                raise ValueError(f"Training data contains {len(x)} samples, too few to split "
                                 f"with validation_split={validation_split}.")
            x, x_val, y, y_val = x[:split_at], x[split_at:], y[:split_at], y[split_at:]
        else:
            x_val = y_val = None
        steps = math.ceil(len(x) / batch_size)
        self.history = History()
        params = {"verbose": verbose, "epochs": epochs, "steps": steps}
        self.history.params = params
        defaults = [LearningCheck()] if initial_epoch == 0 and self.learning_check else []
        callbacks = CallbackList([*defaults, *(callbacks or []), ProgbarLogger(verbose),
                                  self.history], self, params)
        self.stop_training = False
        # A model whose weights came from a run of `initial_epoch` epochs (load_weights) goes on
        # with that run's shuffles.
        self.epochs_trained = max(self.epochs_trained, initial_epoch)
        if distribute is None:
            self._fit_epochs(len(x), lambda idx: self._train_step(x[idx], y[idx]), x_val, y_val,
                             batch_size, steps, epochs, initial_epoch, shuffle, callbacks, params)
        else:
            with distribute.session(self, x, y) as session:
                self._fit_epochs(len(x), session.train_step, x_val, y_val, batch_size, steps,
                                 epochs, initial_epoch, shuffle, callbacks, params)
        return self.history

    def _fit_epochs(self, n, train_step, x_val, y_val, batch_size, steps, epochs,
                    initial_epoch, shuffle, callbacks, params) -> None:
        """The epochs of fit over n training samples; `train_step(idx)` trains on the samples
        idx and returns their summed loss and number of correct predictions."""
        callbacks.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            # Each epoch's order depends only on (seed, epochs trained so far), counted over
            # every fit() call and kept in the model file: repeated fit() calls reshuffle, and a
            # resumed run shuffles exactly as a run straight through.
            order = (np.random.default_rng((self.seed, self.epochs_trained)).permutation(n)
                     if shuffle else np.arange(n))
            self.epochs_trained += 1
            loss_sum, correct, seen, logs = 0.0, 0, 0, {}
            for step in range(steps):
                callbacks.on_train_batch_begin(step)
                idx = order[step * batch_size:(step + 1) * batch_size]
                batch_loss, batch_correct = train_step(idx)
                loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, \
                    seen + len(idx)
                logs = self._logs(loss_sum, correct, seen)
                params["steps_done"] = step + 1
                callbacks.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if x_val is not None:
                val_loss, val_correct = self._evaluate_arrays(x_val, y_val, batch_size)
                logs.update({f"val_{k}": v for k, v in
                             self._logs(val_loss, val_correct, len(x_val)).items()})
            callbacks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callbacks.on_train_end()

    def _logs(self, loss_sum: float, correct: int, seen: int) -> dict[str, float]:
        logs = {"loss": loss_sum / seen}
        for metric in self.metrics:
            logs[metric] = correct / seen
        return logs

    def _evaluate_arrays(self, x, y, batch_size: int, callbacks=None) -> tuple[float, int]:
        loss_sum, correct = 0.0, 0
        steps = self._inference_steps()
        for step, start in enumerate(range(0, len(x), batch_size)):
            if callbacks:
                callbacks.on_test_batch_begin(step)
            out = self._forward(x[start:start + batch_size], training=False, steps=steps)
            batch_loss, batch_correct = self._loss_and_correct(y[start:start + batch_size], out,
                                                               steps)
            loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
            if callbacks:
                callbacks.on_test_batch_end(step, self._logs(loss_sum, correct,
                                                             min(start + batch_size, len(x))))
        return loss_sum, correct

    def evaluate(self, x=None, y=None, batch_size: int = 32, verbose: int | str = "auto",
                 callbacks: list[Callback] | None = None, return_dict: bool = False):
        """[loss, *metrics] over (x, y) (a plain float when there are no metrics); verbose=1
        ("auto") draws a progress bar, 2 prints one line, 0 nothing, as Keras."""
        self._require_compiled("evaluate")
        batch_size = self._check_batch_size(batch_size)
        x, y = self._as_data(x, y, "evaluate")
        steps = math.ceil(len(x) / batch_size)
        cbs = CallbackList([*(callbacks or []), ProgbarLogger(verbose)], self,
                           {"verbose": verbose, "steps": steps})
        cbs.on_test_begin()
        with parallel.single_threaded_blas():
            loss_sum, correct = self._evaluate_arrays(x, y, batch_size, cbs)
        logs = self._logs(loss_sum, correct, len(x))
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values if len(values) > 1 else values[0]

    def predict(self, x, batch_size: int = 32, verbose: int | str = "auto",
                callbacks: list[Callback] | None = None) -> np.ndarray:
        """The model's outputs (class probabilities for a softmax head), (N, *output_shape);
        verbose as in `evaluate`."""
        batch_size = self._check_batch_size(batch_size)
        x = self._as_input(x, "predict")
        cbs = CallbackList([*(callbacks or []), ProgbarLogger(verbose)], self,
                           {"verbose": verbose, "steps": math.ceil(len(x) / batch_size)})
        cbs.on_predict_begin()
        out = np.empty((len(x), *self.output_shape[1:]), dtype=self.dtype)
        steps = self._inference_steps()
        with parallel.single_threaded_blas():
            for step, start in enumerate(range(0, len(x), batch_size)):
                cbs.on_predict_batch_begin(step)
                out[start:start + batch_size] = self._forward(x[start:start + batch_size], False,
                                                              steps)
                cbs.on_predict_batch_end(step)
        cbs.on_predict_end()
        return out

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """The model's output for x, (N, *output_shape), as Keras's `model(x, training=...)`."""
        x = self._as_input(x, "call")
        return self._forward(x, training=training, steps=self._inference_steps())

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
        x, y = self._as_data(x, y, "backward_summary")
        with self._one_training_call("backward_summary"), self.record() as rec:
            steps = self._steps()
            out = self._forward(x, training=True, steps=steps)
            rec.loss = self._loss_and_correct(y, out, steps)[0] / len(x)
            self._backward(y, out)
        summary = BackwardSummary(self.name, rec, self.optimizer, self.layers)
        if print_fn is not False:
            (print_fn or print)(str(summary))
        return summary

    def gradient_check(self, x, y, max_checks: int | None = 20, seed: int = 0,
                       epsilon: float | None = None, tolerance: float | None = None):
        """Check every layer's gradients, the loss included, against float64 central
        differences on (x, y): see minicnn/gradcheck.py. `max_checks` elements are sampled per
        tensor (None checks every one). The model itself is not changed."""
        self._require_compiled("gradient_check")
        x, y = self._as_data(x, y, "gradient_check")
        return gradcheck.check_layers(
            self.layers, x, y=y, loss=self.loss, seed=seed,
            epsilon=gradcheck.EPSILON if epsilon is None else epsilon,
            tolerance=gradcheck.TOLERANCE if tolerance is None else tolerance,
            max_checks=max_checks, title=f"model '{self.name}' with {self.loss.name}")
