"""minicnn.distributed on a local Ray instance: a data-parallel fit ends with the local fit's
weights bit for bit (and still does when a worker is killed mid-epoch), a sweep writes its CSV
and PNG and resumes, an unreachable cluster fails fast, and `import minicnn` never imports Ray.

One Ray instance serves the module (starting one costs seconds); DataParallel and sweep use it
and leave it running.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from minicnn.callbacks import Callback
from minicnn.models import load_model, mnist_cnn

pytestmark = pytest.mark.slow

TRAIN = 2048  # "a few thousand" images: 16 steps of 128, and a validation pass


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n MNIST training images scaled to [0, 1] and one-hot labels; generated stand-ins (noise
    with a class-dependent bright square) when MINICNN_DATA does not hold MNIST."""
    try:
        from minicnn.datasets import mnist

        (x, y), _ = mnist.load_data(os.environ["MINICNN_DATA"])
        x, y = x[:n], y[:n]
    except (KeyError, OSError):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 10, n)
        x = (rng.random((n, 28, 28)) * 80).astype(np.uint8)
        for k, label in enumerate(y):
            x[k, 2 * label:2 * label + 8, 4:12] = 255
    return (x[..., None] / 255.0).astype(np.float32), np.eye(10, dtype=np.float32)[y]


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return _images(TRAIN)


@pytest.fixture(scope="module")
def local_fit(data):
    """The single-process reference: mnist_cnn, seed 3, one epoch, 10% held out."""
    model = mnist_cnn(seed=3)
    model.fit(*data, batch_size=128, epochs=1, verbose=0, validation_split=0.1)
    return model


def _fit_distributed(data, distribute, callbacks=None):
    model = mnist_cnn(seed=3)
    model.fit(*data, batch_size=128, epochs=1, verbose=0, validation_split=0.1,
              distribute=distribute, callbacks=callbacks)
    return model


def _assert_same_training(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert np.array_equal(wa, wb), f"largest difference {np.abs(wa - wb).max()}"
    assert a.optimizer.iterations == b.optimizer.iterations
    assert a.history.history == b.history.history  # loss, accuracy, val_loss, val_accuracy


def test_importing_minicnn_never_imports_ray():
    code = ("import sys, minicnn, minicnn.models, minicnn.distributed; "
            "from minicnn.distributed import DataParallel, sweep; "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(__file__) + "/..")


def test_two_workers_train_the_local_weights_bit_for_bit(ray_instance, data, local_fit):
    from minicnn.distributed import DataParallel

    model = _fit_distributed(data, DataParallel(workers=2))
    _assert_same_training(local_fit, model)


def _drawing_model(seed: int):
    """RandomFlip, RandomTranslation and Dropout in the workers' front (each draws for the whole
    batch and keeps its rows), BatchNormalization in the driver's tail (batch statistics over
    the whole batch)."""
    from minicnn import layers
    from minicnn.models import Sequential

    model = Sequential([
        layers.Input((28, 28, 1)),
        layers.RandomFlip("horizontal"),
        layers.RandomTranslation(0.1, 0.1),
        layers.Conv2D(8, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Conv2D(8, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(16),
        layers.BatchNormalization(),
        layers.Dense(10, activation="softmax"),
    ], seed=seed)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_drawing_layers_and_batch_norm_give_the_local_weights_too(ray_instance, data):
    from minicnn.distributed import DataParallel

    x, y = data[0][:600], data[1][:600]  # a last, partial batch of 88: other pieces
    local, spread = _drawing_model(5), _drawing_model(5)
    local.fit(x, y, batch_size=128, epochs=1, verbose=0)
    spread.fit(x, y, batch_size=128, epochs=1, verbose=0, distribute=DataParallel(workers=3))
    _assert_same_training(local, spread)


def _residual_model(seed: int, padding: str):
    """A graph: the front (RandomFlip, then Conv2D(relu) and MaxPooling2D: one fused step with
    'valid' padding, two steps with 'same') runs on the workers up to the tensor that fans
    out; the residual Add, its branch and the head run on the driver."""
    from minicnn import layers
    from minicnn.models import Model

    rng = np.random.default_rng(seed)

    def made(layer):
        layer.rng = rng
        return layer

    inputs = layers.Input((28, 28, 1))
    x = made(layers.RandomFlip("horizontal"))(inputs)
    x = layers.MaxPooling2D(2)(made(layers.Conv2D(8, 3, activation="relu", padding=padding))(x))
    y = made(layers.Conv2D(8, 3, padding="same"))(x)
    z = layers.Activation("relu")(layers.add([x, y]))
    outputs = made(layers.Dense(10, activation="softmax"))(layers.Flatten()(z))
    model = Model(inputs, outputs, seed=seed)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("padding, front", [
    ("valid", ["LayerStep", "ConvPoolStep"]),
    ("same", ["LayerStep", "ConvStep", "LayerStep"]),
])
def test_a_residual_graph_trains_the_local_weights_bit_for_bit(ray_instance, data, padding,
                                                               front):
    from minicnn.distributed import DataParallel

    x, y = data[0][:600], data[1][:600]
    local, spread = _residual_model(7, padding), _residual_model(7, padding)
    assert [type(s).__name__ for s in spread.graph_plan.front()] == front
    local.fit(x, y, batch_size=128, epochs=1, verbose=0)
    spread.fit(x, y, batch_size=128, epochs=1, verbose=0, distribute=DataParallel(workers=2))
    _assert_same_training(local, spread)


def test_a_model_with_nothing_to_split_is_refused(data):
    from minicnn import layers
    from minicnn.distributed import DataParallel
    from minicnn.models import Sequential

    model = Sequential([layers.Input((28, 28, 1)), layers.Flatten(),
                        layers.Dense(10, activation="softmax")], seed=0)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="has none before layer 'dense"):
        model.fit(*data, verbose=0, distribute=DataParallel(workers=2))
    with pytest.raises(ValueError, match="Expected at most 8"):
        DataParallel(workers=9)


def test_a_distributed_run_saved_and_resumed_equals_a_local_run_straight_through(
        ray_instance, data, tmp_path):
    from minicnn.callbacks import ModelCheckpoint
    from minicnn.distributed import DataParallel

    x, y = data[0][:512], data[1][:512]
    straight = mnist_cnn(seed=7)
    straight.fit(x, y, batch_size=128, epochs=2, verbose=0)
    first = mnist_cnn(seed=7)
    first.fit(x, y, batch_size=128, epochs=1, verbose=0, distribute=DataParallel(workers=2),
              callbacks=[ModelCheckpoint(tmp_path / "epoch{epoch}.npz")])
    resumed = load_model(tmp_path / "epoch1.npz")
    resumed.fit(x, y, batch_size=128, epochs=2, initial_epoch=1, verbose=0,
                distribute=DataParallel(workers=2))
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)


class _KillWorker(Callback):
    """Kill one worker at the end of batch `at`, mid-epoch."""

    def __init__(self, distribute, at: int) -> None:
        super().__init__()
        self.distribute, self.at = distribute, at

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at:
            import ray

            ray.kill(self.distribute.actors[1])


def test_a_killed_worker_is_replaced_and_the_weights_do_not_change(ray_instance, data,
                                                                   local_fit):
    from minicnn.distributed import DataParallel

    distribute = DataParallel(workers=2)
    model = _fit_distributed(data, distribute, callbacks=[_KillWorker(distribute, at=4)])
    assert distribute.replaced >= 1
    _assert_same_training(local_fit, model)


def test_an_unreachable_cluster_fails_fast_with_a_clear_message(data):
    from minicnn.distributed import DataParallel

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = mnist_cnn(seed=0)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=f"Cannot reach the Ray cluster at 'ray://127.0.0.1:{port}'"):
        model.fit(*data, epochs=1, verbose=0,
                  distribute=DataParallel(workers=2, address=f"ray://127.0.0.1:{port}"))
    assert time.monotonic() - start < 10
    assert model.optimizer.iterations == 0


def flaky_mnist(seed=None, compile=True, marker=""):
    """mnist_cnn, but the first call (per marker file) crashes: the retry test's recipe."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("a deliberate crash, the first time only")
    return mnist_cnn(seed=seed, compile=compile)


def test_a_sweep_writes_csv_and_png_retries_a_crash_and_resumes(ray_instance, data, tmp_path):
    from minicnn.distributed import sweep

    x, y = data[0][:256], data[1][:256]
    space = {"learning_rate": [1e-3, 3e-3], "recipe": ["mnist_cnn", "flaky"]}
    recipes = {"flaky": functools.partial(flaky_mnist, marker=str(tmp_path / "crashed"))}
    out = tmp_path / "sweep"
    run = functools.partial(sweep, x, y, space, out, epochs=1, validation_split=0.25,
                            recipes=recipes, verbose=0)
    first = run()
    assert len(first.rows) == 4 and len(first.ran) == 4
    assert all(row["status"] == "ok" for row in first.rows)
    assert sorted(int(row["attempts"]) for row in first.rows) == [1, 1, 1, 2]  # one retry
    assert os.path.getsize(first.png_path) > 0
    best = load_model(first.best_model_path)
    assert best.count_params() == 93_322
    assert float(first.best["val_accuracy"]) == max(float(r["val_accuracy"]) for r in first.rows)

    # A sweep interrupted before its last trial finished has three rows: only that trial runs.
    lines = open(first.csv_path).read().splitlines()
    open(first.csv_path, "w").write("\n".join(lines[:4]) + "\n")
    second = run()
    assert second.ran == [first.rows[3]["trial"]]
    assert len(second.rows) == 4 and all(row["status"] == "ok" for row in second.rows)


@pytest.mark.parametrize("answer", [b"HTTP/1.1 400 Bad Request\r\n\r\n", None],
                         ids=["a web server", "a silent server"])
def test_a_port_that_is_not_ray_fails_fast(answer):
    """Issue 21, defect 4: an address whose port answers but is not Ray (a web server, or one
    that accepts and says nothing) is a ConnectionError in seconds, not minutes of Ray's
    retries. (A real head's GCS and Ray Client ports answer the HTTP/2 probe: checked by hand
    with `ray start --head` on 5 Dec.)"""
    import threading

    from minicnn.distributed import _ray

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted = []

    def serve():
        conn, _ = server.accept()
        accepted.append(conn)
        conn.recv(100)
        if answer is not None:
            conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="not as a Ray cluster does"):
        _ray.check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - start < _ray.CONNECT_TIMEOUT + 2
    server.close()
    for conn in accepted:
        conn.close()


def broken_recipe(seed=None, compile=True):
    raise RuntimeError("a deliberate failure: the recipe is broken")


def test_a_failed_trial_keeps_its_cause(ray_instance, data, tmp_path):
    """Issue 21: a trial that fails twice was recorded as 'unknown error' (Tune had not yet
    copied its error file to where get_error reads); its row now names the exception."""
    from minicnn.distributed import sweep

    result = sweep(data[0][:64], data[1][:64], {"recipe": ["broken"]}, tmp_path / "s",
                   epochs=1, recipes={"broken": broken_recipe}, verbose=0)
    [row] = result.rows
    assert row["status"] == ("error: RuntimeError: a deliberate failure: the recipe is broken")
    assert row["attempts"] == "2" and result.best is None


def test_the_local_instance_listens_on_loopback_only():
    """Issue 21: the Ray instance minicnn starts for itself (no address) is reachable from this
    machine only: its GCS address is 127.0.0.1, tasks run, and Ray's switch is put back
    afterwards. In a fresh process: this one may be connected to Ray already."""
    pytest.importorskip("ray")
    import subprocess
    import sys

    code = """
import os
from ray._private import ray_constants
from minicnn.distributed import _ray
before = (os.environ.get(_ray._CLUSTER_SWITCH), ray_constants.ENABLE_RAY_CLUSTER)
with _ray.connected(None, 1) as ray:
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:"), \
        ray.get_runtime_context().gcs_address
    assert ray.get(ray.remote(lambda: 7).remote()) == 7
assert (os.environ.get(_ray._CLUSTER_SWITCH), ray_constants.ENABLE_RAY_CLUSTER) == before
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_ctrl_c_stops_a_sweep_promptly_and_says_so(tmp_path):
    """Issue 21, defects 2 and 8: SIGINT during the trials ends the sweep within seconds with
    SweepInterrupted (not a normal return listing every trial as run)."""
    pytest.importorskip("ray")
    import signal
    import subprocess
    import sys

    code = f"""
import numpy as np
from minicnn.distributed import sweep
rng = np.random.default_rng(0)
x = rng.random((2000, 28, 28, 1)).astype("float32")
y = np.eye(10)[rng.integers(0, 10, 2000)]
sweep(x, y, {{"learning_rate": [1e-3, 3e-4, 1e-4], "seed": [0, 1]}}, {str(tmp_path / "s")!r},
      epochs=50, verbose=1)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    for line in proc.stdout:  # wait for the trials to start
        if "to run" in line:
            break
    time.sleep(max(0.0, 12 - (time.monotonic() - started)))
    proc.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - stopped < 30
    assert proc.returncode != 0 and "SweepInterrupted" in err, err[-2000:]


def test_a_killed_driver_leaves_no_ray_process(tmp_path):
    """Issue 21, defect 8: SIGKILL of the process that started the local instance used to
    leave Ray's agents (and running trials) alive; the reaper stops them all."""
    pytest.importorskip("ray")
    import signal
    import subprocess
    import sys

    code = """
import os, time
from minicnn.distributed import _ray
with _ray.connected(None, 1) as ray:
    node = ray._private.worker._global_node
    raylet = node.all_processes["raylet"][0].process.pid
    print(raylet, flush=True)
    time.sleep(120)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    raylet = int(proc.stdout.readline())
    below = [int(p) for p in subprocess.run(["pgrep", "-P", str(raylet)], capture_output=True,
                                            text=True).stdout.split()]
    assert below, "raylet runs agents and workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from minicnn.distributed._reaper import alive

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(p) for p in [raylet, *below]):
        time.sleep(0.5)
    assert not [p for p in [raylet, *below] if alive(p)]
