"""The machine's limits, and where each layer pass sits under them: `bench_kernels.py`'s roofline.

At the start of a run, before any worker starts, the parent measures
- the SGEMM peak: numpy's float32 matmul of two square matrices (2048, or 1024 with --quick),
  2*n**3 FLOPs, on one BLAS thread (threadpoolctl) and on all of them, best of several calls;
- the memory bandwidth: a copy of a large float32 array (128 MB, 64 MB with --quick) into
  another, by one thread and by one thread per core (each its slice), best of several; bytes
  moved count what is read plus what is written (2x the array, STREAM's convention; the
  hardware also reads the destination before writing it, so the bus carries a little more).

Each layer pass then gets
- its FLOPs, counted as the direct convolution's (or the Dense layer's GEMM's): 2*N*H_out*W_out*
  KH*KW*C*F per pass of a conv, 2*N*in*out per pass of a Dense layer, whatever algorithm ran.
  For minicnn's Winograd steps this makes the GFLOP/s "effective" figures (direct-convolution
  FLOPs over time): Winograd does 2.25x fewer multiplications on even sizes, so its effective
  GFLOP/s may exceed the GEMM peak without any timing error;
- its arithmetic intensity: those FLOPs over the bytes of its inputs, outputs and weights
  (float32; each array counted once, as if every byte crossed the memory bus exactly once);
- a check: the FLOPs the pass actually executes (`executed_flops`: Winograd's 16 products per
  2x2 output block instead of 36, and only the conv outputs a fused pool reads) over its time
  may not exceed the measured peak. Above it, the figure is a timing error (a derived
  backward-input, the difference of two noisy medians, is the usual culprit) and is flagged,
  not reported. TensorFlow (oneDNN) and PyTorch are taken to execute the nominal count: both
  run direct or GEMM convolutions on the full output on CPU (neither picks Winograd for float32
  by default), so for them nominal FLOPs are what they execute at the least.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

FLOAT_BYTES = 4


# -- the machine -----------------------------------------------------------------------------------
def sgemm_peak(n: int, repeats: int, threads: int | None) -> float:
    """Best GFLOP/s of numpy's float32 (n, n) @ (n, n), BLAS limited to `threads` (None: all)."""
    import numpy as np
    import threadpoolctl

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)  # warm-up: BLAS's threads start, pages are touched
        best = math.inf
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def copy_bandwidth(n_floats: int, repeats: int, threads: int) -> float:
    """Best GB/s of copying n_floats float32 into another array, by `threads` threads, each its
    own contiguous slice (numpy releases the GIL while it copies); read + written bytes."""
    import numpy as np

    src = np.ones(n_floats, np.float32)
    dst = np.zeros(n_floats, np.float32)
    bounds = [(n_floats * k // threads, n_floats * (k + 1) // threads) for k in range(threads)]

    def part(k: int) -> None:
        lo, hi = bounds[k]
        np.copyto(dst[lo:hi], src[lo:hi])

    best = math.inf
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            list(pool.map(part, range(threads)))
            best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best / 1e9


def measure_machine(quick: bool, cores: int) -> dict:
    """The SGEMM peak (one thread, all threads) and copy bandwidth (one thread, all cores)."""
    n, repeats = (1024, 3) if quick else (2048, 5)
    floats = (1 << 24) if quick else (1 << 25)
    t = time.perf_counter()
    result = {
        "sgemm_n": n, "sgemm_repeats": repeats,
        "peak_gflops_1_thread": sgemm_peak(n, repeats, 1),
        "peak_gflops_all_threads": sgemm_peak(n, repeats, None),
        "copy_mb": floats * FLOAT_BYTES // 2**20, "copy_repeats": repeats * 2,
        "bandwidth_gbs_1_thread": copy_bandwidth(floats, repeats * 2, 1),
        "bandwidth_gbs_all_threads": copy_bandwidth(floats, repeats * 2, max(1, cores)),
    }
    # The roof the workers (which run on every core) are held to.
    result["peak_gflops"] = max(result["peak_gflops_1_thread"],
                                result["peak_gflops_all_threads"])
    result["bandwidth_gbs"] = max(result["bandwidth_gbs_1_thread"],
                                  result["bandwidth_gbs_all_threads"])
    result["seconds"] = time.perf_counter() - t
    return result


# -- counting a pass -------------------------------------------------------------------------------
def conv_flops(N: int, H_out: int, W_out: int, KH: int, KW: int, C: int, F: int) -> int:
    """One pass of a conv, counted as the direct convolution: forward, weight gradient or input
    gradient (each one GEMM of this size in im2col form)."""
    return 2 * N * H_out * W_out * KH * KW * C * F


# minicnn's Winograd algorithms (step.algorithm) and their tile's m x m outputs
WINOGRAD_TILES = {"winograd": 2, "winograd4": 4}


def winograd_flops(N: int, H_out: int, W_out: int, C: int, F: int, m: int = 2) -> int:
    """The GEMM FLOPs one pass of F(m x m, 3x3) executes: (m + 2)^2 products per m x m output
    block and (c, f) (16 per 2x2 block, 36 per 4x4), the tile grid rounded up to whole blocks
    (transforms not counted)."""
    return 2 * N * (m + 2) ** 2 * -(-H_out // m) * -(-W_out // m) * C * F


def pass_bytes(p: str, x: int, y: int, w: int) -> int:
    """Bytes a pass reads and writes, float32, each array once: x the input's elements, y the
    output's, w the weights' (kernel and bias). Forward: x, w -> y; weights-only backward:
    x, dout -> dw; full backward: x, w, dout -> dx, dw; backward-input: w, dout -> dx."""
    count = {"fwd": x + w + y, "bwd_w": x + y + w, "bwd_x": w + y + x,
             "bwd": 2 * x + y + 2 * w}[p]
    return count * FLOAT_BYTES


def intensity(flops: int | None, nbytes: int | None) -> float | None:
    return flops / nbytes if flops and nbytes else None


def check(gflops_effective: float | None, executed_share: float, peak: float) -> str | None:
    """None if the pass's executed GFLOP/s fit under the peak, else why it is flagged."""
    if gflops_effective is None:
        return None
    executed = gflops_effective * executed_share
    if executed > peak:
        return (f"timing error: {executed:.0f} GFLOP/s executed, above the measured peak of "
                f"{peak:.0f}")
    return None


# -- the plot --------------------------------------------------------------------------------------
MARKERS = {"fwd": "o", "bwd_w": "^", "bwd_x": "v", "bwd": "s"}
COLOURS = {"minicnn": "tab:blue", "tensorflow": "tab:orange", "pytorch": "tab:red"}


def plot(path, machine: dict, points: list[dict], title: str) -> None:
    """GFLOP/s against arithmetic intensity, log-log, under the measured roofs; one marker per
    layer pass per framework. points: {framework, label, pass, intensity, gflops}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in points if p["intensity"] and p["gflops"] and p["gflops"] > 0]
    fig, ax = plt.subplots(figsize=(11.5, 6), dpi=110)
    xs = [p["intensity"] for p in points] or [1.0]
    lo, hi = min(*xs, 0.5) / 2, max(*xs, 200.0) * 2
    grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    roofs = (("all threads", machine["peak_gflops_all_threads"],
              machine["bandwidth_gbs_all_threads"], "-"),
             ("1 thread", machine["peak_gflops_1_thread"], machine["bandwidth_gbs_1_thread"],
              "--"))
    for label, peak, bandwidth, style in roofs:
        ax.plot(grid, [min(peak, x * bandwidth) for x in grid], style, color="black",
                linewidth=1.2, label=f"roof, {label}: SGEMM {peak:.0f} GFLOP/s, "
                                     f"copy {bandwidth:.1f} GB/s")
    seen, labelled = set(), set()
    for p in points:
        key = (p["framework"], p["pass"])
        ax.scatter(p["intensity"], p["gflops"], marker=MARKERS.get(p["pass"], "x"),
                   color=COLOURS.get(p["framework"], "gray"), s=42, alpha=0.85,
                   label=None if key in seen else f"{p['framework_label']} {p['pass_label']}")
        seen.add(key)
    for p in sorted(points, key=lambda p: -p["gflops"]):  # each pass named once, at its top
        if p["label"] not in labelled:
            labelled.add(p["label"])
            ax.annotate(p["label"], (p["intensity"], p["gflops"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte of inputs, outputs and weights)")
    ax.set_ylabel("GFLOP/s (direct-convolution FLOPs over median time: effective for Winograd)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
