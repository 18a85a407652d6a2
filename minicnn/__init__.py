"""minicnn: a from-scratch convolutional-network engine in NumPy with numba kernels."""

__version__ = "0.1.0"
