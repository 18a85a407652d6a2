"""Saving over what is already there: modes, symlinks, killed saves, checkpoint paths."""

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minicnn import callbacks, layers
from minicnn._atomic import atomic_write
from minicnn.models import Sequential, load_model
from minicnn.utils import to_categorical

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes, symlinks and pids")


def tiny_model(seed: int = 0) -> Sequential:
    model = Sequential([layers.Flatten(input_shape=(4, 4, 1)),
                        layers.Dense(3, activation="softmax")], seed=seed)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return model


def tiny_data(n: int = 32):
    rng = np.random.default_rng(0)
    return rng.random((n, 4, 4, 1)).astype(np.float32), to_categorical(np.arange(n) % 3, 3)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# -- modes and symlinks ----------------------------------------------------------------------------
@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o444])
def test_saving_over_a_file_keeps_its_mode(tmp_path, umask_022, mode):
    path = tmp_path / "m.npz"
    tiny_model(0).save(path)
    assert mode_of(path) == 0o644  # a new file: 0o666 minus the umask, as open() gives
    os.chmod(path, mode)
    tiny_model(1).save(path)  # 0o664 is wider than the umask allows: kept all the same
    assert mode_of(path) == mode
    np.testing.assert_array_equal(load_model(path).get_weights()[0],
                                  tiny_model(1).get_weights()[0])


@posix_only
def test_saving_through_a_symlink_replaces_the_file_it_points_to(tmp_path):
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "model-v1.npz"
    tiny_model(0).save(real)
    os.chmod(real, 0o600)
    (tmp_path / "latest.npz").symlink_to("runs/model-v1.npz")
    (tmp_path / "current.npz").symlink_to("latest.npz")  # a chain of two links
    tiny_model(1).save(tmp_path / "current.npz")
    assert os.readlink(tmp_path / "current.npz") == "latest.npz"
    assert os.readlink(tmp_path / "latest.npz") == "runs/model-v1.npz"
    assert mode_of(real) == 0o600
    np.testing.assert_array_equal(load_model(real).get_weights()[0],
                                  tiny_model(1).get_weights()[0])
    assert sorted(os.listdir(tmp_path / "runs")) == ["model-v1.npz"]  # no temporary left


@posix_only
def test_saving_through_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "link.npz").symlink_to("target.npz")
    tiny_model(0).save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink() and (tmp_path / "target.npz").is_file()


# -- temporaries of killed saves -----------------------------------------------------------------
KILLED_WRITES = textwrap.dedent("""
    import os, signal, sys
    from minicnn._atomic import atomic_write
    for target in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:  # a save killed half way, as by SIGKILL or a power cut
            with atomic_write(target) as f:
                f.write(b"half a model")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        os.waitpid(pid, 0)
""")
IN_FLIGHT_WRITE = textwrap.dedent("""
    import sys
    from minicnn._atomic import atomic_write
    with atomic_write(sys.argv[1]) as f:
        f.write(b"in flight")
        f.flush()
        print("writing", flush=True)
        sys.stdin.readline()  # the test lets it finish
    print("done", flush=True)
""")


def temporaries(directory, name: str) -> list[str]:
    return sorted(entry for entry in os.listdir(directory) if entry.startswith(f".{name}."))


@posix_only
def test_the_next_save_removes_the_temporaries_of_killed_saves(tmp_path):
    path, other = tmp_path / "m.npz", tmp_path / "other.npz"
    tiny_model(0).save(path)
    writer = subprocess.Popen([sys.executable, "-c", IN_FLIGHT_WRITE, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        (live,) = temporaries(tmp_path, "m.npz")
        assert f".{writer.pid}." in live
        subprocess.run([sys.executable, "-c", KILLED_WRITES, *[str(path)] * 4, str(other)],
                       check=True, timeout=60)
        # Each killed save removed the one killed before it: one is left, not four, and the
        # live writer's temporary is untouched.
        assert len(set(temporaries(tmp_path, "m.npz")) - {live}) == 1
        tiny_model(1).save(path)
        assert temporaries(tmp_path, "m.npz") == [live]
        assert len(temporaries(tmp_path, "other.npz")) == 1  # another file's: its own save's
    finally:
        out, _ = writer.communicate("\n", timeout=60)
    assert writer.returncode == 0 and out == "done\n"  # its rename found its file
    assert path.read_bytes() == b"in flight"
    assert temporaries(tmp_path, "m.npz") == []


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "keep.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as f:
        f.write(b"half a fi")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["keep.bin"]


# -- ModelCheckpoint ---------------------------------------------------------------------------
def test_checkpoint_creates_a_missing_directory(tmp_path):
    x, y = tiny_data()
    pattern = tmp_path / "runs" / "{epoch}" / "m-{epoch:02d}.npz"
    tiny_model().fit(x, y, epochs=2, verbose=0,
                     callbacks=[callbacks.ModelCheckpoint(pattern)])
    assert (tmp_path / "runs" / "1" / "m-01.npz").is_file()
    assert (tmp_path / "runs" / "2" / "m-02.npz").is_file()


class CountEpochs(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1


@pytest.mark.parametrize("pattern, message", [
    ("m-{epoch}-{val_los:.3f}.npz",
     r"filepath '.*m-\{epoch\}-\{val_los:\.3f\}\.npz' names \{val_los\}, which no epoch logs; "
     r"available: epoch, accuracy, loss, val_accuracy, val_loss"),
    ("m-{loss:02d}.npz", r"not a valid format string for the epoch logs \(Unknown format code"),
    ("m-{}.npz", r"not a valid format string for the epoch logs"),
    ("m-{loss.size}.npz", r"not a valid format string for the epoch logs"),
])
def test_checkpoint_pattern_errors_come_before_the_first_epoch(tmp_path, pattern, message):
    x, y = tiny_data()
    model, count = tiny_model(), CountEpochs()
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
                  callbacks=[count, callbacks.ModelCheckpoint(tmp_path / pattern)])
    assert count.epochs == 0 and model.optimizer.iterations == 0
    assert os.listdir(tmp_path) == []


def test_checkpoint_naming_val_loss_without_validation_data_says_so(tmp_path):
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"names \{val_loss\}, which this fit does not log "
                                         r"\(no validation data\?\); it logs: epoch, accuracy, "
                                         r"loss"):
        tiny_model().fit(x, y, epochs=2, verbose=0, callbacks=[
            callbacks.ModelCheckpoint(tmp_path / "m-{val_loss:.2f}.npz")])
