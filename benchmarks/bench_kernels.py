"""Each layer of the notebook's model, forward and backward, in minicnn, TensorFlow and PyTorch.

    python benchmarks/bench_kernels.py [--quick] [--repeats R] [--batch-size N] [--out DIR]

For every layer at batch N (default 128, the notebook's) it times the forward pass, the full
backward pass and the backward pass without the input gradient ("weights only"), plus the Adam
step over all 93,322 parameters and a whole training step, in one worker process per framework
(see _layer_ops.py for exactly what each op runs). After `--warmup` untimed calls of each op,
the workers take turns, A B A B ..., `--repeats` rounds of `--calls` individually timed calls of
every op each; min and median are over all of a framework's calls. The backward-input time is
not measured alone: it is the full backward minus the weights-only backward (of the medians, and
of the minima), the same subtraction for every framework.

GFLOP/s count 2*M*N*K per GEMM-equivalent, from the median time: a 3x3 "valid" convolution
from (N, H, W, C) to (N, H_out, W_out, F) is 2*N*H_out*W_out*F*9*C for the forward pass, the
same again for the weight gradient and for the input gradient; a Dense layer from `in` to `out`
is 2*N*in*out per pass. Pooling, ReLU, softmax, the loss and Adam are not counted.

Writes kernels-<date>.json and .md to --out (default benchmarks/results/), and kernels-latest.md.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
from _layer_ops import LAYERS, PAIRS, plan_name

PASS_LABELS = {"fwd": "forward", "bwd": "backward (full)", "bwd_w": "backward-weights",
               "bwd_x": "backward-input = full - weights", "step": "step"}
IN_STEP_NOTE = "not in a training step: the first layer's input needs no gradient"


def layer_flops(batch_size: int) -> dict:
    """FLOPs of one pass (forward, weight gradient or input gradient) of each GEMM layer."""
    N = batch_size
    flops = {}
    for name, shape_in, shape_out in LAYERS:
        if name.startswith("conv"):
            (H_out, W_out, F), C = shape_out, shape_in[-1]
            flops[name] = 2 * N * H_out * W_out * F * 3 * 3 * C
        elif name.startswith("dense"):
            flops[name] = 2 * N * shape_in[0] * shape_out[0]
    return flops


def table_rows(batch_size: int) -> list[dict]:
    """The table's rows: layer (or fused pair), pass, FLOPs, and whether training needs it."""
    flops = layer_flops(batch_size)
    names = [name for name, _, _ in LAYERS]
    for conv, pool in PAIRS:  # each fused pair right after its two layers
        names.insert(names.index(pool) + 1, plan_name((conv, pool)))
    rows = []
    for name in names:
        f = flops.get(name.split("+")[0])
        passes = ["fwd", "bwd_w", "bwd_x", "bwd"] if f and name != "dense2_ce" else ["fwd",
                                                                                    "bwd"]
        for p in passes:
            rows.append({"layer": name, "pass": p,
                         "flops": None if f is None else f * (2 if p == "bwd" else 1),
                         # the first layer's input gradient is never used
                         "unused": name.startswith("conv1") and p in ("bwd", "bwd_x")})
    rows.append({"layer": "adam", "pass": "step", "flops": None, "unused": False})
    rows.append({"layer": "train", "pass": "step", "flops": None, "unused": False})
    return rows


def step_passes(plan: list[str]) -> list[tuple[str, str]]:
    """The (layer, pass) rows one training step runs, for a framework's execution plan: every
    forward, the first step's backward without the input gradient, every other full backward,
    and the Adam step."""
    return ([(name, "fwd") for name in plan]
            + [(name, "bwd_w" if k == 0 else "bwd") for k, name in enumerate(plan)]
            + [("adam", "step")])


def stats_for(samples: dict, layer: str, p: str) -> dict | None:
    """min and median seconds of one op, or of the derived backward-input."""
    if p == "bwd_x":
        full, weights = samples.get(f"{layer}/bwd"), samples.get(f"{layer}/bwd_w")
        if not full or not weights:
            return None
        a, b = _common.summary(full), _common.summary(weights)
        return {"min": a["min"] - b["min"], "median": a["median"] - b["median"], "derived": True}
    values = samples.get(f"{layer}/{p}")
    return _common.summary(values) if values else None


def build_results(args, frameworks, samples, setups) -> tuple[dict, list[dict]]:
    rows = []
    for row in table_rows(args.batch_size):
        entry = dict(row)
        for fw in frameworks:
            s = stats_for(samples[fw], row["layer"], row["pass"])
            if s and row["flops"]:
                s["gflops"] = row["flops"] / s["median"] / 1e9 if s["median"] > 0 else None
            entry[fw] = s
        mc, tf = entry.get("minicnn"), entry.get("tensorflow")
        if mc and tf and mc["median"] > 0 and tf["median"] > 0:
            entry["ratio_minicnn_tf"] = mc["median"] / tf["median"]
        rows.append(entry)
    return {fw: {"call_overhead_s": setups[fw]["call_overhead_s"],
                 "setup_s": setups[fw]["setup_s"],
                 "ops": {name: {**_common.summary(v), "samples_us": [round(t * 1e6, 1)
                                                                     for t in v]}
                         for name, v in samples[fw].items()}}
            for fw in frameworks}, rows


def step_totals(rows: list[dict], frameworks: list[str], plans: dict) -> dict:
    """Per framework: the sum of the medians of the passes a training step runs (in the
    framework's own execution plan), and the median of a whole step timed as one op."""
    by_key = {(r["layer"], r["pass"]): r for r in rows}
    totals = {}
    for fw in frameworks:
        parts = [by_key[key][fw]["median"] for key in step_passes(plans[fw])
                 if by_key.get(key, {}).get(fw)]
        whole = by_key[("train", "step")].get(fw)
        totals[fw] = {"plan": plans[fw], "sum_of_passes_s": sum(parts),
                      "whole_step_s": whole["median"] if whole else None}
    return totals


def time_cell(s: dict | None, key: str) -> str:
    if s is None:
        return "—"
    if s[key] < 0:  # a difference of two noisy timings
        return "<0 (noise)"
    return _common.fmt_ms(s[key], 3)


def markdown(info, load, config, frameworks, rows, totals, overheads, data_text) -> str:
    labels = [_common.LABELS[fw] for fw in frameworks]
    headers = ["layer", "pass", "MFLOP"]
    for label in labels:
        headers += [f"{label} median ms", f"{label} min ms", f"{label} GFLOP/s"]
    has_tf = "tensorflow" in frameworks
    if has_tf:
        headers.append("minicnn/TF")
    table = []
    for r in rows:
        cells = [r["layer"], PASS_LABELS[r["pass"]] + (" *" if r["unused"] else ""),
                 "—" if r["flops"] is None else f"{r['flops'] / 1e6:.1f}"]
        for fw in frameworks:
            s = r.get(fw)
            cells += [time_cell(s, "median"), time_cell(s, "min"),
                      "—" if not s or s.get("gflops") is None else f"{s['gflops']:.0f}"]
        if has_tf:
            cells.append(_common.fmt_ratio(r.get("ratio_minicnn_tf")))
        table.append(cells)
    total_rows = [[_common.LABELS[fw], ", ".join(totals[fw]["plan"]),
                   _common.fmt_ms(totals[fw]["sum_of_passes_s"]),
                   _common.fmt_ms(totals[fw]["whole_step_s"]),
                   f"{overheads[fw] * 1e6:.1f}"] for fw in frameworks]
    text = [
        f"# Per-layer timings at batch {config['batch_size']}",
        "",
        _common.machine_markdown(info, load),
        f"- Data: {data_text}",
        f"- {config['repeats']} interleaved rounds x {config['calls']} calls per op and "
        f"framework after {config['warmup']} warm-up calls; min and median over all calls.",
        "",
        *_common.load_warning(load),
        _common.md_table(headers, table),
        "",
        "minicnn/TF is the ratio of the medians: below 1, minicnn is faster. "
        "backward-input is not timed alone: it is the full backward minus the weights-only "
        "backward (medians from medians, minima from minima), for every framework alike. "
        "GFLOP/s are from the median and count 2*M*N*K per GEMM-equivalent (see "
        f"benchmarks/README.md). Rows marked * are {IN_STEP_NOTE}.",
        "",
        "## One training step",
        "",
        _common.md_table(["framework", "steps as run", "sum of the passes a step runs (ms)",
                          "whole training step (ms)", "empty call overhead (µs)"], total_rows),
        "",
        "Steps as run: minicnn's `fit` runs each Conv2D(relu) + MaxPooling2D pair as one fused "
        "step (when its model has such an execution plan); TensorFlow and PyTorch are listed "
        "by layer. The sum covers, for those steps, every forward, the first one's "
        "weights-only backward, every other full backward and the Adam step. "
        "The whole step is minicnn's `model._train_step`, Keras's "
        "`train_on_batch` (one compiled graph) and PyTorch's loop step. The empty call "
        "overhead is what calling a no-op costs (a `tf.function` for TensorFlow); it is in "
        "every TensorFlow row above.",
    ]
    if has_tf:
        by_key = {(r["layer"], r["pass"]): r for r in rows}
        in_step = [by_key[key] for key in step_passes(totals["minicnn"]["plan"])
                   if key in by_key]
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
    return "\n".join(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds (default 20; 3 with --quick)")
    parser.add_argument("--calls", type=int, default=None,
                        help="timed calls of each op per round (default 5; 2 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls of each op first (default 3; 1 with --quick)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--frameworks", default=None,
                        help="comma-separated, from minicnn,tensorflow,pytorch "
                             "(default: those installed)")
    parser.add_argument("--random-data", action="store_true",
                        help="use random images of MNIST's shapes instead of MNIST")
    parser.add_argument("--out", default=str(_common.RESULTS_DIR),
                        help="directory for the results (default benchmarks/results)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 20)
    args.calls = args.calls or (2 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    for name in ("repeats", "calls", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, "
                         f"received {getattr(args, name)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    monitor = _common.LoadMonitor()
    frameworks = _common.parse_frameworks(args.frameworks)
    if "minicnn" not in frameworks:
        frameworks.insert(0, "minicnn")
    data_dir, data_text = _common.resolve_data(args.random_data)
    info = _common.machine_info(frameworks)
    print(f"Per-layer timings at batch {args.batch_size}: {', '.join(frameworks)}; "
          f"data: {data_text}", flush=True)
    workers = {fw: _common.Worker("kernels", fw) for fw in frameworks}
    setups, samples = {}, {}
    try:
        for w in workers.values():  # set up all at once; nothing is timed yet
            w.send("setup", data_dir=data_dir, batch_size=args.batch_size, warmup=args.warmup)
        for fw in list(workers):
            try:
                setups[fw] = workers[fw].receive()
            except _common.WorkerError as error:
                if fw == "minicnn":
                    raise
                print(f"WARNING: dropping {fw}: {error}", file=sys.stderr)
                workers.pop(fw).close()
        frameworks = list(workers)
        samples = {fw: {name: [] for name in setups[fw]["ops"]} for fw in frameworks}
        t0 = time.perf_counter()
        for r in range(args.repeats):
            for fw, w in workers.items():
                _common.settle()
                for name, values in w.request("time", calls=args.calls)["seconds"].items():
                    samples[fw][name].extend(values)
            print(f"  round {r + 1}/{args.repeats} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    finally:
        for w in workers.values():
            w.close()
    load = monitor.finish()
    info["frameworks"] = frameworks
    per_framework, rows = build_results(args, frameworks, samples, setups)
    totals = step_totals(rows, frameworks, {fw: setups[fw]["plan"] for fw in frameworks})
    config = {"batch_size": args.batch_size, "repeats": args.repeats, "calls": args.calls,
              "warmup": args.warmup, "quick": args.quick}
    overheads = {fw: setups[fw]["call_overhead_s"] for fw in frameworks}
    text = markdown(info, load, config, frameworks, rows, totals, overheads, data_text)
    data = {"benchmark": "kernels", "machine": info, "load": load, "config": config,
            "data": data_text, "layer_flops": layer_flops(args.batch_size), "rows": rows,
            "step_totals": totals, "frameworks": per_framework}
    paths = _common.write_results(args.out, "kernels", data, text)
    print()
    print(text)
    print(f"\nWrote {paths['json']}, {paths['md']} and {paths['latest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
