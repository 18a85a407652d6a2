"""load_model: a model rebuilt from its file (see model_file.py for what the file holds)."""

from __future__ import annotations

from minicnn import layers as layers_module
from minicnn import losses, optimizers
from minicnn.models.model_file import read_model_file
from minicnn.models.sequential import Sequential

_OPTIMIZERS = {"Adam": optimizers.Adam, "SGD": optimizers.SGD}


def load_model(filepath, custom_objects: dict | None = None) -> Sequential:
    """A model saved with `model.save()`: same layers, weights, and optimizer state."""
    file = read_model_file(filepath)
    arch = file.architecture
    known = {name: getattr(layers_module, name) for name in layers_module.__all__}
    known.update(custom_objects or {})
    model = Sequential(name=arch.get("name"), seed=arch.get("seed"))
    try:
        for spec in arch["layers"]:
            cls = known.get(spec["class_name"])
            if cls is None:
                raise ValueError(f"unknown layer class {spec['class_name']!r}; pass it in "
                                 f"custom_objects={{'{spec['class_name']}': TheClass}}")
            model.add(cls.from_config(spec["config"]))
        if not model.built:
            raise ValueError("the first layer has no input_shape")
        model.set_weights(file.weights)
        if "compile" in arch:
            c = arch["compile"]
            optimizer = _OPTIMIZERS[c["optimizer"]["class_name"]](**c["optimizer"]["config"])
            model.compile(optimizer, losses.get(c["loss"]), c["metrics"],
                          fast=c.get("fast", True))
            for p, s in zip(model.params, file.slots, strict=True):
                if any(a.shape != p.value.shape for a in s):
                    raise ValueError(f"optimizer state for {p.name} has the wrong shape")
            model.optimizer.set_slots(model.params, file.slots, c["optimizer"]["iterations"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"Cannot rebuild the model in '{file.path}': {e}") from e
    return model
