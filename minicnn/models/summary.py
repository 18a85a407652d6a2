"""`model.summary()`: the same table Keras 3 prints, box characters included."""

from __future__ import annotations

from minicnn.layers.base import shape_str

_WIDTHS = (33, 24, 15)  # Keras's columns for a line length of 76


def _rule(left: str, fill: str, cross: str, right: str) -> str:
    return left + cross.join(fill * w for w in _WIDTHS) + right


def _row(name: str, shape: str, params: str, bar: str) -> str:
    a, b, c = (w - 2 for w in _WIDTHS)
    return f"{bar} {name:<{a}} {bar} {shape:<{b}} {bar} {params:>{c}} {bar}"


def readable_size(n_bytes: float) -> str:
    """Keras's memory size format: 1024-based units with two decimals."""
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def summary_text(model) -> str:
    lines = [f'Model: "{model.name}"', _rule("┏", "━", "┳", "┓"),
             _row("Layer (type)", "Output Shape", "Param #", "┃"), _rule("┡", "━", "╇", "┩")]
    for k, layer in enumerate(model.layers):
        shape = "?" if layer.output_shape is None else shape_str(layer.output_shape)
        lines.append(_row(f"{layer.name} ({type(layer).__name__})", shape,
                          f"{layer.count_params():,}", "│"))
        if k < len(model.layers) - 1:
            lines.append(_rule("├", "─", "┼", "┤"))
    lines.append(_rule("└", "─", "┴", "┘"))
    count = model.count_params()
    size = sum(p.value.nbytes for p in model.params)
    optimizer_count, optimizer_size = _optimizer_variables(model.optimizer)
    lines += [f" Total params: {count + optimizer_count:,} "
              f"({readable_size(size + optimizer_size)})",
              f" Trainable params: {count:,} ({readable_size(size)})",
              " Non-trainable params: 0 (0.00 B)"]
    if optimizer_count:
        lines.append(f" Optimizer params: {optimizer_count:,} ({readable_size(optimizer_size)})")
    return "\n".join(lines)


def _optimizer_variables(optimizer) -> tuple[int, int]:
    """Count and bytes of the optimizer's state once it has taken a step, as Keras counts them:
    its slots plus the iteration counter (int64) and the learning rate (float32)."""
    slots = [s for group in getattr(optimizer, "_slots", {}).values() for s in group]
    if optimizer is None or optimizer.iterations == 0:
        return 0, 0
    return sum(s.size for s in slots) + 2, sum(s.nbytes for s in slots) + 12
