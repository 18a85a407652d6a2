"""`model.summary()`: the same table Keras 3 prints, box characters included."""

from __future__ import annotations

from minicnn._table import readable_size, render_table
from minicnn.layers.base import shape_str

_WIDTHS = (33, 24, 15)  # Keras's columns for a line length of 76


def summary_text(model) -> str:
    rows = [(f"{layer.name} ({type(layer).__name__})",
             "?" if layer.output_shape is None else shape_str(layer.output_shape),
             f"{layer.count_params():,}") for layer in model.layers]
    trainable = [p for layer in model.layers for p in layer.params]
    frozen = [p for layer in model.layers for p in layer.non_trainable_params]
    count, size = sum(p.value.size for p in trainable), sum(p.value.nbytes for p in trainable)
    fixed, fixed_size = sum(p.value.size for p in frozen), sum(p.value.nbytes for p in frozen)
    optimizer_count, optimizer_size = _optimizer_variables(model)
    footer = [f" Total params: {count + fixed + optimizer_count:,} "
              f"({readable_size(size + fixed_size + optimizer_size)})",
              f" Trainable params: {count:,} ({readable_size(size)})",
              f" Non-trainable params: {fixed:,} ({readable_size(fixed_size)})"]
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
