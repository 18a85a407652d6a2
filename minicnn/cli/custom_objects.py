"""--custom-objects: the Layer and Optimizer subclasses a saved model needs, from a file or a
module, as Keras's `custom_objects`."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from minicnn.cli.errors import CLIError


def custom_objects(sources: Sequence[str]) -> dict[str, type]:
    """The Layer and Optimizer subclasses in each source, by class name, for `load_model`.

    A source ending in `.py` is a file, run as a module (its directory importable, so it may
    import its neighbours); any other is a module name, imported with the current directory on
    the path, as `python -m` would.
    """
    from minicnn.layers import Layer
    from minicnn.optimizers import Optimizer

    found: dict[str, type] = {}
    for source in sources:
        if source.endswith(".py") and not os.path.isfile(source):
            raise CLIError(f"custom objects file '{source}' does not exist")
        try:
            module = _import(source)
        except Exception as e:  # the module's own code failed, whatever it raised: say so
            raise CLIError(f"cannot import custom objects from '{source}': "
                           f"{type(e).__name__}: {e}") from e
        classes = {name: obj for name, obj in vars(module).items()
                   if isinstance(obj, type) and issubclass(obj, (Layer, Optimizer))}
        if not classes:
            raise CLIError(f"'{source}' defines no Layer or Optimizer subclass to load a model "
                           f"with")
        found.update(classes)
    return found


def _import(source: str):
    directory = os.path.dirname(os.path.abspath(source)) if source.endswith(".py") else os.getcwd()
    sys.path.insert(0, directory)
    try:
        if not source.endswith(".py"):
            return importlib.import_module(source)
        name = os.path.splitext(os.path.basename(source))[0]
        if name in sys.modules:  # my_layers.py named like a module in use: shadow nothing
            name = f"minicnn_custom_objects.{name}"
        spec = importlib.util.spec_from_file_location(name, source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as an import would: dataclasses and pickling look it up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    finally:
        sys.path.remove(directory)
