"""Pictures of a model and its training, written straight to PNG files.

Training: `plot_history` (accuracy and loss per epoch), `plot_gradient_norms` (per-layer gradient
norms over training), `plot_gradient_flow` (what callbacks.GradientFlow recorded, per step).
Inside the network: `plot_filters` (the first layer's kernels),
`plot_feature_maps` (what every conv layer outputs for one image), `plot_model`,
`plot_saliency` (saliency and Grad-CAM: which pixels made each prediction). Results:
`plot_predictions`, `plot_confusion_matrix` (its counts are `minicnn.metrics.confusion_matrix`),
`plot_misclassified`.

Each function draws on its own `matplotlib.figure.Figure` with the Agg canvas and never goes
through pyplot: nothing is shown, no global figure state is touched, and it works the same on a
laptop, a server without a display, or CI. Each takes the output path and returns it; showing a
picture is the caller's business.
"""

from minicnn.plots.images import plot_confusion_matrix, plot_misclassified, plot_predictions
from minicnn.plots.inside import plot_feature_maps, plot_filters, plot_model, plot_saliency
from minicnn.plots.training import plot_gradient_flow, plot_gradient_norms, plot_history

__all__ = [
    "plot_confusion_matrix",
    "plot_feature_maps",
    "plot_filters",
    "plot_gradient_flow",
    "plot_gradient_norms",
    "plot_history",
    "plot_misclassified",
    "plot_model",
    "plot_predictions",
    "plot_saliency",
]
