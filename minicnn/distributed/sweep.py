"""sweep: many trainings at once on Ray Tune, written to a CSV and a PNG as they finish.

    result = sweep(x, y, {"learning_rate": [1e-3, 3e-4], "seed": [0, 1]}, out_dir="sweep")

The swept parameters are `learning_rate`, `batch_size`, `optimizer` (a name: "adam", "sgd",
"rmsprop", "adamw"), `recipe` (a name in minicnn.models.RECIPES, or in `recipes`) and `seed`;
the ones not swept take the recipe's own values (batch size 32, seed 0). search="grid" trains
every combination; search="random" draws `num_samples` of them, each parameter from its list,
a (low, high) pair drawing log-uniformly, with a seeded generator: the same call draws the same
trials, which is what lets an interrupted sweep resume.

out_dir receives, as each trial finishes:
    results.csv          one row per finished trial: its key, parameters, last epoch's logs,
                         seconds, attempts, status ("ok" or "error: ...")
    results.png          the metric against each swept parameter
    models/KEY.npz       each trial's trained model (model.save)
and at the end best_model.npz, the model of the best row: the best finite value of the metric
(a diverged trial's NaN never wins), its model taken from models/KEY.npz inside out_dir whatever
the row says. Running the same sweep again with the same out_dir skips the trials already in
results.csv with status "ok": an interrupted sweep (Ctrl-C) raises SweepInterrupted, saying how
many trials ran, and resumes where it stopped. A trial that raises is reported and retried once
(Tune's FailureConfig(max_failures=1)); if it fails again its row says why and the others go on.

results.csv is read as untrusted input: a row must have every column and a trial key of this
sweep's form, a partial last line (a write cut short) is dropped, and each row is written whole
by replacing the file atomically. A sweep has at most `max_trials` trials (1000 by default),
counted before any is made: a typo of a grid does not start a million trainings.

Each trial runs with a thread budget (minicnn.set_num_threads), chosen so that the trials
running at once fill the CPUs Ray offers, and Ray Tune schedules them on those CPUs.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from minicnn.distributed import _ray

SWEPT = ("learning_rate", "batch_size", "optimizer", "recipe", "seed")
LOGS = ("loss", "accuracy", "val_loss", "val_accuracy")
MAX_TRIALS = 1000  # the default cap on a sweep's trials (max_trials= raises it)
KEY = re.compile(r"^trial-[0-9a-f]{32}$")  # what trial_key makes: 128 bits of SHA-256


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ran (Ctrl-C); run it again to resume."""


@dataclass
class SweepResult:
    """What a sweep wrote: every finished row (dicts as in results.csv), the best one, and the
    paths of the CSV, the PNG and the best model; `ran` lists the keys trained by this call."""

    rows: list[dict]
    best: dict | None
    csv_path: str
    png_path: str
    best_model_path: str | None
    ran: list[str] = field(default_factory=list)


def trials(space: dict, search: str = "grid", num_samples: int | None = None,
           seed: int = 0, max_trials: int = MAX_TRIALS) -> list[dict]:
    """The trials of a sweep over `space`, each a dict of every swept parameter's value; at
    most `max_trials` of them (counted before any is made)."""
    for key, values in space.items():
        if key not in SWEPT:
            raise ValueError(f"Invalid key in argument `space`. Expected some of {SWEPT}. "
                             f"Received {key!r}")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"Invalid value in argument `space`. Expected a non-empty list of "
                             f"values for {key!r}. Received {key}={values!r}")
    keys = list(space)
    count = math.prod(len(space[k]) for k in keys) if search == "grid" else num_samples
    if isinstance(count, int) and count > max_trials:
        raise ValueError(f"The sweep has {count:,} trials, more than max_trials={max_trials:,} "
                         "(a guard against a typo starting a million trainings); pass "
                         "max_trials=... (the CLI's --max-trials) to run them all.")
    if search == "grid":
        return [dict(zip(keys, combo, strict=True))
                for combo in itertools.product(*(space[k] for k in keys))]
    if search != "random":
        raise ValueError(f"Invalid value for argument `search`. Expected 'grid' or 'random'. "
                         f"Received search={search!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"Invalid value for argument `num_samples`. Expected a positive "
                         f"integer with search='random'. Received num_samples={num_samples!r}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_samples):
        trial = {}
        for k in keys:
            values = space[k]
            if isinstance(values, tuple) and len(values) == 2 and k == "learning_rate":
                low, high = values  # log-uniform
                trial[k] = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            else:
                trial[k] = values[int(rng.integers(len(values)))]
                trial[k] = trial[k].item() if isinstance(trial[k], np.generic) else trial[k]
        out.append(trial)
    return out


def trial_key(params: dict) -> str:
    """A stable name for a trial: the same parameters give the same key in every run. 128 bits
    of SHA-256: two different trials of one sweep never share one (40 bits did, in a grid of
    a million)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return "trial-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def build_model(params: dict, recipes: dict | None = None):
    """The compiled model a trial trains: the recipe with the trial's seed, and its optimizer
    (or the recipe's own) at the trial's learning rate (or the optimizer's own)."""
    from minicnn import optimizers
    from minicnn.models import RECIPES

    known = {**RECIPES, **(recipes or {})}
    name = params.get("recipe", "mnist_cnn")
    if name not in known:
        raise ValueError(f"Invalid recipe {name!r}. Expected one of {sorted(known)}")
    model = known[name](seed=params.get("seed", 0))
    if "optimizer" in params or "learning_rate" in params:
        cls = (optimizers.get(params["optimizer"]).__class__ if "optimizer" in params
               else type(model.optimizer))
        kwargs = {}
        if "learning_rate" in params:
            kwargs["learning_rate"] = float(params["learning_rate"])
        model.compile(optimizer=cls(**kwargs), loss=model.loss, metrics=model.metrics)
    return model


def _run_trial(config, data=None, settings=None):
    """One Tune trial (in a Ray worker): train, save, report the last epoch's logs."""
    from ray import tune

    from minicnn.fast import parallel

    config = config["trial"]  # {"key", "params", "threads"}, as _tune lays it out
    parallel.set_num_threads(config["threads"])
    params = config["params"]
    x, y, validation_data = data
    start = time.perf_counter()
    model = build_model(params, settings["recipes"])
    model.learning_check = False
    history = model.fit(x, y, batch_size=int(params.get("batch_size", 32)),
                        epochs=settings["epochs"], verbose=0,
                        validation_split=settings["validation_split"],
                        validation_data=validation_data)
    path = os.path.join(settings["out_dir"], "models", config["key"] + ".npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    tune.report({**logs, "seconds": time.perf_counter() - start, "model_path": path})


def sweep(x, y, space: dict, out_dir, *, search: str = "grid", num_samples: int | None = None,
          epochs: int = 1, validation_split: float = 0.1, validation_data=None,
          metric: str = "val_accuracy", mode: str = "max", threads_per_trial: int | None = None,
          address: str | None = None, seed: int = 0, recipes: dict | None = None,
          verbose: int = 1, max_trials: int = MAX_TRIALS) -> SweepResult:
    """Train one model per trial of `space` (see the module docstring); returns a SweepResult.

    address: as DataParallel's (None: a local Ray instance for the sweep). `recipes` adds model
    builders of your own, name -> recipe(seed=..., compile=True), to minicnn.models.RECIPES.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"Invalid value for argument `mode`. Expected 'max' or 'min'. "
                         f"Received mode={mode!r}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "results.csv")
    png_path = os.path.join(out_dir, "results.png")
    planned = trials(space, search, num_samples, seed, max_trials)
    keys = [trial_key(p) for p in planned]
    if len(set(keys)) != len(keys):
        raise ValueError("Invalid value for argument `space`: it repeats a trial")
    done = {row["trial"] for row in _read_rows(csv_path) if row.get("status") == "ok"}
    pending = [(k, p) for k, p in zip(keys, planned, strict=True) if k not in done]
    if verbose:
        print(f"sweep: {_count(len(planned), 'trial')}, {len(planned) - len(pending)} already "
              f"in {csv_path}, {len(pending)} to run")
    if pending:
        _tune(pending, list(space), x, y, out_dir, csv_path, png_path, epochs,
              validation_split, validation_data, metric, threads_per_trial, address, recipes,
              verbose)
    rows = [row for row in _read_rows(csv_path) if row["trial"] in set(keys)]
    finished = {row["trial"] for row in rows}
    ran = [k for k, _ in pending if k in finished]
    result = _finish(rows, list(space), metric, mode, out_dir, csv_path, png_path, ran)
    missing = [k for k, _ in pending if k not in finished]
    if missing:
        raise SweepInterrupted(
            f"The sweep stopped before {_count(len(missing), 'trial')} of {len(planned)} ran "
            f"({len(ran)} ran in this call; interrupted?); the finished ones are in {csv_path}. "
            "Run the same sweep with the same out_dir to resume.")
    return result


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _tune(pending, swept, x, y, out_dir, csv_path, png_path, epochs, validation_split,
          validation_data, metric, threads_per_trial, address, recipes, verbose) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    # Tune's own result files (JSON, CSV, TensorBoard) would repeat results.csv, and its
    # progress tables the writer's lines: verbose=0 silences them only in its older output.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    with _ray.connected(address, cores) as ray:
        from ray import tune

        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = threads_per_trial or max(1, cpus // min(len(pending), cpus))
        settings = {"epochs": epochs, "validation_split": validation_split,
                    "out_dir": out_dir, "recipes": recipes}
        data = (np.asarray(x), np.asarray(y),
                None if validation_data is None else tuple(validation_data[:2]))
        trainable = tune.with_resources(
            tune.with_parameters(_run_trial, data=data, settings=settings), {"cpu": threads})
        configs = [{"key": k, "params": p, "threads": threads} for k, p in pending]
        writer = _writer_class()(csv_path, png_path, swept, metric, verbose)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max(1, cpus // threads),
                                        reuse_actors=True),
            run_config=tune.RunConfig(
                name="tune", storage_path=os.path.join(out_dir, "ray"), verbose=0,
                failure_config=tune.FailureConfig(max_failures=1), callbacks=[writer]))
        # Tune logs each crash's traceback; the writer reports it in a line of its own.
        tune_logger = logging.getLogger("ray.tune")
        level = tune_logger.level
        tune_logger.setLevel(logging.CRITICAL)
        try:
            tuner.fit()
        finally:
            tune_logger.setLevel(level)


def _trial_of(trial) -> dict:
    """The {"key", "params", "threads"} of a Tune trial (grid_search puts it under "trial")."""
    return trial.config["trial"]


def _writer_class():
    """The Tune callback that writes each finished trial (a class made on first use: its base,
    ray.tune.Callback, must not be imported with this module)."""
    from ray import tune

    class Writer(tune.Callback):
        def __init__(self, csv_path, png_path, swept, metric, verbose):
            self.csv_path, self.png_path = csv_path, png_path
            self.swept, self.metric, self.verbose = swept, metric, verbose
            self.attempts: dict[str, int] = {}

        def on_trial_recover(self, iteration, trials, trial, **info):
            key = _trial_of(trial)["key"]
            self.attempts[key] = self.attempts.get(key, 1) + 1
            if self.verbose:
                print(f"sweep: {key} {_trial_of(trial)['params']} crashed "
                      f"({_error_line(trial)}); retrying it once")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._write(trial, "ok")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._write(trial, f"error: {_error_line(trial)}")

        def _write(self, trial, status):
            t = _trial_of(trial)
            result = trial.last_result or {}
            row = {"trial": t["key"], **{k: t["params"].get(k, "") for k in self.swept},
                   **{k: result.get(k, "") for k in LOGS},
                   "seconds": round(result.get("seconds", math.nan), 3),
                   "attempts": self.attempts.get(t["key"], 1), "status": status,
                   "model_path": result.get("model_path", "")}
            _append_row(self.csv_path, row)
            if self.verbose:
                shown = {k: row[k] for k in self.swept}
                print(f"sweep: {t['key']} {shown} -> {self.metric}="
                      f"{row.get(self.metric, '')} ({status})")
            plot(_read_rows(self.csv_path), self.swept, self.metric, self.png_path)

    return Writer


def _error_line(trial) -> str:
    """The last line of the trial's error (the exception and its message). Tune writes the
    error to the trial's local error file first and copies it to its storage later, where
    `get_error` reads it: at on_trial_error it may not be there yet, so the local file is read
    too (without it the cause was lost as "unknown error")."""
    text = ""
    try:
        error = trial.get_error()
        text = "" if error is None else str(error)
    except Exception:
        text = ""
    if not text.strip():
        path = getattr(trial, "error_file", None)
        if path and os.path.isfile(path):
            with open(path, errors="replace") as f:
                text = f.read()
    lines = [line for line in text.strip().splitlines()
             if line.strip() and not line.startswith("Failure # ")]
    return lines[-1].strip()[:200] if lines else "unknown error"


def _read_rows(path: str) -> list[dict]:
    """The whole, well-formed rows of results.csv: a partial last line (no final newline: a
    write cut short) and rows with missing or extra fields or another key form are left out."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # the partial line, dropped
    reader = csv.DictReader(text.splitlines(keepends=True))
    return [row for row in reader
            if None not in row and None not in row.values() and KEY.match(row.get("trial", ""))]


def _append_row(path: str, row: dict) -> None:
    """Add `row` to the CSV by writing the whole file anew beside it and replacing it (fsynced):
    a sweep killed at any moment leaves the old file or the new one, never a partial row."""
    rows = _read_rows(path)
    fields = list(rows[0]) if rows else list(row)
    for key in row:
        if key not in fields:
            fields.append(key)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows([*rows, row])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def plot(rows: list[dict], swept: list[str], metric: str, path: str) -> None:
    """The metric of each finished trial against each swept parameter, one panel each."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in any thread

    ok = [r for r in rows if r.get("status") == "ok" and r.get(metric) not in ("", None)]
    panels = swept or ["trial"]
    fig = Figure(figsize=(3.2 * len(panels), 3.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, name in zip(axes, panels, strict=True):
        values = [r.get(name, "") for r in ok]
        scores = [float(r[metric]) for r in ok]
        numeric = name in ("learning_rate", "batch_size", "seed")
        if numeric:
            ax.scatter([float(v) for v in values], scores)
            if name == "learning_rate":
                ax.set_xscale("log")
        else:
            labels = sorted(set(values))
            ax.scatter([labels.index(v) for v in values], scores)
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{len(ok)} trials")
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)


def _score(row: dict, metric: str) -> float:
    try:
        return float(row[metric])
    except (KeyError, TypeError, ValueError):
        return math.nan


def _finish(rows, swept, metric, mode, out_dir, csv_path, png_path, ran) -> SweepResult:
    ok = [r for r in rows if r.get("status") == "ok" and r.get(metric) not in ("", None)]
    if rows and not ok and all(r.get("status") == "ok" for r in rows):
        raise ValueError(f"The sweep's trials do not log `metric`={metric!r}; they log "
                         f"{[k for k in LOGS if rows[0].get(k) not in ('', None)]}")
    best = None
    best_path = None
    # A diverged trial's NaN (or inf) metric never wins: max() with a NaN first would keep it.
    finite = [r for r in ok if math.isfinite(_score(r, metric))]
    if finite:
        sign = 1.0 if mode == "max" else -1.0
        best = max(finite, key=lambda r: sign * _score(r, metric))
        # The model comes from this sweep's own folder, by the row's key, never from a path
        # the CSV names: results.csv is untrusted input.
        models = os.path.realpath(os.path.join(out_dir, "models"))
        source = os.path.realpath(os.path.join(models, best["trial"] + ".npz"))
        if os.path.dirname(source) != models or not os.path.isfile(source):
            raise ValueError(f"The best trial's model {source} is missing from the sweep's "
                             f"folder {models}: was it moved? Run the trial again by removing "
                             f"its row from {csv_path}.")
        best_path = os.path.join(out_dir, "best_model.npz")
        tmp = best_path + ".tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, best_path)
    if rows:
        plot(rows, swept, metric, png_path)
    return SweepResult(rows, best, csv_path, png_path, best_path, ran)
