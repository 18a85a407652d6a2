"""Keras 3's files: a model's `.weights.h5` and its `.keras` archive, written and read.

The layout, as Keras 3.15 writes it (h5py shows it):

    .weights.h5 (HDF5, no attributes on the root)
        vars                        group, attrs {"name": model name}, no datasets
        layers/<key>/vars           group, attrs {"name": layer name}; datasets "0", "1", ...:
                                    the layer's variables, trainable ones first, in creation
                                    order (Conv2D kernel, bias; BatchNormalization gamma, beta,
                                    moving_mean, moving_variance), in the model's dtype
        layers/<key>/layers/...     a nested model's own layers, the same way
        optimizer/vars              attrs {"name": "adam"}; "0" iterations (int64 scalar),
                                    "1" learning_rate (float32 scalar, not with a schedule),
                                    then the slots: Adam's momentum, velocity per trainable
                                    variable in turn; SGD's momentums; RMSprop's velocities,
                                    then momentums, then average gradients
    .keras (zip, members stored): metadata.json {"keras_version", "date_saved"}, config.json
        (keras_config.py), model.weights.h5 (the file above)

`<key>` is not the layer's name: it is the snake-cased class name, numbered within its model in
`model.layers` order ("conv2d", "conv2d_1", "dense", ...; a functional model lists its
InputLayers too; a nested model is "sequential" or "functional"); a shared layer is stored once,
at its first place. Every layer gets its vars group, even with no variables. Loading goes by
these places, as Keras's does, and checks every shape first.

h5py is imported here, when such a file is used, so `import minicnn` stays fast.
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import zipfile

import numpy as np

from minicnn._atomic import atomic_write
from minicnn.layers.base import check_value
from minicnn.models import keras_config
from minicnn.models.model_file import MAX_VALUES, ModelFileError

KERAS_VERSION = "3.15.1"  # the Keras release whose layout these files follow (checked against)
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
_MAX_JSON_BYTES = 2**24
_MAX_WEIGHTS_BYTES = 8 * MAX_VALUES + 2**26  # float64 weights and HDF5's own bookkeeping


def suffix_kind(filepath, weights_only: bool) -> str:
    """"npz", "keras" or "weights.h5" from the file's name; any other name is an error."""
    path = os.fspath(filepath)
    if path.endswith(".npz"):
        return "npz"
    if path.endswith(".weights.h5") and weights_only:
        return "weights.h5"
    if path.endswith(".keras") and not weights_only:
        return "keras"
    if path.endswith(".weights.h5"):
        raise ValueError(f"Invalid filepath: {path}. A `.weights.h5` file holds weights only: "
                         "write it with model.save_weights(), and the whole model with "
                         "model.save() to `.keras` or `.npz`.")
    if path.endswith((".h5", ".hdf5")):
        want = "`.weights.h5` (Keras 3's weights file)" if weights_only else (
            "`.keras` (Keras 3's model file)")
        raise ValueError(f"Invalid filepath: {path}. Keras 2's legacy HDF5 model file (.h5) is "
                         f"not written by minicnn; use {want} or `.npz` (minicnn's own).")
    want = "`.weights.h5` or `.npz`" if weights_only else "`.keras` or `.npz`"
    raise ValueError(f"Invalid filepath extension for saving. Please add {want} to the "
                     f"filepath (minicnn names the format by the extension). Received: "
                     f"filepath={path}")


# -- where each layer's variables go --------------------------------------------------------------
def layer_places(model) -> list[tuple[str, object]]:
    """(group path, layer) for the model and every layer inside it, in Keras's walk."""
    places, seen = [("vars", model)], {id(model)}

    def walk(container, prefix: str):
        used: dict[str, int] = {}
        for layer in container.layers:
            key = keras_config.snake_case(keras_config.keras_class_name(layer))
            used[key] = used.get(key, -1) + 1
            key = f"{key}_{used[key]}" if used[key] else key
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            places.append((f"{prefix}layers/{key}/vars", layer))
            if hasattr(layer, "_graph"):
                walk(layer, f"{prefix}layers/{key}/")

    walk(model, "")
    return places


def _own_weights(layer) -> list:
    params = [] if hasattr(layer, "_graph") else getattr(layer, "_params", [])
    return [p for p in params if p.trainable] + [p for p in params if not p.trainable]


def _optimizer_layout(optimizer) -> tuple[int, bool]:
    """(slots per trainable variable, interleaved?) of Keras's optimizer of the same class."""
    name = type(optimizer).__name__
    if name in ("Adam", "AdamW"):
        return 2, True
    if name == "SGD":
        return int(optimizer.momentum != 0), False
    if name == "RMSprop":
        return 1 + (optimizer.momentum > 0) + bool(optimizer.centered), False
    return 0, False


def _optimizer_arrays(model) -> list[np.ndarray]:
    opt = model.optimizer
    arrays = [np.array(opt.iterations, np.int64)]
    if not isinstance(opt.get_config()["learning_rate"], dict):
        arrays.append(np.array(opt.learning_rate, np.float32))
    kinds, interleaved = _optimizer_layout(opt)
    params = model.trainable_weights
    slots = [s if len(s) == kinds else tuple(np.zeros_like(p.value) for _ in range(kinds))
             for p, s in zip(params, opt.slots(params), strict=True)]
    if interleaved:
        arrays += [a for group in slots for a in group]
    else:
        arrays += [group[j] for j in range(kinds) for group in slots]
    return arrays


# -- writing -------------------------------------------------------------------------------------
def _h5_bytes(model) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for path, layer in layer_places(model):
            group = f.create_group(path)
            group.attrs["name"] = layer.name
            for k, p in enumerate(_own_weights(layer)):
                group[str(k)] = p.value
        if model.compiled:
            group = f.create_group("optimizer/vars")
            group.attrs["name"] = model.optimizer.name
            for k, a in enumerate(_optimizer_arrays(model)):
                group[str(k)] = a
    return buffer.getvalue()


def _require_built(model) -> None:
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built yet, so it has no weights to save: "
                         "fit it, call it on data, or give the first layer an input_shape.")


def save_weights(model, filepath) -> None:
    """Keras 3's `.weights.h5` of `model`, written atomically."""
    _require_built(model)
    data = _h5_bytes(model)
    with atomic_write(filepath) as f:
        f.write(data)


def save_model(model, filepath) -> None:
    """A Keras 3 `.keras` archive of `model` (Keras's load_model opens it), written atomically."""
    _require_built(model)
    keras_config.check_saveable(model)
    entry = keras_config.model_entry(model)
    if model.compiled:
        entry["compile_config"] = keras_config.compile_entry(model)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _h5_bytes(model)
    with atomic_write(filepath) as f, zipfile.ZipFile(f, "w") as archive:
        archive.writestr(_METADATA, json.dumps(metadata))
        archive.writestr(_CONFIG, json.dumps(entry))
        archive.writestr(_WEIGHTS, weights)


# -- reading -------------------------------------------------------------------------------------
def _error(path: str, problem: str) -> ModelFileError:
    return ModelFileError(f"Cannot read Keras file '{path}': {problem}")


def _read_archive(path: str, with_config: bool = True) -> tuple[dict | None, bytes]:
    """A .keras archive's config.json (parsed; when asked for) and its model.weights.h5, each
    member read with a size ceiling; every failure a ModelFileError naming the file."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise _error(path, f"it is truncated, corrupt or not a .keras archive "
                           f"({type(e).__name__}: {e})") from e

    def member(name: str, limit: int) -> bytes:
        if name not in archive.namelist():
            raise _error(path, f"the archive has no {name} (a .keras archive holds "
                               f"{_CONFIG}, {_METADATA} and {_WEIGHTS})")
        if archive.getinfo(name).file_size > limit:
            raise _error(path, f"its {name} is larger than a minicnn model may be")
        try:
            return archive.read(name)
        except Exception as e:  # zipfile, zlib, bz2, lzma: all mean a damaged member
            raise _error(path, f"its {name} is truncated or corrupt "
                               f"({type(e).__name__}: {e})") from e

    with archive:
        config = None
        if with_config:
            try:
                config = json.loads(member(_CONFIG, _MAX_JSON_BYTES))
            except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8: ValueErrors
                raise _error(path, f"its {_CONFIG} is not readable JSON ({e})") from e
        return config, member(_WEIGHTS, _MAX_WEIGHTS_BYTES)


class _Weights:
    """An HDF5 weights file, opened for reading; every failure a ModelFileError naming it."""

    def __init__(self, path: str, source):
        import h5py

        self.path = path
        try:
            self.file = h5py.File(source, "r")
        except Exception as e:  # h5py's OSError or ValueError for a damaged or foreign file
            raise _error(path, f"its weights are not a readable HDF5 file ({e})") from e

    def close(self) -> None:
        self.file.close()

    def datasets(self, group_path: str) -> dict:
        """{"0": dataset, ...} of one vars group (empty when the group is absent)."""
        try:
            group = self.file.get(group_path)
            if group is None:
                return {}
            return {k: group[k] for k in group.keys()}
        except Exception as e:
            raise _error(self.path, f"its group {group_path} is damaged ({e})") from e

    def total_values(self) -> int:
        """The numbers all the file's datasets hold, from their shapes (nothing is read)."""
        import h5py

        total = 0

        def count(name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.size
        try:
            self.file.visititems(count)
        except Exception as e:
            raise _error(self.path, f"its HDF5 structure is damaged ({e})") from e
        return total

    def array(self, group_path: str, key: str, dataset) -> np.ndarray:
        try:
            return np.asarray(dataset[()])
        except Exception as e:
            raise _error(self.path, f"its {group_path}/{key} is truncated or corrupt "
                                    f"({type(e).__name__}: {e})") from e


def _read_into(model, weights: _Weights) -> None:
    """Set every layer's variables from the file, all shapes checked before any is set."""
    values = []
    for group_path, layer in layer_places(model):
        own = _own_weights(layer)
        stored = weights.datasets(group_path)
        kind = f"layer '{layer.name}' ({keras_config.keras_class_name(layer)})"
        if set(stored) != {str(k) for k in range(len(own))}:
            raise _error(weights.path, f"{kind} has {len(own)} variables "
                         f"({', '.join(p.name for p in own) or 'none'}) but the file's "
                         f"{group_path} holds {sorted(stored, key=len) or 'none'}; the file is of "
                         f"another architecture")
        for k, p in enumerate(own):
            d = stored[str(k)]
            if tuple(d.shape) != p.value.shape or d.dtype.kind != "f":
                raise _error(weights.path, f"{kind}'s {p.name} has shape {p.value.shape} but "
                             f"the file's {group_path}/{k} has shape {tuple(d.shape)} and dtype "
                             f"{d.dtype}")
            values.append((p, weights.array(group_path, str(k), d)))
    for p, value in values:  # a moving statistic must be finite, a variance >= 0 (set_weights')
        try:
            check_value(p, value)
        except ValueError as e:
            raise _error(weights.path, str(e)) from e
    for p, value in values:
        p.value[...] = value.astype(p.value.dtype, copy=False)
    if hasattr(model, "_reset_plans"):
        model._reset_plans()


def _read_optimizer(model, weights: _Weights, dropped: list[str]) -> None:
    stored = weights.datasets("optimizer/vars")
    if not stored:
        return
    opt, params = model.optimizer, model.trainable_weights
    kinds, interleaved = _optimizer_layout(opt)
    has_rate = not isinstance(opt.get_config()["learning_rate"], dict)
    first = 1 + has_rate
    if set(stored) != {str(k) for k in range(first + kinds * len(params))}:
        dropped.append(f"the optimizer's state (the file has {len(stored)} arrays, minicnn's "
                       f"{type(opt).__name__} keeps {first + kinds * len(params)})")
        return
    arrays = [weights.array("optimizer/vars", str(k), stored[str(k)])
              for k in range(len(stored))]
    slot_arrays = arrays[first:]
    groups = []
    for i, p in enumerate(params):
        picks = [slot_arrays[i * kinds + j] if interleaved else slot_arrays[j * len(params) + i]
                 for j in range(kinds)]
        if any(a.shape != p.value.shape for a in picks):
            dropped.append(f"the optimizer's state (its arrays for {p.name} have another shape)")
            return
        groups.append(tuple(a.astype(p.value.dtype) for a in picks))
    by_param = {id(p): g for p, g in zip(params, groups, strict=True)}
    try:  # set_slots checks the values (finite, v >= 0) and that iterations is a count
        opt.set_slots(model.weights, [by_param.get(id(p), ()) for p in model.weights],
                      int(arrays[0]))
    except (TypeError, ValueError) as e:
        dropped.append(f"the optimizer's state ({e})")


def _weights_source(path: str):
    """The HDF5 weights of a .weights.h5 file or inside a .keras archive, as h5py's source."""
    if zipfile.is_zipfile(path):
        return io.BytesIO(_read_archive(path, with_config=False)[1])
    return path


def load_weights(model, filepath) -> None:
    """Keras-written weights (.weights.h5, or a .keras archive's) into `model`."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: '{path}'")
    weights = _Weights(path, _weights_source(path))
    try:
        _read_into(model, weights)
    finally:
        weights.close()


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff(filepath) -> str | None:
    """"keras" (a .keras archive), "hdf5" (a .weights.h5, or Keras 2's legacy .h5) or None
    (anything else: minicnn's .npz reader says what is wrong with it), from the contents."""
    path = os.fspath(filepath)
    with open(path, "rb") as f:  # FileNotFoundError as it is
        if f.read(len(_HDF5_MAGIC)) == _HDF5_MAGIC:
            return "hdf5"
    try:
        with zipfile.ZipFile(path) as archive:
            return "keras" if _CONFIG in archive.namelist() else None
    # NotImplementedError: a zip version field zipfile does not support (a corrupt file, found
    # by tests/test_fuzz_readers.py); the .npz reader then names the problem
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return None


def legacy_h5_error(path: str) -> ModelFileError:
    return ModelFileError(
        f"'{path}' is an HDF5 file: a Keras 2 legacy .h5 model or a .weights.h5 weights file. "
        "minicnn.models.load_model reads Keras 3's .keras archives and minicnn's .npz; load a "
        "weights file into a model of its architecture with model.load_weights(path), and "
        "convert a legacy .h5 in Keras: keras.models.load_model(path).save('m.keras').")


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True):
    """The model in a Keras 3 `.keras` archive: layers, weights and, where minicnn has the
    optimizer, loss and metrics, its compile state (else uncompiled, with a warning)."""
    from minicnn.models.graph_config import model_from_config

    path = os.fspath(filepath)
    entry, data = _read_archive(path)
    weights = _Weights(path, io.BytesIO(data))
    dropped: list[str] = []
    try:
        total = weights.total_values()
        if total > MAX_VALUES:
            raise _error(path, f"it holds {total:,} numbers, more than a minicnn model file "
                               f"may (MAX_VALUES = {MAX_VALUES:,})")
        try:
            arch = keras_config.model_arch(entry, custom_objects, dropped)
            budget = _Budget(total)
            model = model_from_config(arch, custom_objects, checking=budget.checking)
        except keras_config.KerasConfigError as e:
            raise ModelFileError(f"Cannot load '{path}': {e}") from e
        except (KeyError, TypeError, ValueError) as e:
            problem = f"its config has no key {e}" if isinstance(e, KeyError) else e
            raise ModelFileError(f"Cannot rebuild the model in '{path}': {problem}") from e
        _read_into(model, weights)
        compile_config = entry.get("compile_config") if compile else None
        if compile_config:
            args = keras_config.compile_args(compile_config, dropped)
            if args is None:
                dropped.append("so the model is not compiled")
            else:
                model.compile(**args)
                _read_optimizer(model, weights, dropped)
    finally:
        weights.close()
    keras_config.warn_dropped(path, dropped)
    return model


class _Budget:
    """No layer may allocate more numbers than the file holds: a config edited to say
    filters=10**9 is an error before the allocation, not a 36 GB one."""

    def __init__(self, total: int):
        self.left = total

    def checking(self, layer):
        import contextlib

        add_weight = layer.add_weight

        def checked(name, shape, *args, **kwargs):
            size = math.prod(shape)
            if size > self.left:
                raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) creates a "
                                 f"{name} of shape {tuple(shape)}, more numbers than the file's "
                                 f"weights hold")
            self.left -= size
            return add_weight(name, shape, *args, **kwargs)

        @contextlib.contextmanager
        def scope():
            layer.add_weight = checked
            try:
                yield
            finally:
                del layer.add_weight

        return scope()
