"""A benchmark worker: one framework in its own process, driven by the parent over a pipe.

    python benchmarks/_worker.py {train,kernels,probe} {minicnn,tensorflow,pytorch} [--threads N]
                                 [--pin CPU]

`train` and `kernels` read one JSON command per line on stdin, `{"cmd": name, ...arguments}`,
and answer each with one JSON line on stdout (`{"error": traceback}` when it fails); `fit` also
sends one line per epoch and waits for `{"cmd": "continue"}` before the next. `probe` measures a
cold start (import, build, first training steps), prints one JSON line and exits.

With `--threads N`, every framework is told N threads through its own knob: minicnn gets
MINICNN_NUM_THREADS=N and OPENBLAS_NUM_THREADS=N before numpy is imported and
`minicnn.set_num_threads(N)` after (its passes run on its own pool, BLAS single-threaded inside
fit and train_on_batch); TensorFlow intra- and inter-op parallelism N; PyTorch
`torch.set_num_threads(N)` and `torch.set_num_interop_threads(N)`. The processes may still
run on every core (a framework's helper threads, a BLAS left alone).

With `--pin CPU`, the worker first restricts itself to that one CPU (`os.sched_setaffinity`, as
`taskset -c CPU` would), before any library loads, and then lets every framework choose its
threads as it would on a one-core machine (each reads the affinity mask: minicnn's
`get_num_threads()`, TensorFlow's and PyTorch's thread pools all come out at 1): the
one-core figures.

Without either, the worker runs in the environment it was given, as a user's program would.
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

    def cmd_setup(self, data_dir, batch_size: int, warmup: int,
                  algorithms: bool = False) -> dict:
        """Build the ops (and, for minicnn with `algorithms`, the conv algorithm study's) and
        call each `warmup` times."""
        import _layer_ops

        t = time.perf_counter()
        if self.framework == "tensorflow":
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # logging only
        arrays = _layer_ops.SharedArrays(batch_size, data_dir)
        self.ops, plan = _layer_ops.OPS[self.framework](arrays)
        self.algorithm_ops, units = {}, []
        if algorithms and self.framework == "minicnn":
            self.algorithm_ops, units = _layer_ops.minicnn_algorithm_ops(batch_size)
        for op in (*self.ops.values(), *self.algorithm_ops.values()):
            for _ in range(warmup):
                op()
        reply = {"ops": list(self.ops), "plan": plan, "setup_s": time.perf_counter() - t,
                 "call_overhead_s": _layer_ops.call_overhead(self.framework)}
        if self.framework == "minicnn":
            import minicnn

            reply.update(algorithms=dict(_layer_ops.MINICNN_ALGORITHMS), algorithm_units=units,
                         algorithm_ops=list(self.algorithm_ops),
                         threads=minicnn.get_num_threads())
        return reply

    @staticmethod
    def _time(ops: dict, calls: int) -> dict:
        """Each op `calls` times in a row, each call timed on its own."""
        seconds = {}
        for name, op in ops.items():
            samples = []
            for _ in range(calls):
                t = time.perf_counter()
                op()
                samples.append(time.perf_counter() - t)
            seconds[name] = samples
        return seconds

    def cmd_time(self, calls: int) -> dict:
        return {"seconds": self._time(self.ops, calls)}

    def cmd_time_algorithms(self, calls: int, threads: int) -> dict:
        """The conv algorithm study's ops on `threads` of minicnn's threads (then put back)."""
        import minicnn

        before = minicnn.get_num_threads()
        minicnn.set_num_threads(threads)
        try:
            return {"seconds": self._time(self.algorithm_ops, calls)}
        finally:
            minicnn.set_num_threads(before)


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
    parser.add_argument("--pin", type=int, default=None,
                        help="run on this one CPU only, as `taskset -c CPU` would")
    args = parser.parse_args()
    if args.pin is not None:  # before numpy, numba or a framework counts the cores
        os.sched_setaffinity(0, {args.pin})
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
