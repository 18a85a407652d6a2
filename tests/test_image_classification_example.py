"""examples/image_classification_from_scratch.py: keras.io's small Xception (SeparableConv2D
residual blocks, augmentation inside the model) on generated pictures read through
image_dataset_from_directory, with a checkpoint per epoch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_it_trains_on_generated_pictures(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "image_classification_from_scratch.py"),
         "--pictures", "48", "--image-size", "32", "--epochs", "1", "--batch-size", "16",
         "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Found 96 files belonging to 2 classes." in proc.stdout
    assert "Validation accuracy after 1 epochs" in proc.stdout
    assert (tmp_path / "save_at_1.npz").exists()
    assert len(list((tmp_path / "generated" / "disc").glob("*.png"))) == 48
