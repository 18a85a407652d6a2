"""A 3x3 stride-1 convolution by Winograd's F(2x2, 3x3) or F(4x4, 3x3): alternatives to im2col.

`winograd_conv2d` and `winograd_conv2d_backward` compute what a Conv2D(F, 3, padding='valid' or
'same') computes before its activation. ConvStep and ConvPoolStep run it chunk by chunk where
minicnn/fast/conv_algorithm.py's rule, made from measurements, picks it over im2col.

The idea (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural Networks"). In one
dimension, two outputs of a 3-tap correlation, y0 = d0 g0 + d1 g1 + d2 g2 and
y1 = d1 g0 + d2 g1 + d3 g2, need 6 multiplications directly, but only 4 as

    m1 = (d0 - d2) g0    m2 = (d1 + d2) (g0 + g1 + g2) / 2    y0 = m1 + m2 + m3
    m4 = (d1 - d3) g2    m3 = (d2 - d1) (g0 - g1 + g2) / 2    y1 = m2 - m3 - m4

that is y = A^T [(G g) * (B^T d)], with the matrices in minicnn/fast/kernels/winograd.py.
Nesting it in both directions, a 4x4 input tile d and a 3x3 filter g give a 2x2 output block

    Y = A^T [U * V] A,   U = G g G^T,   V = B^T d B   (* elementwise over 16 positions).

Summed over input channels c, each of the 16 positions (xi, nu) is a matrix product over
channels: M[xi nu] (tiles, F) = V[xi nu] (tiles, C) @ U[xi nu] (C, F). So a layer is: transform
every input tile (tiles stride 2, over the zero-padded input), transform the kernel once, run
16 GEMMs, transform every M tile back, crop, add the bias.

Multiplications. Directly, a 2x2 output block costs 4 * 9 = 36 multiplications per (c, f);
here the 16 GEMMs cost 16: 2.25x fewer, in the part whose cost grows with C * F. The transforms
are additions (and halvings), O(tiles * 16 * (C + F)) in all, not multiplied by the other
channel count. An odd output size rounds the tile grid up (11x11 outputs take 6x6 tiles, the
last row and column of outputs computed and dropped): the saving is 1089 / 576 = 1.89x for
conv2 (13x13 -> 11x11), 81 / 64 = 1.27x for conv3 (5x5 -> 3x3), 2.25x on even sizes.

Backward, as the exact adjoint: y is linear in the input d for a fixed kernel g and in g for a
fixed d, so each gradient is the forward map's transpose applied to dout, step by step in
reverse: the crop's adjoint pads dout with zeros to the tile grid; Y = A^T M A gives
dM = A dY A^T per tile; the GEMMs give dU[xi nu] = V[xi nu]^T dM[xi nu] (C, F) and
dV[xi nu] = dM[xi nu] U[xi nu]^T (tiles, C); U = G g G^T gives dg = G^T dU G; V = B^T d B gives
dd = B dV B^T, and cutting overlapping tiles out of the padded input becomes scatter-adding them
back, then cropping the padding. Backward is 16 + 16 GEMMs of the forward's size (2.25x fewer
multiplications than im2col's two), the three adjoint transforms and V again from x.

Numerics. Each V entry adds up to 4 inputs and each output up to 9 M entries, intermediates
larger than the result that partly cancel, so float32 rounding is not im2col's. Measured
against the same computation in float64, on N(0, 1) inputs and kernels, as max |error| over the
largest magnitude of the result (the gradient checker's measure), worst over the notebook's
conv1-conv3 and the CIFAR recipe's 3x3 shapes (12 draws): forward 3.6e-7 (the reference
im2col Conv2D: 8.1e-7; Winograd's sums over C = 32..64 channels are shorter than im2col's over
9 * C), dx 4.5e-7 (2.2e-7: twice im2col's), dkernel 7.1e-7 (7.0e-7). Against TensorFlow in
float32 (tests/test_winograd.py, -s): at most 3.8e-7 of scale forward, 5.4e-7 for the kernel
gradient, 20x inside TF_FORWARD_RTOL = 1e-5.

Memory and speed. A chunk goes through the transforms and GEMMs in blocks of about
BLOCK_TILES tiles, so its V and M (16 values per tile, against 4 outputs) stay in cache rather
than stream through memory (than one block per chunk, forward 1.5x faster on CIFAR's
32x32x32 layer, 1.2x on conv2). Backward transforms x again, block by block, instead of keeping
V, which is 4x the size of a 'same' input: the cache holds x and U only.

Measured against ConvStep's im2col + GEMM (batch 128, float32, one thread, min of 10
alternating runs on a shared 2-core AMD EPYC; forward / backward with dx, in ms; the conv ends
in a ReLU, the notebook's conv2 in its pool, a ConvPoolStep):

    layer                               im2col          Winograd        ratio
    notebook conv2  13x13x32 -> 64      6.4 / 12.7      3.9 /  7.1    0.62 / 0.56
    notebook conv3   5x5x64  -> 64      1.1 /  2.5      1.1 /  2.6    0.99 / 1.03
    CIFAR 32x32x32 -> 32 'same'        49.0 / 85.2     19.0 / 36.4    0.39 / 0.43
    CIFAR 16x16x64 -> 64 'same'        32.3 / 62.6     14.0 / 27.9    0.43 / 0.45
    ResNet 32x32x16 -> 16 'same'       18.6 / 31.4      8.5 / 17.6    0.46 / 0.56

(Before the transforms indexed their arrays directly, Winograd's column read 9.6 / 19.2,
2.9 / 6.5, 37.7 / 76.4 and 27.0 / 51.9 for the first four, on a busier machine.) At 16 to 64
channels the 16 batched GEMMs now run near the core's peak and take half of the time or more.

Winograd wins where its GEMMs are large and the im2col matrix is (9x the input) huge, and
only breaks even on conv3, whose 3x3 output (2x2 tiles cover 4x4) leaves only 1.27x fewer
multiplications to pay for the transforms.

Threads: the batch is cut into parallel.chunks(N) as in ConvStep; each chunk's partial dU is
added in chunk order, so results are the same bit for bit on any number of threads.

F(4x4, 3x3). Everything above holds with a 6x6 input tile per 4x4 output block (stride 4),
36 positions and the matrices of minicnn/fast/kernels/winograd4.py: 4x fewer multiplications
than directly (1.78x fewer than F(2x2)), 2.25 transformed values per output instead of 4, at
~10-20x F(2x2)'s float32 rounding (still ~1e-5 of the result's scale) and a grid rounded up to
a multiple of 4. `winograd_conv2d(..., transforms=F4X4)` runs it; conv_algorithm.py's rule
picks it for ResNet-20's and the CIFAR recipe's layers (0.82-0.94x F(2x2)'s time there).
ResNet-20's training step (batch 128, two threads) took 0.93x the time of the same plan with
F(2x2) (median of the ratios of 50 alternating steps in one process, quartiles 0.87-0.98, on
a machine at load 2.5-3.8: absolute times were 1.5-2x a quiet machine's).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from minicnn.fast import parallel
from minicnn.fast.kernels import winograd as f2x2
from minicnn.fast.kernels import winograd4 as f4x4
from minicnn.fast.workspace import Workspace
from minicnn.layers._args import padding_mode, window_geometry


class WinogradTransforms(NamedTuple):
    """One of the two tile sizes: F(m x m, 3x3) outputs m x m per tile of (m + 2)^2 positions.
    The kernels take the same arguments in both (minicnn/fast/kernels/winograd.py's), with
    V, U and M of `positions` rows."""

    m: int
    input: Callable
    input_backward: Callable
    filter: Callable
    filter_backward: Callable
    output: Callable
    output_backward: Callable

    @property
    def positions(self) -> int:
        return (self.m + 2) ** 2

    def tiles(self, H_out: int, W_out: int) -> tuple[int, int]:
        """The tile grid (TH, TW) covering H_out x W_out outputs."""
        return -(-H_out // self.m), -(-W_out // self.m)


F2X2 = WinogradTransforms(2, *f2x2.WINOGRAD_KERNELS)
F4X4 = WinogradTransforms(4, *f4x4.WINOGRAD4_KERNELS)


class WinogradGeometry(NamedTuple):
    H_out: int
    W_out: int
    PT: int  # zero rows above the input
    PL: int  # zero columns left of it
    TH: int  # tile rows: ceil(H_out / m)
    TW: int  # tile columns: ceil(W_out / m)


def winograd_geometry(H: int, W: int, padding: str, m: int = 2) -> WinogradGeometry:
    """Output size, leading padding and tile grid (m x m outputs a tile) of a 3x3 stride-1 conv
    on an H x W input."""
    H_out, PT = window_geometry(H, 3, 1, padding)
    W_out, PL = window_geometry(W, 3, 1, padding)
    if H_out <= 0 or W_out <= 0:
        raise ValueError(f"A 3x3 kernel does not fit an input of {H}x{W} with "
                         f"padding='{padding}'")
    return WinogradGeometry(H_out, W_out, PT, PL, -(-H_out // m), -(-W_out // m))


# A chunk is worked through in blocks of whole samples with about this many tiles, so that a
# block's V and M stay in the core's cache (M is 4x the size of the block's output) from the
# transform that writes them to the GEMM and the transform that read them.
BLOCK_TILES = 128


def _blocks(a: int, b: int, T: int) -> list[tuple[int, int]]:
    """Samples a..b-1, T tiles each, cut into (start, stop) blocks of about BLOCK_TILES tiles."""
    step = max(1, BLOCK_TILES // T)
    return [(s, min(s + step, b)) for s in range(a, b, step)]


class WinogradCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C): backward transforms it again, block by block
    geometry: WinogradGeometry
    U: np.ndarray  # (positions, C, F), the transformed kernel
    transforms: WinogradTransforms


def winograd_conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, padding: str,
                    workspace: Workspace | None = None,
                    transforms: WinogradTransforms = F2X2) -> tuple[np.ndarray, WinogradCache]:
    """y = conv(x, kernel) + bias, stride 1; x (N, H, W, C), kernel (3, 3, C, F), bias (F,) or
    None; returns y (N, H_out, W_out, F) and what the backward pass needs.

    Scratch arrays come from `workspace` when given (reused from call to call, as the fast
    plan's steps do). transforms: F2X2 or F4X4, the tile size.
    """
    padding = padding_mode(padding)
    x = np.ascontiguousarray(x)
    if x.ndim != 4 or kernel.shape[:3] != (3, 3, x.shape[-1]):
        raise ValueError(f"Invalid value for argument `kernel`. Expected shape (3, 3, C, F) with "
                         f"C = x.shape[-1] for x (N, H, W, C). "
                         f"Received kernel.shape={kernel.shape}, x.shape={x.shape}")
    if kernel.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise ValueError(f"Invalid dtype: x, kernel and bias must share one. Received "
                         f"x {x.dtype}, kernel {kernel.dtype}, "
                         f"bias {None if bias is None else bias.dtype}")
    N, H, W, C = x.shape
    F = kernel.shape[3]
    wt = transforms
    geo = winograd_geometry(H, W, padding, wt.m)
    T = geo.TH * geo.TW  # tiles per sample
    work = workspace or Workspace()
    bias = np.zeros(F, x.dtype) if bias is None else np.ascontiguousarray(bias)
    U = np.empty((wt.positions, C, F), dtype=x.dtype)
    wt.filter(np.ascontiguousarray(kernel), U)
    y = np.empty((N, geo.H_out, geo.W_out, F), dtype=x.dtype)  # handed on: never reused

    def chunk(p: int, a: int, b: int) -> None:
        for s, e in _blocks(a, b, T):
            # position-major (positions, tiles, K): each GEMM on contiguous matrices
            V = work.get(f"V{p}", (wt.positions, (e - s) * T, C), x.dtype)
            M = work.get(f"M{p}", (wt.positions, (e - s) * T, F), x.dtype)
            wt.input(x[s:e], geo.PT, geo.PL, geo.TH, geo.TW, V)
            np.matmul(V, U, out=M)
            wt.output(M, bias, geo.TH, geo.TW, y[s:e])
    parallel.run([functools.partial(chunk, p, a, b)
                  for p, (a, b) in enumerate(parallel.chunks(N))])
    return y, WinogradCache(x, geo, U, wt)


def winograd_conv2d_backward(dout: np.ndarray, cache: WinogradCache,
                             workspace: Workspace | None = None, input_gradient: bool = True
                             ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """dout (N, H_out, W_out, F) -> dx (N, H, W, C) (None if not input_gradient),
    dkernel (3, 3, C, F), dbias (F,)."""
    x, geo, U, wt = cache
    (N, H, W, C), F, P = x.shape, U.shape[2], U.shape[0]
    if dout.shape != (N, geo.H_out, geo.W_out, F):
        raise ValueError(f"Invalid value for argument `dout`. Expected shape "
                         f"{(N, geo.H_out, geo.W_out, F)}. Received dout.shape={dout.shape}")
    dout = np.ascontiguousarray(dout)
    T = geo.TH * geo.TW
    work = workspace or Workspace()
    pieces = parallel.chunks(N)
    dU = work.get("dU", (len(pieces), P, C, F), dout.dtype)
    dbias = work.get("dbias", (len(pieces), F), dout.dtype)
    dx = np.empty((N, H, W, C), dtype=dout.dtype) if input_gradient else None
    # (positions, F, C), contiguous: the batched GEMM with a transposed view ran 1.6x slower
    U_t = np.ascontiguousarray(U.transpose(0, 2, 1))

    def chunk(p: int, a: int, b: int) -> None:
        dU_block = work.get(f"dU{p}", (P, C, F), dout.dtype)
        blocks = _blocks(a, b, T)
        if not blocks:  # an empty batch
            dU[p] = 0.0
        for k, (s, e) in enumerate(blocks):
            V = work.get(f"V{p}", (P, (e - s) * T, C), dout.dtype)
            dM = work.get(f"dM{p}", (P, (e - s) * T, F), dout.dtype)
            wt.input(x[s:e], geo.PT, geo.PL, geo.TH, geo.TW, V)
            wt.output_backward(dout[s:e], geo.TH, geo.TW, dM)
            if k == 0:
                np.matmul(V.transpose(0, 2, 1), dM, out=dU[p])
            else:
                np.matmul(V.transpose(0, 2, 1), dM, out=dU_block)
                dU[p] += dU_block
            if input_gradient:
                dV = work.get(f"dV{p}", (P, (e - s) * T, C), dout.dtype)
                np.matmul(dM, U_t, out=dV)
                wt.input_backward(dV, geo.PT, geo.PL, geo.TH, geo.TW, dx[s:e])
        np.sum(dout[a:b], axis=(0, 1, 2), out=dbias[p])
    parallel.run([functools.partial(chunk, p, a, b) for p, (a, b) in enumerate(pieces)])
    dkernel = np.empty((3, 3, C, F), dtype=dout.dtype)
    wt.filter_backward(np.sum(dU, axis=0), dkernel)
    return dx, dkernel, np.sum(dbias, axis=0)
