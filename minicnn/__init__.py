"""minicnn: a from-scratch convolutional-network engine in NumPy with numba kernels."""

__version__ = "0.1.0"


def set_num_threads(n: int) -> None:
    """Run minicnn's passes on `n` threads (default: $MINICNN_NUM_THREADS, else every core this
    process may use), as `torch.set_num_threads`. Results are the same bit for bit on any
    number of threads: the batch is always cut into the same chunks."""
    from minicnn.fast import parallel  # imported here so that `import minicnn` stays light

    parallel.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads minicnn's passes run on."""
    from minicnn.fast import parallel

    return parallel.get_num_threads()
