"""Which algorithm a conv step runs for its layer's shape, and the Winograd pass both steps share.

ConvStep and ConvPoolStep compute their convolution one of five ways, picked once, when the
plan is built, by `choose_algorithm` (the rule, with the measurements behind it):
- "direct": no im2col matrix, for a tiny receptive field (minicnn/fast/kernels/conv.py);
- "rows": no im2col matrix either, for stride 1 with few channels and few filters, its SIMD
  loop along the output rows (minicnn/fast/kernels/conv_along_rows.py; ConvStep only);
- "im2col": the im2col matrix and one GEMM per chunk of the batch;
- "winograd": F(2x2, 3x3) for 3x3 stride-1 kernels (minicnn/fast/winograd.py), 2.25x fewer
  multiplications, paid for with transforms whose cost grows with C + F rather than C * F;
- "winograd4": F(4x4, 3x3), 4x fewer multiplications and 2.25 transformed values per output
  against F(2x2)'s 4, on a coarser tile grid (outputs rounded up to a multiple of 4).
`step.algorithm` says which a step runs, and its repr shows it.

For study and benchmarks the choice can be forced with the environment variable
MINICNN_CONV_ALGORITHM, read when a plan is built (compile(), or the first fit):
    auto      the rule below (the default)
    im2col    neither Winograd nor rows: the plan as it was before them (direct for tiny fields)
    winograd  F(2x2) Winograd for every 3x3 stride-1 conv, whatever its shape; the rule else
    winograd4 the same with F(4x4)
    rows      rows for every stride-1 conv a ConvStep runs, whatever its shape; the rule else
Every algorithm computes the same numbers to float rounding (tests/test_plan_winograd.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from minicnn.fast.winograd import F2X2, F4X4, WinogradTransforms, _blocks
from minicnn.fast.workspace import Workspace

SETTINGS = ("auto", "im2col", "winograd", "winograd4", "rows")
ENVIRONMENT_VARIABLE = "MINICNN_CONV_ALGORITHM"

# Up to this receptive field (KH * KW * C) the direct kernel beats im2col + GEMM. Measured on the
# MNIST model's first layer (field 9, 32 filters, batch 128): 2.6 ms against 9.8 ms.
DIRECT_MAX_FIELD = 16

# Winograd's thresholds (auto). Measured: Winograd's time over im2col's, forward + backward with
# dx, batch 128, float32, min of 9-15 alternating runs, one core (taskset -c 0) / two threads, on
# a shared 2-core AMD EPYC under heavy load (load average 7-10: absolute times 2-3x a quiet
# machine's, so only the ratios are kept):
#     shape: C -> F, the outputs the step computes            1 core   2 threads
#     MNIST conv2+pool  13x13x32 -> 64, its 10x10 pooled region   0.83     0.83
#     MNIST conv3        5x5x64  -> 64, 3x3                       1.31     1.39   (side < 6)
#     CIFAR conv1       32x32x3  -> 32 'same'                     1.88     1.70   (C < 16)
#     CIFAR conv2+pool  32x32x32 -> 32, its 30x30 pooled region   0.48     0.64
#     CIFAR conv3       15x15x32 -> 64 'same'                     0.64     0.83
#     CIFAR conv4+pool  15x15x64 -> 64, its 12x12 pooled region   0.47     0.65
#     64 -> 64 'same', 9x9                                        0.75     0.68
#                      8x8                                        0.56     0.77
#                      7x7                                        0.88     0.76
#                      6x6                                        0.76     0.87
#                      5x5                                        1.22     1.27   (side < 6)
#                      4x4                                        0.90     0.92   (side < 6)
#     16x16 'same',  8 -> 32                                      1.49     1.27   (C < 16)
#                   12 -> 32                                      0.98     0.99   (C < 16)
#                   16 -> 32                                      0.92     0.69
#                   32 -> 8                                       0.57     0.65
# Winograd's transforms cost O(tiles * (C + F)) against GEMMs of O(tiles * C * F): few input
# channels leave too little GEMM to save (C = 8 loses, 12 breaks even), while few filters still
# win (the 32 -> 8 row: im2col's matrix, 9x the input, is the cost it saves). Small maps lose
# to the tile grid's rounding (a 3x3 or 5x5 output computes 4x4 or 6x6) and to per-block
# overhead; 4x4 wins by ~10%, not kept as an exception.
WINOGRAD_MIN_CHANNELS = 16  # input channels C
WINOGRAD_MIN_SIDE = 6  # of the outputs the step computes, H_out and W_out

# The rows kernel's thresholds (auto): its time over im2col's, forward + backward (kernel
# gradient, and dx where marked), batch 128, float32, min of 15 alternating runs, one thread
# (threadpoolctl), load average 2.1 on the shared 2-core EPYC (other programs running, so only
# the ratios are kept); 'same' padding but where marked; im2col as it runs since its kernel
# rows move as runs (minicnn/kernels/conv.py):
#     shape: H x W x C -> F, kernel                         ratio
#     28x28x1 -> 6, 5x5 (d2l's LeNet conv1)                 0.59
#                       with dx                             0.50
#     28x28x2 -> 8, 5x5, with dx                            0.78
#     16x16x2 -> 8, 3x3, with dx                            0.83
#     32x32x3 -> 8, 3x3                                     0.88
#                       with dx                             0.83
#     28x28x4 -> 8, 5x5, with dx                            0.80   (C > 3)
#     16x16x4 -> 8, 3x3                                     1.20   (C > 3)
#                       with dx                             1.14   (C > 3)
#     28x28x1 -> 16, 5x5                                    1.23   (F > 8)
#     32x32x3 -> 16, 3x3                                    1.34   (F > 8)
#     28x28x1 -> 32, 5x5                                    1.60   (F > 8)
#     32x32x3 -> 32, 3x3 (CIFAR conv1)                      1.66   (F > 8)
#     14x14x6 -> 16, 5x5 'valid', with dx (LeNet conv2)     2.64   (F > 8)
# Its work is one multiply-add per output, tap and filter, none of it shared between filters,
# while the GEMM's speed grows with the filters (its columns) and the taps (its inner
# dimension): few filters win, and the more channels, the less. With 4 channels a 5x5 kernel
# on a 28x28 map still wins and a 3x3 one on 16x16 loses (more of the loop is the junk
# columns and the per-tap setup); the rule stops at 3.
ROWS_MAX_FILTERS = 8  # F
ROWS_MAX_CHANNELS = 3  # C

# Which tile, where Winograd runs (auto). F(4x4)'s GEMMs are 1.78x smaller than F(2x2)'s and its
# V and M 0.56x the size, but its grid rounds the outputs up to a multiple of 4, not 2: a 10x10
# region computes 12x12 (1.44x F(2x2)'s 10x10), a 30x30 one 32x32 (1.14x). F(4x4) is picked when
# its grid's area is at most WINOGRAD4_MAX_GRID times F(2x2)'s. Measured: F(4x4)'s time over
# F(2x2)'s, forward + backward with dx, batch 128, float32, two threads and single-threaded BLAS
# (as in fit), min of 13 alternating runs, load average 3 (another engineer's benchmarks: the
# absolute times were ~2x a quiet machine's, so only the ratios are kept):
#     shape: C -> F, the outputs the step computes        grid area   F(4x4) / F(2x2)
#     ResNet-20 32x32x16 -> 16 'same'                         1.00          0.94
#               16x16x32 -> 32 'same'                         1.00          0.86
#                8x8x64  -> 64 'same'                         1.00          0.90
#     64 -> 64 'same', 7x7                                    1.00          0.89
#     Fashion-MNIST conv2 13x13x32 -> 64, 11x11               1.00          0.90
#     CIFAR conv2+pool 32x32x32 -> 32, its 30x30 region       1.14          0.89
#     CIFAR conv3       15x15x32 -> 64 'same'                 1.00          0.82
#     CIFAR conv4+pool  15x15x64 -> 64, its 12x12 region      1.00          0.85
#     16 -> 16 and 32 -> 32 'same', 18x18                     1.23          0.99, 0.95
#     32 -> 32 and 16 -> 16 'same', 13x13 and 14x14           1.31          1.00-1.07
#     MNIST conv2+pool  13x13x32 -> 64, its 10x10 region      1.44          1.16
#     64 -> 64 and 32 -> 32 'same', 9x9 and 10x10             1.44          1.10-1.18
#     64 -> 64 'same', 6x6                                    1.78          1.21
# (Earlier, at load 1 but with BLAS free to start its own threads: 0.80, 0.77 and 0.90 for
# ResNet-20's three shapes.) Break-even lies between 1.23 and 1.31.
WINOGRAD4_MAX_GRID = 1.2


# The Winograd algorithms by name, as `step.algorithm` shows them
WINOGRAD = {"winograd": F2X2, "winograd4": F4X4}


def algorithm_setting() -> str:
    """$MINICNN_CONV_ALGORITHM, or 'auto' when it is unset."""
    text = os.environ.get(ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    if text not in SETTINGS:
        raise ValueError(f"Invalid value for environment variable {ENVIRONMENT_VARIABLE}. "
                         f"Expected one of {', '.join(SETTINGS)}. "
                         f"Received {os.environ[ENVIRONMENT_VARIABLE]!r}")
    return text


def choose_algorithm(kernel_size: tuple[int, int], strides: tuple[int, int],
                     H_out: int | None, W_out: int | None, C: int, F: int,
                     setting: str | None = None, rows_runs: bool = True) -> str:
    """'direct', 'rows', 'im2col', 'winograd' or 'winograd4' for a conv computing H_out x W_out
    outputs (the pooled region, for a ConvPoolStep; None if unknown) from C channels with F
    filters.

    setting: one of SETTINGS (None: $MINICNN_CONV_ALGORITHM);
    rows_runs: whether the step can run 'rows' (ConvPoolStep cannot). With 'auto':
    - direct when KH * KW * C <= DIRECT_MAX_FIELD;
    - Winograd for a 3x3 stride-1 kernel with C >= WINOGRAD_MIN_CHANNELS input channels and
      both output sides >= WINOGRAD_MIN_SIDE (the measurements above): F(4x4) ("winograd4")
      if its tile grid covers at most WINOGRAD4_MAX_GRID times F(2x2)'s area (unknown sides
      count as a whole number of tiles of either), F(2x2) ("winograd") otherwise;
    - rows for stride 1 with C <= ROWS_MAX_CHANNELS and F <= ROWS_MAX_FILTERS;
    - im2col otherwise.
    """
    setting = algorithm_setting() if setting is None else setting
    if setting not in SETTINGS:
        raise ValueError(f"Invalid value for argument `setting`. Expected one of "
                         f"{', '.join(SETTINGS)}. Received setting={setting!r}")
    (KH, KW), (SH, SW) = kernel_size, strides
    winograd_runs = (KH, KW, SH, SW) == (3, 3, 1, 1)
    rows_runs = rows_runs and (SH, SW) == (1, 1)
    if setting in WINOGRAD and winograd_runs:
        return setting
    if setting == "rows" and rows_runs:
        return "rows"
    if KH * KW * C <= DIRECT_MAX_FIELD:
        return "direct"
    if setting == "im2col":
        return "im2col"
    if (winograd_runs and C >= WINOGRAD_MIN_CHANNELS
            and min(H_out or WINOGRAD_MIN_SIDE, W_out or WINOGRAD_MIN_SIDE) >= WINOGRAD_MIN_SIDE):
        if H_out is None or W_out is None:
            return "winograd4"
        grid_4, grid_2 = F4X4.tiles(H_out, W_out), F2X2.tiles(H_out, W_out)
        area_4, area_2 = 16 * grid_4[0] * grid_4[1], 4 * grid_2[0] * grid_2[1]
        return "winograd4" if area_4 <= WINOGRAD4_MAX_GRID * area_2 else "winograd"
    if rows_runs and C <= ROWS_MAX_CHANNELS and F <= ROWS_MAX_FILTERS:
        return "rows"
    return "im2col"


def winograd_chunk(wt: WinogradTransforms, x: np.ndarray, U: np.ndarray, bias: np.ndarray,
                   PT: int, PL: int, a: int, b: int, y: np.ndarray, work: Workspace, p: int,
                   finish: Callable[[int, int], None]) -> None:
    """Samples a..b-1 of y (N, H_out, W_out, F) <- conv(x, kernel) + bias, by Winograd with
    wt's tiles.

    x (N, H, W, C); U (wt.positions, C, F), the transformed kernel; the tile grid covers y
    only, so a ConvPoolStep's y (its pooled region) leaves the rows and columns no window reads
    uncomputed. The chunk goes in blocks of about BLOCK_TILES tiles (minicnn/fast/winograd.py),
    and finish(s, e) runs on samples s..e-1 of y while they are still in cache (ReLU, the
    pool). Scratch comes from `work` under names ending in the chunk number p.
    """
    _, H_out, W_out, F = y.shape
    (TH, TW), C, P = wt.tiles(H_out, W_out), x.shape[3], wt.positions
    for s, e in _blocks(a, b, TH * TW):
        V = work.get(f"V{p}", (P, (e - s) * TH * TW, C), x.dtype)
        M = work.get(f"M{p}", (P, (e - s) * TH * TW, F), x.dtype)
        wt.input(x[s:e], PT, PL, TH, TW, V)
        np.matmul(V, U, out=M)
        wt.output(M, bias, TH, TW, y[s:e])
        finish(s, e)


def winograd_chunk_backward(wt: WinogradTransforms, x: np.ndarray, dz: np.ndarray,
                            U: np.ndarray, PT: int, PL: int, a: int, b: int, dU: np.ndarray,
                            dx: np.ndarray | None, work: Workspace, p: int) -> None:
    """The adjoint of `winograd_chunk` on samples a..b-1: dU (wt.positions, C, F) <- this
    chunk's gradient of U, dx[a:b] <- dL/dx (skipped if dx is None), from dz
    (N, H_out, W_out, F), the gradient at the conv's output (after the ReLU's and the pool's
    backward)."""
    _, H_out, W_out, F = dz.shape
    (TH, TW), C, P = wt.tiles(H_out, W_out), x.shape[3], wt.positions
    # Contiguous: the batched GEMM ran 1.6x slower on the transposed view (0.56 against
    # 0.34 ms a chunk at 32x32x16, measured with winograd_conv2d_backward).
    U_t = np.ascontiguousarray(U.transpose(0, 2, 1))
    dU[...] = 0.0
    for s, e in _blocks(a, b, TH * TW):
        T = (e - s) * TH * TW
        V = work.get(f"V{p}", (P, T, C), x.dtype)
        dM = work.get(f"dM{p}", (P, T, F), dz.dtype)
        dU_block = work.get(f"dU{p}", (P, C, F), dz.dtype)
        wt.input(x[s:e], PT, PL, TH, TW, V)
        wt.output_backward(dz[s:e], TH, TW, dM)
        np.matmul(V.transpose(0, 2, 1), dM, out=dU_block)
        dU += dU_block
        if dx is not None:
            dV = work.get(f"dV{p}", (P, T, C), dz.dtype)
            np.matmul(dM, U_t, out=dV)
            wt.input_backward(dV, PT, PL, TH, TW, dx[s:e])
