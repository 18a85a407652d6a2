"""model.explain: saliency (|dL/dx|) and Grad-CAM from one pass, against central differences
and TensorFlow's GradientTape from the same weights; plots.plot_saliency; predict --explain."""

from __future__ import annotations

import re

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers, plots
from minicnn.cli import main
from minicnn.models.explain import _resize
from tests.tolerances import TF_GRAD_ATOL, TF_GRAD_RTOL


def classifier(seed=0, head="softmax", channels=2):
    inputs = keras.Input((9, 9, channels))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.Conv2D(5, 3, activation="tanh", name="last_conv")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(3, activation=head)(x)
    keras.utils.set_random_seed(seed)
    return keras.Model(inputs, outputs)


def images(n=3, seed=1, channels=2):
    return np.random.default_rng(seed).standard_normal((n, 9, 9, channels)).astype(np.float32)


@pytest.mark.parametrize("head", ["softmax", None])
def test_saliency_is_the_input_gradient_of_minus_log_p(head):
    """Central differences of -log p_label in float64, for every pixel and channel: the
    saliency is their largest magnitude over the channels."""
    model = classifier(head=head).set_dtype(np.float64)
    x = images().astype(np.float64)
    labels = np.array([0, 2, 1])
    e = model.explain(x, labels=labels)

    def minus_log_p(xx):
        out = model.predict(xx, verbose=0)
        if head is None:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return -np.log(out[np.arange(len(out)), labels])

    grad = np.zeros_like(x)
    eps = 1e-6
    for index in np.ndindex(x.shape[1:]):
        up, down = x.copy(), x.copy()
        up[(slice(None), *index)] += eps
        down[(slice(None), *index)] -= eps
        grad[(slice(None), *index)] = (minus_log_p(up) - minus_log_p(down)) / (2 * eps)
    np.testing.assert_allclose(e.saliency, np.abs(grad).max(axis=-1), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(model.explain(x).labels, e.probabilities.argmax(axis=1))


def test_grad_cam_and_saliency_agree_with_tensorflow():
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is the oracle of this test")
    import keras as tf_keras

    model = classifier(seed=4)
    x = images(4, seed=2)
    e = model.explain(x)
    twin = keras.models.to_keras(model)
    probe = tf_keras.Model(twin.inputs, [twin.get_layer("last_conv").output, twin.outputs[0]])
    xv = tf.Variable(x)
    with tf.GradientTape(persistent=True) as tape:
        A, p = probe(xv)
        log_p = tf.math.log(tf.gather(p, e.labels, axis=1, batch_dims=1))
    dA = tape.gradient(log_p, A).numpy()  # d log p / dA = -dL/dA
    dx = tape.gradient(log_p, xv).numpy()
    cam = np.maximum(np.einsum("nhwk,nk->nhw", A.numpy(), dA.mean(axis=(1, 2))), 0)
    cam = _resize(cam.astype(np.float64), 9, 9)
    cam /= cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
    np.testing.assert_allclose(e.grad_cam, cam, atol=TF_GRAD_ATOL + TF_GRAD_RTOL)
    saliency = np.abs(dx).max(axis=-1)
    np.testing.assert_allclose(e.saliency, saliency,
                               atol=TF_GRAD_ATOL + TF_GRAD_RTOL * saliency.max())
    assert e.layer == "last_conv" and e.grad_cam.min() >= 0 and e.grad_cam.max() == 1


def test_explain_leaves_the_model_alone_and_names_bad_layers():
    model = classifier()
    x = images()
    before = [w.copy() for w in model.get_weights()]
    model.explain(x, layer="last_conv")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    with pytest.raises(ValueError, match="no Conv2D layer named 'dense'"):
        model.explain(x, layer="dense")
    with pytest.raises(ValueError, match="one label per image"):
        model.explain(x, labels=[1, 2])


def test_plot_saliency_writes_a_png(tmp_path):
    for channels in (1, 3):  # gray and colour
        path = plots.plot_saliency(classifier(channels=channels), images(2, channels=channels),
                                   tmp_path / f"s{channels}.png", class_names=["a", "b", "c"])
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_predict_explain_in_the_cli(capsys, tmp_path):
    model = keras.models.mnist_cnn(seed=0)
    model.save(tmp_path / "m.npz")
    picture = tmp_path / "digit.png"
    import matplotlib.image

    canvas = np.zeros((28, 28))
    canvas[6:22, 13:15] = 1.0
    matplotlib.image.imsave(picture, canvas, cmap="gray")
    code = main(["predict", str(tmp_path / "m.npz"), str(picture), "--explain",
                 str(tmp_path / "why.png")])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"Saliency and Grad-CAM saved to .*why\.png", out)
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
