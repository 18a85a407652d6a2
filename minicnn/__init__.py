"""minicnn: a from-scratch convolutional-network engine in NumPy with numba kernels."""

from minicnn import _threads  # noqa: F401  (must run before numpy is imported)

__version__ = "0.1.0"
