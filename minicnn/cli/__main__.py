"""`python -m minicnn.cli`, as the `minicnn` command."""

from minicnn.cli import main

raise SystemExit(main())
