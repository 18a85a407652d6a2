"""The ResNet recipe: He et al.'s CIFAR ResNet as a graph, through the command line.

`minicnn train --dataset cifar10 --model resnet20` on a small CIFAR-10 folder written in the
binary format (tests/test_cifar10.py's helpers), then `evaluate` and `summary` on the saved
graph model.
"""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import models
from minicnn.cli import main
from minicnn.datasets import cifar10
from tests.test_cifar10 import N as RECORDS
from tests.test_cifar10 import make_batches, write_folder


def test_resnet_cifar_depths_and_counts():
    assert models.resnet20(seed=0).count_params() == 274_442  # keras.io's ResNet20 v1 table
    plain = models.resnet_cifar(20, seed=0, shortcuts=False)
    assert plain.name == "plain20" and not any(type(layer).__name__ == "Add"
                                               for layer in plain.layers)
    assert sum(type(layer).__name__ == "Add" for layer in models.resnet_cifar(32).layers) == 15
    for depth in (19, 2, "20"):
        with pytest.raises(ValueError, match="6n \\+ 2"):
            models.resnet_cifar(depth)


@pytest.mark.slow
def test_train_evaluate_and_summary_of_resnet20_on_the_command_line(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", RECORDS)  # the helpers' small batches
    monkeypatch.setenv("MPLBACKEND", "Agg")
    batches, _ = make_batches(seed=1)
    data = tmp_path / "cifar"
    write_folder(data, batches)
    out = tmp_path / "run"

    def cli(*argv: str) -> str:
        code = main(list(argv))
        captured = capsys.readouterr()
        assert code == 0, captured.out[-3000:] + captured.err[-3000:]
        return captured.out

    stdout = cli("train", "--dataset", "cifar10", "--model", "resnet20", "--epochs", "1",
                 "--data", str(data), "--out", str(out), "--seed", "0", "--batch-size", "4")
    assert "Training resnet20 on" in stdout
    assert "Connected to" in stdout  # the functional summary
    model = models.load_model(out / "model.npz")
    assert model.count_params() == 274_442 and model.name == "resnet20"
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert "Test accuracy: " in cli("evaluate", str(out / "model.npz"), "--data", str(data))
    assert cli("summary", str(out / "model.npz")).count(" (Add) ") == 9
