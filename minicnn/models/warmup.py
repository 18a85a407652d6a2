"""The first step on a fresh machine: numba compiles off the critical path.

numba compiles a kernel the first time it is called and keeps the machine code in its on-disk
cache (`cache=True`), keyed by the source file and the CPU. On a fresh install the notebook's
first training step compiled about 25 kernels in that step: 15 s on a 2-core EPYC, against
0.4 s once they were cached. So while the cache does not hold every minicnn kernel for this CPU,
a model's training and inference calls:
- start one background process, `python -m minicnn.models.warm_process DIR`, which compiles
  into the cache by running, on two samples, first the model itself (from its `to_json()`), then
  a set of small models that together call every kernel (`warm_process.zoo`);
- meanwhile run the model's reference layers (the first tier, proven equal to the fast plan by
  tests/test_plan.py); the background process compiles their kernels first (about 1.3 s), and
  until then those kernels' NumPy references stand in for them (minicnn/kernels/_stand_in.py);
- switch to the fast plan at the first call after the background process has warmed that model
  (and any other model once it has compiled everything).
The background process goes on if the program ends first (a short script, Ctrl-C aside), so
that one run leaves the cache complete. A model that cannot be rebuilt from JSON (a layer of
your own) waits for the whole set; if the background process fails, the kernels compile in the
process as before, and a warning gives its log. Nothing changes once the cache is complete: the
check runs once per process.

MINICNN_COMPILE=foreground compiles in the process, at first use, as numba does by default (the
tests run so); `minicnn warmup` compiles everything now, for a Docker image or a CI cache.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

from minicnn.kernels import _stand_in

MODES = ("background", "foreground")
_KERNEL_PACKAGES = ("minicnn.kernels", "minicnn.fast.kernels")

_lock = threading.Lock()
_complete = False  # every kernel is cached (or compiled here, or we gave up waiting)
_warm: weakref.WeakSet = weakref.WeakSet()  # models the background process has warmed
_background: _Background | None = None
_foreground_announced = False  # announce() has looked at the cache in the foreground mode


def mode() -> str:
    """MINICNN_COMPILE: 'background' (the default) or 'foreground'."""
    value = os.environ.get("MINICNN_COMPILE", "").strip().lower() or "background"
    if value not in MODES:
        warnings.warn(f"MINICNN_COMPILE={value!r} is not one of {', '.join(MODES)}; "
                      "using 'background'", stacklevel=3)
        return "background"
    return value


def kernels() -> list:
    """Every numba kernel of minicnn (the module-level dispatchers of its kernel packages)."""
    from numba.core.dispatcher import Dispatcher

    found = []
    for package_name in _KERNEL_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            module = importlib.import_module(info.name)
            values = [getattr(v, "dispatcher", v) for v in vars(module).values()]  # _stand_in
            found += [v for v in values
                      if isinstance(v, Dispatcher) and v.__module__ == info.name]
    return found


def missing_kernels() -> list[str]:
    """The kernels with no machine code for this CPU in numba's cache (nor compiled in this
    process): what a first call would compile."""
    missing = []
    for kernel in kernels():
        if kernel.signatures:
            continue
        try:
            cache = kernel._cache._cache_file  # numba's own index of what it has on disk
            magic = kernel.targetctx.codegen().magic_tuple()
            index = cache._load_index()  # empty when the source changed since it was cached
            cached = any(key[1] == magic for key in index)
        except Exception:  # another numba's internals: assume cached (compile at first use)
            cached = True
        if not cached:
            missing.append(kernel.py_func.__qualname__)
    return missing


def ready(model) -> bool:
    """Whether `model`'s fast plan may run now without compiling in this process (in the
    foreground mode: always). Starts the background compile the first time it is not."""
    global _complete
    if _complete or model in _warm:
        return True
    with _lock:
        if _complete:
            return True
        if mode() == "foreground":  # read once: a lock and the environment per call cost µs
            _complete = True
            return True
        if _background is None and not missing_kernels():
            _complete = True
            return True
        try:
            background = _start(model)
        except OSError as error:  # no temporary folder, no Python to start: compile here
            warnings.warn(f"minicnn could not start its background compile ({error}); its "
                          "kernels compile in this process at first use instead.",
                          RuntimeWarning, stacklevel=3)
            _complete = True
            return True
        if background.model_warm(model):
            _warm.add(model)
            _stand_in.active = False
            return True
        if background.finished():
            _complete = True
            _stand_in.active = False
            return True
        # Until the background process has the reference layers' own kernels (its first
        # seconds), their NumPy twins stand in for them.
        _stand_in.active = not _warm and not (background.dir / "reference.done").exists()
        return False


def announce(model, print_line: Callable[[str], None] = print) -> None:
    """Before a fit: one line saying that kernels are compiling, if they are. In the foreground
    mode the cache is looked at before the first fit of the process only: after it, what was
    missing has been compiled here."""
    global _foreground_announced
    if mode() == "foreground":
        if not _foreground_announced:
            _foreground_announced = True
            if missing_kernels():
                print_line("minicnn: compiling its numba kernels for this CPU (once: the next "
                           "runs load them from numba's cache; about 15 s on 2 cores).")
        return
    if ready(model):
        return
    print_line("minicnn: compiling its numba kernels for this CPU in the background (once; "
               "about 20 s on 2 cores); the reference layers train until they are ready.")


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """Compile in this process within the block (what `minicnn warmup` does)."""
    before = os.environ.get("MINICNN_COMPILE")
    os.environ["MINICNN_COMPILE"] = "foreground"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINICNN_COMPILE", None)
        else:
            os.environ["MINICNN_COMPILE"] = before


class _Background:
    """The one background compile of this process: `python -m minicnn.models.warmup DIR`."""

    def __init__(self, model) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="minicnn-warmup-"))
        self.model = weakref.ref(model)
        try:
            (self.dir / "model.json").write_text(model.to_json())
        except Exception:  # a layer of its own: the zoo only, then the whole cache
            self.model = lambda: None
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "MINICNN_COMPILE": "foreground",
               "PYTHONPATH": os.pathsep.join(
                   p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        self.log = self.dir / "log.txt"
        self.started = time.perf_counter()
        try:
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "minicnn.models.warm_process", str(self.dir)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def model_warm(self, model) -> bool:
        return self.model() is model and (self.dir / "model.done").exists()

    def finished(self) -> bool:
        code = self.process.poll()
        if code is None:
            return False
        if code != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            warnings.warn(f"minicnn's background compile failed (exit code {code}); its "
                          f"kernels compile in this process at first use instead. Its log "
                          f"({self.log}) ends:\n{tail}", RuntimeWarning, stacklevel=4)
        return True

    def stop(self) -> None:
        """Stop it now (the tests do; a program that exits leaves it to finish, so that the
        cache is complete once and for all: it cleans up after itself)."""
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _start(model) -> _Background:
    global _background
    if _background is None:
        _background = _Background(model)
    return _background
