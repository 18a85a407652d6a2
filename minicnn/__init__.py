"""minicnn: a from-scratch convolutional-network engine in NumPy with numba kernels.

`import minicnn as keras` gives Keras's top-level names: `keras.Sequential`, `keras.Model`,
`keras.Input`, and the modules `keras.backend`, `keras.layers`, `keras.models`, `keras.datasets`,
`keras.callbacks`, `keras.optimizers`, `keras.losses`, `keras.metrics`, `keras.utils`,
`keras.regularizers`, `keras.initializers`, `keras.activations`; `minicnn.keras` is minicnn
itself (TensorFlow's tutorials reach Keras as `tf.keras`). Each is imported the first time it is
used (PEP 562), so `import minicnn` itself stays light; TensorFlow and Ray are never imported.
"""

import importlib

__version__ = "0.1.0"

# Keras's top-level modules, imported on first use.
_MODULES = ("activations", "backend", "callbacks", "datasets", "initializers", "layers",
            "losses", "metrics", "models", "optimizers", "regularizers", "utils")
# Keras's top-level classes and functions: name -> the module that defines them.
_NAMES = {"Sequential": "minicnn.models", "Model": "minicnn.models",
          "Input": "minicnn.layers", "Layer": "minicnn.layers"}

__all__ = [*_MODULES, *_NAMES, "get_num_threads", "set_num_threads"]


def __getattr__(name: str):
    if name == "keras":
        # `import minicnn as tf` then `tf.keras.layers...`: TensorFlow's tutorials reach Keras
        # through tf.keras, and minicnn is the Keras here.
        import sys

        return sys.modules[__name__]
    if name in _MODULES:
        module = importlib.import_module(f"minicnn.{name}")
        globals()[name] = module
        return module
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    from minicnn._missing import TOP_LEVEL

    if name in TOP_LEVEL:
        raise AttributeError(f"minicnn has no `keras.{name}` (module 'minicnn' has no attribute "
                             f"{name!r}): {TOP_LEVEL[name]}.")
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
