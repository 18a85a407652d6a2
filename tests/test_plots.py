"""The pictures of `minicnn.plots` for studying a model: each renders a real PNG, headless.

A picture is checked as a file (PNG signature, not tiny) and as an image read back (not one flat
colour); bad inputs give a ValueError that names the argument (the numbers behind the confusion
matrix are checked by hand in test_metrics.py). The model is the notebook's, untrained: the
pictures do not need it to be good. One test uses real MNIST digits and skips when $MINICNN_DATA
is not set. Drawing a figure of many panels takes seconds: those tests are marked `slow`, and the
quick loop keeps the argument checks and the small pictures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from minicnn import layers, plots
from minicnn.models import Sequential, mnist_cnn

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("MINICNN_DATA")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A figure with a title and one panel is several kB; an empty or broken file is far below this.
MIN_PNG_BYTES = 1000
SUBPROCESS_TIMEOUT = 300  # seconds; generous, the machine is shared

# Three classes, five of seven predictions right (test_metrics.py counts them by hand).
Y_TRUE = np.array([0, 1, 2, 2, 1, 0, 2])
Y_PRED = np.array([0, 2, 2, 1, 1, 0, 2])


def assert_picture(path) -> np.ndarray:
    """`path` is a PNG of some size whose pixels are not all one colour; returns its pixels."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > MIN_PNG_BYTES, f"{path} is suspiciously small ({len(data)} bytes)"
    pixels = matplotlib.image.imread(path)
    rgb = pixels[..., :3].reshape(-1, 3)
    assert len(np.unique(rgb, axis=0)) > 1, f"{path} is a single flat colour"
    return pixels


def test_assert_picture_can_fail(tmp_path):
    matplotlib.image.imsave(tmp_path / "flat.png", np.full((400, 400), 0.5), cmap="gray",
                            vmin=0, vmax=1)
    with pytest.raises(AssertionError, match="flat colour"):
        assert_picture(tmp_path / "flat.png")
    (tmp_path / "text.png").write_text("not a picture" * 100)
    with pytest.raises(AssertionError, match="not a PNG"):
        assert_picture(tmp_path / "text.png")


@pytest.fixture(scope="module")
def model():
    return mnist_cnn(seed=0)


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images (n, 28, 28) in [0, 1]: a bright bar whose position depends on the label (n,)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = rng.random((n, 28, 28)) * 0.1
    for image, label in zip(images, labels, strict=True):
        image[4:24, 2 + 2 * label:5 + 2 * label] = 1.0
    return images, labels


# -- the pictures --------------------------------------------------------------------------------
def test_plot_confusion_matrix(tmp_path):
    path = plots.plot_confusion_matrix(Y_TRUE, Y_PRED, tmp_path / "cm.png")
    assert path == str(tmp_path / "cm.png")
    assert_picture(path)
    names = ["zero", "one", "two"]
    assert_picture(plots.plot_confusion_matrix(np.eye(3)[Y_TRUE], np.eye(3)[Y_PRED],
                                               tmp_path / "cmn.png", class_names=names,
                                               normalize=True))
    with pytest.raises(ValueError, match=r"`num_classes`.*at least 3"):  # too few names
        plots.plot_confusion_matrix(Y_TRUE, Y_PRED, tmp_path / "x.png", class_names=names[:2])
    with pytest.raises(ValueError, match="at least one sample"):
        plots.plot_confusion_matrix([], [], tmp_path / "x.png")


@pytest.mark.slow
def test_plot_filters_of_a_model_a_layer_and_a_kernel(model, tmp_path):
    path = plots.plot_filters(model, tmp_path / "first.png")
    assert path == str(tmp_path / "first.png")
    assert_picture(path)
    # A kernel with several input channels: one channel's slices, or their mean.
    kernel = np.random.default_rng(0).normal(size=(5, 5, 4, 6))
    assert_picture(plots.plot_filters(kernel, tmp_path / "channel.png", channel=3))
    assert_picture(plots.plot_filters(kernel, tmp_path / "mean.png"))


def test_plot_filters_rejects_what_has_no_conv_kernel(model, tmp_path):
    dense_only = Sequential([layers.Flatten(input_shape=(28, 28, 1)), layers.Dense(10)])
    with pytest.raises(ValueError, match=r"`layer_or_model`.*\['Flatten', 'Dense'\]"):
        plots.plot_filters(dense_only, tmp_path / "x.png")
    with pytest.raises(ValueError, match="has no weights yet"):
        plots.plot_filters(layers.Conv2D(4, 3), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`layer_or_model`.*\(3, 3, 4\)"):
        plots.plot_filters(np.zeros((3, 3, 4)), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`channel`.*\[0, 32\).*channel=32"):
        plots.plot_filters(model.layers[2], tmp_path / "x.png", channel=32)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_plot_feature_maps(model, tmp_path):
    images, _ = synthetic_digits(1)
    image = images[0, :, :, None].astype(np.float32)  # (28, 28, 1)
    before = model.predict(image[None])
    path = plots.plot_feature_maps(model, image, tmp_path / "maps.png")
    assert path == str(tmp_path / "maps.png")
    assert_picture(path)
    # Running the layers one by one changes nothing in the model.
    np.testing.assert_array_equal(model.predict(image[None]), before)
    # A batch of one, uint8 pixels, and fewer maps than a layer has.
    uint8 = (image[None] * 255).astype(np.uint8)
    assert_picture(plots.plot_feature_maps(model, uint8, tmp_path / "few.png", max_maps=3))


def test_plot_feature_maps_rejects_bad_inputs(model, tmp_path):
    images, _ = synthetic_digits(2)
    with pytest.raises(ValueError, match=r"`image`.*\(2, 28, 28, 1\)"):
        plots.plot_feature_maps(model, images[..., None], tmp_path / "x.png")
    with pytest.raises(ValueError, match="expected shape"):  # the first layer's own check
        plots.plot_feature_maps(model, images[0, :20, :20, None], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`max_maps`.*max_maps=0"):
        plots.plot_feature_maps(model, images[0, :, :, None], tmp_path / "x.png", max_maps=0)
    dense_only = Sequential([layers.Flatten(input_shape=(28, 28, 1)), layers.Dense(10)])
    with pytest.raises(ValueError, match=r"`model`.*one Conv2D"):
        plots.plot_feature_maps(dense_only, images[0, :, :, None], tmp_path / "x.png")


@pytest.mark.slow
def test_plot_gradient_norms(tmp_path):
    rng = np.random.default_rng(0)
    norms = {f"{layer}/{param}": np.exp(rng.normal(size=5)) * scale
             for layer, scale in [("conv2d", 1.0), ("dense", 30.0)]
             for param in ("kernel", "bias")}
    path = plots.plot_gradient_norms(norms, tmp_path / "norms.png")
    assert path == str(tmp_path / "norms.png")
    assert_picture(path)
    # A disconnected layer (zero norms cannot go on a log axis), per-step records over 2 epochs,
    # explicit epochs, and nothing but zeros.
    norms["conv2d_1"] = [0.0] * 5
    assert_picture(plots.plot_gradient_norms(norms, tmp_path / "zero.png"))
    per_step = {"conv2d": np.exp(rng.normal(size=40)), "dense": np.exp(rng.normal(size=40))}
    assert_picture(plots.plot_gradient_norms(per_step, tmp_path / "steps.png", epochs=2))
    assert_picture(plots.plot_gradient_norms({"conv2d": [0.5, 0.25]}, tmp_path / "at.png",
                                             epochs=[0.5, 1.0]))
    assert_picture(plots.plot_gradient_norms({"conv2d": [0.0, 0.0]}, tmp_path / "none.png"))


@pytest.mark.parametrize(("norms", "epochs", "message"), [
    ({}, None, "`norms`.*non-empty mapping"),
    ({"conv2d": [1.0, -1.0]}, None, "`norms`.*non-negative.*'conv2d'"),
    ({"conv2d": []}, None, "`norms`.*non-empty sequence"),
    ({"conv2d": [1.0, 2.0]}, [1, 2, 3], r"`epochs`.*lengths \[2\]"),
])
def test_plot_gradient_norms_rejects_bad_inputs(norms, epochs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        plots.plot_gradient_norms(norms, tmp_path / "x.png", epochs=epochs)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["float (N, 28, 28, 1)", "uint8 (N, 28, 28)"])
def test_plot_misclassified(form, tmp_path):
    images, labels = synthetic_digits(40)
    if form.startswith("uint8"):
        images = (images * 255).astype(np.uint8)
    else:
        images = images[..., None]
    predicted = labels.copy()
    predicted[::3] = (labels[::3] + 1) % 10  # 14 mistakes
    probabilities = np.full((40, 10), 0.02)
    probabilities[np.arange(40), predicted] = 0.82
    path = plots.plot_misclassified(images, labels, probabilities, tmp_path / "wrong.png",
                                    max_images=9, probabilities=probabilities)
    assert path == str(tmp_path / "wrong.png")
    assert_picture(path)
    assert_picture(plots.plot_misclassified(images, np.eye(10)[labels], predicted,
                                            tmp_path / "plain.png", max_images=3))


def test_plot_misclassified_with_no_mistakes_says_so(tmp_path):
    images, labels = synthetic_digits(5)
    path = plots.plot_misclassified(images, labels, labels, tmp_path / "none.png")
    pixels = assert_picture(path)
    height, width = pixels.shape[:2]
    assert width > 2 * height  # one wide text panel, not a grid of digits


def test_plot_misclassified_rejects_bad_inputs(tmp_path):
    images, labels = synthetic_digits(5)
    with pytest.raises(ValueError, match=r"`images` and `y_true`.*5 images and 4 labels"):
        plots.plot_misclassified(images, labels[:4], labels[:4], tmp_path / "x.png")
    with pytest.raises(ValueError, match="`y_true` and `y_pred`"):
        plots.plot_misclassified(images, labels, labels[:4], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`images`.*\(5, 28, 28, 2\)"):  # neither gray nor RGB
        plots.plot_misclassified(np.stack([images] * 2, -1), labels, labels, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"`probabilities`.*\(5, 3\)"):
        plots.plot_misclassified(images, labels, labels, tmp_path / "x.png",
                                 probabilities=np.ones((5, 3)))
    with pytest.raises(ValueError, match="`max_images`"):
        plots.plot_misclassified(images, labels, (labels + 1) % 10, tmp_path / "x.png",
                                 max_images=0)


@pytest.mark.slow
@pytest.mark.skipif(not DATA or not os.path.isdir(DATA),
                    reason="MINICNN_DATA is not set to a directory with the MNIST files")
def test_pictures_of_real_digits(model, tmp_path):
    from minicnn.datasets import mnist

    _, (x_test, y_test) = mnist.load_data()
    x, y = x_test[:200], y_test[:200]  # uint8 (200, 28, 28), as the files hold them
    probabilities = model.predict(x[..., None] / 255)
    assert_picture(plots.plot_feature_maps(model, x[0, :, :, None] / 255, tmp_path / "maps.png",
                                           max_maps=4))
    assert_picture(plots.plot_confusion_matrix(y, probabilities, tmp_path / "cm.png"))
    assert_picture(plots.plot_misclassified(x, y, probabilities, tmp_path / "wrong.png",
                                            max_images=9, probabilities=probabilities))


@pytest.mark.slow
def test_pictures_need_no_display_and_no_pyplot(tmp_path):
    """In a fresh interpreter with no display and an interactive backend asked for, the pictures
    still render, and pyplot (global figure state, windows) is never imported."""
    script = f"""
import sys
import numpy as np
from minicnn import plots
plots.plot_confusion_matrix([0, 1, 1], [0, 1, 0], {str(tmp_path / "cm.png")!r})
plots.plot_gradient_norms({{"dense": [1.0, 0.5]}}, {str(tmp_path / "norms.png")!r})
plots.plot_filters(np.ones((3, 3, 1, 2)), {str(tmp_path / "filters.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "plots imported pyplot"
"""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "TkAgg"  # would need a display, were it ever used
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("cm.png", "norms.png", "filters.png"):
        assert_picture(tmp_path / name)


def test_colour_images_and_class_names(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((4, 32, 32, 3)).astype(np.float32)  # CIFAR-10-like, RGB in [0, 1]
    labels = np.array([0, 1, 2, 3])
    probabilities = np.eye(10)[[0, 2, 2, 5]]  # two mistakes
    names = [f"class {k}" for k in range(10)]
    assert_picture(plots.plot_predictions(images, labels, probabilities, tmp_path / "p.png",
                                          class_names=names))
    assert_picture(plots.plot_misclassified((images * 255).astype(np.uint8), labels,
                                            probabilities, tmp_path / "m.png", class_names=names))
    with pytest.raises(ValueError, match=r"`class_names`\. Expected 10 names\. Received 3"):
        plots.plot_predictions(images, labels, probabilities, tmp_path / "q.png",
                               class_names=names[:3])
