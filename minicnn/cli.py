"""The `minicnn` command line: train the notebook's CNN on MNIST, then use the saved model.

    minicnn train --epochs 20 --out runs/mnist       # model.npz, history.csv and pictures
    minicnn evaluate runs/mnist/model.npz            # test loss and accuracy
    minicnn predict runs/mnist/model.npz --index 0   # the digit in test image 0
    minicnn predict runs/mnist/model.npz digit.png   # ... or in a picture of your own
    minicnn summary [runs/mnist/model.npz]           # the layer table
    minicnn evaluate model.npz --custom-objects my_layers.py   # a model with layers of your own

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
from typing import TYPE_CHECKING

import numpy as np

from minicnn import __version__

if TYPE_CHECKING:
    from minicnn.models import Sequential

# The engine (numba) and matplotlib are imported inside the commands that need them, so
# `minicnn --help` answers at once.

MNIST_INPUT, MNIST_CLASSES = (28, 28, 1), 10


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
def load_mnist(data: str | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """MNIST as the notebook feeds it to the model.

    Args:
        data: directory with the four MNIST files; None for $MINICNN_DATA, else the download
            cache (see `minicnn.datasets.mnist.load_data`).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: images (N, 28, 28, 1) float32 in [0, 1] and
        labels (N,) uint8 (class indices, not one-hot).
    """
    from minicnn.datasets import mnist

    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data(path=data)
    except (OSError, ValueError) as e:  # missing files, a failed download, a malformed file
        raise CLIError(str(e)) from e
    return (_scale(x_train), y_train), (_scale(x_test), y_test)


def _scale(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: channels-last, one channel."""
    return images.reshape(-1, *MNIST_INPUT) / np.float32(255)  # uint8 / float32 -> float32


def load_model(path: str | os.PathLike, mnist_shaped: bool = True,
               custom_modules: Sequence[str] = ()) -> Sequential:
    """The model saved at `path`; with `mnist_shaped`, checked to map 28x28x1 images to 10 classes.

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
    if mnist_shaped and (tuple(model.input_shape[1:]) != MNIST_INPUT
                         or tuple(model.output_shape[1:]) != (MNIST_CLASSES,)):
        raise CLIError(
            f"model '{path}' maps inputs {shape_str(model.input_shape)} to "
            f"{shape_str(model.output_shape)}; MNIST needs (None, 28, 28, 1) -> (None, 10)")
    if not model.compiled:
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


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


def _probability_table(probs: np.ndarray) -> str:
    """One line per class: the digit, its probability and a bar 20 characters at most."""
    return "\n".join(f"  {digit}: {p:.4f} {'#' * round(20 * float(p))}".rstrip()
                     for digit, p in enumerate(probs))


# -- the commands --------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    from minicnn import models, plots
    from minicnn.callbacks import CSVLogger
    from minicnn.utils import to_categorical

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    n_fit = math.floor(len(x_train) * (1.0 - args.validation_split))
    if args.validation_split and n_fit in (0, len(x_train)):
        raise CLIError(f"--validation-split {args.validation_split} leaves no training or no "
                       f"validation images out of {len(x_train)}; raise --limit", exit_code=2)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the output directory '{args.out}': {e}") from e

    model = models.mnist_cnn(seed=args.seed)
    model.summary()
    # visualkeras imports TensorFlow, whose C++ start-up logs fill stderr; this process only
    # uses TensorFlow to let visualkeras recognise layer classes, so quiet it (a user's own
    # settings win).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    model_png = plots.plot_model(model, os.path.join(args.out, "model.png"))
    if model_png is None:
        print("model.png skipped: visualkeras is not installed (pip install 'minicnn[dev]')")
    val = f", validating on {len(x_train) - n_fit}" if args.validation_split else ""
    print(f"Training on {n_fit} MNIST images{val}; seed {model.seed}")

    history = model.fit(x_train, to_categorical(y_train, MNIST_CLASSES),
                        batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose,
                        validation_split=args.validation_split,
                        callbacks=[CSVLogger(os.path.join(args.out, "history.csv"))])
    model.save(os.path.join(args.out, "model.npz"))

    test_loss, test_accuracy = model.evaluate(x_test, to_categorical(y_test, MNIST_CLASSES),
                                              batch_size=args.batch_size, verbose=0)
    print(f"Test loss: {test_loss:.4f}")
    print(f"Test accuracy: {test_accuracy:.4f}")
    probabilities = model.predict(x_test[:3], batch_size=args.batch_size)
    print("Predictions for the first 3 test images:")
    for k, (probs, label) in enumerate(zip(probabilities, y_test[:3], strict=True)):
        digit = int(probs.argmax())
        print(f"  test image {k}: predicted {digit} (probability {probs[digit]:.4f}), "
              f"label {int(label)}")

    plots.plot_history(history, os.path.join(args.out, "history.png"))
    plots.plot_predictions(x_test[:3], y_test[:3], probabilities,
                           os.path.join(args.out, "predictions.png"))
    # What the model learned and where it errs, for a reader studying it.
    test_probabilities = model.predict(x_test, batch_size=args.batch_size)
    predicted = test_probabilities.argmax(axis=1)
    plots.plot_filters(model, os.path.join(args.out, "filters.png"))
    plots.plot_confusion_matrix(y_test, predicted, os.path.join(args.out, "confusion.png"))
    plots.plot_misclassified(x_test, y_test, predicted,
                             os.path.join(args.out, "misclassified.png"),
                             probabilities=test_probabilities)
    saved = ["model.npz", "history.csv", "history.png", "predictions.png", "filters.png",
             "confusion.png", "misclassified.png"]
    saved += ["model.png"] if model_png else []
    print(f"Saved to {args.out}: {', '.join(saved)}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from minicnn.utils import to_categorical

    model = load_model(args.model, custom_modules=args.custom_objects)
    _, (x_test, y_test) = load_mnist(args.data)
    test_loss, test_accuracy = model.evaluate(x_test, to_categorical(y_test, MNIST_CLASSES),
                                              batch_size=args.batch_size, verbose=0)
    print(f"Model {args.model} on the {len(x_test)} MNIST test images")
    print(f"Test loss: {test_loss:.4f}")
    print(f"Test accuracy: {test_accuracy:.4f}")
    return 0


def predict(args: argparse.Namespace) -> int:
    model = load_model(args.model, custom_modules=args.custom_objects)
    if args.index is not None:
        _, (x_test, y_test) = load_mnist(args.data)
        if args.index >= len(x_test):
            raise CLIError(f"--index {args.index} is out of range: the test set has "
                           f"{len(x_test)} images (0 to {len(x_test) - 1})", exit_code=2)
        image, source = x_test[args.index], f"Test image {args.index}, label {y_test[args.index]}"
    else:
        from minicnn.datasets.images import read_digit_image

        try:
            pixels = read_digit_image(args.image)
        except (OSError, ValueError) as e:  # missing, unreadable, or not a 2-D picture
            raise CLIError(str(e)) from e
        image, source = pixels[..., None], f"Image {args.image}"
    probs = model.predict(image[None])[0]
    digit = int(probs.argmax())
    print(source)
    print(f"Predicted digit: {digit} (probability {probs[digit]:.4f})")
    print("Probabilities:")
    print(_probability_table(probs))
    return 0


def summary(args: argparse.Namespace) -> int:
    from minicnn import models

    model = models.mnist_cnn() if args.model is None else load_model(
        args.model, mnist_shaped=False, custom_modules=args.custom_objects)
    model.summary()
    return 0


# -- the parser ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minicnn",
        description="minicnn: a from-scratch CNN engine in NumPy and numba. Train the Keras "
                    "notebook's MNIST network and use the saved model.",
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
                         help="directory with the four MNIST files (raw or .gz); default "
                              "$MINICNN_DATA, else ~/.cache/minicnn/mnist (downloaded if need be)")

    def custom_objects_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--custom-objects", action="append", default=[], metavar="MODULE",
                         help="a Python file (my_layers.py) or module that defines the model's "
                              "own Layer or Optimizer classes; repeat for several")

    sub = command("train", train, "train the notebook's CNN on MNIST and save it",
                  "Train the Keras notebook's CNN (93,322 parameters, Adam) on MNIST, evaluate "
                  "it on the test set, and save into --out: model.npz, history.csv, "
                  "history.png, predictions.png, filters.png, confusion.png, "
                  "misclassified.png and, with visualkeras installed, model.png.")
    sub.add_argument("--epochs", type=_positive_int, default=20, metavar="N",
                     help="epochs to train (default 20)")
    sub.add_argument("--batch-size", type=_positive_int, default=128, metavar="N",
                     help="images per optimizer step (default 128)")
    data_option(sub)
    sub.add_argument("--out", default=os.path.join("runs", "mnist"), metavar="DIR",
                     help="directory for the model, history and pictures (default runs/mnist)")
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

    sub = command("evaluate", evaluate, "print a saved model's test loss and accuracy",
                  "Print the loss and accuracy of a saved model on the 10,000 MNIST test "
                  "images.")
    sub.add_argument("model", metavar="MODEL", help="a .npz file saved by train or model.save()")
    data_option(sub)
    sub.add_argument("--batch-size", type=_positive_int, default=128, metavar="N",
                     help="images per forward pass (default 128)")
    custom_objects_option(sub)

    sub = command("predict", predict, "predict the digit in a test image or a picture",
                  "Print the predicted digit and the 10 class probabilities, for MNIST test "
                  "image --index N or for a picture file. A picture is made to look like MNIST: "
                  "gray, inverted if its border is light (a dark digit on a light page), padded "
                  "to a square and resized to 28x28.",
                  usage="minicnn predict [-h] [--data DIR] [--custom-objects MODULE] MODEL "
                        "(IMAGE | --index N)")
    sub.add_argument("model", metavar="MODEL", help="a .npz file saved by train or model.save()")
    source = sub.add_mutually_exclusive_group(required=True)
    source.add_argument("image", nargs="?", metavar="IMAGE",
                        help="a picture of one digit (PNG, or JPEG etc. through Pillow)")
    source.add_argument("--index", type=_non_negative_int, metavar="N",
                        help="use MNIST test image N (and print its label)")
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
