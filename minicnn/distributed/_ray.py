"""Starting or joining Ray, quietly, and failing fast when a cluster cannot be reached.

Ray is imported here, inside the functions, never at module level: `import minicnn` and
`import minicnn.distributed` work without Ray installed and never pay for importing it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

# How long a cluster address may take to answer before fit gives up: a closed port or a host
# that drops packets is an error within this, not a hang in Ray's own retries.
CONNECT_TIMEOUT = 3.0


def import_ray():
    """The `ray` module, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("minicnn.distributed runs on Ray, which is not installed: "
                          "pip install -e '.[distributed]' (or pip install 'ray[tune]')") from e
    return ray


def check_address(address: str) -> None:
    """Raise a ConnectionError within CONNECT_TIMEOUT seconds unless something listens at
    `address` ("host:port" or "ray://host:port"); "auto" is left to Ray."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    if parts.scheme not in ("ray", "") or not parts.hostname or parts.port is None:
        raise ValueError(f"Invalid value for argument `address`. Expected None, 'auto', "
                         f"'host:port' or 'ray://host:port'. Received address={address!r}")
    try:
        with socket.create_connection((parts.hostname, parts.port),
                                      timeout=CONNECT_TIMEOUT) as sock:
            speaks_grpc = _answers_http2(sock)
    except OSError as e:
        raise ConnectionError(
            f"Cannot reach the Ray cluster at {address!r} ({e.strerror or e}) within "
            f"{CONNECT_TIMEOUT:.0f} s. Is its head node running (`ray start --head` prints the "
            f"address to join), and is the port open from this machine?") from e
    if not speaks_grpc:
        # Something else listens there (a web server, a database): ray.init would retry it
        # for minutes before giving up.
        raise ConnectionError(
            f"{address!r} answers, but not as a Ray cluster does (Ray's head speaks gRPC; "
            f"this port did not answer HTTP/2 within {CONNECT_TIMEOUT:.0f} s). Check the port: "
            "`ray start --head` prints the address to join (by default port 6379, or 10001 "
            "for ray://).")


# HTTP/2's connection preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, the Ray
# Client server) answers with a SETTINGS frame of its own (frame type 4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _answers_http2(sock: socket.socket) -> bool:
    """Whether the server on `sock` answers the HTTP/2 preface with a SETTINGS frame."""
    try:
        sock.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = sock.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:  # a timeout: it said nothing
        return False
    return header[3] == 4


@contextlib.contextmanager
def connected(address: str | None, num_cpus: int) -> Iterator[object]:
    """Ray, ready to use inside the block.

    address=None starts a local instance with `num_cpus` CPUs (no dashboard, Ray's logs kept
    out of the terminal) and shuts it down afterwards. "auto" or "host:port" or
    "ray://host:port" joins that cluster and leaves it running (an address that does not
    answer is a ConnectionError first). If this process is already connected to Ray (ray.init
    was called), that connection is used and left open.
    """
    ray = import_ray()
    if address is not None:
        check_address(address)
    if ray.is_initialized():
        yield ray
        return
    loopback = reaper = None
    if address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        loopback = _loopback_only()
        try:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True)
        finally:
            loopback.started()
        reaper = _start_reaper(ray)
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except ConnectionError as e:
            raise ConnectionError(f"Cannot join the Ray cluster at {address!r}: {e}") from e
    try:
        yield ray
    finally:
        ray.shutdown()
        if loopback is not None:
            loopback.restore()
            if reaper is not None:
                reaper.terminate()
                reaper.wait()


def _start_reaper(ray):
    """A watcher that stops the local instance if this process dies without shutting it down
    (SIGKILL): see _reaper.py. None where Ray's process list is not where this Ray keeps it."""
    import subprocess
    import sys

    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    processes = getattr(node, "all_processes", None)
    if not processes:
        return None
    from minicnn.distributed import _reaper

    pids = [info.process.pid for infos in processes.values() for info in infos
            if getattr(info, "process", None) is not None]
    # Ray's processes and those already below them (raylet's agents): noted here, since the
    # reaper's first look may come after a quick death of this process. The reaper runs as a
    # script, not as minicnn.distributed._reaper: it imports nothing of minicnn's, so it is
    # watching within a fraction of a second.
    pids = [str(p) for p in _reaper.descendants(pids)]
    return subprocess.Popen([sys.executable, _reaper.__file__, str(os.getpid()), *pids],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# Ray's switch between a node other machines can join and a machine-local one (its default on
# macOS and Windows): off, every Ray process listens on 127.0.0.1 only.
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class _loopback_only:
    """The local instance minicnn starts for itself (address=None) listens on 127.0.0.1 only,
    instead of every interface: nothing of it is reachable from the network. Ray decides from
    its cluster switch, read from the environment by the processes it starts and from
    ray._private.ray_constants by this one; both are set for the start and put back after
    (a later join of a real cluster from this process must be reachable)."""

    def __init__(self) -> None:
        self.env = os.environ.get(_CLUSTER_SWITCH)
        os.environ[_CLUSTER_SWITCH] = "0"
        try:
            from ray._private import ray_constants
        except ImportError:  # another Ray layout: its default stands
            ray_constants = None
        self.constants = ray_constants
        self.constant = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
        if self.constant is not None:
            ray_constants.ENABLE_RAY_CLUSTER = False

    def started(self) -> None:
        """Ray's processes are running (with the switch in their environment): put it back."""
        if self.env is None:
            os.environ.pop(_CLUSTER_SWITCH, None)
        else:
            os.environ[_CLUSTER_SWITCH] = self.env

    def restore(self) -> None:
        if self.constant is not None:
            self.constants.ENABLE_RAY_CLUSTER = self.constant
