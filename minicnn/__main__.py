"""`python -m minicnn` runs the command line, as the `minicnn` command does."""

from minicnn.cli import main

raise SystemExit(main())
