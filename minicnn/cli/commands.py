"""The commands: train, sweep, evaluate, predict and summary, and the steps they share.

The engine (numba) and matplotlib are imported inside the commands that need them, so
`minicnn --help` answers at once.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from minicnn.cli.custom_objects import custom_objects
from minicnn.cli.errors import CLIError
from minicnn.datasets.registry import DATASET_FILE, DATASETS, Dataset, recorded_dataset

if TYPE_CHECKING:
    from minicnn.models import Model

# The built-in recipes' names, spelled out so that `--help` needs no engine import (a test
# checks them against minicnn.models.RECIPES).
MODELS = ("mnist_cnn", "fashion_mnist_cnn", "cifar10_cnn", "resnet20", "lenet")


# -- shared steps --------------------------------------------------------------------------------
def load_dataset(dataset: Dataset, data: str | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """`dataset.load(data)`, its failures reported as one line."""
    try:
        return dataset.load(data)
    except (OSError, ValueError) as e:  # missing files, a failed download, a malformed file
        raise CLIError(str(e)) from e


def load_model(path: str | os.PathLike, dataset: Dataset | None,
               custom_modules: Sequence[str] = ()) -> Model:
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
    `train` recorded beside the model, else MNIST."""
    if dataset is not None:
        return DATASETS[dataset]
    try:
        return recorded_dataset(model_path)
    except ValueError as e:
        raise CLIError(str(e)) from e


def _probability_table(probs: np.ndarray, class_names: Sequence[str]) -> str:
    """One line per class: its name, its probability and a bar 20 characters at most."""
    width = max(len(name) for name in class_names) + 1  # the probabilities in one column
    return "\n".join(f"  {name + ':':<{width}} {p:.4f} {'#' * round(20 * float(p))}".rstrip()
                     for name, p in zip(class_names, probs, strict=True))


# -- the commands --------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    from minicnn import plots
    from minicnn.callbacks import CSVLogger, GradientFlow
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
    flow = GradientFlow(every=10, path=os.path.join(out, "gradient_flow.csv"))
    try:
        history = model.fit(x_train, to_categorical(y_train, num_classes),
                            batch_size=args.batch_size, epochs=args.epochs,
                            verbose=args.verbose, validation_split=args.validation_split,
                            callbacks=[CSVLogger(os.path.join(out, "history.csv")), flow],
                            distribute=distribute)
    except ConnectionError as e:  # --address that does not answer
        raise CLIError(str(e)) from e
    _save_trained(model, os.path.join(out, "model.npz"))

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
    flow.plot(os.path.join(out, "gradient_flow.png"))
    plots.plot_filters(model, os.path.join(out, "filters.png"))
    plots.plot_confusion_matrix(y_test, predicted, os.path.join(out, "confusion.png"),
                                class_names=class_names)
    plots.plot_predictions(x_test[:3], y_test[:3], probabilities,
                           os.path.join(out, "predictions.png"), class_names=class_names)
    plots.plot_misclassified(x_test, y_test, predicted, os.path.join(out, "misclassified.png"),
                             probabilities=test_probabilities, class_names=class_names)
    saved = ["model.npz", DATASET_FILE, "history.csv", "history.png", "gradient_flow.csv",
             "gradient_flow.png", "filters.png", "confusion.png", "predictions.png",
             "misclassified.png"]
    saved += ["model.png"] if model_png else []
    print(f"Saved to {out}: {', '.join(saved)}")
    return 0


def _save_trained(model, path: str) -> None:
    """Save the model that training made; if that fails (a full disk, a folder gone), save it
    in the temporary directory instead and say where, so the training is not lost."""
    try:
        model.save(path)
        return
    except OSError as e:
        problem = e
    import tempfile

    fallback = os.path.join(tempfile.gettempdir(), f"minicnn-trained-{os.getpid()}.npz")
    try:
        model.save(fallback)
    except OSError as e:
        raise CLIError(f"cannot save the trained model to {path} ({problem}), nor to {fallback} "
                       f"({e}): it is lost; free some space and train again") from e
    raise CLIError(f"cannot save the trained model to {path} ({problem}); it was saved to "
                   f"{fallback} instead: move it where you want it") from problem


def _data_parallel(workers: int | None, address: str | None):
    """The `distribute=` of fit for --workers and --address (None without --workers)."""
    if workers is None:
        if address is not None:
            raise CLIError("argument --address: needs --workers N", exit_code=2)
        return None
    try:
        from minicnn.distributed import DataParallel, _ray

        _ray.import_ray()  # say how to install Ray now, not after loading the data
        if address is not None:
            _ray.check_address(address)  # a malformed address is one line, before any work
        return DataParallel(workers=workers, address=address)
    except ImportError as e:
        raise CLIError(str(e)) from e
    except ValueError as e:
        raise CLIError(f"argument --workers/--address: {e}", exit_code=2) from e


def sweep(args: argparse.Namespace) -> int:
    from minicnn.distributed import SweepInterrupted, _ray
    from minicnn.distributed import sweep as run_sweep
    from minicnn.utils import to_categorical

    dataset = DATASETS[args.dataset]
    space = {key: values for key, values in (
        ("learning_rate", args.learning_rate), ("batch_size", args.batch_size),
        ("optimizer", args.optimizer), ("recipe", args.model), ("seed", args.seed)) if values}
    if not space:
        raise CLIError("give the values to try of at least one of --learning-rate, "
                       "--batch-size, --optimizer, --model, --seed", exit_code=2)
    out = args.out or os.path.join("runs", f"sweep-{dataset.name}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"argument --out: '{out}' is a file; the sweep writes a directory "
                       "(results.csv, results.png, models/)", exit_code=2)
    try:
        _ray.import_ray()
    except ImportError as e:
        raise CLIError(str(e)) from e
    (x_train, y_train), _ = load_dataset(dataset, args.data)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    try:
        result = run_sweep(x_train, to_categorical(y_train, len(dataset.class_names)), space,
                           out, search=args.search, num_samples=args.samples,
                           epochs=args.epochs, validation_split=args.validation_split,
                           metric=args.metric, mode="min" if "loss" in args.metric else "max",
                           threads_per_trial=args.threads, address=args.address,
                           seed=args.search_seed, max_trials=args.max_trials)
    except ConnectionError as e:
        raise CLIError(str(e)) from e
    except SweepInterrupted as e:  # Ctrl-C: not a finished sweep
        raise CLIError(str(e), exit_code=130) from e
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
    if args.explain:
        from minicnn import plots

        try:
            plots.plot_saliency(model, image[None], args.explain, class_names=class_names)
        except OSError as e:  # an unwritable path
            raise CLIError(f"--explain {args.explain}: cannot write it ({e})") from e
        print(f"Saliency and Grad-CAM saved to {args.explain}")
    return 0


def summary(args: argparse.Namespace) -> int:
    from minicnn import models

    model = models.mnist_cnn() if args.model is None else load_model(
        args.model, None, custom_modules=args.custom_objects)
    model.summary()
    return 0


def warmup(args: argparse.Namespace) -> int:
    from minicnn.models import warm_process
    from minicnn.models import warmup as compiling

    missing = compiling.missing_kernels()
    if not missing:
        print("minicnn: every kernel is already in numba's cache for this CPU.")
        return 0
    print(f"minicnn: compiling {len(missing)} numba kernels for this CPU...", flush=True)
    seconds = warm_process.warm_all(progress=lambda line: print(f"  {line}", flush=True))
    left = compiling.missing_kernels()
    if left:
        raise CLIError(f"{len(left)} kernels are still not in numba's cache after compiling "
                       f"({', '.join(left)}); is its cache directory writable? (numba "
                       "writes beside minicnn's sources, or to $NUMBA_CACHE_DIR)")
    print(f"minicnn: done in {seconds:.1f} s; later runs load them from numba's cache.")
    return 0


def report(args: argparse.Namespace) -> int:
    from minicnn.cli.report import write_report

    model_path = os.path.join(args.run_dir, "model.npz")
    if not os.path.isdir(args.run_dir):
        raise CLIError(f"run directory '{args.run_dir}' does not exist (minicnn train --out DIR "
                       "writes one)")
    dataset = dataset_of(model_path, args.dataset)
    model = load_model(model_path, dataset, custom_modules=args.custom_objects)
    _, (x_test, y_test) = load_dataset(dataset, args.data)
    if args.limit:
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    try:
        path = write_report(args.run_dir, model, dataset, x_test, y_test, args.out)
    except OSError as e:
        raise CLIError(f"cannot write the report: {e}") from e
    print(f"Report written to {path}")
    return 0
