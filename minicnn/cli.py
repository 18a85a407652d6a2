"""The `minicnn` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="minicnn",
        description="minicnn: a from-scratch CNN engine in NumPy and numba.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("command", nargs="?", help="train, evaluate, predict, summary")
    args = parser.parse_args(argv)
    if args.version:
        from minicnn import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    print(
        f"minicnn: the '{args.command}' command is not available yet; the training command "
        "arrives with the model API (issue 4).",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
