"""What the benchmark scripts share: the machine and its load, the data, worker processes, and
writing the results (their Markdown is rendered by `_report.py`).

Each framework runs in its own long-lived worker process (`_worker.py`), so thread pools and
memory never mix and RSS is per framework. The parent drives the workers over a pipe, one JSON
object per line each way, and alternates between them so that a change in the machine's load
hits every framework alike.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WORKER = BENCH_DIR / "_worker.py"

FRAMEWORKS = ("minicnn", "tensorflow", "pytorch")
LABELS = {"minicnn": "minicnn", "tensorflow": "TensorFlow", "pytorch": "PyTorch"}
# The module whose presence makes a framework available, without importing it.
MODULES = {"minicnn": "numba", "tensorflow": "tensorflow", "pytorch": "torch"}
# Seconds of quiet between two frameworks' turns: OpenBLAS's idle threads keep spinning (with
# sched_yield) for about 0.1 s after a GEMM, and they should not steal the next framework's cores.
SETTLE_S = 0.25


# -- frameworks ------------------------------------------------------------------------------------
def available(framework: str) -> bool:
    return importlib.util.find_spec(MODULES[framework]) is not None


def parse_frameworks(text: str | None) -> list[str]:
    """The frameworks to run: the ones named (comma-separated), or all that are installed."""
    if text is None:
        return [f for f in FRAMEWORKS if available(f)]
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    aliases = {"tf": "tensorflow", "torch": "pytorch"}
    names = [aliases.get(name, name) for name in names]
    unknown = [name for name in names if name not in FRAMEWORKS]
    if unknown or not names:
        raise SystemExit(f"Invalid value for argument --frameworks. Expected a comma-separated "
                         f"list of {', '.join(FRAMEWORKS)}. Received {text!r}")
    missing = [name for name in names if not available(name)]
    if missing:
        print(f"Skipping {', '.join(missing)}: not installed "
              f"({', '.join(MODULES[name] for name in missing)} cannot be imported)")
    return [name for name in names if name not in missing]


# -- the machine -----------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _blas_info() -> dict:
    """numpy's BLAS as its build reports it, and the live thread pools if threadpoolctl is here."""
    import numpy as np

    info: dict = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration")
                              if blas.get(k)}
    except Exception as error:  # show_config's layout is not a stable API
        info["numpy_blas"] = f"unavailable: {error}"
    if importlib.util.find_spec("threadpoolctl") is not None:
        import threadpoolctl

        info["threadpools"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                      "threading_layer")}
            for pool in threadpoolctl.threadpool_info()]
    return info


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _source_digest() -> str:
    """SHA-1 of minicnn's Python sources: which code ran, even with uncommitted changes."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "minicnn").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine_info(frameworks: list[str]) -> dict:
    """CPU, cores, RAM, OS, library versions, BLAS and the minicnn source that was measured.

    Call it before starting the workers: it records the minicnn source they import.
    """
    dirty = _git("status", "--porcelain", "--", "minicnn")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "numpy": _version("numpy"),
            "numba": _version("numba"),
            "tensorflow": _version("tensorflow-cpu", "tensorflow", "tensorflow-intel"),
            "keras": _version("keras"),
            "torch": _version("torch"),
        },
        "frameworks": frameworks,
        "blas": _blas_info(),
        "minicnn_commit": _git("rev-parse", "--short", "HEAD"),
        "minicnn_uncommitted_files": len(dirty.splitlines()) if dirty else 0,
        "minicnn_source_sha1": _source_digest(),
        "thread_env": {k: os.environ[k] for k in sorted(os.environ)
                       if k.endswith("_NUM_THREADS") or k in ("TF_NUM_INTRAOP_THREADS",
                                                               "TF_NUM_INTEROP_THREADS")},
    }


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / ticks, total / ticks


def _own_cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class LoadMonitor:
    """How busy the machine was with other work while the benchmark ran.

    Load averages before and after, and, from /proc/stat, the CPU time the whole machine spent
    busy minus what this benchmark and its (finished) workers used: the average number of cores
    that other programs kept busy. On a quiet machine it is close to 0.
    """

    def __init__(self):
        self.load_before = list(os.getloadavg())
        self.wall0 = time.perf_counter()
        self.cpu0 = _cpu_times()
        self.own0 = _own_cpu_seconds()

    def finish(self) -> dict:
        wall = time.perf_counter() - self.wall0
        result = {"load_before": [round(v, 2) for v in self.load_before],
                  "load_after": [round(v, 2) for v in os.getloadavg()],
                  "wall_s": round(wall, 1)}
        cpu1 = _cpu_times()
        if self.cpu0 and cpu1 and wall > 0:
            busy = cpu1[0] - self.cpu0[0]
            own = _own_cpu_seconds() - self.own0
            result["busy_cores"] = round(busy / wall, 2)
            result["own_cores"] = round(own / wall, 2)
            result["other_cores"] = round(max(busy - own, 0.0) / wall, 2)
        return result


# -- data ------------------------------------------------------------------------------------------
# Each recipe's data set: image shape, training and test counts, and the environment variable that
# names its folder (see minicnn.datasets).
DATASETS = {
    "mnist": {"shape": (28, 28, 1), "train": 60_000, "test": 10_000, "env": "MINICNN_DATA"},
    "fashion_mnist": {"shape": (28, 28, 1), "train": 60_000, "test": 10_000,
                      "env": "MINICNN_FASHION_MNIST_DATA"},
    "cifar10": {"shape": (32, 32, 3), "train": 50_000, "test": 10_000,
                "env": "MINICNN_CIFAR10_DATA"},
}
LABELS_DATA = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def resolve_data(random_data: bool, dataset: str = "mnist") -> tuple[str | None, str]:
    """(where the workers load `dataset` from, or None for random data; a sentence saying which).

    Loads the set once here, so that a download of MNIST into the cache (when MINICNN_DATA is
    unset) happens once, before any worker starts; if that fails, the benchmark runs on random
    data instead. The other sets are only read when their variable is set or the cache already
    holds them: the benchmark downloads nothing else.
    """
    label = LABELS_DATA[dataset]
    if random_data:
        return None, f"random data of {label}'s shapes (--random-data)"
    sys.path.insert(0, str(ROOT))
    try:
        module = importlib.import_module(f"minicnn.datasets.{dataset}")
        directory = os.environ.get(DATASETS[dataset]["env"]) or module.cache_dir()
        if dataset != "mnist" and not os.path.exists(directory):
            raise FileNotFoundError(f"{DATASETS[dataset]['env']} is unset and the cache, "
                                    f"{directory}, does not exist")
        # MNIST as minicnn looks for it ($MINICNN_DATA, else the cache, downloading into it);
        # any other set only from the folder found above, which never downloads
        module.load_data(None if dataset == "mnist" else directory)
    except Exception as error:
        message = f"random data of {label}'s shapes: {label} is unavailable ({error})"
        print(f"WARNING: benchmarking on {message}", file=sys.stderr)
        return None, message
    return os.path.abspath(directory), f"{label} from {os.path.abspath(directory)}"


def load_arrays(directory: str | None, limit_train: int | None = None,
                limit_test: int | None = None, dataset: str = "mnist"):
    """The tutorials' preprocessing: float32 images in [0, 1], (N, H, W, C), one-hot labels.

    With `directory` None: uniform random images and labels of the same shapes (seeded).
    Returns (x_train, y_train, x_test, y_test).
    """
    import numpy as np

    shape = DATASETS[dataset]["shape"]
    if directory is None:
        rng = np.random.default_rng(0)
        n_train = limit_train or DATASETS[dataset]["train"]
        n_test = limit_test or DATASETS[dataset]["test"]
        images = rng.integers(0, 256, (n_train + n_test, *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, n_train + n_test)
        train = images[:n_train], labels[:n_train]
        test = images[n_train:], labels[n_train:]
    else:
        sys.path.insert(0, str(ROOT))
        module = importlib.import_module(f"minicnn.datasets.{dataset}")
        train, test = module.load_data(directory)

    def prepare(images, labels, limit):
        images, labels = images[:limit], labels[:limit].reshape(-1)
        x = images.reshape(len(images), *shape).astype(np.float32)
        x /= 255  # in place: no second full-size copy, which would show up in the peak RSS
        y = np.zeros((len(labels), 10), dtype=np.float32)
        y[np.arange(len(labels)), labels] = 1
        return x, y

    return (*prepare(*train, limit_train), *prepare(*test, limit_test))


# -- statistics ------------------------------------------------------------------------------------
def summary(samples: list[float]) -> dict:
    """min, median and count of timings in seconds."""
    return {"min": min(samples), "median": statistics.median(samples), "n": len(samples)}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing (or b is 0)."""
    return a / b if a is not None and b else None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (ru_maxrss is in KiB on Linux)."""
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# -- workers ---------------------------------------------------------------------------------------
class WorkerError(RuntimeError):
    pass


class Worker:
    """A framework's process: `request(cmd, **args)` sends one command and returns its reply.

    The worker's stderr (library warnings, TensorFlow's logging) goes to a log file, whose tail
    is shown when the worker fails; the file is removed when the worker ends cleanly.
    """

    def __init__(self, mode: str, framework: str, threads: int | None = None,
                 env: dict | None = None, pin: int | None = None):
        self.framework, self.threads, self.pin = framework, threads, pin
        self.name = LABELS[framework] + (f" ({threads} thread)" if threads else "") + (
            f" (CPU {pin})" if pin is not None else "")
        log_dir = Path(tempfile.mkdtemp(prefix="minicnn-bench-"))
        where = "default" if threads is None and pin is None else f"{threads}-{pin}"
        self.log_path = log_dir / f"{mode}-{framework}-{where}.log"
        self._log = open(self.log_path, "w")  # closed in close()
        args = [sys.executable, str(WORKER), mode, framework]
        if threads:
            args += ["--threads", str(threads)]
        if pin is not None:
            args += ["--pin", str(pin)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, bufsize=1,
                                     env=env if env is not None else os.environ.copy())

    def send(self, cmd: str, **args) -> None:
        try:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise WorkerError(self._failure(f"could not send {cmd!r}: {error}")) from None

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise WorkerError(self._failure(f"exited with code {self.proc.returncode}"))
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(self._failure(reply["error"]))
        return reply

    def request(self, cmd: str, **args) -> dict:
        self.send(cmd, **args)
        return self.receive()

    def _failure(self, what: str) -> str:
        self._log.flush()
        try:
            tail = self.log_path.read_text()[-3000:]
        except OSError:
            tail = ""
        return f"{self.name} worker: {what}\n--- its stderr ({self.log_path}) ---\n{tail}"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=60)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        if self.proc.returncode == 0:  # keep the log of a worker that failed
            self.log_path.unlink(missing_ok=True)
            self.log_path.parent.rmdir()


def settle() -> None:
    time.sleep(SETTLE_S)


# -- results ---------------------------------------------------------------------------------------
def write_results(out_dir: str | os.PathLike, kind: str, data: dict, markdown: str) -> dict:
    """Write the run's table as `<kind>-latest.md` and its raw numbers as `<kind>-latest.json`,
    overwriting the last run's: git keeps one run per kind, its history the earlier ones (a note
    citing a run names the commit that holds it). Returns the paths, as "md" and "json"."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{kind}-latest.json", "md": out / f"{kind}-latest.md"}
    paths["json"].write_text(json.dumps(data, indent=1) + "\n")
    paths["md"].write_text(markdown + "\n")
    return paths
