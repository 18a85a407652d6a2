"""Atomic file writes: readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file whose contents replace `path` when the block exits normally.

    The data goes to a hidden temporary file in the same directory, so the final `os.replace` is a
    rename within one file system, which is atomic. On any exception (KeyboardInterrupt included)
    the temporary file is deleted and `path` is left as it was. A process killed outright can leave
    a `.<name>.<random>.tmp` behind; no loader looks for that name.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    # "xb" creates with O_EXCL and mode 0o666 minus the umask, so the final file gets the same
    # permissions a plain open(path, "wb") would give it (mkstemp would force 0o600).
    f = open(tmp, "xb")
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
