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

import sys
from collections.abc import Sequence

from minicnn.cli.commands import MODELS
from minicnn.cli.errors import CLIError
from minicnn.cli.parser import build_parser
from minicnn.datasets.registry import DATASETS

__all__ = ["DATASETS", "MODELS", "CLIError", "build_parser", "main"]


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
