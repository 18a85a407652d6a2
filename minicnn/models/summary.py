"""`model.summary()`: the same table Keras 3 prints, box characters included.

A Sequential gets three columns; a functional model a fourth, "Connected to", naming for each
layer the tensors it reads as `layer[call][0]` (one line each, cut with "…" where too long).
"""

from __future__ import annotations

from minicnn._table import readable_size, render_table
from minicnn.layers.base import shape_str

_WIDTHS = (33, 24, 15)  # Keras's columns for a line length of 76
_FUNCTIONAL_WIDTHS = (21, 19, 12, 19)  # and with "Connected to"


def summary_text(model) -> str:
    functional = type(model).__name__ != "Sequential" and hasattr(model, "_graph")
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output_shape", None)
        row = [f"{layer.name} ({type(layer).__name__})",
               "?" if shape is None else _shapes(shape), f"{layer.count_params():,}"]
        if functional:
            row.append(_connections(model, layer))
        rows.append(tuple(row))
    trainable, frozen = model.params, model.non_trainable_params
    count, size = sum(p.value.size for p in trainable), sum(p.value.nbytes for p in trainable)
    fixed, fixed_size = sum(p.value.size for p in frozen), sum(p.value.nbytes for p in frozen)
    optimizer_count, optimizer_size = _optimizer_variables(model)
    footer = [f" Total params: {count + fixed + optimizer_count:,} "
              f"({readable_size(size + fixed_size + optimizer_size)})",
              f" Trainable params: {count:,} ({readable_size(size)})",
              f" Non-trainable params: {fixed:,} ({readable_size(fixed_size)})"]
    if optimizer_count:
        footer.append(f" Optimizer params: {optimizer_count:,} ({readable_size(optimizer_size)})")
    if functional:
        return render_table(f'Model: "{model.name}"',
                            ("Layer (type)", "Output Shape", "Param #", "Connected to"), rows,
                            _FUNCTIONAL_WIDTHS, right_from=2, right_to=3, footer=footer)
    return render_table(f'Model: "{model.name}"', ("Layer (type)", "Output Shape", "Param #"),
                        rows, _WIDTHS, right_from=2, footer=footer)


def _shapes(shape) -> str:
    return ", ".join(shape_str(s) for s in shape) if isinstance(shape, list) else shape_str(shape)


def _connections(model, layer) -> str:
    """The tensors `layer` reads in this model, `name[call][0]`, one per line, as Keras."""
    names = [f"{t.node.layer.name}[{t.node.index}][0]"
             for node in model._graph.nodes if node.layer is layer for t in node.inputs]
    return ",\n".join(names) if names else "-"


def _optimizer_variables(model) -> tuple[int, int]:
    """Count and bytes of the optimizer's state once it has taken a step, as Keras counts them:
    its slots plus the iteration counter (int64) and the learning rate (float32)."""
    optimizer = model.optimizer
    if optimizer is None or optimizer.iterations == 0:
        return 0, 0
    slots = [s for group in optimizer.slots(model.params) for s in group]
    return sum(s.size for s in slots) + 2, sum(s.nbytes for s in slots) + 12
