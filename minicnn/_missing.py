"""What `keras.X.Name` gets when minicnn has no Name: an AttributeError that names the Keras
feature, says what minicnn has instead, and points at the way round (a module's __getattr__
calls `missing`)."""

from __future__ import annotations

import difflib

# Keras's top-level modules minicnn does not have, and the way round each.
TOP_LEVEL = {
    "ops": "minicnn's tensors are NumPy arrays: use NumPy's functions on them (np.exp, "
           "np.argmax, ...), and keras.activations for softmax, sigmoid and the others",
    "applications": "minicnn has no pretrained models; build one from minicnn.layers "
                    "(minicnn.models.recipes has the MNIST, CIFAR-10 and ResNet-20 models)",
    "preprocessing": "use the preprocessing layers in minicnn.layers (Rescaling, RandomFlip, "
                     "RandomTranslation, RandomRotation, RandomZoom, RandomContrast) and "
                     "minicnn.utils.image_dataset_from_directory",
    "mixed_precision": "minicnn trains in float32; model.set_dtype('float64') for checks",
    "constraints": "minicnn has no weight constraints; clip weights in a callback's "
                   "on_train_batch_end (layer.kernel.value[...] = ...)",
    "saving": "use model.save(...) and minicnn.models.load_model(...)",
    "random": "use NumPy's np.random.default_rng",
    "export": "save the model with model.save('m.keras') and serve it with Keras",
}


def missing(module: str, kind: str, name: str, have: list[str], way_round: str
            ) -> AttributeError:
    """The error for `module.name`, a `kind` (loss, metric, ...) minicnn does not have.
    Private and dunder names get the plain AttributeError (tools probe for them)."""
    plain = f"module {module!r} has no attribute {name!r}"
    if name.startswith("_"):
        return AttributeError(plain)
    close = difflib.get_close_matches(name, have, n=1, cutoff=0.85)
    return AttributeError(
        f"minicnn has no {kind} `{name}` ({plain})."
        + (f" Did you mean `{close[0]}`?" if close else "")
        + f" Its {kind}{'es' if kind.endswith('s') else 's'} are: {', '.join(have)}. "
        + way_round)
