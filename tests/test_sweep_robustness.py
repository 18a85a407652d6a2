"""The sweep's defects of issue 21, each failing before its fix: a NaN trial as the best, an
interrupted sweep returning as finished, results.csv trusted (its model_path copied, a partial
line glued to the next row), no cap on the trials, trial keys that collide. No Ray needed:
the Tune run is replaced by a stand-in that writes the rows a real one would."""

from __future__ import annotations

import importlib
import math
import os

import numpy as np
import pytest

from minicnn.distributed import SweepInterrupted, sweep
from minicnn.distributed import sweep as sweep_function
from minicnn.distributed.sweep import (
    KEY,
    _append_row,
    _finish,
    _read_rows,
    trial_key,
    trials,
)

sweep_module = importlib.import_module("minicnn.distributed.sweep")


def row(key: str, score, status="ok", model_path=""):
    return {"trial": key, "learning_rate": "0.001", "loss": "1.0", "accuracy": "0.5",
            "val_loss": "1.0", "val_accuracy": str(score), "seconds": "1.0", "attempts": "1",
            "status": status, "model_path": model_path}


def folder_with(tmp_path, scores):
    out = tmp_path / "sweep"
    (out / "models").mkdir(parents=True)
    keys = []
    for k, score in enumerate(scores):
        key = trial_key({"learning_rate": 10.0 ** -k})
        (out / "models" / f"{key}.npz").write_bytes(f"model {k}".encode())
        _append_row(str(out / "results.csv"), row(key, score))
        keys.append(key)
    return out, keys


def test_a_nan_trial_is_never_the_best(tmp_path):
    out, keys = folder_with(tmp_path, [math.nan, 0.7, 0.9, math.inf])
    rows = _read_rows(str(out / "results.csv"))
    result = _finish(rows, ["learning_rate"], "val_accuracy", "max", str(out),
                     str(out / "results.csv"), str(out / "results.png"), [])
    assert result.best["trial"] == keys[2]
    assert (out / "best_model.npz").read_bytes() == b"model 2"
    low = _finish(rows, ["learning_rate"], "val_accuracy", "min", str(out),
                  str(out / "results.csv"), str(out / "results.png"), [])
    assert low.best["trial"] == keys[1]


def test_the_csv_cannot_name_the_model_copied_as_best(tmp_path):
    out, keys = folder_with(tmp_path, [0.9])
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model")
    rows = _read_rows(str(out / "results.csv"))
    rows[0]["model_path"] = str(secret)  # what a tampered results.csv says
    _finish(rows, ["learning_rate"], "val_accuracy", "max", str(out),
            str(out / "results.csv"), str(out / "results.png"), [])
    assert (out / "best_model.npz").read_bytes() == b"model 0"
    os.remove(out / "models" / f"{keys[0]}.npz")
    with pytest.raises(ValueError, match="missing from the sweep's folder"):
        _finish(rows, ["learning_rate"], "val_accuracy", "max", str(out),
                str(out / "results.csv"), str(out / "results.png"), [])


def test_a_partial_last_line_is_dropped_not_glued(tmp_path):
    out, keys = folder_with(tmp_path, [0.5, 0.6])
    path = out / "results.csv"
    text = path.read_text()
    path.write_text(text[:-25])  # a write cut short: the last row partial, no final newline
    assert [r["trial"] for r in _read_rows(str(path))] == [keys[0]]
    new = trial_key({"learning_rate": 0.5})
    _append_row(str(path), row(new, 0.8))
    assert [r["trial"] for r in _read_rows(str(path))] == [keys[0], new]
    assert path.read_text().endswith("\n") and not (out / "results.csv.tmp").exists()


def test_untrusted_rows_are_left_out(tmp_path):
    path = tmp_path / "results.csv"
    good = trial_key({"seed": 1})
    _append_row(str(path), row(good, 0.5))
    with open(path, "a") as f:
        f.write("../../etc,0.1\n")  # too few fields, not a key
        f.write(",".join(row("trial-xyz", 0.9).values()) + "\n")  # not a key of this form
    assert [r["trial"] for r in _read_rows(str(path))] == [good]


def test_trials_are_capped_before_they_are_made():
    space = {"learning_rate": list(range(1000)), "seed": list(range(200))}
    with pytest.raises(ValueError, match=r"200,000 trials, more than max_trials=1,000"):
        trials(space)
    assert len(trials({"seed": list(range(1500))}, max_trials=2000)) == 1500


def test_keys_of_a_million_trials_do_not_collide():
    keys = {trial_key({"learning_rate": k, "seed": 0}) for k in range(10**6)}
    assert len(keys) == 10**6 and all(KEY.match(k) for k in list(keys)[:100])


def test_an_interrupted_sweep_says_so(tmp_path, monkeypatch):
    """The Tune run stops after one of three trials (as Ctrl-C stops it): sweep raises
    SweepInterrupted naming how many ran, instead of returning as if all had; run again, it
    resumes with the two left."""
    pytest.importorskip("matplotlib")
    ran_calls = []

    def one_then_stop(pending, swept, x, y, out_dir, csv_path, *rest):
        key, params = pending[0]
        os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
        with open(os.path.join(out_dir, "models", key + ".npz"), "wb") as f:
            f.write(b"model")
        _append_row(csv_path, {**row(key, 0.5), "learning_rate": params["learning_rate"]})
        ran_calls.append(len(pending))

    monkeypatch.setattr(sweep_module, "_tune", one_then_stop)
    x, y = np.zeros((4, 28, 28, 1)), np.zeros((4, 10))
    space = {"learning_rate": [0.1, 0.01, 0.001]}
    with pytest.raises(SweepInterrupted, match="before 2 trials of 3 ran"):
        sweep_function(x, y, space, tmp_path / "s", verbose=0)
    with pytest.raises(SweepInterrupted, match="before 1 trial of 3 ran"):
        sweep_function(x, y, space, tmp_path / "s", verbose=0)
    assert ran_calls == [3, 2]
    assert sweep is sweep_function
