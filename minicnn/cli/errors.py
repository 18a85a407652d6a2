"""CLIError: a problem the command line reports as one line on stderr, with an exit status."""

from __future__ import annotations


class CLIError(Exception):
    """A problem to report as one line on stderr, without a traceback, and the exit status."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
