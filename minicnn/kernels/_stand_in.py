"""The reference kernels' NumPy stand-ins, for the seconds numba compiles in the background.

On a fresh machine the reference layers train while a background process compiles minicnn's
kernels (minicnn/models/warmup.py). Compiling the five kernels those layers call would itself take
the first step about 1.3 s (more on a busy machine), so until then each runs its plain NumPy
reference (the `_reference` function every kernel has, its result written into the kernel's
output arguments): the same numbers, to float rounding. A kernel this process has compiled or
loaded from numba's cache is always called itself.
"""

from __future__ import annotations

from collections.abc import Callable

# Set by minicnn.models.warmup while its background process compiles and no model is warm yet.
active = False


class Kernel:
    """A numba kernel, called as it is, or as `stand_in` (same arguments) while `active`."""

    def __init__(self, dispatcher, stand_in: Callable) -> None:
        self.dispatcher = dispatcher
        self.stand_in = stand_in
        self.__doc__ = dispatcher.__doc__

    def __call__(self, *args):
        if active and not self.dispatcher.signatures:
            return self.stand_in(*args)
        return self.dispatcher(*args)

    def __getattr__(self, name: str):  # py_func, signatures, ...: the dispatcher's
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        return f"Kernel({self.dispatcher.py_func.__name__})"
