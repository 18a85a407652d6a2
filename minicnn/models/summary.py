"""`model.summary()`: the same table Keras 3 prints, box characters included."""

from __future__ import annotations

from collections.abc import Sequence

from minicnn.layers.base import shape_str

_WIDTHS = (33, 24, 15)  # Keras's columns for a line length of 76


def render_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
                 widths: Sequence[int], right_from: int, footer: Sequence[str] = ()) -> str:
    """A box-drawn table in Keras's style; columns from `right_from` on are right-aligned."""

    def rule(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * w for w in widths) + right

    def row(cells: Sequence[str], bar: str) -> str:
        parts = [f"{c:>{w - 2}}" if k >= right_from else f"{c:<{w - 2}}"
                 for k, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return f"{bar} " + f" {bar} ".join(parts) + f" {bar}"

    lines = [title, rule("┏", "━", "┳", "┓"), row(headers, "┃"), rule("┡", "━", "╇", "┩")]
    for k, cells in enumerate(rows):
        lines.append(row(cells, "│"))
        if k < len(rows) - 1:
            lines.append(rule("├", "─", "┼", "┤"))
    lines.append(rule("└", "─", "┴", "┘"))
    return "\n".join([*lines, *footer])


def readable_size(n_bytes: float) -> str:
    """Keras's memory size format: 1024-based units with two decimals."""
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def summary_text(model) -> str:
    rows = [(f"{layer.name} ({type(layer).__name__})",
             "?" if layer.output_shape is None else shape_str(layer.output_shape),
             f"{layer.count_params():,}") for layer in model.layers]
    count = model.count_params()
    size = sum(p.value.nbytes for p in model.params)
    optimizer_count, optimizer_size = _optimizer_variables(model)
    footer = [f" Total params: {count + optimizer_count:,} "
              f"({readable_size(size + optimizer_size)})",
              f" Trainable params: {count:,} ({readable_size(size)})",
              " Non-trainable params: 0 (0.00 B)"]
    if optimizer_count:
        footer.append(f" Optimizer params: {optimizer_count:,} ({readable_size(optimizer_size)})")
    return render_table(f'Model: "{model.name}"', ("Layer (type)", "Output Shape", "Param #"),
                        rows, _WIDTHS, right_from=2, footer=footer)


def _optimizer_variables(model) -> tuple[int, int]:
    """Count and bytes of the optimizer's state once it has taken a step, as Keras counts them:
    its slots plus the iteration counter (int64) and the learning rate (float32)."""
    optimizer = model.optimizer
    if optimizer is None or optimizer.iterations == 0:
        return 0, 0
    slots = [s for group in optimizer.slots(model.params) for s in group]
    return sum(s.size for s in slots) + 2, sum(s.nbytes for s in slots) + 12
