"""The notebook's training run, end to end, in minicnn, TensorFlow and PyTorch, on this machine;
and a training step of minicnn's other recipes against TensorFlow's.

    python benchmarks/bench_train.py [--epochs N] [--quick] [--frameworks minicnn,tensorflow]
                                     [--scaling | --no-scaling] [--models a,b] [--out DIR]

In one run, with each framework in its own long-lived worker process, in the environment it was
started in (no thread variables are set, except for the 1-thread half of the scaling study):

1. Cold start, each in a fresh process on its own: import, build the model, first training
   steps. For minicnn once with an empty NUMBA_CACHE_DIR (the numba kernels compile) and once
   with numba's cache populated.
2. Epochs of the notebook's `fit(x, y, batch_size=128, validation_split=0.1)` on the 60,000
   training images (54,000 trained on, 422 steps, then the 6,000-image validation pass),
   alternating frameworks epoch by epoch. The first epoch is the warm start, reported apart;
   the epoch time is the median of the `--epochs` that follow. Peak RSS is taken after them.
3. Single training steps (`train_on_batch`) at batch 128, in alternating blocks: the median.
4. `predict` and `evaluate` on the 10,000 test images at Keras's default batch size (32, as the
   notebook calls them) and at 128: one untimed call, then alternating repeats. Then the
   latency of one image: each framework's quickest call on a batch of 1 (`predict_on_batch`
   for minicnn and TensorFlow, the module under `no_grad` for PyTorch), rounds alternating.
5. Scaling: step time at batch sizes 32 to 512, with each framework's default threads; with
   one thread, each told so through its own knob (minicnn.set_num_threads(1), with
   MINICNN_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1; intra- and inter-op parallelism 1 for
   TensorFlow; torch.set_num_threads(1) and set_num_interop_threads(1) for PyTorch); and on one
   core, the worker pinned to one CPU as `taskset -c` would (os.sched_setaffinity, before any
   library loads). Each in fresh workers.
6. The other recipes (`fashion_mnist_cnn` with BatchNormalization and Dropout, Keras's classic
   `cifar10_cnn`), each in fresh workers on its own data set: single training steps at the
   recipe's batch size, in alternating blocks, minicnn against TensorFlow (which runs the same
   recipe's Keras twin, `minicnn.models.to_keras`): the medians and their ratio. Also
   `resnet20` (CIFAR-10, batch 128) and d2l's sigmoid `lenet` (Fashion-MNIST, batch 256).

Writes train-latest.md (rendered by _report.py) and train-latest.json to --out (default
benchmarks/results/), replacing the last run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _common
import _report

VALIDATION_SPLIT = 0.1
SCALING_BATCH_SIZES = (32, 64, 128, 256, 512)
# Each recipe's data set and batch size (the tutorial's: Keras's cifar10_cnn trained on 32).
RECIPES = {"mnist_cnn": ("mnist", 128), "fashion_mnist_cnn": ("fashion_mnist", 128),
           "cifar10_cnn": ("cifar10", 32), "resnet20": ("cifar10", 128),
           "lenet": ("fashion_mnist", 256)}
# The one CPU the scaling study's one-core workers run on (the first this process may use), or
# None where affinity cannot be set (not Linux): the one-core column is then left out.
PIN_CPU = min(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None


# -- 1. cold start ---------------------------------------------------------------------------------
def probe(framework: str, env: dict, timeout: float = 600) -> dict:
    """One cold-start measurement in a fresh process (see _frameworks.probe)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(_common.WORKER), "probe", framework], env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"error": f"exit code {proc.returncode}"}
    if "error" in result:
        raise _common.WorkerError(f"{framework} probe failed: {result['error']}\n"
                                  f"{proc.stderr[-3000:]}")
    result["process_wall_s"] = wall
    return result


def cold_starts(frameworks: list[str], fill_cache: bool = True) -> dict:
    results = {}
    for fw in frameworks:
        try:
            if fw == "minicnn":
                with tempfile.TemporaryDirectory(prefix="minicnn-numba-cache-") as cache:
                    # A fresh install as a user has it: the default compile mode too.
                    env = {k: v for k, v in os.environ.items() if k != "MINICNN_COMPILE"}
                    cold = probe(fw, {**env, "NUMBA_CACHE_DIR": cache})
                if fill_cache:  # in case numba's cache is empty, as on a fresh clone
                    probe(fw, os.environ.copy())
                results[fw] = {"cold": cold, "warm": probe(fw, os.environ.copy())}
            else:
                results[fw] = {"cold": probe(fw, os.environ.copy())}
        except (_common.WorkerError, subprocess.TimeoutExpired) as error:
            print(f"WARNING: {fw} cold start: {error}", file=sys.stderr)
            continue
        r = results[fw]
        print(f"  {_common.LABELS[fw]}: import {r['cold']['import_s']:.2f} s + build "
              f"{r['cold']['build_s']:.2f} s + first step {r['cold']['first_step_s']:.2f} s"
              + (f"; with numba's cache: {r['warm']['total_s']:.2f} s" if "warm" in r else ""),
              flush=True)
    return results


# -- workers ---------------------------------------------------------------------------------------
def start_workers(frameworks, data_dir, limit_train, limit_test, threads=None, pin=None,
                  **recipe) -> dict:
    """Start one train worker per framework and set them all up at once (nothing is timed).

    `recipe`: recipe= and dataset= for a model other than the notebook's.
    """
    workers = {fw: _common.Worker("train", fw, threads=threads, pin=pin) for fw in frameworks}
    for w in workers.values():
        w.send("setup", data_dir=data_dir, limit_train=limit_train, limit_test=limit_test,
               **recipe)
    setups = {}
    for fw in list(workers):
        try:
            setups[fw] = workers[fw].receive()
        except _common.WorkerError as error:
            if fw == "minicnn":
                for w in workers.values():
                    w.close()
                raise
            print(f"WARNING: dropping {fw}: {error}", file=sys.stderr)
            workers.pop(fw).close()
    return workers, setups


def close_all(workers: dict) -> None:
    for w in workers.values():
        w.close()


# -- 2. epochs -------------------------------------------------------------------------------------
def run_epochs(workers: dict, epochs: int, batch_size: int) -> dict:
    """fit(epochs=1 + epochs) in every worker, one epoch at a time, frameworks alternating."""
    total = epochs + 1
    events = {fw: [] for fw in workers}
    for k in range(total):
        for fw, w in workers.items():
            _common.settle()
            if k == 0:
                w.send("fit", epochs=total, batch_size=batch_size,
                       validation_split=VALIDATION_SPLIT)
            else:
                w.send("continue")
            event = w.receive()
            events[fw].append(event)
            logs = event["logs"]
            print(f"  epoch {k + 1}/{total} {w.name:<10} {event['seconds']:6.2f} s"
                  f"  loss {logs.get('loss', float('nan')):.4f}"
                  f"  val_accuracy {logs.get('val_accuracy', float('nan')):.4f}"
                  + ("  (warm start)" if k == 0 else ""), flush=True)
    results = {}
    for fw, w in workers.items():
        done = w.receive()
        times = [e["seconds"] for e in events[fw]]
        rest = _common.summary(times[1:])
        results[fw] = {"first_epoch_s": times[0], "epoch_s": rest,
                       "warm_start_extra_s": times[0] - rest["median"],
                       "epoch_seconds": times, "logs": [e["logs"] for e in events[fw]],
                       **{k: v for k, v in done.items() if k != "event"}}
    return results


# -- 3. and 5. steps -------------------------------------------------------------------------------
def run_steps(workers: dict, batch_size: int, n: int, rounds: int, warmup: int) -> dict:
    samples = {fw: [] for fw in workers}
    for r in range(rounds):
        for fw, w in workers.items():
            _common.settle()
            reply = w.request("steps", batch_size=batch_size, n=n,
                              warmup=warmup if r == 0 else 1)
            samples[fw].extend(reply["seconds"])
    return {fw: _common.summary(s) for fw, s in samples.items()}


def run_scaling(workers: dict, batch_sizes, n: int, warmup: int, label: str) -> dict:
    results = {fw: {} for fw in workers}
    for bs in batch_sizes:
        for fw, s in run_steps(workers, bs, n, 1, warmup).items():
            results[fw][str(bs)] = s
        print(f"  {label} batch {bs:>3}: " + ", ".join(
            f"{workers[fw].name} {results[fw][str(bs)]['median'] * 1e3:.1f} ms"
            for fw in workers), flush=True)
    return results


# -- 4. inference ----------------------------------------------------------------------------------
def run_inference(workers: dict, batch_sizes, repeats: int) -> dict:
    results = {fw: {} for fw in workers}
    for kind in ("predict", "evaluate"):
        for bs in batch_sizes:
            key = f"{kind}@{bs}"
            first = {fw: w.request("infer", kind=kind, batch_size=bs)
                     for fw, w in workers.items()}
            samples = {fw: [] for fw in workers}
            for _ in range(repeats):
                for fw, w in workers.items():
                    _common.settle()
                    samples[fw].append(w.request("infer", kind=kind, batch_size=bs)["seconds"])
            for fw in workers:
                s = _common.summary(samples[fw])
                images = first[fw]["images"]
                results[fw][key] = {**s, "first_call_s": first[fw]["seconds"], "images": images,
                                    "images_per_s": images / s["median"],
                                    **({"accuracy": first[fw]["accuracy"]}
                                       if "accuracy" in first[fw] else {})}
            print(f"  {key}: " + ", ".join(
                f"{workers[fw].name} {results[fw][key]['median']:.3f} s" for fw in workers),
                flush=True)
    return results


# -- 4b. batch-1 latency ---------------------------------------------------------------------------
def run_latency(workers: dict, n: int, rounds: int) -> dict:
    """One image per call, `n` calls per round, frameworks alternating round by round."""
    samples = {fw: [] for fw in workers}
    for r in range(rounds + 1):
        for fw, w in workers.items():
            _common.settle()
            seconds = w.request("latency", n=n)["seconds"]
            if r:  # the first round warms up
                samples[fw].extend(seconds)
    results = {fw: _common.summary(s) for fw, s in samples.items()}
    print("  " + ", ".join(f"{workers[fw].name} {s['median'] * 1e3:.3f} ms"
                           for fw, s in results.items()), flush=True)
    return results


# -- 6. the other recipes -------------------------------------------------------------------------
def run_recipe(frameworks, name: str, batch_size: int, random_data: bool, n: int, rounds: int,
               warmup: int) -> dict | None:
    """Single training steps of recipe `name`, minicnn and TensorFlow alternating in blocks."""
    dataset = RECIPES[name][0]
    data_dir, data_text = _common.resolve_data(random_data, dataset)
    fws = [fw for fw in frameworks if fw in ("minicnn", "tensorflow")]
    workers, setups = start_workers(
        fws, data_dir, batch_size * 10, 1, recipe=name, dataset=dataset)
    try:
        archs = {fw: s["architecture"] for fw, s in setups.items()}
        if len({json.dumps(a) for a in archs.values()}) > 1:
            raise _common.WorkerError(f"{name}: the frameworks built different models (layer "
                                      f"classes and weight shapes): {archs}")
        steps = run_steps(workers, batch_size, n, rounds, warmup)
    finally:
        close_all(workers)
    mc, tf = steps.get("minicnn"), steps.get("tensorflow")
    print(f"  {name} (batch {batch_size}, {data_text}): " + ", ".join(
        f"{_common.LABELS[fw]} {s['median'] * 1e3:.1f} ms" for fw, s in steps.items())
        + (f"; ratio {mc['median'] / tf['median']:.2f}" if mc and tf else ""), flush=True)
    label = _common.LABELS_DATA[dataset]
    return {"batch_size": batch_size, "data": label if data_dir else f"random, {label}'s shapes",
            "data_text": data_text, "steps": steps,
            "ratio_minicnn_tf": _common.ratio(mc and mc["median"], tf and tf["median"]),
            "setup": setups}


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="timed epochs per framework after the first (default 5; 2 with "
                             "--quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 5,000 training and 1,000 test images, few steps, "
                             "scaling at 2 batch sizes")
    parser.add_argument("--frameworks", default=None,
                        help="comma-separated, from minicnn,tensorflow,pytorch "
                             "(default: those installed)")
    scaling = parser.add_mutually_exclusive_group()
    scaling.add_argument("--scaling", action="store_true", help="run only the scaling study")
    scaling.add_argument("--no-scaling", action="store_true", help="skip the scaling study")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size for every model (default: each recipe's own, 128 for "
                             "the notebook's model and fashion_mnist_cnn, 32 for cifar10_cnn)")
    parser.add_argument("--models", default=",".join(RECIPES),
                        help="comma-separated recipes to run, from " + ",".join(RECIPES)
                             + " (default: all); mnist_cnn is the notebook's full study, the "
                             "others are timed a training step at a time")
    parser.add_argument("--random-data", action="store_true",
                        help="use random images of each data set's shapes instead of the data")
    parser.add_argument("--out", default=str(_common.RESULTS_DIR),
                        help="directory for the results (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.quick else 5
    if args.epochs <= 0 or (args.batch_size is not None and args.batch_size <= 0):
        parser.error(f"--epochs and --batch-size must be positive, received "
                     f"{args.epochs} and {args.batch_size}")
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in args.models if name not in RECIPES]
    if unknown or not args.models:
        parser.error(f"Invalid value for argument --models. Expected a comma-separated list of "
                     f"{', '.join(RECIPES)}. Received {','.join(args.models)!r}")
    args.notebook_batch_size = args.batch_size or RECIPES["mnist_cnn"][1]
    q = args.quick
    args.recipe_rounds, args.recipe_n = (2, 3) if q else (5, 20)
    args.limit_train, args.limit_test = (5_000, 1_000) if q else (None, None)
    args.step_rounds, args.step_n = (2, 5) if q else (5, 20)
    args.infer_batch_sizes, args.infer_repeats = ((32,), 1) if q else ((32, 128), 3)
    args.latency = (20, 1) if q else (200, 5)
    args.scaling_sizes, args.scaling_n = ((32, 128), 3) if q else (SCALING_BATCH_SIZES, 15)
    return args


def run_notebook(args, frameworks, data_dir, r: dict, setups: dict) -> None:
    """Steps 1 to 5: the notebook's model, cold start to scaling; fills `r` and `setups`."""
    batch_size = args.notebook_batch_size
    if not args.scaling:
        print("Cold start (fresh processes, one at a time):", flush=True)
        r["cold_start"] = cold_starts(frameworks, fill_cache=not args.quick)
    limit_train = max(args.scaling_sizes) if args.scaling else args.limit_train
    workers, setups["default"] = start_workers(frameworks, data_dir, limit_train,
                                               args.limit_test)
    try:
        if not args.scaling:
            print(f"Epochs ({args.epochs} timed after a warm-start epoch, alternating):",
                  flush=True)
            r["epochs"] = run_epochs(workers, args.epochs, batch_size)
            print(f"Single steps at batch {batch_size}:", flush=True)
            r["steps"] = run_steps(workers, batch_size, args.step_n, args.step_rounds, 3)
            for fw, s in r["steps"].items():
                print(f"  {workers[fw].name}: median {s['median'] * 1e3:.1f} ms, "
                      f"min {s['min'] * 1e3:.1f} ms", flush=True)
            print("Inference:", flush=True)
            r["inference"] = run_inference(workers, args.infer_batch_sizes, args.infer_repeats)
            print("Latency, one image per call:", flush=True)
            r["latency"] = run_latency(workers, *args.latency)
        if not args.no_scaling:
            print("Scaling, default threads:", flush=True)
            r["scaling"]["default"] = run_scaling(workers, args.scaling_sizes, args.scaling_n,
                                                  3, "default")
    finally:
        close_all(workers)
    if args.no_scaling:
        return
    fws = list(workers)
    variants = [("one_thread", "1 thread", {"threads": 1})]
    if PIN_CPU is not None:
        variants.append(("one_core", f"pinned to CPU {PIN_CPU}", {"pin": PIN_CPU}))
    for key, label, how in variants:  # fresh workers: thread pools are sized at start-up
        workers, setups[key] = start_workers(fws, data_dir, max(args.scaling_sizes), 1, **how)
        try:
            print(f"Scaling, {label}:", flush=True)
            r["scaling"][key] = run_scaling(workers, args.scaling_sizes, args.scaling_n, 3,
                                            label)
        finally:
            close_all(workers)


def main(argv=None) -> int:
    args = parse_args(argv)
    monitor = _common.LoadMonitor()
    frameworks = _common.parse_frameworks(args.frameworks)
    if "minicnn" not in frameworks:
        frameworks.insert(0, "minicnn")
    notebook = "mnist_cnn" in args.models
    data_dir, data_text = (_common.resolve_data(args.random_data) if notebook
                           else (None, "(the notebook's model not run)"))
    # Every kernel in numba's cache first, as after any first run: a worker that found one
    # missing would train on the reference layers while a background process compiled it
    # (minicnn/models/warmup.py). The cold start is measured on an empty cache of its own.
    subprocess.run([sys.executable, "-m", "minicnn", "warmup"], check=True,
                   env={**os.environ, "PYTHONPATH": str(_common.ROOT)})
    info = _common.machine_info(frameworks)
    print(f"Training benchmark: {', '.join(frameworks)}; models: {', '.join(args.models)}; "
          f"data: {data_text}", flush=True)
    r = {"epochs": {}, "steps": {}, "inference": {}, "latency": {}, "cold_start": {},
         "scaling": {}, "recipes": {}}
    setups = {}
    if notebook:
        run_notebook(args, frameworks, data_dir, r, setups)
    others = [name for name in args.models if name != "mnist_cnn"]
    if others and not args.scaling:
        print("The other recipes, single training steps (alternating blocks):", flush=True)
        for name in others:
            r["recipes"][name] = run_recipe(
                frameworks, name, args.batch_size or RECIPES[name][1], args.random_data,
                args.recipe_n, args.recipe_rounds, 2)
    load = monitor.finish()
    if "default" in setups:
        frameworks = [fw for fw in frameworks if fw in setups["default"]]
    info["frameworks"] = frameworks
    config = {"epochs": args.epochs, "batch_size": args.notebook_batch_size,
              "quick": args.quick, "models": args.models,
              "train_images": args.limit_train or 60_000, "test_images": args.limit_test or 10_000,
              "validation_split": VALIDATION_SPLIT, "scaling_only": args.scaling,
              "steps": f"{args.step_rounds} x {args.step_n}",
              "recipe_steps": f"{args.recipe_rounds} x {args.recipe_n}",
              "inference_repeats": args.infer_repeats}
    text = _report.train_markdown(info, load, config, frameworks, r, data_text)
    data = {"benchmark": "train", "machine": info, "load": load, "config": config,
            "data": data_text, "setup": setups, **r}
    paths = _common.write_results(args.out, "train", data, text)
    print()
    print(text)
    print(f"\nWrote {paths['json']} and {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
