"""The checker's forward half (minicnn/forward_check.py) and its report: a wrong forward fails
even when its backward matches it; "worst at" names only an element that differs; the sample
reports in docs/backprop.md are what the code prints (MINICNN_UPDATE_DOCS=1 rewrites them)."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest

from minicnn import layers
from minicnn.gradcheck import check_layer

DOCS = Path(__file__).resolve().parents[1] / "docs" / "backprop.md"


class UnscaledDropout(layers.Dropout):
    """The classic bug: the mask without its 1 / (1 - rate), backward consistent with it."""

    def forward(self, x, training=False):
        y = super().forward(x, training)
        return y * (1 - self.rate) if training else y

    def backward(self, dout):
        return super().backward(dout) * (1 - self.rate)


class UnbiasedBatchNorm(layers.BatchNormalization):
    """The other classic: the batch variance divided by N - 1 (as np.var(ddof=1))."""

    def forward(self, x, training=False):
        y = super().forward(x, training)
        n = x.shape[0]
        return y * np.sqrt((n - 1) / n) if training and not self.frozen else y

    @property
    def frozen(self):
        return not self.trainable


def noise(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("seed", range(5))
def test_a_dropout_passes_and_an_unscaled_one_fails_on_every_seed(seed):
    x = noise((4, 6), seed)
    assert check_layer(layers.Dropout(0.5), x, seed=seed).passed
    report = check_layer(UnscaledDropout(0.5), x, seed=seed)
    assert not report.passed and str(report).endswith("FAILED: forward (training)")
    # its gradient alone is consistent with its (wrong) forward
    assert all(t.passed for t in report.tensors)


def test_a_reference_catches_the_unbiased_variance():
    x = noise((8, 5))
    assert check_layer(layers.BatchNormalization(), x,
                       reference=layers.BatchNormalization()).passed
    report = check_layer(UnbiasedBatchNorm(), x, reference=layers.BatchNormalization())
    training = next(c for c in report.forward if c.mode == "training")
    assert not training.passed and training.error > 1e-3
    assert next(c for c in report.forward if c.mode == "inference").passed


def test_a_reference_layer_runs_with_the_checked_layers_weights_and_a_function_works():
    x = noise((3, 6))
    assert check_layer(layers.Dense(4), x, reference=layers.Dense(4)).passed
    assert check_layer(layers.ReLU(), x + 0.1, reference=lambda x: np.maximum(x, 0)).passed
    assert not check_layer(layers.ReLU(), x + 0.1, reference=lambda x: np.abs(x)).passed
    with pytest.raises(ValueError, match="weights of shapes"):
        check_layer(layers.Dense(4), x, reference=layers.Dense(5))


def test_random_augmentation_is_not_held_to_its_mean():
    # a RandomFlip's mean over draws is half the image and half its mirror: not a bug
    assert check_layer(layers.RandomFlip(), noise((2, 4, 4, 1))).passed


def test_worst_at_names_only_an_element_that_differs():
    report = check_layer(layers.Dense(3), noise((2, 4)))
    rows = str(report).splitlines()[3:3 + len(report.tensors)]
    for check, row in zip(report.tensors, rows, strict=True):
        if check.error == 0:  # nothing differs (the rounding noise is subtracted first)
            assert check.worst_index is None
            assert re.search(r"0\.00e\+00  -\s+-\s+-\s+0  ok$", row), row
        else:
            assert check.worst_index is not None


def test_a_kink_is_never_the_worst_element():
    x = noise((3, 5))
    x[0, 0] = 0.0  # a ReLU input exactly at its kink
    report = check_layer(layers.ReLU(), x, move_kinks=False)
    check = report["input"]
    assert check.kinks and check.worst_index not in check.kinks


def docs_examples():
    """(code, printed output) pairs of docs/backprop.md's checker examples, in order."""
    text = DOCS.read_text()
    start = text.index("## How to write and check your own layer")
    blocks = re.findall(r"```(python)?\n(.*?)```", text[start:], re.S)
    pairs = []
    for (lang, code), (_, out) in itertools.pairwise(blocks):
        if lang and "print(check_layer(" in code:
            pairs.append((code, out))
    return pairs


def test_the_docs_sample_reports_are_what_the_code_prints():
    namespace: dict = {}
    text = DOCS.read_text()
    for code, shown in docs_examples():
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(DOCS), "exec"), namespace)
        if os.environ.get("MINICNN_UPDATE_DOCS"):
            text = text.replace(f"```\n{shown}```", f"```\n{printed.getvalue()}```", 1)
        else:
            assert printed.getvalue() == shown, (
                f"docs/backprop.md shows an old report; run MINICNN_UPDATE_DOCS=1 pytest "
                f"{__file__} to write the new one:\n{printed.getvalue()}")
    if os.environ.get("MINICNN_UPDATE_DOCS"):
        DOCS.write_text(text)
    assert len(docs_examples()) >= 2
