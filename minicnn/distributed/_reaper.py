"""The reaper: stops the local Ray instance minicnn started when the process that started it
dies without shutting it down (SIGKILL, an out-of-memory kill).

    python minicnn/distributed/_reaper.py PARENT_PID PID [PID ...]   (standard library only)

Ray's own processes (gcs_server, raylet and what raylet runs: its agents, the trial workers)
outlive a driver killed with SIGKILL, keep listening, and keep training (seen: two trial workers
at 72% CPU each, 15 s after the sweep's driver was killed). `_ray.connected` starts this
watcher in a session of its own, with the driver's pid and Ray's; twice a second it notes the
processes below Ray's (a process is reparented to init the moment its parent exits, so they
cannot be found from Ray's afterwards: in runs with a plain local instance gcs_server and
raylet had exited within a second of the SIGKILL, by the reaper's hand or their own, and the
agents were left orphaned and alive) and checks whether the driver is alive; once it is not, it
sends SIGTERM to every process it noted, then SIGKILL to any left after TIMEOUT seconds (each
checked by its start time, so a reused pid is never hit). A driver that shuts Ray down itself
terminates the reaper first. Linux: descendants are found in /proc.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL = 0.5  # seconds between looks at the driver
TIMEOUT = 5.0  # seconds Ray's processes get to stop after SIGTERM


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: its parent has not collected it yet
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def descendants(pids: list[int]) -> list[int]:
    """pids and every process below them (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo += children.get(pid, [])
    return found


def started(pid: int) -> int | None:
    """The process's start time (clock ticks after boot, /proc's field 22): with the pid it
    names one process, not a later one that reused the pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def reap(everyone: list[int]) -> None:
    for pid in everyone:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and any(alive(p) for p in everyone):
        time.sleep(0.1)
    for pid in everyone:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def main(argv: list[str]) -> int:
    parent, pids = int(argv[0]), [int(p) for p in argv[1:]]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver's Ctrl-C is not for the reaper
    known: dict[int, int | None] = {p: started(p) for p in pids}  # pid -> its start time
    while alive(parent):
        for pid in descendants(list(known)):
            known.setdefault(pid, started(pid))
        known = {p: t for p, t in known.items() if alive(p)}  # gone: its pid may be reused
        time.sleep(POLL)
    reap(sorted(p for p, t in known.items() if alive(p) and started(p) == t))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
