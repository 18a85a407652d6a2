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
   notebook calls them) and at 128: one untimed call, then alternating repeats.
5. Scaling: step time at batch sizes 32 to 512, with each framework's default threads; with
   one thread, each told so through its own knob (minicnn.set_num_threads(1), with
   MINICNN_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1; intra- and inter-op parallelism 1 for
   TensorFlow; torch.set_num_threads(1) and set_num_interop_threads(1) for PyTorch); and on one
   core, the worker pinned to one CPU as `taskset -c` would (os.sched_setaffinity, before any
   library loads). Each in fresh workers.
6. The other recipes (`fashion_mnist_cnn` with BatchNormalization and Dropout, Keras's classic
   `cifar10_cnn`), each in fresh workers on its own data set: single training steps at the
   recipe's batch size, in alternating blocks, minicnn against TensorFlow (which runs the same
   recipe's Keras twin, `minicnn.models.to_keras`): the medians and their ratio.

Writes train-<date>.json and .md to --out (default benchmarks/results/), and train-latest.md.
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

VALIDATION_SPLIT = 0.1
SCALING_BATCH_SIZES = (32, 64, 128, 256, 512)
EPOCH_RATIO_TARGET, EPOCH_RATIO_STRETCH = 0.80, 0.65
WARM_START_TARGET_S = 1.0
STEP_RATIO_TARGET = 1.5  # issue 11: no step of the new recipes over 1.5x TensorFlow's
# Each other recipe's step target: (ratio to TensorFlow, the issue that set it).
STEP_TARGETS = {"fashion_mnist_cnn": (STEP_RATIO_TARGET, "issue 11"),
                "cifar10_cnn": (STEP_RATIO_TARGET, "issue 11"), "resnet20": (0.8, "issue 18")}
# Each recipe's data set and batch size (the tutorial's: Keras's cifar10_cnn trained on 32).
RECIPES = {"mnist_cnn": ("mnist", 128), "fashion_mnist_cnn": ("fashion_mnist", 128),
           "cifar10_cnn": ("cifar10", 32), "resnet20": ("cifar10", 128)}
OUTLIER = 1.5  # an epoch this many times the median is flagged
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
                    cold = probe(fw, {**os.environ, "NUMBA_CACHE_DIR": cache})
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
            "ratio_minicnn_tf": ratio(mc and mc["median"], tf and tf["median"]),
            "setup": setups}


# -- the report ------------------------------------------------------------------------------------
def ratio(a, b):
    return a / b if a is not None and b else None


def headline(frameworks, r) -> tuple[list[str], list[list]]:
    tf = r["epochs"].get("tensorflow")
    n_test = next(iter(r["inference"].values()))["predict@32"]["images"] if r.get(
        "inference") else None
    k = f"{n_test / 1000:g}k" if n_test else "10k"
    headers = ["framework", "epoch time (median)", "step time (epoch/steps; direct)", "vs TF",
               "first epoch (warm start)", f"predict {k} (batch 32)", f"evaluate {k} (batch 32)",
               "cold start (import + first step)", "peak RSS"]
    others = r.get("recipes", {})
    headers += [f"{name} step (batch {o['batch_size']})" for name, o in others.items()]
    rows = []
    for fw in frameworks:
        e = r["epochs"].get(fw)
        if e is None:
            continue
        step = r["steps"].get(fw)
        inf = r.get("inference", {}).get(fw, {})
        cold = r["cold_start"].get(fw, {})
        cold_text = _common.fmt_s(cold["cold"]["total_s"]) if cold else "—"
        if cold.get("warm"):
            cold_text += f" ({cold['warm']['total_s']:.2f} s cached)"

        def infer(key, inf=inf):
            v = inf.get(key)
            return "—" if not v else f"{v['median']:.2f} s ({v['images_per_s']:,.0f}/s)"

        rows.append([
            _common.LABELS[fw],
            f"{e['epoch_s']['median']:.2f} s (min {e['epoch_s']['min']:.2f} s)",
            f"{e['epoch_s']['median'] / e['steps_per_epoch'] * 1e3:.1f} ms; "
            + (f"{step['median'] * 1e3:.1f} ms" if step else "—"),
            _common.fmt_ratio(ratio(e["epoch_s"]["median"], tf and tf["epoch_s"]["median"])),
            f"{e['first_epoch_s']:.2f} s ({e['warm_start_extra_s']:+.2f} s)",
            infer("predict@32"), infer("evaluate@32"), cold_text,
            f"{e['peak_rss_mb']:.0f} MB",
            *(recipe_step_cell(o, fw) for o in others.values()),
        ])
    return headers, rows


def recipe_step_cell(recipe: dict, fw: str) -> str:
    """A recipe's median step for `fw`, with minicnn's ratio to TensorFlow."""
    step = recipe["steps"].get(fw)
    if step is None:
        return "—"
    text = f"{step['median'] * 1e3:.1f} ms"
    if fw == "minicnn" and recipe["ratio_minicnn_tf"] is not None:
        text += f" ({recipe['ratio_minicnn_tf']:.2f}x TF)"
    return text


def targets(r) -> list[list]:
    """The issues' targets: the notebook's (issue 5), then each other recipe's step (issue 11)."""
    rows = notebook_targets(r)
    for name, o in r.get("recipes", {}).items():
        mc, tf = o["steps"].get("minicnn"), o["steps"].get("tensorflow")
        if mc and tf:
            target, issue = STEP_TARGETS[name]
            rows.append([f"{name}: training step, batch {o['batch_size']} ({issue}: <= "
                         f"{target:g}x TF)", f"{mc['median'] * 1e3:.1f} ms",
                         f"{tf['median'] * 1e3:.1f} ms", f"{o['ratio_minicnn_tf']:.2f}",
                         "yes" if o["ratio_minicnn_tf"] <= target else "no"])
    return rows


def notebook_targets(r) -> list[list]:
    mc, tf = r["epochs"].get("minicnn"), r["epochs"].get("tensorflow")
    if not mc or not tf:
        return []
    rows = []
    epoch_ratio = mc["epoch_s"]["median"] / tf["epoch_s"]["median"]
    rows.append([f"minicnn/TF epoch ratio (target <= {EPOCH_RATIO_TARGET:.2f}; stretch "
                 f"{EPOCH_RATIO_STRETCH:.2f})", f"{mc['epoch_s']['median']:.2f} s",
                 f"{tf['epoch_s']['median']:.2f} s", f"{epoch_ratio:.2f}",
                 "yes" if epoch_ratio <= EPOCH_RATIO_TARGET else "no"])
    for key in ("predict@32", "evaluate@32", "predict@128", "evaluate@128"):
        a = r.get("inference", {}).get("minicnn", {}).get(key)
        b = r.get("inference", {}).get("tensorflow", {}).get(key)
        if a and b:
            kind, bs = key.split("@")
            rows.append([f"{kind} on the test set, batch {bs} (target: <= TF)",
                         f"{a['median']:.3f} s", f"{b['median']:.3f} s",
                         f"{a['median'] / b['median']:.2f}",
                         "yes" if a["median"] <= b["median"] else "no"])
    rows.append([f"warm start: first epoch - median epoch (target <= {WARM_START_TARGET_S:g} s)",
                 f"{mc['warm_start_extra_s']:+.2f} s", f"{tf['warm_start_extra_s']:+.2f} s", "",
                 "yes" if mc["warm_start_extra_s"] <= WARM_START_TARGET_S else "no"])
    rows.append(["peak RSS of the training run (target: below TF's)",
                 f"{mc['peak_rss_mb']:.0f} MB", f"{tf['peak_rss_mb']:.0f} MB",
                 f"{mc['peak_rss_mb'] / tf['peak_rss_mb']:.2f}",
                 "yes" if mc["peak_rss_mb"] < tf["peak_rss_mb"] else "no"])
    return rows


def recipes_markdown(recipes: dict) -> list[str]:
    rows = []
    for name, o in recipes.items():
        for fw, step in o["steps"].items():
            rows.append([name, str(o["batch_size"]), _common.LABELS[fw],
                         f"{step['median'] * 1e3:.1f}", f"{step['min'] * 1e3:.1f}",
                         _common.fmt_ratio(o["ratio_minicnn_tf"]) if fw == "minicnn" else "",
                         o["data"]])
    return ["## The other recipes: one training step", "", _common.md_table(
        ["recipe", "batch", "framework", "median ms", "min ms", "minicnn/TF", "data"], rows), "",
        "Single training steps (`train_on_batch`) on consecutive batches of the recipe's own data "
        "set, in fresh workers, frameworks alternating in blocks; minicnn/TF is the ratio of the "
        "medians (issue 11's target for the first two: at most "
        f"{STEP_RATIO_TARGET:g}; issue 18's for ResNet-20: at most "
        f"{STEP_TARGETS['resnet20'][0]:g}). TensorFlow runs each recipe's Keras twin, from the "
        "same initial weights (`minicnn.models.to_keras`); both report the same layers and weight "
        "shapes, or "
        "the run stops. `fashion_mnist_cnn`: two Conv2D + BatchNormalization + MaxPooling2D + "
        "Dropout blocks, Dense(128) + Dropout, Adam. `cifar10_cnn`: Keras's classic recipe "
        "(random flips, two blocks of two 'same'/'valid' Conv2D, MaxPooling2D and Dropout, "
        "Dense(512) + Dropout, RMSprop with inverse-time decay) at its batch size of 32. "
        "`resnet20`: He et al.'s CIFAR ResNet-20 (a graph: 9 residual Adds, 19 3x3 convs with "
        "BatchNormalization, Adam) at batch 128.", ""]


def markdown(info, load, config, frameworks, r, data_text) -> str:
    title = (f"the notebook's model, batch {config['batch_size']}"
             if "mnist_cnn" in config["models"] else "")
    if r.get("recipes"):
        title += (" and " if title else "") + ", ".join(r["recipes"])
    out = [f"# Training benchmark: {title}", "",
           _common.machine_markdown(info, load), f"- Data: {data_text}",
           f"- Settings: {json.dumps(config)}", "", *_common.load_warning(load)]
    if config["quick"]:
        out += ["**A --quick smoke run: too few images and epochs for the numbers to mean much "
                "(Keras's per-epoch overhead dominates such short epochs).**", ""]
    if r.get("epochs"):
        headers, rows = headline(frameworks, r)
        e0 = next(iter(r["epochs"].values()))
        out += [_common.md_table(headers, rows), "",
                f"Epoch: `fit` on {e0['train_images']:,} images ({e0['steps_per_epoch']} steps "
                f"of {config['batch_size']}) plus the validation pass on "
                f"{e0['validation_images']:,}; median of {config['epochs']} epochs after the "
                "first, frameworks alternating epoch by epoch. Step time: the epoch time over "
                "its steps (validation included), and the median of single `train_on_batch` "
                "steps. vs TF: ratio of the median epoch times (below 1, faster than "
                "TensorFlow). First epoch: its time, and in brackets its excess over the "
                "median epoch. Cold start: a fresh process importing the framework, building "
                "the model and taking its first step (minicnn: numba compiling into an empty "
                "cache; in brackets, with numba's cache populated). Peak RSS: the worker's "
                "maximum resident memory after the epochs (data included, the same for all).", ""]
        fws = list(r["epochs"])
        epoch_rows = [[str(k + 1) + (" (warm start)" if k == 0 else "")]
                      + [epoch_cell(r["epochs"][fw], k) for fw in fws]
                      for k in range(len(e0["epoch_seconds"]))]
        out += targets_markdown(r)
        out += ["## Every epoch", "",
                _common.md_table(["epoch", *(_common.LABELS[fw] for fw in fws)], epoch_rows), "",
                f"Frameworks alternate, left to right, row by row. An epoch marked (!) took over "
                f"{OUTLIER:g}x the median: the machine was busier then.", ""]
    elif r.get("recipes"):
        out += targets_markdown(r)
    if r.get("recipes"):
        out += recipes_markdown(r["recipes"])
    if r.get("inference"):
        inf_rows = []
        for fw, kinds in r["inference"].items():
            for key, v in kinds.items():
                inf_rows.append([_common.LABELS[fw], key.replace("@", ", batch "),
                                 f"{v['median']:.3f} s", f"{v['min']:.3f} s",
                                 f"{v['images_per_s']:,.0f}", f"{v['first_call_s']:.3f} s"])
        out += ["## Inference", "", _common.md_table(
            ["framework", "call", "median", "min", "images/s", "first call"], inf_rows), ""]
    if r.get("cold_start"):
        cold_rows = []
        for fw, c in r["cold_start"].items():
            for which, v in c.items():
                cold_rows.append([_common.LABELS[fw], "empty numba cache" if fw == "minicnn" and
                                  which == "cold" else "numba cache populated" if
                                  which == "warm" else "fresh process",
                                  f"{v['import_s']:.2f}", f"{v['build_s']:.2f}",
                                  f"{v['first_step_s']:.2f}", f"{v['later_step_s'] * 1e3:.1f}",
                                  f"{v['total_s']:.2f}", f"{v['process_wall_s']:.2f}"])
        out += ["## Cold start", "", _common.md_table(
            ["framework", "run", "import s", "build s", "first step s", "next step ms",
             "total s", "process wall s"], cold_rows), ""]
    if r.get("scaling"):
        out += scaling_markdown(r["scaling"])
    return "\n".join(out)


def targets_markdown(r) -> list[str]:
    rows = targets(r)
    if not rows:
        return []
    return ["## Targets (issues 5 and 11)", "",
            _common.md_table(["target", "minicnn", "TensorFlow", "ratio", "met"], rows), ""]


def epoch_cell(e: dict, k: int) -> str:
    seconds = e["epoch_seconds"][k]
    flag = " (!)" if k and seconds > OUTLIER * e["epoch_s"]["median"] else ""
    return f"{seconds:.2f} s{flag} (val acc {e['logs'][k].get('val_accuracy', 0):.4f})"


def scaling_markdown(scaling: dict) -> list[str]:
    fws = list(scaling["default"])
    sizes = sorted({int(bs) for fw in fws for bs in scaling["default"][fw]})
    pinned = "one_core" in scaling
    headers = ["batch"]
    for fw in fws:
        label = _common.LABELS[fw]
        headers += [f"{label} default ms/step", f"{label} 1 thread", f"{label} speedup"]
        if pinned:
            headers.append(f"{label} one core")
    if "minicnn" in fws and "tensorflow" in fws:
        headers.append("minicnn/TF (default)")
        headers.append("minicnn/TF (1 thread)")
        if pinned:
            headers.append("minicnn/TF (one core)")

    def median(variant, fw, bs):
        s = scaling.get(variant, {}).get(fw, {}).get(str(bs))
        return s and s["median"]

    rows = []
    for bs in sizes:
        row = [str(bs)]
        for fw in fws:
            d, one = median("default", fw, bs), median("one_thread", fw, bs)
            row += [_common.fmt_ms(d, 1), _common.fmt_ms(one, 1),
                    _common.fmt_ratio(ratio(one, d))]
            if pinned:
                row.append(_common.fmt_ms(median("one_core", fw, bs), 1))
        if "minicnn" in fws and "tensorflow" in fws:
            for variant in ("default", "one_thread", "one_core")[:3 if pinned else 2]:
                row.append(_common.fmt_ratio(ratio(median(variant, "minicnn", bs),
                                                   median(variant, "tensorflow", bs))))
        rows.append(row)
    return ["## Scaling: step time by batch size and threads", "", _common.md_table(headers, rows),
            "", "Median of single training steps (`train_on_batch`), each set of workers fresh. "
            "Default: the framework's own thread count in this environment (here, all cores). "
            "1 thread: each framework told one thread through its own knob: for minicnn "
            "`minicnn.set_num_threads(1)` (and MINICNN_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1; "
            "its BLAS is single-threaded inside fit and train_on_batch anyway), for TensorFlow "
            "intra- and inter-op parallelism 1, for PyTorch `torch.set_num_threads(1)` and "
            "`torch.set_num_interop_threads(1)`; the process may still run on every core. "
            + ("One core: the worker pinned to one CPU before any library loads "
               "(`os.sched_setaffinity`, as `taskset -c` does), each framework then choosing "
               "its threads as on a one-core machine (every one of them reads the affinity "
               "mask: 1). " if pinned else "")
            + "Speedup: 1-thread time over default time.", ""]


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
    info = _common.machine_info(frameworks)
    print(f"Training benchmark: {', '.join(frameworks)}; models: {', '.join(args.models)}; "
          f"data: {data_text}", flush=True)
    r = {"epochs": {}, "steps": {}, "inference": {}, "cold_start": {}, "scaling": {},
         "recipes": {}}
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
    text = markdown(info, load, config, frameworks, r, data_text)
    data = {"benchmark": "train", "machine": info, "load": load, "config": config,
            "data": data_text, "setup": setups, **r}
    paths = _common.write_results(args.out, "train", data, text)
    print()
    print(text)
    print(f"\nWrote {paths['json']}, {paths['md']} and {paths['latest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
