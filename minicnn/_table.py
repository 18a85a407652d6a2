"""Box-drawn text tables in Keras's style, for `model.summary()` and the backward summary.

Standard library only, so any module can render a table without importing the engine.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence


def render_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
                 widths: Sequence[int], right_from: int, footer: Sequence[str] = (),
                 right_to: int | None = None) -> str:
    """A box-drawn table in Keras's style; columns right_from to right_to (exclusive; the
    last, when None) are right-aligned. A cell may hold several lines, separated by newlines."""
    right = range(right_from, len(widths) if right_to is None else right_to)

    def rule(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * w for w in widths) + right

    def row(cells: Sequence[str], bar: str) -> str:
        # A cell too long for its column wraps at spaces onto more lines, as Keras's does
        # ("global_average_pooling2d" over "(GlobalAveragePooling2D)").
        # A word longer than the column is cut with an ellipsis, as rich (Keras's printer) does.
        wrapped = [[_fit(piece, w - 2) for line in c.split("\n")
                    for piece in (textwrap.wrap(line, w - 2, break_on_hyphens=False,
                                                break_long_words=False) or [""])]
                   for c, w in zip(cells, widths, strict=True)]
        lines = []
        for k in range(max(len(cell) for cell in wrapped)):
            texts = [cell[k] if k < len(cell) else "" for cell in wrapped]
            parts = [f"{t:>{w - 2}}" if j in right else f"{t:<{w - 2}}"
                     for j, (t, w) in enumerate(zip(texts, widths, strict=True))]
            lines.append(f"{bar} " + f" {bar} ".join(parts) + f" {bar}")
        return "\n".join(lines)

    lines = [title, rule("┏", "━", "┳", "┓"), row(headers, "┃"), rule("┡", "━", "╇", "┩")]
    for k, cells in enumerate(rows):
        lines.append(row(cells, "│"))
        if k < len(rows) - 1:
            lines.append(rule("├", "─", "┼", "┤"))
    lines.append(rule("└", "─", "┴", "┘"))
    return "\n".join([*lines, *footer])


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def readable_size(n_bytes: float) -> str:
    """Keras's memory size format: 1024-based units with two decimals."""
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")
