"""DataParallel: `model.fit(x, y, distribute=DataParallel(workers=N))` on Ray workers.

One training step, for a batch of N samples (idx):
    1. the driver cuts the batch into the local step's chunks, `parallel.chunks(N)`, and gives
       each worker a run of whole chunks; the weights go to the object store once for all;
    2. each worker (replica.py) runs the model's front (the conv steps and the per-sample layers
       after them, up to the first layer that needs the whole batch) on its rows, with the
       chunks the local step uses, and returns the front's output rows;
    3. the driver runs the rest of the model (the Dense head: its weight gradient is one GEMM
       over the whole batch) forward on all rows, the loss, and backward to the front's output;
    4. each worker runs the front backward on its rows and returns each chunk's partial
       gradients; the driver adds them in chunk order, as the local step does, adds the
       regularizers' gradients and steps its optimizer: the very code of the local step on the
       very same numbers, so the weights after training equal a local fit's bit for bit.
The driver alone steps the optimizer and sends the front's new weights with the next step: a
replacement worker needs no optimizer state, and a callback that changes the model (a
LearningRateScheduler, EarlyStopping restoring weights) needs nothing either.

A worker that dies is replaced (from the same object-store copy of the data) and its part of the
step redone; the step's result does not change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from minicnn.distributed import _ray, replica
from minicnn.fast import parallel

# How many times one worker's part of one step is retried on a fresh worker before fit fails.
RETRIES = 3
# How long the workers may take to start (a process each, importing numpy, numba and minicnn).
START_TIMEOUT = 300.0


class DataParallel:
    """Split every training batch over `workers` Ray workers; see the module docstring.

    address: None starts a local Ray instance for the fit and stops it afterwards; "auto",
        "host:port" or "ray://host:port" joins a running cluster (an unreachable one is a
        ConnectionError within seconds).
    threads_per_worker: minicnn threads in each worker; None shares the CPUs Ray offers out.

    During a fit, `actors` holds the live workers and `replaced` counts the workers replaced.
    """

    def __init__(self, workers: int = 2, address: str | None = None,
                 threads_per_worker: int | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"Invalid value for argument `workers`. Expected a positive "
                             f"integer. Received workers={workers!r}")
        if workers > parallel.CHUNKS:
            raise ValueError(f"Invalid value for argument `workers`. Expected at most "
                             f"{parallel.CHUNKS}: a batch is cut into {parallel.CHUNKS} chunks "
                             f"(minicnn.fast.parallel.CHUNKS) and each worker holds whole "
                             f"chunks, which keeps the weights equal to a local fit's. "
                             f"Received workers={workers}")
        if address is not None and not isinstance(address, str):
            raise ValueError(f"Invalid value for argument `address`. Expected None, 'auto', "
                             f"'host:port' or 'ray://host:port'. Received address={address!r}")
        if threads_per_worker is not None:
            parallel.check_threads(threads_per_worker, "threads_per_worker")
        self.workers, self.address = workers, address
        self.threads_per_worker = threads_per_worker
        self.actors: list = []
        self.replaced = 0

    def __repr__(self) -> str:
        return f"DataParallel(workers={self.workers}, address={self.address!r})"

    @contextlib.contextmanager
    def session(self, model, x: np.ndarray, y: np.ndarray,
                sample_weight: np.ndarray | None = None) -> Iterator[_Session]:
        """Connect to Ray, start the workers with x in the object store; fit's loop calls the
        session's train_step(idx) for each batch."""
        split = _Split(model)  # a model with nothing to split fails before Ray starts
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        num_cpus = max(cores, self.workers * (self.threads_per_worker or 1))
        with _ray.connected(self.address, num_cpus) as ray:
            session = _Session(ray, self, split, model, x, y, sample_weight)
            try:
                yield session
            finally:
                session.close()


class _Split:
    """A model's plan cut into the workers' front and the driver's tail (replica.py)."""

    def __init__(self, model) -> None:
        self.plan = model.graph_plan
        chain = self.plan.front()
        k = replica.front_length(chain, whole_model=len(chain) == len(self.plan.steps))
        front, self.tail = chain[:k], self.plan.tail(k)
        self.params = replica.front_params(front)
        if not self.params:
            first = self.plan.steps[k].layers[0]
            raise ValueError(
                f"DataParallel splits the convolutional front of a model (Conv2D layers with "
                f"'relu' or no activation, with the pooling and per-sample layers between "
                f"them) over its workers, and the rest runs on the driver; model "
                f"'{model.name}' has none before layer '{first.name}' "
                f"({type(first).__name__}). compile(fast=False) models have none either.")
        # What a worker rebuilds its replica from: a pickled layer would not be the same (its
        # activation would be a copy, not the module's, and the fast plan would not fuse it).
        self.specs = [(type(layer), layer.get_config(), layer.input_shape, layer.get_weights())
                      for step in front for layer in step.layers]


class _Session:
    def __init__(self, ray, owner: DataParallel, split: _Split, model, x: np.ndarray,
                 y: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self.ray, self.owner, self.model, self.y = ray, owner, model, y
        self.sample_weight = sample_weight
        self.plan, self.tail, self.params = split.plan, split.tail, split.params
        self.specs = split.specs
        cpus = ray.cluster_resources().get("CPU", owner.workers)
        self.threads = owner.threads_per_worker or max(1, int(cpus) // owner.workers)
        # Each worker reserves its threads' CPUs, or an equal share when there are fewer CPUs
        # than that (more workers than cores): Ray would otherwise hold the extra ones back.
        reserve = min(self.threads, cpus / owner.workers)
        self.remote = ray.remote(num_cpus=reserve, max_restarts=0)(replica.Replica)
        self.x_ref = ray.put(x)  # once per fit; a replacement worker reads the same copy
        owner.actors = [self._start() for _ in range(owner.workers)]
        self.forward_args: dict[int, tuple] = {}
        ready = [actor.ready.remote() for actor in owner.actors]
        started, _ = ray.wait(ready, num_returns=len(ready), timeout=START_TIMEOUT)
        if len(started) < len(ready):
            self.close()
            raise RuntimeError(
                f"Only {len(started)} of {owner.workers} DataParallel workers started within "
                f"{START_TIMEOUT:.0f} s; each needs {reserve:g} CPU of the cluster's "
                f"{cpus:g} ({ray.available_resources().get('CPU', 0):g} free).")
        ray.get(started)  # a worker that failed to build its replica raises here

    def _start(self):
        return self.remote.remote(self.specs, self.x_ref, self.threads)

    def close(self) -> None:
        for actor in self.owner.actors:
            self.ray.kill(actor)
        self.owner.actors = []

    def train_step(self, idx: np.ndarray) -> tuple[float, np.ndarray]:
        """One optimizer step on samples idx; returns their loss times their number and the
        model's output (what fit's metrics read)."""
        model, ray = self.model, self.ray
        model.training_pass(self.plan).seed_draws(model.optimizer.iterations)  # the tail's
        n = len(idx)
        pieces = parallel.chunks(n)  # the local step's cut of the batch
        weights = ray.put([p.value for p in self.params])
        shares = []
        for w in range(self.owner.workers):
            share = pieces[len(pieces) * w // self.owner.workers:
                           len(pieces) * (w + 1) // self.owner.workers]
            if share:
                a, b = share[0][0], share[-1][1]
                shares.append((w, a, b))
                self.forward_args[w] = (weights, idx[a:b], [(s - a, e - a) for s, e in share],
                                        n, a, model.seed, model.optimizer.iterations)
        rows = self._run([(w, "forward", self.forward_args[w]) for w, _, _ in shares])
        h = rows[0] if len(rows) == 1 else np.concatenate(rows)
        tail = model.training_pass(self.tail)
        out = tail.forward([h], training=True)
        y = self.y[idx]
        w = None if self.sample_weight is None else self.sample_weight[idx]
        batch = tail.loss(y, out, w)
        g = tail.backward(y, out, penalties=False, sample_weight=w)[0]
        partials = self._run([(w, "backward", (g[a:b],)) for w, a, b in shares])
        for j, p in enumerate(self.params):
            # The local step's sum: np.sum over its (chunks, ...) partials, in chunk order.
            stacked = np.concatenate([part[j] for part in partials])
            np.sum(stacked, axis=0, out=p.grad.reshape(stacked.shape[1:]))
        tail.add_penalty_gradients()
        model.optimizer.step(model.params)
        return batch, out

    def _run(self, calls: list[tuple[int, str, tuple]]) -> list:
        """Call method(*args) on each worker w of `calls` at once; a worker that died is
        replaced and its call (after its forward, for a backward) made again."""
        ray = self.ray
        refs = [getattr(self.owner.actors[w], method).remote(*args) for w, method, args in calls]
        results = []
        for (w, method, args), ref in zip(calls, refs, strict=True):
            for attempt in range(RETRIES + 1):
                try:
                    results.append(ray.get(ref))
                    break
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    if attempt == RETRIES:
                        raise
                    ray.kill(self.owner.actors[w])
                    self.owner.actors[w] = actor = self._start()
                    self.owner.replaced += 1
                    if method == "backward":  # the new worker has not run this step's forward
                        actor.forward.remote(*self.forward_args[w])
                    ref = getattr(actor, method).remote(*args)
        return results
