"""Each layer of the notebook's model, forward and backward, in minicnn, TensorFlow and PyTorch.

    python benchmarks/bench_kernels.py [--quick] [--repeats R] [--batch-size N] [--out DIR]
                                       [--no-algorithms] [--algorithm-rounds R]

First it measures the machine's limits (SGEMM peak on one BLAS thread and on all, copy
bandwidth; _roofline.py), then times the layers as below, then, in minicnn's worker alone, the
conv algorithm study: every conv step of the notebook's model and of the CIFAR-10 recipe once
per algorithm that applies (im2col, Winograd, direct), forward and backward, on minicnn's
default threads and on one, with the algorithm the fast plan picks marked.

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
is 2*N*in*out per pass. Pooling, ReLU, softmax, the loss and Adam are not counted. The count is
the direct convolution's whatever algorithm ran, so for minicnn's Winograd steps the GFLOP/s
are effective figures, which may exceed the GEMM peak; a pass is flagged as a timing error only
when the FLOPs it actually executes over its median time exceed the measured peak (see
_roofline.py). Arithmetic intensity: those FLOPs over the bytes of the pass's inputs, outputs
and weights.

Writes kernels-latest.md (rendered by _report.py) and kernels-latest.json to --out (default
benchmarks/results/), and the roofline plot kernels-latest-roofline.png beside them, replacing
the last run's.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
import _report
import _roofline
from _layer_ops import LAYERS, PAIRS, plan_name


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


SHAPES = {name: (shape_in, shape_out) for name, shape_in, shape_out in LAYERS}


def unit_arrays(name: str) -> tuple[int, int, int] | None:
    """(input, output, weight) element counts per sample (weights: per batch) of a layer or a
    fused pair `conv+pool`; None for a layer without weights."""
    first, last = name.split("+")[0], name.split("+")[-1]
    if not first.startswith(("conv", "dense")):
        return None
    (shape_in, shape_out), out = SHAPES[first], SHAPES[last][1]
    fan_in = shape_in[-1] * (9 if first.startswith("conv") else 1)
    size = 1
    for d in shape_in:
        size *= d
    out_size = 1
    for d in out:
        out_size *= d
    return size, out_size, fan_in * shape_out[-1] + shape_out[-1]


def pass_bytes(name: str, p: str, batch_size: int) -> int | None:
    arrays = unit_arrays(name)
    if arrays is None or p not in _roofline.MARKERS:
        return None
    x, y, w = arrays
    return _roofline.pass_bytes(p, batch_size * x, batch_size * y, w)


def executed_share(framework: str, name: str, algorithms: dict) -> float:
    """The FLOPs a pass of `name` executes over the FLOPs counted for it (direct convolution).

    minicnn's fused pair computes the conv only where the pool reads (conv2's 11x11 output:
    10x10), and Winograd executes 16 products per 2x2 block instead of 36; the other frameworks
    are taken to execute the direct count (see _roofline.py)."""
    first = name.split("+")[0]
    if framework != "minicnn" or not first.startswith("conv"):
        return 1.0
    (_, _, C), (H_out, W_out, F) = SHAPES[first]
    region = (H_out // 2 * 2, W_out // 2 * 2) if "+" in name else (H_out, W_out)
    nominal = _roofline.conv_flops(1, H_out, W_out, 3, 3, C, F)
    m = _roofline.WINOGRAD_TILES.get(algorithms.get(name))
    if m:
        return _roofline.winograd_flops(1, *region, C, F, m) / nominal
    return _roofline.conv_flops(1, *region, 3, 3, C, F) / nominal


def step_flops(rows: list[dict], plan: list[str], framework: str,
               algorithms: dict) -> tuple[int, float]:
    """(FLOPs counted, FLOPs executed) of the passes one training step runs in `plan`."""
    by_key = {(r["layer"], r["pass"]): r for r in rows}
    counted = executed = 0
    for key in step_passes(plan):
        f = by_key.get(key, {}).get("flops")
        if f:
            counted += f
            executed += f * executed_share(framework, key[0], algorithms)
    return counted, executed


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


def rate(s: dict, flops: int, share: float, peak: float) -> None:
    """Add GFLOP/s (counted FLOPs over the median), their share of the peak, and a flag when
    the FLOPs executed (counted x share) would beat the peak: a timing error."""
    s["gflops"] = flops / s["median"] / 1e9 if s["median"] > 0 else None
    if s["gflops"] is not None:
        s["share_of_peak"] = s["gflops"] / peak
        s["executed_gflops"] = s["gflops"] * share
        s["flag"] = _roofline.check(s["gflops"], share, peak)


def build_results(args, frameworks, samples, setups, machine) -> tuple[dict, list[dict]]:
    rows = []
    peak = machine["peak_gflops"]
    table = table_rows(args.batch_size)
    for row in table:
        entry = dict(row)
        nbytes = pass_bytes(row["layer"], row["pass"], args.batch_size)
        entry["bytes"] = nbytes
        entry["intensity"] = _roofline.intensity(row["flops"], nbytes)
        for fw in frameworks:
            s = stats_for(samples[fw], row["layer"], row["pass"])
            flops, share = row["flops"], executed_share(fw, row["layer"],
                                                        setups[fw].get("algorithms", {}))
            if row["layer"] == "train":
                flops, executed = step_flops(table, setups[fw]["plan"], fw,
                                             setups[fw].get("algorithms", {}))
                share = executed / flops
                entry.setdefault("flops_by_framework", {})[fw] = flops
            if s and flops:
                rate(s, flops, share, peak)
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


def step_totals(rows: list[dict], frameworks: list[str], plans: dict, machine: dict) -> dict:
    """Per framework: the sum of the medians of the passes a training step runs (in the
    framework's own execution plan), the median of a whole step timed as one op, and the floor:
    the step's counted FLOPs at the measured SGEMM peak (all threads)."""
    by_key = {(r["layer"], r["pass"]): r for r in rows}
    totals = {}
    for fw in frameworks:
        parts = [by_key[key][fw]["median"] for key in step_passes(plans[fw])
                 if by_key.get(key, {}).get(fw)]
        whole = by_key[("train", "step")].get(fw)
        flops = by_key[("train", "step")].get("flops_by_framework", {}).get(fw)
        floor = flops / (machine["peak_gflops"] * 1e9) if flops else None
        totals[fw] = {"plan": plans[fw], "sum_of_passes_s": sum(parts),
                      "whole_step_s": whole["median"] if whole else None,
                      "step_flops": flops, "floor_s": floor,
                      "whole_over_floor": whole["median"] / floor if whole and floor else None}
    return totals


def algorithm_rows(units: list[dict], samples: dict, thread_counts: list[int],
                   peak: float, batch_size: int) -> list[dict]:
    """Per conv step, algorithm and thread count: medians of forward and backward, effective
    GFLOP/s, and whether it was the fastest (forward + backward) and the plan's pick."""
    out = []
    for u in units:
        C = u["input"][-1]
        H_out, W_out, F = u["output"]
        KH, KW = u["kernel"]
        counted = _roofline.conv_flops(batch_size, H_out, W_out, KH, KW, C, F)
        for t in thread_counts:
            group = []
            for algorithm in u["algorithms"]:
                key = f"algo/{u['model']}/{u['step']}/{algorithm}"
                fwd, bwd = (samples.get(t, {}).get(f"{key}/{p}") for p in ("fwd", "bwd"))
                if not fwd or not bwd:
                    continue
                f, b = _common.summary(fwd), _common.summary(bwd)
                executed = (_roofline.winograd_flops(batch_size, *u["computed"], C, F,
                                                     _roofline.WINOGRAD_TILES[algorithm])
                            if algorithm in _roofline.WINOGRAD_TILES else
                            _roofline.conv_flops(batch_size, *u["computed"], KH, KW, C, F))
                entry = {"model": u["model"], "step": u["step"], "threads": t,
                         "algorithm": algorithm, "picked": algorithm == u["picked"],
                         "fwd": f, "bwd": b, "total_s": f["median"] + b["median"],
                         "flops": counted, "executed_flops": executed}
                rate(f, counted, executed / counted, peak)
                group.append(entry)
            if group:
                best = min(group, key=lambda e: e["total_s"])
                for e in group:
                    e["fastest"] = e is best
                    e["over_fastest"] = e["total_s"] / best["total_s"]
                out.extend(group)
    return out


SHORT_PASS = {"fwd": "fwd", "bwd_w": "dW", "bwd_x": "dX"}


def roofline_points(rows: list[dict], frameworks: list[str], plan: list[str]) -> list[dict]:
    """One point per layer pass per framework, for the steps minicnn's plan runs (the fused
    pairs, which the other frameworks also run as one function), passes a training step needs,
    weights and input gradients apart; flagged figures left out."""
    points = []
    for r in rows:
        if (r["layer"] not in plan or r["pass"] not in SHORT_PASS or r["unused"]
                or not r.get("intensity")):
            continue
        for fw in frameworks:
            s = r.get(fw)
            if s and s.get("gflops") and not s.get("flag"):
                points.append({"framework": fw, "framework_label": _common.LABELS[fw],
                               "pass": r["pass"],
                               "pass_label": _report.PASS_LABELS[r["pass"]].split(" =")[0],
                               "label": f"{r['layer']} {SHORT_PASS[r['pass']]}",
                               "intensity": r["intensity"], "gflops": s["gflops"]})
    return points


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
    parser.add_argument("--no-algorithms", action="store_true",
                        help="skip the conv algorithm study (im2col, direct, Winograd per layer)")
    parser.add_argument("--algorithm-rounds", type=int, default=None,
                        help="rounds of the conv algorithm study (default 5; 1 with --quick)")
    parser.add_argument("--algorithm-calls", type=int, default=None,
                        help="timed calls per algorithm op, pass and thread count per round "
                             "(default 3; 1 with --quick)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 20)
    args.calls = args.calls or (2 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.algorithm_rounds = args.algorithm_rounds or (1 if args.quick else 5)
    args.algorithm_calls = args.algorithm_calls or (1 if args.quick else 3)
    for name in ("repeats", "calls", "batch_size", "algorithm_rounds", "algorithm_calls"):
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
    print("The machine's limits (SGEMM peak, copy bandwidth):", flush=True)
    machine = _roofline.measure_machine(args.quick, info["cores_usable"] or info["cores"] or 1)
    print("\n".join(_report.machine_lines(machine)), flush=True)
    print(f"Per-layer timings at batch {args.batch_size}: {', '.join(frameworks)}; "
          f"data: {data_text}", flush=True)
    workers = {fw: _common.Worker("kernels", fw) for fw in frameworks}
    setups, samples, algorithm_samples = {}, {}, {}
    try:
        for fw, w in workers.items():  # set up all at once; nothing is timed yet
            w.send("setup", data_dir=data_dir, batch_size=args.batch_size, warmup=args.warmup,
                   algorithms=fw == "minicnn" and not args.no_algorithms)
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
        for fw in [fw for fw in workers if fw != "minicnn"]:  # quiet for the study
            workers.pop(fw).close()
        thread_counts = sorted({setups["minicnn"]["threads"], 1}, reverse=True)
        if setups["minicnn"].get("algorithm_ops"):
            print(f"Conv algorithms per layer ({args.algorithm_rounds} rounds, threads "
                  f"{thread_counts}):", flush=True)
            t0 = time.perf_counter()
            for r in range(args.algorithm_rounds):
                for t in thread_counts:
                    _common.settle()
                    reply = workers["minicnn"].request("time_algorithms",
                                                       calls=args.algorithm_calls, threads=t)
                    for name, values in reply["seconds"].items():
                        algorithm_samples.setdefault(t, {}).setdefault(name, []).extend(values)
                print(f"  round {r + 1}/{args.algorithm_rounds} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        for w in workers.values():
            w.close()
    load = monitor.finish()
    info["frameworks"] = frameworks
    per_framework, rows = build_results(args, frameworks, samples, setups, machine)
    totals = step_totals(rows, frameworks, {fw: setups[fw]["plan"] for fw in frameworks},
                         machine)
    config = {"batch_size": args.batch_size, "repeats": args.repeats, "calls": args.calls,
              "warmup": args.warmup, "quick": args.quick,
              "algorithm_rounds": args.algorithm_rounds, "algorithm_calls": args.algorithm_calls}
    units = setups["minicnn"].get("algorithm_units", [])
    algorithm_table = algorithm_rows(units, algorithm_samples, thread_counts,
                                     machine["peak_gflops"], args.batch_size)
    overheads = {fw: setups[fw]["call_overhead_s"] for fw in frameworks}
    figure = "kernels-latest-roofline.png"
    text = _report.kernels_markdown(info, load, config, frameworks, rows, totals, overheads,
                                    data_text, machine, step_passes(totals["minicnn"]["plan"]),
                                    figure, units, algorithm_table)
    data = {"benchmark": "kernels", "machine": info, "load": load, "config": config,
            "data": data_text, "layer_flops": layer_flops(args.batch_size), "limits": machine,
            "rows": rows, "step_totals": totals, "frameworks": per_framework,
            "minicnn_algorithms": setups["minicnn"].get("algorithms", {}),
            "algorithm_units": units, "algorithms": algorithm_table,
            "algorithm_samples_us": {str(t): {name: [round(v * 1e6, 1) for v in values]
                                              for name, values in by_name.items()}
                                     for t, by_name in algorithm_samples.items()},
            "roofline_figure": figure}
    paths = _common.write_results(args.out, "kernels", data, text)
    title = (f"minicnn {info['minicnn_commit']}, batch {args.batch_size}: each layer pass "
             f"under the roofs measured on {info['cpu_model']}")
    _roofline.plot(paths["md"].parent / figure, machine,
                   roofline_points(rows, frameworks, totals["minicnn"]["plan"]), title)
    print()
    print(text)
    print(f"\nWrote {paths['json']}, {paths['md']} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
