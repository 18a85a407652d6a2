"""image_dataset_from_directory: a folder of pictures, one subfolder per class, as batches.

    main_directory/
        cat/  a.jpg b.png ...
        dog/  c.jpg ...

As Keras's: the classes are the subfolders' names in sorted order (or `class_names`), a picture
is any .bmp, .gif, .jpeg, .jpg or .png file under its class folder, the list of files is shuffled
once with `seed` and split (validation_split: the last fraction is the validation subset), and
each picture is resized to `image_size` as float32 pixels in [0, 255]. Keras returns a
tf.data.Dataset; here the result is an `ImageDataset`, which fit, evaluate and predict take as a
Keras PyDataset (`len` batches, `ds[i]` the i-th (images, labels), reshuffled after each epoch
when shuffle=True). Pictures are read when their batch is asked for, with the checks of
datasets/images.py (a decompression bomb is refused from its header).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from minicnn.datasets.images import _read_pixels

EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
LABEL_MODES = ("int", "categorical", "binary", None)
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos", "area", "box")


class ImageDataset:
    """Batches (images (B, H, W, C) float32 in [0, 255], labels) read from files."""

    def __init__(self, paths: list[str], labels: np.ndarray, class_names: list[str],
                 label_mode: str | None, color_mode: str, batch_size: int,
                 image_size: tuple[int, int], interpolation: str, shuffle: bool,
                 seed: int | None) -> None:
        self.file_paths, self._labels = paths, labels
        self.class_names = class_names
        self.label_mode, self.color_mode = label_mode, color_mode
        self.batch_size, self.image_size, self.interpolation = batch_size, image_size, \
            interpolation
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(paths))
        if shuffle:
            self._rng.shuffle(self._order)

    def __len__(self) -> int:
        return -(-len(self.file_paths) // self.batch_size)

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"batch {i} of a dataset of {len(self)} batches")
        i %= len(self)
        index = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        images = np.stack([self._read(self.file_paths[k]) for k in index])
        if self.label_mode is None:
            return images
        labels = self._labels[index]
        if self.label_mode == "categorical":
            labels = np.eye(len(self.class_names), dtype=np.float32)[labels]
        elif self.label_mode == "binary":
            labels = labels.astype(np.float32)[:, None]
        return images, labels

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def on_epoch_end(self) -> None:
        """A new order for the next epoch, as a tf.data shuffle with
        reshuffle_each_iteration does."""
        if self.shuffle:
            self._rng.shuffle(self._order)

    def _read(self, path: str) -> np.ndarray:
        from PIL import Image

        pixels = _read_pixels(path)
        if pixels.dtype == np.bool_:
            pixels = pixels.astype(np.uint8) * 255
        elif pixels.dtype.itemsize > 1:
            pixels = (pixels.astype(np.float64) / 257).astype(np.uint8)  # 16-bit to 8-bit
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
        image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
        image = image.convert({"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[self.color_mode])
        resample = {"area": "BOX"}.get(self.interpolation, self.interpolation.upper())
        image = image.resize(self.image_size[::-1], getattr(Image.Resampling, resample))
        out = np.asarray(image, dtype=np.float32)
        return out[..., None] if out.ndim == 2 else out

    def __repr__(self) -> str:
        return (f"<ImageDataset of {len(self.file_paths)} files in {len(self)} batches, "
                f"classes {self.class_names}>")


def image_dataset_from_directory(
        directory: str | os.PathLike, labels="inferred", label_mode: str | None = "int",
        class_names: list[str] | None = None, color_mode: str = "rgb", batch_size: int = 32,
        image_size: tuple[int, int] = (256, 256), shuffle: bool = True, seed: int | None = None,
        validation_split: float | None = None, subset: str | None = None,
        interpolation: str = "bilinear", follow_links: bool = False, verbose: bool = True):
    """Keras's `keras.utils.image_dataset_from_directory` (see the module docstring); with
    subset="both", the pair (training, validation)."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"Invalid value for argument `directory`: {str(root)!r} is not a "
                         "folder (expected one subfolder of pictures per class).")
    if labels != "inferred":
        raise ValueError("image_dataset_from_directory: only labels='inferred' (one subfolder "
                         f"per class) is supported. Received labels={labels!r}")
    for argument, value, allowed in (("label_mode", label_mode, LABEL_MODES),
                                     ("color_mode", color_mode, tuple(CHANNELS)),
                                     ("interpolation", interpolation, INTERPOLATIONS),
                                     ("subset", subset, ("training", "validation", "both",
                                                         None))):
        if value not in allowed:
            raise ValueError(f"Invalid value for argument `{argument}`. Expected one of "
                             f"{list(allowed)}. Received {argument}={value!r}")
    if (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0):
        raise ValueError(f"Invalid value for argument `batch_size`. Expected a strictly "
                         f"positive integer. Received batch_size={batch_size!r}")
    if (len(tuple(image_size)) != 2
            or not all(isinstance(s, int) and s > 0 for s in image_size)):
        raise ValueError(f"Invalid value for argument `image_size`. Expected (height, width), "
                         f"two positive integers. Received image_size={image_size!r}")
    if (validation_split is None) != (subset is None):
        raise ValueError("`validation_split` and `subset` go together: give both (e.g. "
                         "validation_split=0.2, subset='both') or neither.")
    if validation_split is not None and not 0 < validation_split < 1:
        raise ValueError(f"Invalid value for argument `validation_split`. Expected a value in "
                         f"(0, 1). Received validation_split={validation_split!r}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    names = list(class_names) if class_names is not None else found
    if class_names is not None and sorted(names) != sorted(found):
        raise ValueError(f"The `class_names` passed did not match the names of the "
                         f"subdirectories of the target directory. Expected: {found}, but "
                         f"received: {names}")
    if label_mode == "binary" and len(names) != 2:
        raise ValueError(f"When passing `label_mode='binary'`, there must be exactly 2 "
                         f"class_names. Received: class_names={names}")
    paths, classes = [], []
    for k, name in enumerate(names):
        for dirpath, _, files in sorted(os.walk(root / name, followlinks=follow_links)):
            for file in sorted(files):
                if file.lower().endswith(EXTENSIONS):
                    paths.append(os.path.join(dirpath, file))
                    classes.append(k)
    if not paths:
        raise ValueError(f"No images found in directory {str(root)!r}. Allowed formats: "
                         f"{EXTENSIONS}")
    if verbose:
        print(f"Found {len(paths)} files belonging to {len(names)} classes.")
    order = np.arange(len(paths))
    if shuffle or validation_split is not None:
        # Keras shuffles the file list once with the seed before it splits it.
        np.random.default_rng(1337 if seed is None else seed).shuffle(order)
    paths, classes = [paths[k] for k in order], np.asarray(classes, dtype=np.int32)[order]

    def make(part: slice, what: str | None):
        subset_paths, subset_labels = paths[part], classes[part]
        if what and verbose:
            print(f"Using {len(subset_paths)} files for {what}.")
        return ImageDataset(subset_paths, subset_labels, names, label_mode, color_mode,
                            batch_size, tuple(image_size), interpolation, shuffle, seed)

    if validation_split is None:
        return make(slice(None), None)
    cut = len(paths) - int(validation_split * len(paths))
    if subset == "training":
        return make(slice(0, cut), "training")
    if subset == "validation":
        return make(slice(cut, None), "validation")
    return make(slice(0, cut), "training"), make(slice(cut, None), "validation")
