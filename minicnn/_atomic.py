"""Atomic file writes: readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from typing import BinaryIO

TMP_SUFFIX = ".minicnn-tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file whose contents replace `path` when the block exits normally.

    The data goes to a hidden temporary file, `.<name>.<pid>.<random>.minicnn-tmp`, in the
    directory of the file finally written, so the closing `os.replace` is a rename within one
    file system, which is atomic. On any exception (KeyboardInterrupt included) the temporary
    file is deleted and `path` is left as it was. A process killed outright leaves its temporary
    file behind; the next write to the same path deletes it, once no process has its pid.

    Writing over an existing file keeps its permissions, as `open(path, "wb")` would; when
    `path` is a symbolic link the link stays and the file it points to is replaced (other hard
    links to the old file keep the old contents). A new file gets the permissions `open` would
    give it (0o666 minus the umask).
    """
    target = os.path.realpath(path)  # through any symlinks, to the file to replace
    directory, name = os.path.split(target)
    _remove_stale_temporaries(directory, name)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    # "xb" creates it with O_EXCL; the opener makes it never more open than its final mode:
    # 0o666 minus the umask for a new file (what open(path, "wb") gives); the old file's mode,
    # or less, for an existing one, set exactly by fchmod before any data is written (mkstemp
    # would force 0o600).
    def create(file: str, flags: int) -> int:
        return os.open(file, flags, 0o666 if mode is None else mode)

    f = open(tmp, "xb", opener=create)
    try:
        with f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Delete the temporary files of earlier writes to `name` whose process no longer exists.

    A temporary file of a live process (another thread of this one, or another program saving
    the same file right now) is left alone: its pid is in its name.
    """
    if os.name != "posix":  # no cheap, harmless "is this pid alive?" elsewhere
        return
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[0-9a-f]+{re.escape(TMP_SUFFIX)}")
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return  # the write itself reports a directory it cannot use
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):  # another writer may have removed it first
                os.unlink(os.path.join(directory, entry))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 sends nothing: it only checks that the pid exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process, or no pid at all:
        return True                           # either way, not a file to delete
    return True
