"""The `minicnn` argument parser: its commands, their options and the argument types."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from minicnn import __version__
from minicnn.cli.commands import (
    MODELS,
    evaluate,
    predict,
    report,
    summary,
    sweep,
    train,
    warmup,
)
from minicnn.datasets.registry import DATASET_FILE, DATASETS


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
                  "classic cifar10_cnn example) and resnet20 (He et al.'s ResNet-20, a residual "
                  "graph) take 32x32x3 ones, for cifar10.")
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
    sub.add_argument("--max-trials", type=_positive_int, default=1000, metavar="N",
                     help="refuse a sweep of more trials than this (default 1000)")
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
                        "[--custom-objects MODULE] [--explain PNG] MODEL (IMAGE | --index N)")
    sub.add_argument("model", metavar="MODEL", help="a .npz file saved by train or model.save()")
    source = sub.add_mutually_exclusive_group(required=True)
    source.add_argument("image", nargs="?", metavar="IMAGE",
                        help="a picture of one digit, garment or object, as the set has them "
                             "(PNG, or JPEG etc. through Pillow)")
    source.add_argument("--index", type=_non_negative_int, metavar="N",
                        help="use test image N of the dataset (and print its label)")
    sub.add_argument("--explain", metavar="PNG",
                     help="also write which pixels made the prediction to PNG: the image, its "
                          "saliency map |dL/dx| and its Grad-CAM at the last conv layer")
    dataset_option(sub)
    data_option(sub)
    custom_objects_option(sub)

    sub = command("report", report, "write an HTML page about a training run",
                  "Write RUN_DIR/report.html (or --out): one self-contained page with the test "
                  "accuracy, the model summary, the training curves, the gradient flow and "
                  "activation statistics per layer, the first layer's filters, the confusion "
                  "matrix, saliency and Grad-CAM for a few test images and the misclassified "
                  "ones; it needs no network to view.")
    sub.add_argument("run_dir", metavar="RUN_DIR", help="a directory minicnn train wrote")
    sub.add_argument("--out", metavar="HTML", help="where to write the page")
    sub.add_argument("--limit", type=_positive_int, metavar="N",
                     help="use only the first N test images")
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

    command("warmup", warmup, "compile minicnn's numba kernels for this CPU now",
            "Compile every numba kernel of minicnn into numba's on-disk cache now (about a "
            "minute on 2 cores), so that no later run compiles: for a Docker image or a CI "
            "cache. Without it the first training run on a machine compiles them in the "
            "background while the reference layers train.")
    return parser
