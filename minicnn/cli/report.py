"""`minicnn report RUN_DIR`: one self-contained HTML page about a training run.

From what `minicnn train` wrote into RUN_DIR (model.npz, dataset.txt, history.csv,
gradient_flow.csv) and the dataset's test images, the page shows: the test loss and accuracy,
the model summary, the training curves, the gradient flow per layer (gradient norms, update
ratios) and the activation statistics over the steps, the first layer's filters, the confusion
matrix, saliency and Grad-CAM for a few test images, and the misclassified ones. Every picture
is a PNG inside the page (a data: URI) and the styles are inline, so the file opens anywhere,
offline, and can be mailed as it is.
"""

from __future__ import annotations

import base64
import csv
import html
import os
import tempfile

import numpy as np

from minicnn import plots
from minicnn.callbacks import GradientFlow
from minicnn.cli.errors import CLIError

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
table.numbers td { padding: 0.2em 1.2em 0.2em 0; }
"""


def _history(path: str) -> dict[str, list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise CLIError(f"{path} has no epoch in it: was the run interrupted?")
    return {key: [float(r[key]) for r in rows] for key in rows[0] if key != "epoch"}


def _figure(title: str, png: str, caption: str) -> str:
    with open(png, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return (f"<figure><img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(run_dir: str, model, dataset, x_test: np.ndarray, y_test: np.ndarray,
                 out: str | None = None) -> str:
    """The page for the run in `run_dir`, written to `out` (default RUN_DIR/report.html)."""
    out = out or os.path.join(run_dir, "report.html")
    sections: list[str] = []
    names = list(dataset.class_names)
    probabilities = model.predict(x_test, batch_size=256, verbose=0)
    predicted = probabilities.argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    with tempfile.TemporaryDirectory() as tmp:
        def png(name: str) -> str:
            return os.path.join(tmp, f"{name}.png")

        history_csv = os.path.join(run_dir, "history.csv")
        if os.path.isfile(history_csv):
            plots.plot_history(_history(history_csv), png("history"))
            sections.append("<h2>Training</h2>" + _figure(
                "training curves", png("history"),
                "Loss and accuracy per epoch, training beside validation."))
        flow_csv = os.path.join(run_dir, "gradient_flow.csv")
        if os.path.isfile(flow_csv):
            flow = GradientFlow.from_csv(flow_csv)
            flow.plot(png("flow"), columns=("grad_norm", "update_ratio"))
            flow.plot(png("activations"), columns=("act_std", "zeros", "saturated"),
                      title="Activation statistics per layer")
            sections.append("<h2>Gradient flow</h2>" + _figure(
                "gradient flow", png("flow"),
                "Per layer over the training steps: |dL/dW| and the step's |dW| / |W| (log "
                "scale). Falling towards the first layers: a vanishing gradient.") + _figure(
                "activation statistics", png("activations"),
                "Per layer: the standard deviation of its output, the share of ReLU outputs "
                "at 0, the share of sigmoid or tanh outputs saturated."))
        plots.plot_filters(model, png("filters"))
        plots.plot_confusion_matrix(y_test, predicted, png("confusion"), class_names=names)
        sample = np.arange(min(4, len(x_test)))
        plots.plot_saliency(model, x_test[sample], png("saliency"), class_names=names)
        plots.plot_misclassified(x_test, y_test, predicted, png("misclassified"),
                                 probabilities=probabilities, class_names=names)
        sections.append("<h2>Inside the model</h2>" + _figure(
            "first-layer filters", png("filters"), "The first conv layer's kernels.")
            + _figure("saliency", png("saliency"),
                      "Which pixels made the prediction for the first test images: |dL/dx| "
                      "and Grad-CAM at the last conv layer (model.explain)."))
        sections.append("<h2>Results on the test set</h2>" + _figure(
            "confusion matrix", png("confusion"), "Rows: the true class; columns: the "
            "predicted one.") + _figure("misclassified", png("misclassified"),
                                        "Test images the model got wrong."))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>minicnn run: {html.escape(os.path.basename(os.path.abspath(run_dir)))}</title>
<style>{STYLE}</style></head>
<body>
<h1>Training run {html.escape(os.path.abspath(run_dir))}</h1>
<table class="numbers">
<tr><td>Dataset</td><td>{html.escape(dataset.title)}, {len(x_test)} test images</td></tr>
<tr><td>Test accuracy</td><td>{accuracy:.4f}</td></tr>
<tr><td>Model</td><td>{html.escape(model.name)}, {model.count_params():,} weights</td></tr>
</table>
<h2>Model</h2><pre>{html.escape(chr(10).join(lines))}</pre>
{"".join(sections)}
</body></html>
"""
    tmp_path = out + ".tmp"
    with open(tmp_path, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp_path, out)
    return out
