"""Hypothesis strategies shared by the tests: whole, valid setups drawn in one go.

Arrays are not drawn element by element with `hypothesis.extra.numpy` (slow, and it shrinks
towards all-zero inputs that test little); a test draws an integer seed instead and fills its
arrays from `np.random.default_rng(seed)` with the helpers at the end of this module, so a failing
example is still reproduced exactly from what hypothesis prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from minicnn.layers._args import window_geometry

# Pools are drawn 2..3 wide: a 1x1 pool is a copy, and beyond 3 only the cost grows.
_WINDOW_SIZES = {"conv": (1, 5), "pool": (2, 3)}


@dataclass(frozen=True)
class WindowSetup:
    """One sliding-window geometry: input (N, H, W, C), window (KH, KW), strides (SH, SW).

    For kind="pool", (KH, KW) is the pool size. H_out, W_out and the leading pads PT, PL come from
    `window_geometry`, i.e. Keras's rules for `padding`.
    """

    N: int
    H: int
    W: int
    C: int
    KH: int
    KW: int
    SH: int
    SW: int
    padding: str
    H_out: int
    W_out: int
    PT: int
    PL: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.H, self.W, self.C)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """(N, H_out, W_out, C): a pool's output, or a conv's with as many filters as channels."""
        return (self.N, self.H_out, self.W_out, self.C)

    @property
    def cols_shape(self) -> tuple[int, int]:
        """The im2col matrix: one row per output pixel, one column per (kh, kw, c)."""
        return (self.N * self.H_out * self.W_out, self.KH * self.KW * self.C)

    @property
    def window_args(self) -> tuple[int, int, int, int, int, int, int, int]:
        """(KH, KW, SH, SW, PT, PL, H_out, W_out): the int arguments every window kernel takes."""
        return (self.KH, self.KW, self.SH, self.SW, self.PT, self.PL, self.H_out, self.W_out)


@st.composite
def window_setups(draw, kind: str = "conv", max_stride: int = 3) -> WindowSetup:
    """A conv ("conv") or max-pool ("pool") geometry whose output is never empty.

    Batch 1..4, H and W 1..9 (odd and even), channels 1..5, windows 1..5 (pools 2..3), strides
    1..max_stride (so pools overlap when the stride is below the pool size), padding "valid"
    or "same".
    An empty output is avoided by construction rather than rejected: with "valid" padding the
    input is drawn at least as large as the window.
    """
    lo, hi = _WINDOW_SIZES[kind]
    padding = draw(st.sampled_from(["valid", "same"]))
    KH, KW = draw(st.integers(lo, hi)), draw(st.integers(lo, hi))
    min_h, min_w = (KH, KW) if padding == "valid" else (1, 1)
    H, W = draw(st.integers(min_h, 9)), draw(st.integers(min_w, 9))
    SH, SW = draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))
    N, C = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    H_out, PT = window_geometry(H, KH, SH, padding)
    W_out, PL = window_geometry(W, KW, SW, padding)
    assert H_out > 0 and W_out > 0, (H, W, KH, KW, SH, SW, padding)
    return WindowSetup(N, H, W, C, KH, KW, SH, SW, padding, H_out, W_out, PT, PL)


def dtypes() -> st.SearchStrategy[np.dtype]:
    """float32 (what minicnn trains in) or float64 (what it checks in)."""
    return st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def seeds() -> st.SearchStrategy[int]:
    """A seed for `np.random.default_rng`, from which a test draws its arrays."""
    return st.integers(0, 2**32 - 1)


def standard_normal(rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
    """N(0, 1) values in `dtype`, drawn in float64 so both dtypes see the same numbers."""
    return rng.standard_normal(shape).astype(dtype)


def small_integers(rng: np.random.Generator, shape: tuple, dtype, high: int = 3) -> np.ndarray:
    """Integer values in [-high + 1, high) stored as `dtype`: full of exact ties, for pooling."""
    return rng.integers(-high + 1, high, size=shape).astype(dtype)


# A power of two, so every value below is exact in float32 and float64 and neighbours differ by
# exactly this much (>= 0.01, the spacing the gradient checks rely on for tie-free pooling).
DISTINCT_STEP = 1 / 64


def distinct_values(rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
    """An array of `shape` whose values are all distinct, at least 0.01 apart, in random order.

    A shuffled arange times DISTINCT_STEP plus a random offset of whole steps, which can make
    every value negative (the case where a "same" pool's padding must still never win).
    """
    size = int(np.prod(shape))
    offset = int(rng.integers(-size, 1))
    return ((rng.permutation(size) + offset) * DISTINCT_STEP).astype(dtype).reshape(shape)
