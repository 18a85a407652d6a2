"""A benchmark worker: one framework in its own process, driven by the parent over a pipe.

    python benchmarks/_worker.py {train,kernels,probe} {minicnn,tensorflow,pytorch} [--threads N]

`train` and `kernels` read one JSON command per line on stdin, `{"cmd": name, ...arguments}`,
and answer each with one JSON line on stdout (`{"error": traceback}` when it fails); `fit` also
sends one line per epoch and waits for `{"cmd": "continue"}` before the next. `probe` measures a
cold start (import, build, first training steps), prints one JSON line and exits.

With `--threads N`, minicnn gets MINICNN_NUM_THREADS=N (its own thread pool) and its OpenBLAS
OPENBLAS_NUM_THREADS=N before numpy is imported, and TensorFlow and PyTorch are told N threads
through their APIs; without it the worker runs in the environment it was given, as a user's
program would.
"""

import time

PROCESS_START = time.perf_counter()  # before any heavy import

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
# The minicnn of this checkout, whatever else is installed.
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]


class Channel:
    """JSON lines over the original stdout; fd 1 itself is pointed at stderr, so that whatever a
    library prints lands in the worker's log and never in the protocol."""

    def __init__(self):
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)

    def send(self, message: dict) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def receive(self) -> dict:
        line = sys.stdin.readline()
        if not line:  # the parent is gone
            sys.exit(0)
        return json.loads(line)


class KernelRunner:
    """Holds one framework's per-layer ops (see _layer_ops.py) and times them on request."""

    def __init__(self, framework: str):
        self.framework = framework

    def cmd_setup(self, data_dir, batch_size: int, warmup: int) -> dict:
        import _layer_ops

        t = time.perf_counter()
        if self.framework == "tensorflow":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # logging only
        arrays = _layer_ops.SharedArrays(batch_size, data_dir)
        self.ops, plan = _layer_ops.OPS[self.framework](arrays)
        for op in self.ops.values():
            for _ in range(warmup):
                op()
        return {"ops": list(self.ops), "plan": plan, "setup_s": time.perf_counter() - t,
                "call_overhead_s": _layer_ops.call_overhead(self.framework)}

    def cmd_time(self, calls: int) -> dict:
        """Each op `calls` times in a row, each call timed on its own."""
        seconds = {}
        for name, op in self.ops.items():
            samples = []
            for _ in range(calls):
                t = time.perf_counter()
                op()
                samples.append(time.perf_counter() - t)
            seconds[name] = samples
        return {"seconds": seconds}


def serve(runner, channel: Channel) -> None:
    while True:
        message = channel.receive()
        command = message.pop("cmd")
        if command == "quit":
            return
        try:
            reply = getattr(runner, f"cmd_{command}")(**message)
        except Exception:
            reply = {"error": traceback.format_exc()}
        channel.send(reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["train", "kernels", "probe"])
    parser.add_argument("framework", choices=["minicnn", "tensorflow", "pytorch"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads and args.framework == "minicnn":
        # minicnn's own thread pool (what its passes run on) and its BLAS, before numpy loads
        os.environ["MINICNN_NUM_THREADS"] = str(args.threads)
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    channel = Channel()
    import _frameworks  # imports numpy

    if args.mode == "probe":
        try:
            channel.send(_frameworks.probe(args.framework, args.threads, PROCESS_START))
        except Exception:
            channel.send({"error": traceback.format_exc()})
        return
    if args.mode == "train":
        runner = _frameworks.RUNNERS[args.framework](args.threads, channel)
    else:
        runner = KernelRunner(args.framework)
    serve(runner, channel)


if __name__ == "__main__":
    main()
