"""examples/notebooks/mnist_cnn.ipynb, the Keras MNIST notebook on minicnn: it is stored clean,
imports only minicnn in place of Keras, and runs top to bottom in a real Jupyter kernel.

The run goes through nbclient, as Jupyter runs a notebook, on a subset: the notebook's cells are
left as they are, and one cell is inserted after the one that loads MNIST to keep 3,000 training
and 1,000 test images and 2 epochs. It is marked `slow` and needs `MINICNN_DATA`.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebooks" / "mnist_cnn.ipynb"
DATA = os.environ.get("MINICNN_DATA")
needs_mnist = pytest.mark.skipif(
    not DATA or not os.path.isdir(DATA),
    reason="MINICNN_DATA is not set to a directory with the MNIST files")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CELL_TIMEOUT = 600  # seconds per cell; generous, the machine is shared

# The subset the run trains on, and what fit then prints: validation_split=0.1 keeps 2,700
# images to train on, in batches of the notebook's 128.
TRAIN_IMAGES, TEST_IMAGES, EPOCHS, BATCH_SIZE = 3000, 1000, 2, 128
STEPS = math.ceil(math.floor(TRAIN_IMAGES * 0.9) / BATCH_SIZE)
SUBSET_CELL = f"""\
# Inserted by tests/test_notebook.py: a short run on a subset, in this test's Python.
import sys
assert sys.prefix == {sys.prefix!r}, sys.prefix
train_images, train_labels = train_images[:{TRAIN_IMAGES}], train_labels[:{TRAIN_IMAGES}]
test_images, test_labels = test_images[:{TEST_IMAGES}], test_labels[:{TEST_IMAGES}]
epochs = {EPOCHS}"""
MIN_ACCURACY = 0.60  # examples/mnist_cnn.py's bar once 2,700 or more training images are seen


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def index_of(nb, text: str) -> int:
    """The index of the only code cell whose source contains `text`."""
    found = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and text in cell.source]
    assert len(found) == 1, f"expected one code cell with {text!r}, found cells {found}"
    return found[0]


def test_notebook_is_stored_valid_and_without_outputs():
    nb = read_notebook()
    nbformat.validate(nb)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source


def test_notebook_imports_minicnn_in_place_of_keras():
    nb = read_notebook()
    imports = [line.split("#")[0].strip() for cell in nb.cells if cell.cell_type == "code"
               for line in cell.source.splitlines()
               if line.startswith(("import ", "from "))]
    assert "from minicnn import layers, models" in imports
    assert "from minicnn.datasets import mnist" in imports
    assert not [line for line in imports if re.search(r"\b(keras|tensorflow)\b", line)], imports
    # The cells the test below relies on: the subset goes in after this one.
    index_of(nb, "mnist.load_data()")


def install_python_kernel(jupyter_dir: Path) -> str:
    """A kernelspec, under `jupyter_dir`, that starts ipykernel on this very interpreter.

    The kernelspec called "python3" may be any Python on this machine (a user-wide one wins over
    the venv's); this one, private to the test and found first through JUPYTER_PATH, names
    sys.executable, so the kernel imports what this test imports. Returns the kernel's name.
    """
    name = "minicnn-test-python"
    spec = jupyter_dir / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version.split()[0]} (minicnn test)", "language": "python"}))
    return name


def stream_text(cell, name: str = "stdout") -> str:
    return "".join(o.text for o in cell.outputs
                   if o.output_type == "stream" and o.name == name)


def pngs(cell) -> list[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in cell.outputs
            if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]


@pytest.mark.slow
@needs_mnist
def test_notebook_runs_in_a_jupyter_kernel(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    nb = read_notebook()
    nb.cells.insert(index_of(nb, "mnist.load_data()") + 1,
                    nbformat.v4.new_code_cell(SUBSET_CELL))
    kernel_name = install_python_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # The kernel inherits this environment: the minicnn under test first on its path (as pytest
    # has it), MNIST from the shared folder, TensorFlow (which visualkeras imports) without its
    # start-up logs.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [
        str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MINICNN_DATA", DATA)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    summary = stream_text(nb.cells[index_of(nb, "model.summary()")])
    assert "Total params: 93,322 (364.54 KB)" in summary, summary

    # verbose=1 in Jupyter: Keras 3's bar, redrawn in place with "\r" (the kernel's stdout is no
    # tty, but is recognized as Jupyter's), in colour, ending on the finished line.
    progress = stream_text(nb.cells[index_of(nb, "model.fit(")])
    for epoch in range(1, EPOCHS + 1):
        assert f"Epoch {epoch}/{EPOCHS}\n" in progress, progress
    finished = re.findall(rf"\r\x1b\[1m{STEPS}/{STEPS}\x1b\[0m \x1b\[32m━{{20}}\x1b\[0m"
                          r"\x1b\[37m\x1b\[0m \x1b\[1m\d+s\x1b\[0m \d+(?:ms|us)/step"
                          r" - accuracy: \d\.\d{4} - loss: \d\.\d{4}"
                          r" - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4} *\n", progress)
    assert len(finished) == EPOCHS, repr(progress)

    evaluation = stream_text(nb.cells[index_of(nb, "model.evaluate(")])
    accuracy = re.search(r"^Test accuracy: (\d\.\d{4})$", evaluation, re.M)
    assert accuracy and float(accuracy.group(1)) >= MIN_ACCURACY, evaluation

    # The pictures, inline as Jupyter shows them: visualkeras's drawing, the curves, and the
    # predictions with their images.
    for text in ("visualkeras.layered_view(", "plt.plot(history", "model.predict("):
        images = pngs(nb.cells[index_of(nb, text)])
        assert len(images) == 1, text
        assert images[0][:8] == PNG_SIGNATURE and len(images[0]) > 1000, text
