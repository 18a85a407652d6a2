"""Input: the shape of one sample, as the first element of a Sequential (Keras 3's style).

    Sequential([Input(shape=(28, 28, 1)), Conv2D(32, 3), ...])
    # is the same model as
    Sequential([Conv2D(32, 3, input_shape=(28, 28, 1)), ...])

Input is a marker, not a layer: it has no forward or backward, and Sequential.add consumes it by
giving its shape to the first real layer. So the model, its summary() (Keras 3 does not list the
input either) and its saved file are the same either way.
"""

from __future__ import annotations


class Input:
    """`Input(shape)`: shape is one sample's shape, without the batch dimension."""

    def __init__(self, shape, *, name: str | None = None):
        shape = (shape,) if isinstance(shape, int) else shape
        if (not isinstance(shape, (tuple, list)) or not shape or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                for d in shape)):
            raise ValueError(
                "Invalid value for argument `shape`. Expected a tuple of strictly positive ints "
                f"(or None), without the batch dimension. Received shape={shape!r}")
        self.shape = tuple(shape)
        self.name = name

    def __repr__(self) -> str:
        return f"<Input shape={(None, *self.shape)}>"
