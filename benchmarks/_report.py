"""The benchmarks' reports: every Markdown table and paragraph the scripts write, rendered from
the numbers they measured (the dicts they also save as JSON); nothing here measures or times.

- shared: `md_table`, the number formats, the machine and its load (`machine_markdown`,
  `load_warning`);
- `train_markdown`: bench_train.py's report, with the issues' targets and whether they are met;
- `kernels_markdown`: bench_kernels.py's, per layer pass, the roofline and the conv algorithms
  (`machine_lines` is also what it prints of the machine's limits at the start);
- `profile_markdown`: profile_one_core.py's, minicnn's plan steps against TensorFlow's oneDNN
  trace.
"""

from __future__ import annotations

import json

import _common


# -- shared: tables, numbers, the machine and its load ---------------------------------------------
def md_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_ms(seconds: float | None, digits: int = 2) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.{digits}f}"


def fmt_s(seconds: float | None, digits: int = 2) -> str:
    return "—" if seconds is None else f"{seconds:.{digits}f} s"


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}"


def load_markdown(load: dict, cores: int | None) -> str:
    text = (f"load average (1, 5, 15 min) {', '.join(f'{v:.2f}' for v in load['load_before'])} "
            f"before, {', '.join(f'{v:.2f}' for v in load['load_after'])} after")
    if "other_cores" in load:
        text += (f"; during the {load['wall_s']:.0f} s run, other programs kept "
                 f"{load['other_cores']:.2f} of {cores} cores busy on average")
    return text


BUSY_CORES = 0.25  # other programs' average use above which a run is flagged as disturbed


def load_warning(load: dict) -> list[str]:
    """A bold warning paragraph when other programs used the machine during the run."""
    if load.get("other_cores", 0.0) <= BUSY_CORES:
        return []
    return [f"**The machine was busy: other programs kept {load['other_cores']:.2f} cores busy "
            "on average during this run, so these timings are slower and noisier than on a "
            "quiet machine, and not by the same factor for every framework. Medians and "
            "minima resist this better than means; compare with a run on a quiet machine.**",
            ""]


def machine_markdown(info: dict, load: dict) -> str:
    v = info["versions"]
    libs = ", ".join(f"{name} {v[name]}" for name in ("numpy", "numba", "tensorflow", "keras",
                                                         "torch") if v.get(name))
    blas = info["blas"].get("numpy_blas")
    if isinstance(blas, dict):
        blas = " ".join(str(blas[k]) for k in ("name", "version") if k in blas)
    lines = [
        f"- Date: {info['date']}",
        f"- CPU: {info['cpu_model']}, {info['cores']} cores, {info['ram_gb']} GB RAM",
        f"- OS: {info['os']}; Python {info['python']}; {libs}",
        f"- numpy BLAS: {blas}",
        f"- minicnn: commit {info['minicnn_commit']}"
        + (f" with {info['minicnn_uncommitted_files']} uncommitted file(s) under minicnn/"
           if info["minicnn_uncommitted_files"] else "")
        + (f" (sources SHA-1 {info['minicnn_source_sha1']}, at the start of the run)"
           if info.get("minicnn_source_sha1") else ""),
        f"- Machine load: {load_markdown(load, info['cores'])}",
    ]
    if info["thread_env"]:
        lines.append(f"- Thread variables set: {info['thread_env']}")
    return "\n".join(lines)


# -- bench_train.py: the training run --------------------------------------------------------------
EPOCH_RATIO_TARGET, EPOCH_RATIO_STRETCH = 0.80, 0.65
WARM_START_TARGET_S = 1.0
STEP_RATIO_TARGET = 1.5  # issue 11: no step of the new recipes over 1.5x TensorFlow's
# Each other recipe's step target: (ratio to TensorFlow, the issue that set it).
STEP_TARGETS = {"fashion_mnist_cnn": (STEP_RATIO_TARGET, "issue 11"),
                "cifar10_cnn": (STEP_RATIO_TARGET, "issue 11"), "resnet20": (0.7, "issue 22"),
                "lenet": (0.8, "issue 22")}
COLD_START_TARGET_S = 3.0  # issue 22: the notebook model's first step on a fresh install
OUTLIER = 1.5  # an epoch this many times the median is flagged


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
        cold_text = fmt_s(cold["cold"]["total_s"]) if cold else "—"
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
            fmt_ratio(_common.ratio(e["epoch_s"]["median"], tf and tf["epoch_s"]["median"])),
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
    pt = r.get("inference", {}).get("pytorch", {}).get("predict@32")
    a = r.get("inference", {}).get("minicnn", {}).get("predict@32")
    if a and pt:
        rows.append(["predict on the test set, batch 32 (issue 22: ahead of PyTorch)",
                     f"{a['median']:.3f} s", f"PyTorch {pt['median']:.3f} s",
                     f"{a['median'] / pt['median']:.2f}",
                     "yes" if a["median"] < pt["median"] else "no"])
    lat = r.get("latency", {})
    if lat.get("minicnn") and lat.get("pytorch"):
        a, b = lat["minicnn"]["median"], lat["pytorch"]["median"]
        rows.append(["one image, batch 1 (issue 22: ahead of PyTorch)", f"{a * 1e3:.3f} ms",
                     f"PyTorch {b * 1e3:.3f} ms", f"{a / b:.2f}", "yes" if a < b else "no"])
    cold = r.get("cold_start", {}).get("minicnn", {}).get("cold")
    tf_cold = r.get("cold_start", {}).get("tensorflow", {}).get("cold")
    if cold:
        rows.append([f"cold start: import + first step, empty numba cache (issue 22: < "
                     f"{COLD_START_TARGET_S:g} s)", f"{cold['total_s']:.2f} s",
                     f"{tf_cold['total_s']:.2f} s" if tf_cold else "—",
                     f"{cold['total_s'] / tf_cold['total_s']:.2f}" if tf_cold else "",
                     "yes" if cold["total_s"] < COLD_START_TARGET_S else "no"])
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
                         fmt_ratio(o["ratio_minicnn_tf"]) if fw == "minicnn" else "",
                         o["data"]])
    return ["## The other recipes: one training step", "", md_table(
        ["recipe", "batch", "framework", "median ms", "min ms", "minicnn/TF", "data"], rows), "",
        "Single training steps (`train_on_batch`) on consecutive batches of the recipe's own data "
        "set, in fresh workers, frameworks alternating in blocks; minicnn/TF is the ratio of the "
        "medians (issue 11's target for the first two: at most "
        f"{STEP_RATIO_TARGET:g}). TensorFlow runs each recipe's Keras twin, from the "
        "same initial weights (`minicnn.models.to_keras`); both report the same layers and weight "
        "shapes, or "
        "the run stops. `fashion_mnist_cnn`: two Conv2D + BatchNormalization + MaxPooling2D + "
        "Dropout blocks, Dense(128) + Dropout, Adam. `cifar10_cnn`: Keras's classic recipe "
        "(random flips, two blocks of two 'same'/'valid' Conv2D, MaxPooling2D and Dropout, "
        "Dense(512) + Dropout, RMSprop with inverse-time decay) at its batch size of 32. "
        "`resnet20`: He et al.'s CIFAR ResNet-20 (a graph: 9 residual Adds, 19 3x3 convs with "
        "BatchNormalization, Adam) at batch 128 (issue 22's target: at most "
        f"{STEP_TARGETS['resnet20'][0]:g}x). `lenet`: d2l's LeNet-5 (sigmoid convs and Dense "
        "layers, average pooling, SGD) at d2l's batch of 256 (issue 22's target: at most "
        f"{STEP_TARGETS['lenet'][0]:g}x).", ""]


def train_markdown(info, load, config, frameworks, r, data_text) -> str:
    title = (f"the notebook's model, batch {config['batch_size']}"
             if "mnist_cnn" in config["models"] else "")
    if r.get("recipes"):
        title += (" and " if title else "") + ", ".join(r["recipes"])
    out = [f"# Training benchmark: {title}", "",
           machine_markdown(info, load), f"- Data: {data_text}",
           f"- Settings: {json.dumps(config)}", "", *load_warning(load)]
    if config["quick"]:
        out += ["**A --quick smoke run: too few images and epochs for the numbers to mean much "
                "(Keras's per-epoch overhead dominates such short epochs).**", ""]
    if r.get("epochs"):
        headers, rows = headline(frameworks, r)
        e0 = next(iter(r["epochs"].values()))
        out += [md_table(headers, rows), "",
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
                md_table(["epoch", *(_common.LABELS[fw] for fw in fws)], epoch_rows), "",
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
        out += ["## Inference", "", md_table(
            ["framework", "call", "median", "min", "images/s", "first call"], inf_rows), ""]
    if r.get("latency"):
        lat_rows = [[_common.LABELS[fw], f"{v['median'] * 1e3:.3f}", f"{v['min'] * 1e3:.3f}",
                     f"{1 / v['median']:,.0f}"] for fw, v in r["latency"].items()]
        out += ["## Latency: one image per call", "", md_table(
            ["framework", "median ms", "min ms", "calls/s"], lat_rows), "",
            "Each framework's quickest call on a batch of one test image: `predict_on_batch` "
            "for minicnn and TensorFlow (0.73 ms a call against 5.0 ms for an eager "
            "`model(x)` in TensorFlow), the module in eval mode under `torch.no_grad()` with a "
            "softmax for PyTorch; rounds of calls, frameworks alternating, the first round "
            "untimed.", ""]
    if r.get("cold_start"):
        cold_rows = []
        for fw, c in r["cold_start"].items():
            for which, v in c.items():
                fast = v.get("fast_plan_after_s")
                cold_rows.append([_common.LABELS[fw], "empty numba cache" if fw == "minicnn" and
                                  which == "cold" else "numba cache populated" if
                                  which == "warm" else "fresh process",
                                  f"{v['import_s']:.2f}", f"{v['build_s']:.2f}",
                                  f"{v['first_step_s']:.2f}", f"{v['later_step_s'] * 1e3:.1f}",
                                  f"{v['total_s']:.2f}",
                                  "—" if fast is None else
                                  f"{fast:.1f} ({v['fast_step_s'] * 1e3:.1f} ms)",
                                  f"{v['process_wall_s']:.2f}"])
        out += ["## Cold start", "", md_table(
            ["framework", "run", "import s", "build s", "first step s", "next step ms",
             "total s", "fast plan from s (its step)", "process wall s"], cold_rows), "",
            "A fresh process: import, build the notebook's model, three training steps at "
            "batch 128 (total: import + build + the first). On an empty numba cache minicnn "
            "trains on its reference layers while a background process compiles its kernels "
            "(minicnn/models/warmup.py); 'fast plan from' is when the fast plan took over, "
            "counted from the import, and its step then.", ""]
    if r.get("scaling"):
        out += scaling_markdown(r["scaling"])
    return "\n".join(out)


def targets_markdown(r) -> list[str]:
    rows = targets(r)
    if not rows:
        return []
    return ["## Targets (issues 5, 11 and 22)", "",
            md_table(["target", "minicnn", "TensorFlow", "ratio", "met"], rows), ""]


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
            row += [fmt_ms(d, 1), fmt_ms(one, 1),
                    fmt_ratio(_common.ratio(one, d))]
            if pinned:
                row.append(fmt_ms(median("one_core", fw, bs), 1))
        if "minicnn" in fws and "tensorflow" in fws:
            for variant in ("default", "one_thread", "one_core")[:3 if pinned else 2]:
                row.append(fmt_ratio(_common.ratio(median(variant, "minicnn", bs),
                                                   median(variant, "tensorflow", bs))))
        rows.append(row)
    return ["## Scaling: step time by batch size and threads", "", md_table(headers, rows),
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


# -- bench_kernels.py: layer passes, roofline, conv algorithms -------------------------------------
PASS_LABELS = {"fwd": "forward", "bwd": "backward (full)", "bwd_w": "backward-weights",
               "bwd_x": "backward-input = full - weights", "step": "step"}
IN_STEP_NOTE = "not in a training step: the first layer's input needs no gradient"


def time_cell(s: dict | None, key: str) -> str:
    if s is None:
        return "—"
    if s[key] < 0:  # a difference of two noisy timings
        return "<0 (noise)"
    return fmt_ms(s[key], 3)


def gflops_cell(s: dict | None) -> str:
    """GFLOP/s and share of the peak, or the flag that replaces them."""
    if not s or s.get("gflops") is None:
        return "—"
    if s.get("flag"):
        return "timing error"
    return f"{s['gflops']:.0f} ({s['share_of_peak']:.0%})"


def machine_lines(machine: dict) -> list[str]:
    return [
        f"- SGEMM peak (numpy float32 matmul, {machine['sgemm_n']}x{machine['sgemm_n']}, best "
        f"of {machine['sgemm_repeats']}): {machine['peak_gflops_1_thread']:.0f} GFLOP/s on one "
        f"BLAS thread, {machine['peak_gflops_all_threads']:.0f} on all; the roof: "
        f"{machine['peak_gflops']:.0f} GFLOP/s",
        f"- Memory bandwidth (copy of {machine['copy_mb']} MB, read + written bytes, best of "
        f"{machine['copy_repeats']}): {machine['bandwidth_gbs_1_thread']:.1f} GB/s from one "
        f"thread, {machine['bandwidth_gbs_all_threads']:.1f} GB/s from one per core",
    ]


def roofline_markdown(rows: list[dict], frameworks: list[str], machine: dict,
                      figure: str | None) -> list[str]:
    table = []
    for r in rows:
        if not r.get("intensity"):
            continue
        cells = [r["layer"], PASS_LABELS[r["pass"]], f"{r['intensity']:.1f}",
                 f"{min(machine['peak_gflops'], r['intensity'] * machine['bandwidth_gbs']):.0f}"]
        for fw in frameworks:
            cells.append(gflops_cell(r.get(fw)))
        table.append(cells)
    flagged = [f"- {r['layer']} {PASS_LABELS[r['pass']]}, {_common.LABELS[fw]}: {r[fw]['flag']}"
               for r in rows for fw in frameworks if r.get(fw) and r[fw].get("flag")]
    return ["## Roofline", "", *machine_lines(machine), "",
            *([f"![roofline: GFLOP/s against arithmetic intensity]({figure})", ""]
              if figure else []),
            md_table(["layer", "pass", "FLOP/byte", "roof GFLOP/s",
                      *(f"{_common.LABELS[fw]} GFLOP/s (of peak)" for fw in frameworks)],
                     table), "",
            "FLOPs are counted as the direct convolution's (2*N*H_out*W_out*KH*KW*C*F per "
            "pass; a Dense layer's GEMM, 2*N*in*out), whatever algorithm ran: for minicnn's "
            "Winograd steps the GFLOP/s are *effective* (direct-convolution FLOPs over time), "
            "and may exceed the GEMM peak, since F(2x2, 3x3) executes 16 products per 2x2 "
            "output block instead of 36. Arithmetic intensity: those FLOPs over the bytes of "
            "the pass's inputs, outputs and weights (float32, each once). The roof is "
            "min(peak, intensity x bandwidth), with the all-threads figures. A figure is "
            "flagged as a timing error, and not reported, when the FLOPs the pass actually "
            "executes (minicnn: Winograd's 16 per block, and only the conv outputs a fused "
            "pool reads; TensorFlow and PyTorch: the direct count, as their CPU convolutions "
            "are direct or GEMM-based) over its median time exceed the measured peak.",
            "", *(["Flagged:", *flagged, ""] if flagged else [])]


def algorithms_markdown(units: list[dict], rows: list[dict], config: dict) -> list[str]:
    if not rows:
        return []
    unit_by = {(u["model"], u["step"]): u for u in units}
    table, verdicts = [], []
    for e in rows:
        u = unit_by[(e["model"], e["step"])]
        shape = (f"{'x'.join(map(str, u['input']))} -> {'x'.join(map(str, u['output']))} "
                 f"'{u['padding']}'" + (f", computes {u['computed'][0]}x{u['computed'][1]}"
                                         if u["computed"] != u["output"][:2] else ""))
        table.append([e["model"], e["step"], shape, str(e["threads"]),
                      e["algorithm"] + (" (picked)" if e["picked"] else ""),
                      fmt_ms(e["fwd"]["median"]), fmt_ms(e["bwd"]["median"]),
                      fmt_ms(e["total_s"]), gflops_cell(e["fwd"]),
                      "fastest" if e["fastest"] else f"{e['over_fastest']:.2f}x"])
        if e["picked"]:
            best = next(b for b in rows if (b["model"], b["step"], b["threads"]) == (
                e["model"], e["step"], e["threads"]) and b["fastest"])
            verdicts.append([e["model"], e["step"], str(e["threads"]), e["algorithm"],
                             best["algorithm"], "yes" if e["fastest"] else
                             f"no ({e['over_fastest']:.2f}x the fastest)"])
    setting = units[0]["setting"] if units else "auto"
    return ["## Conv algorithms per layer", "",
            f"minicnn's conv steps as the fast plan builds them for `mnist_cnn` and "
            f"`cifar10_cnn` (augmentation left out), batch {config['batch_size']}, each "
            "algorithm forced in turn: im2col always, Winograd F(2x2, 3x3) for 3x3 stride-1 "
            "kernels, direct up to a receptive field of 64. (picked) is the plan's choice "
            f"(MINICNN_CONV_ALGORITHM={setting}; the rule is in "
            "minicnn/fast/conv_algorithm.py). Backward computes the input gradient except in "
            "a model's first step, as in training. Medians of "
            f"{config['algorithm_rounds']} rounds x {config['algorithm_calls']} calls, per "
            "thread count (`minicnn.set_num_threads`); GFLOP/s of the forward, effective "
            "(direct-convolution FLOPs, see the roofline).", "",
            md_table(["model", "step", "shapes", "threads", "algorithm", "forward ms",
                      "backward ms", "sum ms", "forward GFLOP/s (of peak)",
                      "vs fastest"], table), "",
            "Does the rule pick the fastest (forward + backward)?", "",
            md_table(["model", "step", "threads", "picked", "fastest", "agrees"],
                     verdicts), ""]


def kernels_markdown(info, load, config, frameworks, rows, totals, overheads, data_text, machine,
                     step_passes, figure=None, units=(), algorithm_table=()) -> str:
    """bench_kernels.py's report. `step_passes`: the (layer, pass) rows one training step of
    minicnn's plan runs (bench_kernels.step_passes), for where minicnn loses the most time."""
    labels = [_common.LABELS[fw] for fw in frameworks]
    headers = ["layer", "pass", "MFLOP", "FLOP/byte"]
    for label in labels:
        headers += [f"{label} median ms", f"{label} min ms", f"{label} GFLOP/s (of peak)"]
    has_tf = "tensorflow" in frameworks
    if has_tf:
        headers.append("minicnn/TF")
    table = []
    for r in rows:
        flops = r["flops"] or r.get("flops_by_framework", {}).get(frameworks[0])
        cells = [r["layer"], PASS_LABELS[r["pass"]] + (" *" if r["unused"] else ""),
                 "—" if not flops else f"{flops / 1e6:.1f}",
                 "—" if not r.get("intensity") else f"{r['intensity']:.1f}"]
        for fw in frameworks:
            s = r.get(fw)
            cells += [time_cell(s, "median"), time_cell(s, "min"), gflops_cell(s)]
        if has_tf:
            cells.append(fmt_ratio(r.get("ratio_minicnn_tf")))
        table.append(cells)
    total_rows = [[_common.LABELS[fw], ", ".join(totals[fw]["plan"]),
                   fmt_ms(totals[fw]["sum_of_passes_s"]),
                   fmt_ms(totals[fw]["whole_step_s"]),
                   fmt_ms(totals[fw]["floor_s"]),
                   fmt_ratio(totals[fw]["whole_over_floor"]),
                   f"{overheads[fw] * 1e6:.1f}"] for fw in frameworks]
    text = [
        f"# Per-layer timings at batch {config['batch_size']}",
        "",
        machine_markdown(info, load),
        *machine_lines(machine),
        f"- Data: {data_text}",
        f"- {config['repeats']} interleaved rounds x {config['calls']} calls per op and "
        f"framework after {config['warmup']} warm-up calls; min and median over all calls.",
        "",
        *load_warning(load),
        md_table(headers, table),
        "",
        "minicnn/TF is the ratio of the medians: below 1, minicnn is faster. "
        "backward-input is not timed alone: it is the full backward minus the weights-only "
        "backward (medians from medians, minima from minima), for every framework alike. "
        "GFLOP/s are from the median and count 2*M*N*K per GEMM-equivalent of the direct "
        "convolution (see benchmarks/README.md), with their share of the measured SGEMM peak; "
        "FLOP/byte is the pass's arithmetic intensity (see the roofline below). "
        f"Rows marked * are {IN_STEP_NOTE}.",
        "",
        "## One training step",
        "",
        md_table(["framework", "steps as run", "sum of the passes a step runs (ms)",
                  "whole training step (ms)", "floor at the SGEMM peak (ms)",
                  "whole / floor", "empty call overhead (µs)"], total_rows),
        "",
        "Steps as run: minicnn's `fit` runs each Conv2D(relu) + MaxPooling2D pair as one fused "
        "step (when its model has such an execution plan); TensorFlow and PyTorch are listed "
        "by layer. The sum covers, for those steps, every forward, the first one's "
        "weights-only backward, every other full backward and the Adam step. "
        "The whole step is minicnn's `model._train_step`, Keras's "
        "`train_on_batch` (one compiled graph) and PyTorch's loop step. The floor is the "
        "step's counted FLOPs at the measured all-threads SGEMM peak. The empty call "
        "overhead is what calling a no-op costs (a `tf.function` for TensorFlow); it is in "
        "every TensorFlow row above.",
    ]
    if has_tf:
        by_key = {(r["layer"], r["pass"]): r for r in rows}
        in_step = [by_key[key] for key in step_passes if key in by_key]
        gaps = sorted((r for r in in_step if r.get("minicnn") and r.get("tensorflow")),
                      key=lambda r: r["tensorflow"]["median"] - r["minicnn"]["median"])
        lines = [f"- {r['layer']} {PASS_LABELS[r['pass']]}: minicnn "
                 f"{r['minicnn']['median'] * 1e3:.2f} ms, TensorFlow "
                 f"{r['tensorflow']['median'] * 1e3:.2f} ms "
                 f"({(r['minicnn']['median'] - r['tensorflow']['median']) * 1e3:+.2f} ms)"
                 for r in gaps[:5] if r["minicnn"]["median"] > r["tensorflow"]["median"]]
        text += ["", "## Where minicnn loses the most time per step", "",
                 *(lines or ["- nowhere: every pass of a step is at least as fast as "
                             "TensorFlow's"])]
    text += ["", *roofline_markdown(rows, frameworks, machine, figure)]
    text += algorithms_markdown(list(units), list(algorithm_table), config)
    return "\n".join(text)


# -- profile_one_core.py: one core, layer by layer -------------------------------------------------
def _ms(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _calls(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.2f}"


def minicnn_markdown(mc: dict, rounds: int) -> list[str]:
    table = []
    for r in mc["steps"]:
        f, b = r["forward"], r["backward"]
        table.append([r["step"], f"`{r['repr']}`", fmt_ms(f["median"], 3),
                      fmt_ms(f["min"], 3), fmt_ms(b and b["median"], 3),
                      fmt_ms(b and b["min"], 3),
                      fmt_ms(f["median"] + (b["median"] if b else 0.0), 3)])
    whole = mc["whole_step"]
    table += [["**sum of the steps**", "", "", "", "", "",
               fmt_ms(mc["sum_of_medians_s"], 3)],
              ["**whole step** (`train_on_batch`)", "", "", "", "", "",
               f"{fmt_ms(whole['median'], 3)} (min {fmt_ms(whole['min'], 3)})"],
              ["**difference** (Python, loss, optimizer)", "", "", "", "", "",
               fmt_ms(mc["difference_s"], 3)
               + (" (below 0: timing noise)" if mc["difference_s"] < 0 else "")]]
    return ["## minicnn: the plan's steps", "",
            md_table(["step", "minicnn step (algorithm)", "forward median ms",
                      "forward min ms", "backward median ms", "backward min ms",
                      "forward + backward median ms"], table), "",
            f"{rounds} rounds, each every step's forward (training=True) and backward as "
            "`train_on_batch` runs them, then one whole `train_on_batch`; "
            f"minicnn on {mc['threads']} thread, BLAS on one. The last step's backward starts "
            "from the loss (the softmax and cross-entropy's fused gradient); the first step's "
            "skips its input gradient. The difference is the whole step's median minus the sum "
            "of the steps' medians: what runs between and after them (Python, the loss and "
            "accuracy, Adam over all parameters).", ""]


def tensorflow_markdown(tf: dict) -> list[str]:
    steps = tf["traced_steps"]
    total = sum(r["ms_per_step"] for r in tf["primitives"])
    table = []
    for r in tf["primitives"]:
        where = (f"{r['layer']} {r['pass']}" if r["layer"]
                 else f"unattributed: {r['note']}")
        table.append([r["kind"], r["shape"], where, _ms(r["ms_per_step"], 3),
                      _calls(r["calls_per_step"]),
                      "—" if r["gflops"] is None else f"{r['gflops']:.1f}",
                      f"{r['ms_per_step'] / total:.1%}" if total else "—"])
    table.append(["**total**", "", "", _ms(total, 3),
                  _calls(sum(r["calls_per_step"] for r in tf["primitives"])), "", ""])
    untraced, traced = tf["untraced_step"], tf["traced_step"]
    passes = [[g["layer"], g["pass"], "x".join(map(str, g["dims"])),
               _ms(g["attributed_ms_per_step"], 3) if g["coverage"] else "—",
               f"{g['coverage']:.0%}"] for g in tf["gemms"]]
    lines = ["## TensorFlow: oneDNN primitives", "",
             f"TensorFlow {tf['versions']['tensorflow']}, Keras {tf['versions']['keras']}, "
             f"intra-op {tf['threads']['intra_op']} and inter-op {tf['threads']['inter_op']} "
             f"thread(s), TF_ENABLE_ONEDNN_OPTS={tf['onednn_opts']}; {steps} traced steps "
             f"after {tf['warmup']} warm-up steps, {tf['exec_lines']} oneDNN exec lines in "
             "them.", ""]
    if not tf["primitives"]:
        lines += ["**The trace had no oneDNN exec lines: this TensorFlow ran no oneDNN "
                  "primitive (is oneDNN enabled? TF_ENABLE_ONEDNN_OPTS).**", ""]
    lines += [md_table(["kind", "shape", "layer and pass", "ms per step",
                        "calls per step", "GFLOP/s", "share of oneDNN"], table), "",
              f"- oneDNN total per traced step: {total:.3f} ms, of which GEMMs (MxK:KxN) "
              f"{tf['gemm_ms_per_step']:.3f} ms",
              f"- TensorFlow's whole step (`train_on_batch`): untraced median "
              f"{fmt_ms(untraced['median'], 3)} ms (min "
              f"{fmt_ms(untraced['min'], 3)}, {untraced['n']} steps); traced median "
              f"{fmt_ms(traced['median'], 3)} ms",
              f"- GEMMs' share of the untraced step: about {tf['gemm_share']:.0%} (traced GEMM "
              "total over the untraced median: approximate, since tracing perturbs the run and "
              "the two are separate processes)", "",
              "Shapes are as oneDNN prints them (for `gemm_api`, MxK:KxN): Eigen cuts each "
              "layer's GEMM into blocks. A shape is put on a layer and pass only when its "
              "dimensions match exactly one pass and the blocks matching that pass add up to "
              "its rows in exactly one way, this one among them (its tiling; see the script's "
              "docstring); an unattributed shape names the passes whose dimensions it has. "
              "GFLOP/s count 2*M*K*N per call. Each pass's whole GEMM and how much of it the "
              "attributed blocks cover:",
              "",
              md_table(["layer", "pass", "whole GEMM MxKxN", "attributed ms per step",
                        "attributed share of its MACs"], passes), ""]
    return lines


def comparison_markdown(mc: dict, tf: dict | None, comparison: list[dict]) -> list[str]:
    table = [[c["step"], ", ".join(c["layers"]), fmt_ms(c["minicnn_s"], 3),
              _ms(c["tf_gemm_ms"], 3) if c["tf_coverage"] else "—",
              "—" if c["tf_coverage"] is None else
              f"{c['tf_coverage']:.0%} ("
              + ", ".join(f"{p} {v:.0%}" for p, v in c["tf_passes"].items()) + ")",
              "—" if not c["tf_coverage"] else
              f"{c['minicnn_s'] * 1e3 - c['tf_gemm_ms']:+.3f}"] for c in comparison]
    lines = ["## Layer by layer", "",
             md_table(["minicnn step", "layer", "minicnn forward + backward ms",
                       "TensorFlow attributed GEMMs ms", "of that layer's GEMM work",
                       "minicnn - TF GEMMs ms"], table), ""]
    lines.append(summary_paragraph(mc, tf, comparison))
    return lines


def summary_paragraph(mc: dict, tf: dict | None, comparison: list[dict]) -> str:
    """A few sentences from the numbers: whole steps, oneDNN's share, layer by layer."""
    mine = mc["whole_step"]["median"] * 1e3
    text = [f"On this core minicnn's whole training step took {mine:.1f} ms (median)"]
    if tf is None:
        return text[0] + "; TensorFlow was not profiled."
    theirs = tf["untraced_step"]["median"] * 1e3
    text[0] += (f", TensorFlow's {theirs:.1f} ms untraced (minicnn/TF {mine / theirs:.2f}). "
                f"TensorFlow's traced GEMMs add up to {tf['gemm_ms_per_step']:.1f} ms a step, "
                f"about {tf['gemm_share']:.0%} of its untraced step; the rest is Eigen's own "
                "code (patch extraction, bias, ReLU, pooling), the optimizer and the runtime, "
                "which the trace does not show.")
    done = [c for c in comparison if c["tf_coverage"]]
    for c in done:
        text.append(f"{c['step']}: minicnn {c['minicnn_s'] * 1e3:.2f} ms forward + backward, "
                    f"TensorFlow {c['tf_gemm_ms']:.2f} ms in the GEMMs attributed to "
                    f"{', '.join(c['layers'])} ({c['tf_coverage']:.0%} of its GEMM work: "
                    + ", ".join(f"{p} {v:.0%}" for p, v in c["tf_passes"].items()) + ").")
    if done:
        worst = max(done, key=lambda c: c["minicnn_s"] * 1e3 - c["tf_gemm_ms"])
        text.append(f"The largest excess of minicnn over TensorFlow's attributed GEMMs is in "
                    f"{worst['step']} ({worst['minicnn_s'] * 1e3 - worst['tf_gemm_ms']:+.2f} ms);"
                    " TensorFlow's figures are its GEMMs alone, a lower bound of its time in "
                    "each layer, and cover only the blocks that could be attributed.")
    missing = [c["step"] for c in comparison if not c["tf_coverage"]]
    unattributed = sum(r["ms_per_step"] for r in tf["primitives"] if not r["layer"])
    if missing or unattributed:
        text.append(f"{unattributed:.2f} ms of oneDNN time per step is unattributed"
                    + (f"; nothing could be attributed to {', '.join(missing)}, whose blocks "
                       "are among it or have dimensions Eigen cut otherwise" if missing else "")
                    + ".")
    return " ".join(text)


def profile_markdown(info: dict, load: dict, config: dict, data_text: str, pin: dict, mc: dict,
                     tf: dict | None, tf_note: str | None, comparison: list[dict]) -> str:
    if pin["one_cpu"]:
        pinned = f"- Pinned: yes, to CPU {pin['cpus'][0]} (`os.sched_getaffinity`)"
    else:
        pinned = f"- Pinned: **no**. {pin['warning']}"
    text = [f"# One core, one training step, layer by layer (batch {config['batch_size']})", "",
            machine_markdown(info, load), pinned, f"- Data: {data_text}",
            f"- Rounds: minicnn {config['rounds']} (after {config['warmup']} warm-up step(s)); "
            f"TensorFlow {config['rounds']} untraced and {config['traced_steps']} traced steps "
            f"(after {config['tf_warmup']} warm-up step(s) each)", "",
            *load_warning(load), *minicnn_markdown(mc, config["rounds"])]
    if tf is not None:
        text += tensorflow_markdown(tf)
    else:
        text += ["## TensorFlow: oneDNN primitives", "", f"Not profiled: {tf_note}.", ""]
    text += comparison_markdown(mc, tf, comparison)
    return "\n".join(text)
