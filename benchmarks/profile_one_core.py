"""One core's training step, layer by layer: minicnn's plan steps against TensorFlow's oneDNN trace.

    taskset -c 0 python benchmarks/profile_one_core.py [--rounds R] [--batch-size N] [--quick]
                                                       [--random-data] [--out DIR]

Issue 12: where does TensorFlow win on one core? Run it pinned to one CPU as above; without
`taskset` the process may use every core, and the script says so (a warning on stderr and in
the results) but still runs, each framework told to use one thread.

minicnn, in this process: `minicnn.set_num_threads(1)`, the notebook's model
(`minicnn.models.mnist_cnn(seed=0)`, compiled as the notebook: Adam, categorical cross-entropy)
and a fixed batch of N images (MNIST, or random images of its shapes with --random-data). Each of
R rounds (default 20; 3 with --quick) times every step of `model.plan` as `train_on_batch` runs
it: the forward passes (training=True) in order, then the loss head's backward into the last
step, then the other steps' backward in reverse until one returns None (the first step with
weights skips its input gradient); BLAS on one thread, as inside `train_on_batch`. Then it times
one whole `model.train_on_batch(x, y)`. The whole step minus the sum of the steps' medians is
what the steps leave out: Python, the loss and accuracy, Adam.

TensorFlow, in two subprocesses of this script (TensorFlow is never imported in this one): the
Keras twin `minicnn.models.to_keras(model)` with the same weights, compiled as the notebook,
intra- and inter-op threads 1, TF_CPP_MIN_LOG_LEVEL=2, on the same batch. The first runs R whole
`train_on_batch` steps after warm-up, untraced. The second has ONEDNN_VERBOSE=1 in its
environment before TensorFlow loads; after warm-up it prints a marker, runs max(2, R // 2)
traced steps and prints an end marker; every oneDNN `exec` line between the markers is
aggregated per (primitive kind, shape): ms and calls per step. Tracing slows the step, so the
share of the step spent in oneDNN is the traced GEMM total over the *untraced* step: an
approximation. In TensorFlow's CPU build the convolutions are Eigen code that calls oneDNN's
sgemm for its contractions, so the trace is mostly `gemm_api` lines of shape MxK:KxN, blocks of
a layer's GEMM as Eigen cuts it; Eigen's patch extraction, bias, ReLU, pooling and the optimizer
do not show in it.

Attribution (`attribute`): a GEMM shape is put on a layer's pass only by its dimensions. With
rows = N x the output's spatial positions, depth = KH*KW*C_in (Dense: its inputs) and F filters
(Dense: outputs), a training step runs forward rows x depth : depth x F, input gradient
rows x F : F x depth (not for the first layer with weights) and weight gradient
depth x rows : rows x F. A block matches a pass when its two layer dimensions are exactly the
pass's and its rows are at most the pass's (Eigen cuts the rows into chunks), in this form or
transposed. It is attributed when it matches exactly one pass and, on top of that, the blocks
matching that pass add up to its rows (x the traced steps) in exactly one way, this block among
them: Eigen also cuts the layer dimensions, and such a block can look like another layer's chunk
(in TF 2.21 conv3's weight gradient runs as 288x384:384x64, which has conv2's depth and F).
Everything else is unattributed, its shape shown either way.

Writes profile-latest.md (rendered by _report.py) and profile-latest.json to --out (default
benchmarks/results/), replacing the last run's.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common
import _report

MARKER = "=== profile_one_core: timed steps begin ==="
END_MARKER = "=== profile_one_core: timed steps end ==="
TF_TIMEOUT_S = 1800  # one TensorFlow subprocess; generous, the machine may be shared
MAX_TILING_BLOCKS = 16  # candidate blocks per pass beyond which no tiling is searched (2^16)
PREFIXES = {"Conv2D": "conv", "MaxPooling2D": "pool", "Dense": "dense"}
PASSES = ("forward", "input gradient", "weight gradient")
RUN_AS = "taskset -c 0 python benchmarks/profile_one_core.py"


# -- the model's layers ----------------------------------------------------------------------------
def short_names(layers) -> dict[int, str]:
    """id(layer) -> conv1, pool1, conv2, ..., dense1, dense2; other layers keep their name."""
    counts: dict[str, int] = {}
    names = {}
    for layer in layers:
        kind = type(layer).__name__
        if kind in PREFIXES:
            counts[kind] = counts.get(kind, 0) + 1
            names[id(layer)] = f"{PREFIXES[kind]}{counts[kind]}"
        else:
            names[id(layer)] = layer.name
    return names


def layer_gemms(layers, batch_size: int) -> list[dict]:
    """The GEMMs a training step needs, per layer with a kernel and pass, in the trace's form.

    `dims` is (M, K, N) for M x K : K x N and `chunk` the axis of the rows (batch x output
    positions), the one dimension Eigen is expected to cut; `macs` is M*K*N of the whole pass.
    """
    names = short_names(layers)
    passes, first = [], True
    for layer in layers:
        if type(layer).__name__ not in ("Conv2D", "Dense"):
            continue
        kernel = layer.kernel.value.shape
        depth, filters = math.prod(kernel[:-1]), kernel[-1]
        rows = batch_size * math.prod(layer.output_shape[1:-1])
        forms = {"forward": ((rows, depth, filters), 0),
                 "input gradient": ((rows, filters, depth), 0),
                 "weight gradient": ((depth, rows, filters), 1)}
        for name, (dims, chunk) in forms.items():
            # neither framework differentiates the model's input: the first kernel's layer
            # never computes its input gradient
            if first and name == "input gradient":
                continue
            passes.append({"layer": names[id(layer)], "pass": name, "dims": dims,
                           "chunk": chunk, "rows": rows, "macs": math.prod(dims)})
        first = False
    return passes


# -- the oneDNN trace ------------------------------------------------------------------------------
def gemm_dims(shape: str) -> tuple[int, int, int] | None:
    """(M, K, N) of a shape `MxK:KxN`, or None for any other shape."""
    match = re.fullmatch(r"(\d+)x(\d+):(\d+)x(\d+)", shape)
    if not match or match[2] != match[3]:
        return None
    return int(match[1]), int(match[2]), int(match[4])


def parse_trace(text: str) -> list[tuple[str, str, float]]:
    """(kind, shape, ms) of every oneDNN `exec` line between the markers.

    A line reads `onednn_verbose,[timestamp,]v1,primitive,exec,cpu,KIND,IMPL,...,SHAPE,MS`
    (`dnnl_verbose,exec,cpu,KIND,...` in older oneDNN): the kind two fields after `exec`, the
    shape and the time the last two.
    """
    calls, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if line == MARKER:
            inside = True
        elif line == END_MARKER:
            break
        elif inside and line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            fields = line.split(",")
            if "exec" not in fields[:6]:
                continue
            at = fields.index("exec")
            try:
                calls.append((fields[at + 2], fields[-2], float(fields[-1])))
            except (IndexError, ValueError):
                continue
    return calls


def aggregate(calls: list[tuple[str, str, float]], steps: int) -> list[dict]:
    """Per (kind, shape): ms and calls per step, and GFLOP/s for a GEMM; slowest first."""
    groups: dict[tuple[str, str], list] = {}
    for kind, shape, ms in calls:
        group = groups.setdefault((kind, shape), [0.0, 0])
        group[0] += ms
        group[1] += 1
    rows = []
    for (kind, shape), (ms, n) in groups.items():
        dims = gemm_dims(shape)
        gflops = (2 * math.prod(dims) * n / (ms / 1e3) / 1e9) if dims and ms > 0 else None
        rows.append({"kind": kind, "shape": shape, "ms_total": ms, "calls_total": n,
                     "ms_per_step": ms / steps, "calls_per_step": n / steps, "gflops": gflops})
    return sorted(rows, key=lambda r: -r["ms_total"])


def _chunk_if_match(block: tuple[int, int, int], gemm: dict) -> int | None:
    """The block's rows if it is a chunk of `gemm` (as is, or transposed), else None."""
    dims, chunk = gemm["dims"], gemm["chunk"]
    # C = A B computed as C^T = B^T A^T prints as N x K : K x M
    for form, axis in ((dims, chunk), (dims[::-1], 2 - chunk)):
        if all(b == d for i, (b, d) in enumerate(zip(block, form, strict=True)) if i != axis) \
                and 0 < block[axis] <= form[axis]:
            return block[axis]
    return None


def unique_tiling(blocks: list[tuple[int, int]], target: int) -> set[int] | None:
    """The indices of the one subset of (index, rows covered) blocks whose rows add up to
    `target`; None when no subset or more than one does (or there are too many to try)."""
    if not blocks or len(blocks) > MAX_TILING_BLOCKS:
        return None
    found = None
    for mask in range(1, 1 << len(blocks)):
        if sum(rows for k, (_, rows) in enumerate(blocks) if mask >> k & 1) == target:
            if found is not None:
                return None
            found = {index for k, (index, _) in enumerate(blocks) if mask >> k & 1}
    return found


def attribute(rows: list[dict], gemms: list[dict], steps: int) -> None:
    """Set `layer`, `pass` (None when unattributed), `candidates` and `note` on every row, and
    `attributed_ms_per_step` and `coverage` (attributed MACs over the pass's) on every GEMM.

    Dimension matching only (see the module's docstring): a row is attributed to the one pass it
    matches, and only if the rows of all the blocks matching that pass cover the pass's rows in
    `steps` steps in exactly one way, this block included.
    """
    label = {id(g): f"{g['layer']} {g['pass']}" for g in gemms}
    matches: list[dict[int, int]] = []  # per row: id(gemm) -> the block's rows
    for row in rows:
        dims = gemm_dims(row["shape"])
        found = {}
        for gemm in gemms:
            chunk = _chunk_if_match(dims, gemm) if dims else None
            if chunk is not None:
                found[id(gemm)] = chunk
        matches.append(found)
        row["candidates"] = [label[id(g)] for g in gemms if id(g) in found]
    tilings = {}
    for gemm in gemms:
        blocks = [(k, found[id(gemm)] * rows[k]["calls_total"])
                  for k, found in enumerate(matches) if id(gemm) in found]
        tilings[id(gemm)] = unique_tiling(blocks, gemm["rows"] * steps) or set()
    by_label = {label[id(g)]: g for g in gemms}
    for gemm in gemms:
        gemm["attributed_ms_per_step"], gemm["attributed_macs"] = 0.0, 0
    for k, (row, found) in enumerate(zip(rows, matches, strict=True)):
        row["layer"] = row["pass"] = None
        if len(found) == 1 and k in tilings[next(iter(found))]:
            gemm = by_label[row["candidates"][0]]
            row["layer"], row["pass"], row["note"] = gemm["layer"], gemm["pass"], None
            gemm["attributed_ms_per_step"] += row["ms_per_step"]
            gemm["attributed_macs"] += math.prod(gemm_dims(row["shape"])) * row["calls_total"]
        elif not found:
            row["note"] = "no pass's dimensions" if gemm_dims(row["shape"]) else "not a GEMM"
        elif len(found) > 1:
            row["note"] = " or ".join(row["candidates"])
        else:
            row["note"] = f"{row['candidates'][0]}'s dimensions, not in its tiling"
    for gemm in gemms:
        gemm["coverage"] = gemm.pop("attributed_macs") / (gemm["macs"] * steps)


# -- TensorFlow, in a subprocess -------------------------------------------------------------------
def _flush_c_stdio() -> None:
    """Flush C's stdout buffer, where oneDNN prints: else trace lines written before the marker
    could reach the pipe after it."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def tf_child(spec: dict) -> None:
    """The subprocess: the Keras twin's training step, traced if ONEDNN_VERBOSE is set."""
    sys.path.insert(0, str(_common.ROOT))
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from minicnn.models import mnist_cnn, to_keras

    x, y, _, _ = _common.load_arrays(spec["data_dir"], limit_train=spec["batch_size"],
                                     limit_test=1)
    model = to_keras(mnist_cnn(seed=0), compile=False)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    for _ in range(spec["warmup"]):
        model.train_on_batch(x, y)
    _flush_c_stdio()
    print(MARKER, flush=True)
    seconds = []
    for _ in range(spec["steps"]):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        seconds.append(time.perf_counter() - t)
    _flush_c_stdio()
    print(END_MARKER, flush=True)
    Path(spec["result"]).write_text(json.dumps({
        "seconds": seconds, "tensorflow": tf.__version__, "keras": keras.__version__,
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(default)")}))


def run_tf(data_dir: str | None, batch_size: int, warmup: int, steps: int,
           traced: bool) -> dict:
    """Run `tf_child` in a fresh process; with `traced`, also the aggregated oneDNN trace."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in ("ONEDNN_VERBOSE", "DNNL_VERBOSE"):
        env.pop(name, None)
    if traced:
        env["ONEDNN_VERBOSE"] = "1"  # read by oneDNN when TensorFlow loads it
    with tempfile.TemporaryDirectory(prefix="minicnn-profile-") as tmp:
        result = Path(tmp) / "result.json"
        spec = {"data_dir": data_dir, "batch_size": batch_size, "warmup": warmup,
                "steps": steps, "result": str(result)}
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--tf-child",
                               json.dumps(spec)], capture_output=True, text=True, env=env,
                              timeout=TF_TIMEOUT_S)
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(f"the TensorFlow subprocess ({'traced' if traced else 'untraced'})"
                               f" exited with code {proc.returncode}:\n{proc.stderr[-3000:]}")
        reply = json.loads(result.read_text())
    reply["step"] = _common.summary(reply["seconds"])
    if traced:
        calls = parse_trace(proc.stdout)
        reply["exec_lines"] = len(calls)
        reply["primitives"] = aggregate(calls, steps)
    return reply


# -- minicnn, in this process ----------------------------------------------------------------------
def time_minicnn(x, y, rounds: int, warmup: int) -> dict:
    """Per plan step forward and backward seconds, and whole `train_on_batch` steps."""
    import minicnn

    minicnn.set_num_threads(1)  # before the plan is built: it may pick by thread count
    from minicnn.fast import parallel
    from minicnn.models import mnist_cnn

    model = mnist_cnn(seed=0)
    steps = model.plan
    names = short_names(model.layers)
    passes = model.training_pass()  # the pass train_on_batch runs, with a hook after each step
    position = {id(step.layers[0]): k for k, step in enumerate(steps)}
    forward: list[list[float]] = [[] for _ in steps]
    backward: list[list[float]] = [[] for _ in steps]
    whole: list[float] = []
    clock = {"t": 0.0, "record": False}

    def timed(times: list[list[float]]):
        def hook(layer, _a, _b) -> None:  # called as each step ends: time since the last one
            now = time.perf_counter()
            if clock["record"]:
                times[position[id(layer)]].append(now - clock["t"])
            clock["t"] = time.perf_counter()
        return hook

    def stepwise(record: bool) -> None:
        clock["record"] = record
        clock["t"] = time.perf_counter()
        out = passes.forward([x], training=True, hook=timed(forward))
        clock["t"] = time.perf_counter()
        passes.backward(y, out, penalties=False, hook=timed(backward))

    with parallel.single_threaded_blas():  # as train_on_batch runs the steps
        for _ in range(warmup):
            model.train_on_batch(x, y)
        stepwise(record=False)
        for _ in range(rounds):
            stepwise(record=True)
            t = time.perf_counter()
            model.train_on_batch(x, y)
            whole.append(time.perf_counter() - t)
    rows = []
    for k, step in enumerate(steps):
        rows.append({"step": "+".join(names[id(layer)] for layer in step.layers),
                     "repr": repr(step),
                     "layers": [names[id(layer)] for layer in step.layers],
                     "forward": _common.summary(forward[k]),
                     "backward": _common.summary(backward[k]) if backward[k] else None})
    total = sum(r["forward"]["median"] + (r["backward"]["median"] if r["backward"] else 0)
                for r in rows)
    step = _common.summary(whole)
    return {"threads": minicnn.get_num_threads(), "steps": rows, "sum_of_medians_s": total,
            "whole_step": step, "difference_s": step["median"] - total,
            "gemms": layer_gemms(model.layers, len(x))}


# -- results ---------------------------------------------------------------------------------------
def pinning() -> dict:
    """The CPUs this process may run on, and a warning unless it is exactly one."""
    if not hasattr(os, "sched_getaffinity"):
        return {"cpus": None, "one_cpu": False,
                "warning": "WARNING: cannot read this process's CPU affinity on this platform, "
                           "so it may not be pinned to one core"}
    cpus = sorted(os.sched_getaffinity(0))
    warning = None
    if len(cpus) != 1:
        warning = (f"WARNING: this process may run on {len(cpus)} CPUs ({cpus}), not one: run "
                   f"it as `{RUN_AS}`. Each framework is still told one thread, but helper "
                   "threads may use the other cores and the scheduler moves the work around.")
    return {"cpus": cpus, "one_cpu": len(cpus) == 1, "warning": warning}


def layer_comparison(mc: dict, tf: dict | None) -> list[dict]:
    """Per minicnn step with a kernel's layer: its forward + backward median, and the
    TensorFlow GEMM time attributed to that layer and how much of its GEMM work that covers."""
    gemms = tf["gemms"] if tf else []
    out = []
    for row in mc["steps"]:
        layers = [name for name in row["layers"] if any(g["layer"] == name for g in mc["gemms"])]
        if not layers:
            continue
        mine = [g for g in gemms if g["layer"] in layers]
        macs = sum(g["macs"] for g in mine)
        entry = {"step": row["step"], "layers": layers,
                 "minicnn_s": row["forward"]["median"] + (row["backward"]["median"]
                                                          if row["backward"] else 0.0),
                 "tf_gemm_ms": sum(g["attributed_ms_per_step"] for g in mine) if tf else None,
                 "tf_coverage": (sum(g["coverage"] * g["macs"] for g in mine) / macs
                                 if macs else None),
                 "tf_passes": {(g["pass"] if len(layers) == 1 else f"{g['layer']} {g['pass']}"):
                               g["coverage"] for g in mine}}
        out.append(entry)
    return out


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="minicnn rounds and TensorFlow untraced steps (default 20; 3 with "
                             "--quick); TensorFlow traces max(2, R // 2) steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--random-data", action="store_true",
                        help="use random images of MNIST's shapes instead of MNIST")
    parser.add_argument("--out", default=str(_common.RESULTS_DIR),
                        help="directory for the results (default benchmarks/results)")
    parser.add_argument("--tf-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 20)
    for name in ("rounds", "batch_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, "
                         f"received {getattr(args, name)}")
    args.traced_steps = max(2, args.rounds // 2)
    args.warmup = 1 if args.quick else 3
    args.tf_warmup = 2 if args.quick else 3  # the first step builds TensorFlow's graph
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.tf_child is not None:
        tf_child(json.loads(args.tf_child))
        return 0
    monitor = _common.LoadMonitor()
    pin = pinning()
    if pin["warning"]:
        print(pin["warning"], file=sys.stderr)
    has_tf = _common.available("tensorflow")
    data_dir, data_text = _common.resolve_data(args.random_data)
    info = _common.machine_info(["minicnn", *(["tensorflow"] if has_tf else [])])
    x, y, _, _ = _common.load_arrays(data_dir, limit_train=args.batch_size, limit_test=1)
    if len(x) < args.batch_size:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the {len(x)} "
                         "training images")
    print(f"minicnn, one thread: {args.rounds} rounds of the plan's steps at batch "
          f"{args.batch_size}; data: {data_text}", flush=True)
    mc = time_minicnn(x, y, args.rounds, args.warmup)
    tf, tf_note = None, None
    if not has_tf:
        tf_note = "TensorFlow is not installed"
    else:
        try:
            print(f"TensorFlow: {args.rounds} untraced steps", flush=True)
            plain = run_tf(data_dir, args.batch_size, args.tf_warmup, args.rounds, False)
            print(f"TensorFlow: {args.traced_steps} steps traced by ONEDNN_VERBOSE=1", flush=True)
            traced = run_tf(data_dir, args.batch_size, args.tf_warmup, args.traced_steps, True)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            tf_note = f"the TensorFlow run failed: {error}"
            print(f"WARNING: {tf_note}", file=sys.stderr)
        else:
            gemms = [dict(g) for g in mc["gemms"]]  # copies, to hold TensorFlow's coverage
            attribute(traced["primitives"], gemms, args.traced_steps)
            gemm_ms = sum(r["ms_per_step"] for r in traced["primitives"]
                          if gemm_dims(r["shape"]))
            tf = {"versions": {"tensorflow": plain["tensorflow"], "keras": plain["keras"]},
                  "threads": {"intra_op": plain["intra_op"], "inter_op": plain["inter_op"],
                              "cpus": plain["cpus"]},
                  "onednn_opts": plain["onednn_opts"], "warmup": args.tf_warmup,
                  "untraced_step": plain["step"], "untraced_seconds": plain["seconds"],
                  "traced_step": traced["step"], "traced_seconds": traced["seconds"],
                  "traced_steps": args.traced_steps, "exec_lines": traced["exec_lines"],
                  "primitives": traced["primitives"], "gemms": gemms,
                  "onednn_ms_per_step": sum(r["ms_per_step"] for r in traced["primitives"]),
                  "gemm_ms_per_step": gemm_ms,
                  "gemm_share": gemm_ms / 1e3 / plain["step"]["median"]}
    load = monitor.finish()
    comparison = layer_comparison(mc, tf)
    config = {"batch_size": args.batch_size, "rounds": args.rounds, "quick": args.quick,
              "warmup": args.warmup, "tf_warmup": args.tf_warmup,
              "traced_steps": args.traced_steps}
    text = _report.profile_markdown(info, load, config, data_text, pin, mc, tf, tf_note,
                                    comparison)
    data = {"benchmark": "profile", "machine": info, "load": load, "config": config,
            "data": data_text, "pinning": pin, "minicnn": mc, "tensorflow": tf,
            "tensorflow_note": tf_note, "layers": comparison}
    paths = _common.write_results(args.out, "profile", data, text)
    print()
    print(text)
    print(f"\nWrote {paths['json']} and {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
