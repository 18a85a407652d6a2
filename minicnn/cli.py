"""The `minicnn` command line: train a built-in CNN on MNIST, Fashion-MNIST or CIFAR-10, then use
the saved model.

    minicnn train --epochs 20                        # MNIST: model.npz, history.csv and pictures
    minicnn train --dataset fashion_mnist            # fashion_mnist_cnn, into runs/fashion_mnist
    minicnn train --dataset cifar10 --epochs 50      # cifar10_cnn, into runs/cifar10
    minicnn train --dataset fashion_mnist --model mnist_cnn   # the notebook's CNN on clothes
    minicnn evaluate runs/mnist/model.npz            # test loss and accuracy
    minicnn predict runs/mnist/model.npz --index 0   # the digit in test image 0
    minicnn predict runs/mnist/model.npz digit.png   # ... or in a picture of your own
    minicnn predict runs/cifar10/model.npz cat.jpg   # the class of a photo, for a CIFAR-10 model
    minicnn summary [runs/mnist/model.npz]           # the layer table
    minicnn train --workers 2                        # each batch split over 2 Ray workers
    minicnn train --workers 8 --address ray://head:10001   # ... on a Ray cluster
    minicnn sweep --learning-rate 1e-3 3e-4 --seed 0 1     # 4 trainings on Ray Tune
    minicnn evaluate model.npz --custom-objects my_layers.py   # a model with layers of your own

`evaluate` and `predict` need the set a model was trained on, for its test images, its class
names and how to read a picture: `--dataset NAME`, or else the name `train` wrote into
`dataset.txt` beside `model.npz`, or else MNIST. (The input shape cannot tell: MNIST and
Fashion-MNIST are both 28x28x1.)

A model with layers (or an optimizer) of your own loads when `--custom-objects` names the Python
file or module that defines them: every Layer and Optimizer subclass in it is passed to
`load_model(path, custom_objects={"Name": Class, ...})`, as Keras's custom_objects.

Exit status: 0 on success; 1 when a file or the data cannot be used (one line on stderr naming
it, no traceback); 2 for a usage error (argparse's message, or a value out of range).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from minicnn import __version__

if TYPE_CHECKING:
    from minicnn.models import Sequential

# The engine (numba) and matplotlib are imported inside the commands that need them, so
# `minicnn --help` answers at once; hence the recipes' names are spelled out here (a test checks
# them against minicnn.models.RECIPES).


@dataclass(frozen=True)
class Dataset:
    """What the commands need to know of a set in `minicnn.datasets`.

    name: the `--dataset` value, also its module's name; title: its name in messages;
    input_shape: one image as the models take it, (H, W, C); recipe: the `--model` trained on
    it by default; noun: what `predict` calls a class ("digit" for MNIST).
    """

    name: str
    title: str
    input_shape: tuple[int, int, int]
    recipe: str
    noun: str

    @property
    def module(self):
        """`minicnn.datasets.<name>`: its `load_data` and `CLASS_NAMES`."""
        from minicnn import datasets

        return getattr(datasets, self.name)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.module.CLASS_NAMES


DATASETS = {d.name: d for d in (
    Dataset("mnist", "MNIST", (28, 28, 1), "mnist_cnn", "digit"),
    Dataset("fashion_mnist", "Fashion-MNIST", (28, 28, 1), "fashion_mnist_cnn", "class"),
    Dataset("cifar10", "CIFAR-10", (32, 32, 3), "cifar10_cnn", "class"),
)}
MODELS = ("mnist_cnn", "fashion_mnist_cnn", "cifar10_cnn", "resnet20")  # models.RECIPES
DATASET_FILE = "dataset.txt"  # `train` writes the set's name here, beside model.npz


class CLIError(Exception):
    """A problem to report as one line on stderr, without a traceback, and the exit status."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


# -- argument types ------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0  # not an integer: reported below with the text received
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a strictly positive integer, received {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, received {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text!r}")
    return value


# -- shared steps --------------------------------------------------------------------------------
def load_dataset(dataset: Dataset, data: str | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """A dataset as the models take it.

    Args:
        dataset: which set (one of DATASETS).
        data: the directory (or, for CIFAR-10, the archive) holding its files; None for the
            loader's own environment variable, else its download cache (see each
            `minicnn.datasets.<name>.load_data`).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images (N, *dataset.input_shape) float32 in
        [0, 1] and labels (N,) uint8 (class indices, not one-hot).
    """
    try:
        (x_train, y_train), (x_test, y_test) = dataset.module.load_data(path=data)
    except (OSError, ValueError) as e:  # missing files, a failed download, a malformed file
        raise CLIError(str(e)) from e
    return tuple((_scale(x, dataset.input_shape), y.reshape(-1))
                 for x, y in ((x_train, y_train), (x_test, y_test)))


def _scale(images: np.ndarray, input_shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, *input_shape) in [0, 1], channels-last."""
    return images.reshape(-1, *input_shape) / np.float32(255)  # uint8 / float32 -> float32


def load_model(path: str | os.PathLike, dataset: Dataset | None,
               custom_modules: Sequence[str] = ()) -> Sequential:
    """The model saved at `path`; with a `dataset`, checked to map its images to its classes.

    `custom_modules` are the files or modules defining the model's own classes (see
    `custom_objects`). A model saved without compile settings gets the notebook's loss and
    metric, which is all `evaluate` needs from them.
    """
    from minicnn import models
    from minicnn.layers.base import shape_str

    if not os.path.isfile(path):
        problem = "is a directory, not" if os.path.isdir(path) else "does not exist; expected"
        raise CLIError(f"model file '{path}' {problem} a .npz file saved by model.save()")
    objects = custom_objects(custom_modules)
    try:
        model = models.load_model(path, custom_objects=objects)
    except (OSError, ValueError) as e:  # the loader's message names the file and the problem
        raise CLIError(str(e)) from e
    if dataset is not None:
        expected = ((None, *dataset.input_shape), (None, len(dataset.class_names)))
        if (tuple(model.input_shape), tuple(model.output_shape)) != expected:
            raise CLIError(
                f"model '{path}' maps inputs {shape_str(model.input_shape)} to "
                f"{shape_str(model.output_shape)}; {dataset.title} needs "
                f"{shape_str(expected[0])} -> {shape_str(expected[1])} (name the set the model "
                f"was trained on with --dataset)")
    if not model.compiled:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def dataset_of(model_path: str, dataset: str | None) -> Dataset:
    """The set a saved model is used with: `dataset` (from --dataset) if given, else the one
    `train` recorded in DATASET_FILE beside the model, else MNIST."""
    if dataset is not None:
        return DATASETS[dataset]
    recorded = os.path.join(os.path.dirname(os.path.abspath(model_path)), DATASET_FILE)
    try:
        with open(recorded, encoding="utf-8") as f:
            name = f.read(100).strip()  # a name is short; read no more of a stray big file
    except FileNotFoundError:
        return DATASETS["mnist"]
    except (OSError, ValueError) as e:  # unreadable, or not text
        raise CLIError(f"cannot read the dataset name in '{recorded}': {e}") from e
    if name not in DATASETS:
        raise CLIError(f"'{recorded}' names the dataset {name!r}; expected one of "
                       f"{', '.join(DATASETS)} (or pass --dataset)")
    return DATASETS[name]


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


def _probability_table(probs: np.ndarray, class_names: Sequence[str]) -> str:
    """One line per class: its name, its probability and a bar 20 characters at most."""
    width = max(len(name) for name in class_names) + 1  # the probabilities in one column
    return "\n".join(f"  {name + ':':<{width}} {p:.4f} {'#' * round(20 * float(p))}".rstrip()
                     for name, p in zip(class_names, probs, strict=True))


# -- the commands --------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    from minicnn import plots
    from minicnn.callbacks import CSVLogger
    from minicnn.layers.base import shape_str
    from minicnn.models import RECIPES
    from minicnn.utils import to_categorical

    dataset = DATASETS[args.dataset]
    recipe = args.model or dataset.recipe
    model = RECIPES[recipe](seed=args.seed)
    if tuple(model.input_shape[1:]) != dataset.input_shape:
        raise CLIError(f"argument --model: {recipe} takes inputs {shape_str(model.input_shape)}, "
                       f"but --dataset {dataset.name} has images "
                       f"{shape_str((None, *dataset.input_shape))}; choose a model for "
                       f"{dataset.title}, such as {dataset.recipe}", exit_code=2)
    distribute = _data_parallel(args.workers, args.address)  # checked before any loading
    out = args.out or os.path.join("runs", dataset.name)
    class_names = dataset.class_names

    (x_train, y_train), (x_test, y_test) = load_dataset(dataset, args.data)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    n_fit = math.floor(len(x_train) * (1.0 - args.validation_split))
    if args.validation_split and n_fit in (0, len(x_train)):
        raise CLIError(f"--validation-split {args.validation_split} leaves no training or no "
                       f"validation images out of {len(x_train)}; raise --limit", exit_code=2)
    try:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, DATASET_FILE), "w", encoding="utf-8") as f:
            f.write(dataset.name + "\n")  # for evaluate and predict, which read it back
    except OSError as e:
        raise CLIError(f"cannot write into the output directory '{out}': {e}") from e

    model.summary()
    # visualkeras imports TensorFlow, whose C++ start-up logs fill stderr; this process only
    # uses TensorFlow to let visualkeras recognise layer classes, so quiet it (a user's own
    # settings win).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    model_png = plots.plot_model(model, os.path.join(out, "model.png"))
    if model_png is None:
        print("model.png skipped: visualkeras is not installed (pip install 'minicnn[dev]')")
    val = f", validating on {len(x_train) - n_fit}" if args.validation_split else ""
    on = f"; {args.workers} Ray workers" if distribute is not None else ""
    print(f"Training {recipe} on {n_fit} {dataset.title} images{val}; seed {model.seed}{on}")

    num_classes = len(class_names)
    try:
        history = model.fit(x_train, to_categorical(y_train, num_classes),
                            batch_size=args.batch_size, epochs=args.epochs,
                            verbose=args.verbose, validation_split=args.validation_split,
                            callbacks=[CSVLogger(os.path.join(out, "history.csv"))],
                            distribute=distribute)
    except ConnectionError as e:  # --address that does not answer
        raise CLIError(str(e)) from e
    model.save(os.path.join(out, "model.npz"))

    test_loss, test_accuracy = model.evaluate(x_test, to_categorical(y_test, num_classes),
                                              batch_size=args.batch_size, verbose=0)
    print(f"Test loss: {test_loss:.4f}")
    print(f"Test accuracy: {test_accuracy:.4f}")
    probabilities = model.predict(x_test[:3], batch_size=args.batch_size, verbose=0)
    print("Predictions for the first 3 test images:")
    for k, (probs, label) in enumerate(zip(probabilities, y_test[:3], strict=True)):
        predicted = int(probs.argmax())
        print(f"  test image {k}: predicted {class_names[predicted]} (probability "
              f"{probs[predicted]:.4f}), label {class_names[label]}")

    # What the model learned and where it errs, for a reader studying it.
    test_probabilities = model.predict(x_test, batch_size=args.batch_size, verbose=0)
    predicted = test_probabilities.argmax(axis=1)
    plots.plot_history(history, os.path.join(out, "history.png"))
    plots.plot_filters(model, os.path.join(out, "filters.png"))
    plots.plot_confusion_matrix(y_test, predicted, os.path.join(out, "confusion.png"),
                                class_names=class_names)
    plots.plot_predictions(x_test[:3], y_test[:3], probabilities,
                           os.path.join(out, "predictions.png"), class_names=class_names)
    plots.plot_misclassified(x_test, y_test, predicted, os.path.join(out, "misclassified.png"),
                             probabilities=test_probabilities, class_names=class_names)
    saved = ["model.npz", DATASET_FILE, "history.csv", "history.png", "filters.png",
             "confusion.png", "predictions.png", "misclassified.png"]
    saved += ["model.png"] if model_png else []
    print(f"Saved to {out}: {', '.join(saved)}")
    return 0


def _data_parallel(workers: int | None, address: str | None):
    """The `distribute=` of fit for --workers and --address (None without --workers)."""
    if workers is None:
        if address is not None:
            raise CLIError("argument --address: needs --workers N", exit_code=2)
        return None
    try:
        from minicnn.distributed import DataParallel, _ray

        _ray.import_ray()  # say how to install Ray now, not after loading the data
        return DataParallel(workers=workers, address=address)
    except ImportError as e:
        raise CLIError(str(e)) from e
    except ValueError as e:
        raise CLIError(f"argument --workers/--address: {e}", exit_code=2) from e


def sweep(args: argparse.Namespace) -> int:
    from minicnn.distributed import _ray
    from minicnn.distributed import sweep as run_sweep
    from minicnn.utils import to_categorical

    dataset = DATASETS[args.dataset]
    space = {key: values for key, values in (
        ("learning_rate", args.learning_rate), ("batch_size", args.batch_size),
        ("optimizer", args.optimizer), ("recipe", args.model), ("seed", args.seed)) if values}
    if not space:
        raise CLIError("give the values to try of at least one of --learning-rate, "
                       "--batch-size, --optimizer, --model, --seed", exit_code=2)
    try:
        _ray.import_ray()
    except ImportError as e:
        raise CLIError(str(e)) from e
    (x_train, y_train), _ = load_dataset(dataset, args.data)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    out = args.out or os.path.join("runs", f"sweep-{dataset.name}")
    try:
        result = run_sweep(x_train, to_categorical(y_train, len(dataset.class_names)), space,
                           out, search=args.search, num_samples=args.samples,
                           epochs=args.epochs, validation_split=args.validation_split,
                           metric=args.metric, mode="min" if "loss" in args.metric else "max",
                           threads_per_trial=args.threads, address=args.address,
                           seed=args.search_seed)
    except ConnectionError as e:
        raise CLIError(str(e)) from e
    except ValueError as e:
        raise CLIError(str(e), exit_code=2) from e
    failed = [row for row in result.rows if row["status"] != "ok"]
    trials = f"{len(result.rows)} trial" + ("" if len(result.rows) == 1 else "s")
    print(f"{trials} in {result.csv_path} ({len(failed)} failed), plotted in "
          f"{result.png_path}")
    if result.best is not None:
        shown = ", ".join(f"{k}={result.best[k]}" for k in space)
        print(f"Best: {shown}: {args.metric} {float(result.best[args.metric]):.4f}, saved to "
              f"{result.best_model_path}")
    return 1 if failed else 0


def evaluate(args: argparse.Namespace) -> int:
    from minicnn.utils import to_categorical

    dataset = dataset_of(args.model, args.dataset)
    model = load_model(args.model, dataset, custom_modules=args.custom_objects)
    _, (x_test, y_test) = load_dataset(dataset, args.data)
    test_loss, test_accuracy = model.evaluate(
        x_test, to_categorical(y_test, len(dataset.class_names)), batch_size=args.batch_size,
        verbose=0)
    print(f"Model {args.model} on the {len(x_test)} {dataset.title} test images")
    print(f"Test loss: {test_loss:.4f}")
    print(f"Test accuracy: {test_accuracy:.4f}")
    return 0


def predict(args: argparse.Namespace) -> int:
    dataset = dataset_of(args.model, args.dataset)
    class_names = dataset.class_names
    model = load_model(args.model, dataset, custom_modules=args.custom_objects)
    if args.index is not None:
        _, (x_test, y_test) = load_dataset(dataset, args.data)
        if args.index >= len(x_test):
            raise CLIError(f"--index {args.index} is out of range: the test set has "
                           f"{len(x_test)} images (0 to {len(x_test) - 1})", exit_code=2)
        image = x_test[args.index]
        source = f"Test image {args.index}, label {class_names[y_test[args.index]]}"
    else:
        from minicnn.datasets.images import read_color_image, read_gray_image

        try:
            if dataset.input_shape[-1] == 3:
                image = read_color_image(args.image)
            else:
                image = read_gray_image(args.image)[..., None]
        except (OSError, ValueError) as e:  # missing, unreadable, empty or too large
            raise CLIError(str(e)) from e
        source = f"Image {args.image}"
    probs = model.predict(image[None], verbose=0)[0]
    predicted = int(probs.argmax())
    print(source)
    print(f"Predicted {dataset.noun}: {class_names[predicted]} "
          f"(probability {probs[predicted]:.4f})")
    print("Probabilities:")
    print(_probability_table(probs, class_names))
    return 0


def summary(args: argparse.Namespace) -> int:
    from minicnn import models

    model = models.mnist_cnn() if args.model is None else load_model(
        args.model, None, custom_modules=args.custom_objects)
    model.summary()
    return 0


# -- the parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicnn",
        description="minicnn: a from-scratch CNN engine in NumPy and numba. Train a built-in "
                    "CNN on MNIST, Fashion-MNIST or CIFAR-10 and use the saved model.",
        epilog="Run 'minicnn COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"minicnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str,
                description: str, usage: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description, usage=usage)
        sub.set_defaults(run=run)
        return sub

    def data_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data", metavar="DIR",
                         help="where the dataset's files are: for mnist and fashion_mnist a "
                              "directory with the four IDX files (raw or .gz), for cifar10 one "
                              "with the binary batches or cifar-10-binary.tar.gz; default "
                              "$MINICNN_DATA, $MINICNN_FASHION_MNIST_DATA or "
                              "$MINICNN_CIFAR10_DATA respectively, else ~/.cache/minicnn/ "
                              "(downloaded if need be)")

    def dataset_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dataset", choices=tuple(DATASETS), metavar="NAME",
                         help="the set the model was trained on, whose test images, class names "
                              f"and picture format are used: {', '.join(DATASETS)} (default: "
                              f"the one train wrote into {DATASET_FILE} beside MODEL, else "
                              "mnist)")

    def custom_objects_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--custom-objects", action="append", default=[], metavar="MODULE",
                         help="a Python file (my_layers.py) or module that defines the model's "
                              "own Layer or Optimizer classes; repeat for several")

    sub = command("train", train, "train a built-in CNN on a dataset and save it",
                  "Train a built-in model on --dataset, evaluate it on the test set, and save "
                  "into --out: model.npz, dataset.txt (the dataset's name, which evaluate and "
                  "predict read), history.csv, history.png, filters.png, confusion.png, "
                  "predictions.png, misclassified.png and, with visualkeras installed, "
                  "model.png. The models: mnist_cnn (the Keras "
                  "notebook's CNN) and fashion_mnist_cnn (with BatchNormalization and Dropout) "
                  "take 28x28x1 images, for mnist and fashion_mnist; cifar10_cnn (Keras's "
                  "classic cifar10_cnn example) takes 32x32x3 ones, for cifar10.")
    sub.add_argument("--dataset", choices=tuple(DATASETS), default="mnist", metavar="NAME",
                     help=f"the dataset: {', '.join(DATASETS)} (default mnist)")
    sub.add_argument("--model", choices=MODELS, metavar="NAME",
                     help=f"the built-in model: {', '.join(MODELS)} (default: the dataset's "
                          "own, e.g. fashion_mnist_cnn for fashion_mnist)")
    sub.add_argument("--epochs", type=_positive_int, default=20, metavar="N",
                     help="epochs to train (default 20)")
    sub.add_argument("--batch-size", type=_positive_int, default=128, metavar="N",
                     help="images per optimizer step (default 128)")
    data_option(sub)
    sub.add_argument("--out", metavar="DIR",
                     help="directory for the model, history and pictures (default "
                          "runs/DATASET, e.g. runs/mnist)")
    sub.add_argument("--seed", type=_non_negative_int, metavar="N",
                     help="seed for the weights and the shuffles, for a reproducible run "
                          "(default: drawn at random and printed)")
    sub.add_argument("--validation-split", type=_fraction, default=0.1, metavar="F",
                     help="fraction of the training images held out, from the end, to "
                          "validate on after each epoch (default 0.1)")
    sub.add_argument("--limit", type=_positive_int, metavar="N",
                     help="train on the first N training images only, for a quick run")
    sub.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2,
                     help="0 silent, 1 a progress bar, 2 one line per epoch (default 2)")
    sub.add_argument("--workers", type=_positive_int, metavar="N",
                     help="split each batch over N Ray workers (at most 8), with the same "
                          "weights as without; needs pip install 'minicnn[distributed]' "
                          "(docs/distributed.md)")
    sub.add_argument("--address", metavar="ADDR",
                     help="with --workers: the Ray cluster to join, auto, HOST:PORT or "
                          "ray://HOST:PORT (default: a local Ray instance for the run)")

    sub = command("sweep", sweep, "train many models at once on Ray Tune",
                  "Train one model per combination of the values given (--search grid) or "
                  "per random draw of them (--search random --samples K), as many at once as "
                  "the CPUs allow. Each finished trial adds a row to results.csv and redraws "
                  "results.png in --out; the best model is saved as best_model.npz. Run the "
                  "same command again to resume an interrupted sweep: finished trials are "
                  "skipped. Needs pip install 'minicnn[distributed]' (docs/distributed.md).")
    sub.add_argument("--dataset", choices=tuple(DATASETS), default="mnist", metavar="NAME",
                     help=f"the dataset: {', '.join(DATASETS)} (default mnist)")
    data_option(sub)
    sub.add_argument("--learning-rate", type=float, nargs="+", metavar="LR",
                     help="learning rates to try (default: each optimizer's own)")
    sub.add_argument("--batch-size", type=_positive_int, nargs="+", metavar="N",
                     help="batch sizes to try (default 32)")
    sub.add_argument("--optimizer", nargs="+", choices=("adam", "adamw", "rmsprop", "sgd"),
                     metavar="NAME", help="optimizers to try: adam, adamw, rmsprop, sgd "
                                          "(default: the model's own)")
    sub.add_argument("--model", nargs="+", choices=MODELS, metavar="NAME",
                     help=f"built-in models to try: {', '.join(MODELS)} (default mnist_cnn)")
    sub.add_argument("--seed", type=_non_negative_int, nargs="+", metavar="N",
                     help="seeds to try (default 0)")
    sub.add_argument("--search", choices=("grid", "random"), default="grid",
                     help="grid: every combination (default); random: --samples draws")
    sub.add_argument("--samples", type=_positive_int, metavar="K",
                     help="with --search random: how many trials to draw")
    sub.add_argument("--search-seed", type=_non_negative_int, default=0, metavar="N",
                     help="with --search random: the seed of the draws (default 0)")
    sub.add_argument("--epochs", type=_positive_int, default=1, metavar="N",
                     help="epochs per trial (default 1)")
    sub.add_argument("--validation-split", type=_fraction, default=0.1, metavar="F",
                     help="fraction held out to score each trial on (default 0.1)")
    sub.add_argument("--limit", type=_positive_int, metavar="N",
                     help="train on the first N training images only")
    sub.add_argument("--metric", default="val_accuracy",
                     choices=("val_accuracy", "val_loss", "accuracy", "loss"),
                     help="what ranks the trials (default val_accuracy; a loss is minimised)")
    sub.add_argument("--threads", type=_positive_int, metavar="N",
                     help="threads per trial (default: the CPUs shared among the trials "
                          "running at once)")
    sub.add_argument("--out", metavar="DIR",
                     help="directory for results.csv, results.png, models/ and "
                          "best_model.npz (default runs/sweep-DATASET)")
    sub.add_argument("--address", metavar="ADDR",
                     help="the Ray cluster to run on: auto, HOST:PORT or ray://HOST:PORT "
                          "(default: a local Ray instance for the sweep)")

    sub = command("evaluate", evaluate, "print a saved model's test loss and accuracy",
                  "Print the loss and accuracy of a saved model on the test images of the set "
                  "it was trained on (--dataset).")
    sub.add_argument("model", metavar="MODEL", help="a .npz file saved by train or model.save()")
    dataset_option(sub)
    data_option(sub)
    sub.add_argument("--batch-size", type=_positive_int, default=128, metavar="N",
                     help="images per forward pass (default 128)")
    custom_objects_option(sub)

    sub = command("predict", predict, "predict the class of a test image or a picture",
                  "Print the predicted class and the probability of each class, for test image "
                  "--index N of the set the model was trained on (--dataset) or for a picture "
                  "file. For an MNIST or Fashion-MNIST model a picture is made to look like "
                  "theirs: gray, inverted if its border is light (a dark digit or garment on a "
                  "light page), padded to a square and resized to 28x28. For a CIFAR-10 model "
                  "it stays in colour: its centre square, resized to 32x32.",
                  usage="minicnn predict [-h] [--dataset NAME] [--data DIR] "
                        "[--custom-objects MODULE] MODEL (IMAGE | --index N)")
    sub.add_argument("model", metavar="MODEL", help="a .npz file saved by train or model.save()")
    source = sub.add_mutually_exclusive_group(required=True)
    source.add_argument("image", nargs="?", metavar="IMAGE",
                        help="a picture of one digit, garment or object, as the set has them "
                             "(PNG, or JPEG etc. through Pillow)")
    source.add_argument("--index", type=_non_negative_int, metavar="N",
                        help="use test image N of the dataset (and print its label)")
    dataset_option(sub)
    data_option(sub)
    custom_objects_option(sub)

    sub = command("summary", summary, "print a model's layer table",
                  "Print the layer table of a saved model, or of the notebook's model when no "
                  "MODEL is given.")
    sub.add_argument("model", nargs="?", metavar="MODEL",
                     help="a .npz file saved by train or model.save() (default: the notebook's "
                          "untrained model)")
    custom_objects_option(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors: argparse has printed already
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except CLIError as e:
        print(f"minicnn {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"minicnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
