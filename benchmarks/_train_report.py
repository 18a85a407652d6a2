"""bench_train.py's report: its tables and the issues' targets, rendered from the measured
numbers (the `r` dict bench_train.py fills); nothing here measures."""

from __future__ import annotations

import json

import _common

EPOCH_RATIO_TARGET, EPOCH_RATIO_STRETCH = 0.80, 0.65
WARM_START_TARGET_S = 1.0
STEP_RATIO_TARGET = 1.5  # issue 11: no step of the new recipes over 1.5x TensorFlow's
# Each other recipe's step target: (ratio to TensorFlow, the issue that set it).
STEP_TARGETS = {"fashion_mnist_cnn": (STEP_RATIO_TARGET, "issue 11"),
                "cifar10_cnn": (STEP_RATIO_TARGET, "issue 11"), "resnet20": (0.8, "issue 18")}
OUTLIER = 1.5  # an epoch this many times the median is flagged


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
