"""The `minicnn` command line, end to end, and the PNG pictures of `minicnn.plots`.

Most commands run in-process through `main(argv)`; `train` runs once per module in a subprocess,
as a user runs it, which also keeps visualkeras's TensorFlow out of the test process. The tests
that start a subprocess, or use what `train` saved, are marked `slow`. Tests that need the real
MNIST files skip when $MINICNN_DATA does not point at them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from minicnn import __version__, layers, models, plots
from minicnn.callbacks import History
from minicnn.cli import main
from minicnn.datasets.images import read_digit_image
from tests.tolerances import (
    EXACT_PIXEL_ATOL,
    PNG_PIXEL_ATOL,
    PNG_PROBABILITY_ATOL,
    PRINTED_SUM_ATOL,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("MINICNN_DATA")
needs_mnist = pytest.mark.skipif(
    not DATA or not os.path.isdir(DATA),
    reason="MINICNN_DATA is not set to a directory with the MNIST files")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What `fit(verbose=2)` prints after each epoch, as Keras does.
EPOCH_LINE = re.compile(r"^\d+/\d+ - \d+s - loss: \d\.\d{4} - accuracy: \d\.\d{4} - val_loss: .*"
                        r" - \d+s/epoch - \d+m?s/step$")
SUMMARY_FOOTER = (" Total params: 93,322 (364.54 KB)\n"
                  " Trainable params: 93,322 (364.54 KB)\n"
                  " Non-trainable params: 0 (0.00 B)\n")
SUBPROCESS_TIMEOUT = 900  # seconds; generous, the machine is shared


def assert_png(path: Path) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > 1000, f"{path} is suspiciously small ({len(data)} bytes)"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """main(argv) in-process: (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def predicted_digit(out: str) -> int:
    match = re.search(r"^Predicted digit: (\d) \(probability (0\.\d{4}|1\.0000)\)$", out, re.M)
    assert match, out
    return int(match.group(1))


def probabilities(out: str) -> np.ndarray:
    rows = re.findall(r"^  (\d): (\d\.\d{4})", out, re.M)
    assert [int(d) for d, _ in rows] == list(range(10)), out
    return np.array([float(p) for _, p in rows])


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory) -> str:
    """The notebook's model, untrained, saved: enough for everything but accuracy."""
    path = tmp_path_factory.mktemp("untrained") / "model.npz"
    models.mnist_cnn(seed=0).save(path)
    return str(path)


# -- help, version, usage errors -----------------------------------------------------------------
@pytest.mark.parametrize("command, expected", [
    ([], ["train", "evaluate", "predict", "summary", "--version"]),
    (["train"], ["--epochs", "--batch-size", "--data", "--out", "--seed", "--validation-split",
                 "--limit", "--verbose"]),
    (["evaluate"], ["MODEL", "--data", "--batch-size", "--custom-objects"]),
    (["predict"], ["MODEL", "IMAGE", "--index", "--data", "--custom-objects"]),
    (["summary"], ["MODEL", "--custom-objects"]),
])
def test_help_of_each_command(capsys, command, expected):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: minicnn {' '.join(command)}".rstrip())
    for option in expected:
        assert option in out


def test_version(capsys):
    assert run(capsys, "--version")[:2] == (0, f"minicnn {__version__}\n")


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and out.startswith("usage: minicnn")


@pytest.mark.slow
def test_help_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "minicnn.cli", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "predict" in proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("minicnn") is None, reason="the minicnn script is not on PATH")
def test_console_script():
    proc = subprocess.run(["minicnn", "--version"], capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT)
    assert (proc.returncode, proc.stdout) == (0, f"minicnn {__version__}\n")


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "argument --epochs: expected a strictly positive integer"),
    (["train", "--validation-split", "1.5"], "argument --validation-split: expected a number"),
    (["predict", "m.npz"], "one of the arguments IMAGE --index is required"),
    (["predict", "m.npz", "x.png", "--index", "3"], "not allowed with argument"),
    (["predict", "m.npz", "--index", "-1"], "argument --index: expected an integer >= 0"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


# -- summary -------------------------------------------------------------------------------------
def test_summary_of_the_notebook_model(capsys):
    code, out, _ = run(capsys, "summary")
    assert code == 0
    assert out.startswith('Model: "sequential')
    assert out.endswith(SUMMARY_FOOTER)


def test_summary_of_a_saved_model(capsys, untrained_model):
    code, out, _ = run(capsys, "summary", untrained_model)
    assert code == 0 and out.endswith(SUMMARY_FOOTER)


# -- errors name the file, without a traceback ---------------------------------------------------
@pytest.mark.parametrize("command", [["evaluate"], ["predict", "--index", "0"], ["summary"]])
def test_missing_model_file(capsys, tmp_path, command):
    missing = str(tmp_path / "missing.npz")
    code, _, err = run(capsys, command[0], missing, *command[1:])
    assert code == 1
    assert missing in err and "does not exist" in err and "Traceback" not in err


def test_corrupt_model_file(capsys, tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    code, _, err = run(capsys, "evaluate", str(corrupt))
    assert code == 1
    assert str(corrupt) in err and "corrupt" in err and "Traceback" not in err


def _unusable_model_files(directory: Path, model: str) -> dict[str, Path]:
    """Model files a careless or hostile user could hand the CLI, each unusable differently."""
    with np.load(model) as npz:
        arrays = {key: npz[key] for key in npz.files}
    architecture = json.loads(str(arrays["architecture"]))
    files = {"npy": directory / "weights.npy", "nested": directory / "nested.npz",
             "float16": directory / "half.npz", "filters": directory / "huge.npz"}
    np.save(files["npy"], arrays["weight/0"])
    np.savez(files["nested"], **{**arrays, "architecture": np.array("[" * 10**5 + "]" * 10**5)})
    np.savez(files["float16"], **{key: a.astype(np.float16) if key.startswith("weight/") else a
                                  for key, a in arrays.items()})
    architecture["layers"][0]["config"]["filters"] = 10**9
    np.savez(files["filters"], **{**arrays, "architecture": np.array(json.dumps(architecture))})
    return files


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "--index", "0"], ["summary"]])
def test_unusable_model_files_are_one_line_errors(capsys, tmp_path, untrained_model, command):
    expected = {"npy": "is a .npy file", "nested": "JSON is nested too deeply",
                "float16": "of dtype float16", "filters": "creates a kernel of shape (3, 3, 1, "
                                                          "1000000000)"}
    for flaw, path in _unusable_model_files(tmp_path, untrained_model).items():
        code, _, err = run(capsys, command[0], str(path), *command[1:])
        assert code == 1, flaw
        assert err.startswith(f"minicnn {command[0]}: error: ") and err.count("\n") == 1, err
        assert str(path) in err and expected[flaw] in err, err


# -- models with layers of their own: --custom-objects -------------------------------------------
CUSTOM_LAYERS = """
import numpy as np
from minicnn.layers import Layer


class Scale(Layer):
    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}

    def forward(self, x, training=False):
        return x * np.asarray(self.factor, x.dtype)

    def backward(self, dout):
        return dout * np.asarray(self.factor, dout.dtype)
"""


@pytest.fixture
def custom_model(tmp_path):
    """A model with a layer of its own, Scale(3.0), saved next to the file defining Scale."""
    source = tmp_path / "minicnn_test_layers.py"
    source.write_text(CUSTOM_LAYERS)
    spec = importlib.util.spec_from_file_location("minicnn_test_layers_defining", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = models.Sequential([layers.Flatten(input_shape=(28, 28, 1)), module.Scale(3.0),
                               layers.Dense(10, activation="softmax")], seed=0)
    model.save(tmp_path / "custom.npz")
    yield model, tmp_path / "custom.npz", source
    sys.modules.pop("minicnn_test_layers", None)


def test_a_custom_layer_needs_the_module_that_defines_it(capsys, custom_model):
    _, path, _ = custom_model
    code, _, err = run(capsys, "summary", str(path))
    assert code == 1 and err.count("\n") == 1
    assert "unknown layer class 'Scale'" in err and "--custom-objects FILE.py" in err


def test_custom_objects_from_a_file_or_a_module(capsys, custom_model, tmp_path, monkeypatch):
    model, path, source = custom_model
    code, out, _ = run(capsys, "summary", str(path), "--custom-objects", str(source))
    assert code == 0 and " (Scale) " in out
    image = tmp_path / "digit.png"
    canvas = np.zeros((28, 28))
    canvas[6:22, 13:15] = 1.0
    matplotlib.image.imsave(image, canvas, cmap="gray")
    expected = model.predict(read_digit_image(image)[None, ..., None])[0]  # Scale(3.0) inside
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "predict", "custom.npz", "digit.png",
                       "--custom-objects", "minicnn_test_layers")
    assert code == 0
    assert np.allclose(probabilities(out), expected, atol=PNG_PROBABILITY_ATOL)


def test_a_custom_objects_file_named_like_a_module_in_use_shadows_nothing(capsys, custom_model,
                                                                          tmp_path):
    _, path, source = custom_model
    named_like_json = tmp_path / "json.py"
    named_like_json.write_text(source.read_text())
    code, out, _ = run(capsys, "summary", str(path), "--custom-objects", str(named_like_json))
    assert code == 0 and " (Scale) " in out
    assert sys.modules["json"] is json and json.dumps([1]) == "[1]"
    sys.modules.pop("minicnn_custom_objects.json")


def test_custom_objects_errors_are_one_line(capsys, custom_model, tmp_path):
    _, path, _ = custom_model
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "no_layers.py").write_text("x = 1\n")
    for source, message in [(tmp_path / "none.py", "custom objects file '{}' does not exist"),
                            (tmp_path / "broken.py", "from '{}': RuntimeError: boom"),
                            (tmp_path / "no_layers.py", "'{}' defines no Layer or Optimizer"),
                            ("no_such_module_here", "ModuleNotFoundError")]:
        code, _, err = run(capsys, "summary", str(path), "--custom-objects", str(source))
        assert code == 1 and err.count("\n") == 1, err
        assert message.format(source) in err, err


def test_missing_data_directory(capsys, tmp_path, untrained_model):
    for argv in (["train", "--out", str(tmp_path / "out")], ["evaluate", untrained_model],
                 ["predict", untrained_model, "--index", "0"]):
        code, _, err = run(capsys, *argv, "--data", "/nonexistent")
        assert code == 1, argv
        assert "'/nonexistent'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written before the data is there


def test_unreadable_image(capsys, tmp_path, untrained_model):
    bad = tmp_path / "digit.png"
    bad.write_bytes(b"not a picture")
    code, _, err = run(capsys, "predict", untrained_model, str(bad))
    assert code == 1
    assert str(bad) in err and "Traceback" not in err
    code, _, err = run(capsys, "predict", untrained_model, str(tmp_path / "none.png"))
    assert code == 1 and "none.png' does not exist" in err


def test_predict_on_a_picture(capsys, tmp_path, untrained_model):
    image = tmp_path / "digit.png"
    canvas = np.zeros((28, 28))
    canvas[6:22, 13:15] = 1.0  # a "1"
    matplotlib.image.imsave(image, canvas, cmap="gray")
    code, out, _ = run(capsys, "predict", untrained_model, str(image))
    assert code == 0
    assert out.startswith(f"Image {image}\n")
    assert 0 <= predicted_digit(out) <= 9
    assert probabilities(out).sum() == pytest.approx(1.0, abs=PRINTED_SUM_ATOL)


# -- pictures to model inputs: minicnn.datasets.images -------------------------------------------
def test_read_digit_image_inverts_a_light_background(tmp_path):
    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28))
    digit[5:23, 8:20] = rng.random((18, 12))
    matplotlib.image.imsave(tmp_path / "dark.png", digit, cmap="gray", vmin=0, vmax=1)
    matplotlib.image.imsave(tmp_path / "light.png", 1 - digit, cmap="gray", vmin=0, vmax=1)
    dark, light = read_digit_image(tmp_path / "dark.png"), read_digit_image(tmp_path / "light.png")
    assert dark.shape == (28, 28) and dark.dtype == np.float32
    assert np.allclose(dark, digit, atol=PNG_PIXEL_ATOL)
    assert np.allclose(light, digit, atol=PNG_PIXEL_ATOL)


def test_read_digit_image_transparent_page_and_resizing(tmp_path):
    digit = np.zeros((28, 28))
    digit[4:24, 12:16] = 1.0
    # 4x larger, black ink on a transparent page (alpha is the ink): block means shrink it back.
    big = np.kron(digit, np.ones((4, 4)))
    rgba = np.zeros((112, 112, 4))
    rgba[..., 3] = big
    matplotlib.image.imsave(tmp_path / "big.png", rgba)
    assert np.allclose(read_digit_image(tmp_path / "big.png"), digit, atol=EXACT_PIXEL_ATOL)
    # Half size and not square: padded to a square with black, then each pixel repeated.
    small = digit[::2, 4:24:2]  # (14, 10)
    matplotlib.image.imsave(tmp_path / "small.png", small, cmap="gray", vmin=0, vmax=1)
    expected = np.kron(np.pad(small, ((0, 0), (2, 2))), np.ones((2, 2)))
    assert np.allclose(read_digit_image(tmp_path / "small.png"), expected, atol=EXACT_PIXEL_ATOL)


def test_read_digit_image_errors_are_the_ones_predict_reports(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^image file '.*none\.png' does not exist$"):
        read_digit_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(ValueError, match=r"^cannot read image '.*bad\.png': "):
        read_digit_image(tmp_path / "bad.png")


def png(path: Path, width: int, height: int, bits: int, pixel_rows: bytes) -> Path:
    """A gray PNG, built by hand: `pixel_rows` are the filtered rows, already deflated."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bits, 0, 0, 0, 0)  # gray, no interlace
    path.write_bytes(PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", pixel_rows)
                     + chunk(b"IEND", b""))
    return path


def black_png(path: Path, width: int, height: int) -> Path:
    """A black 8-bit gray PNG of any size, about width * height / 1000 bytes, built without
    holding its pixels: deflate blocks ended by a full flush do not refer back, so one row's
    block is repeated; the Adler-32 of n zero bytes is (n mod 65521) << 16 | 1."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    row = bytes(1 + width)  # filter type 0, then the pixels
    block = deflate.compress(row) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush(zlib.Z_FINISH)
    n = len(row) * height
    stream = b"\x78\x01" + block * height + end + struct.pack(">I", (n % 65521) << 16 | 1)
    return png(path, width, height, 8, stream)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if Pillow decodes any pixel data."""
    from PIL import ImageFile

    def load(self):
        raise AssertionError(f"{self.size} pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_black_png_is_a_valid_png(tmp_path):
    image = read_digit_image(black_png(tmp_path / "black.png", 300, 200))
    assert image.shape == (28, 28) and not image.any()


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, no_decoding):
    """20000x20000 pixels in a 0.6 MB file: 400 MB decoded, 6 GB as the old reader's floats."""
    bomb = black_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 10**6
    with pytest.raises(ValueError, match=r"^image '.*bomb\.png' is too large to read: Image "
                                         r"size \(400000000 pixels\) exceeds limit"):
        read_digit_image(bomb)


def test_a_picture_over_max_pixels_is_refused_from_its_header(tmp_path, no_decoding):
    big = black_png(tmp_path / "big.png", 4097, 4096)
    with pytest.raises(ValueError, match=r"^image '.*big\.png' is 4097x4096 pixels, more than "
                                         r"the 16,777,216 minicnn reads \(MAX_PIXELS\)"):
        read_digit_image(big)


def test_predict_reports_an_image_bomb_in_one_line(capsys, tmp_path, untrained_model):
    bomb = black_png(tmp_path / "bomb.png", 20000, 20000)
    code, out, err = run(capsys, "predict", untrained_model, str(bomb))
    assert code == 1 and out == ""
    assert err.startswith(f"minicnn predict: error: image '{bomb}' is too large to read")
    assert err.count("\n") == 1


@pytest.mark.parametrize("bits", [1, 2, 4, 16])
def test_low_and_high_bit_depth_gray_pngs_read_in_0_1(tmp_path, bits):
    """Each level of a 1-, 2-, 4- or 16-bit gray PNG reads as level / (2**bits - 1) (inverted
    above 0.5, by the light-page rule). The old reader gave 2- and 4-bit PNGs values up to 85."""
    levels = range(2**bits) if bits < 16 else [0, 1, 2**15, 2**16 - 1]
    for level in levels:
        if bits == 16:
            row = np.full(8, level, ">u2").tobytes()
        else:  # 8 pixels of `bits` bits each, packed into whole bytes
            row = np.packbits([(level >> k) & 1 for k in reversed(range(bits))] * 8).tobytes()
        path = png(tmp_path / f"gray{bits}-{level}.png", 8, 8, bits,
                   zlib.compress((b"\x00" + row) * 8))
        value = level / (2**bits - 1)
        expected = value if value <= 0.5 else 1.0 - value
        np.testing.assert_allclose(read_digit_image(path), np.full((28, 28), expected),
                                   atol=EXACT_PIXEL_ATOL)


# -- minicnn.plots, headless ---------------------------------------------------------------------
def test_plot_history_from_a_history_or_its_dict(tmp_path):
    history = History()
    for epoch, (loss, acc) in enumerate([(0.5, 0.8), (0.3, 0.9), (0.2, 0.95)]):
        history.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": loss + 0.05,
                                     "val_accuracy": acc - 0.02})
    assert plots.plot_history(history, tmp_path / "a.png") == str(tmp_path / "a.png")
    assert_png(tmp_path / "a.png")
    plots.plot_history({"loss": [1.0]}, tmp_path / "b.png")  # one epoch, no metrics
    assert_png(tmp_path / "b.png")
    with pytest.raises(ValueError, match="argument `history`"):
        plots.plot_history({"accuracy": [0.5]}, tmp_path / "c.png")


def test_plot_predictions(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((4, 28, 28, 1))
    probs = rng.dirichlet(np.ones(10), size=4)
    path = plots.plot_predictions(images, np.eye(10)[[1, 2, 3, 4]], probs, tmp_path / "p.png")
    assert path == str(tmp_path / "p.png")
    assert_png(tmp_path / "p.png")
    with pytest.raises(ValueError, match="one label"):
        plots.plot_predictions(images, [1, 2], probs, tmp_path / "q.png")


def test_plot_model_without_visualkeras(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "visualkeras", None)  # makes `import visualkeras` fail
    assert plots.plot_model(models.mnist_cnn(), tmp_path / "m.png") is None
    assert not (tmp_path / "m.png").exists()


# -- on MNIST: train, then use the saved model ---------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """One short `minicnn train` run in a subprocess: (its output directory, its stdout)."""
    if not DATA or not os.path.isdir(DATA):
        pytest.skip("MINICNN_DATA is not set to a directory with the MNIST files")
    out = tmp_path_factory.mktemp("train")
    proc = subprocess.run(
        [sys.executable, "-m", "minicnn.cli", "train", "--epochs", "1", "--limit", "2000",
         "--out", str(out), "--data", DATA, "--seed", "0"],
        cwd=ROOT, env={**os.environ, "MPLBACKEND": "Agg"}, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


@pytest.mark.slow
@needs_mnist
def test_train_output_and_files(trained):
    out, stdout = trained
    assert SUMMARY_FOOTER in stdout
    assert "Training on 1800 MNIST images, validating on 200; seed 0" in stdout
    epoch_lines = [line for line in stdout.splitlines() if EPOCH_LINE.match(line)]
    assert len(epoch_lines) == 1 and epoch_lines[0].startswith("15/15 - "), stdout
    assert re.search(r"^Test accuracy: 0\.\d{4}$", stdout, re.M)
    assert len(re.findall(r"^  test image \d: predicted \d \(probability \d\.\d{4}\), label \d$",
                          stdout, re.M)) == 3
    header, *rows = (out / "history.csv").read_text().splitlines()
    assert header == "epoch,loss,accuracy,val_loss,val_accuracy" and len(rows) == 1
    for name in ("history.png", "predictions.png", "filters.png", "confusion.png",
                 "misclassified.png"):
        assert_png(out / name)
    if "model.png" in stdout.splitlines()[-1]:  # written when visualkeras is installed
        assert_png(out / "model.png")
    assert models.load_model(out / "model.npz").count_params() == 93_322


@pytest.mark.slow
@needs_mnist
def test_evaluate_matches_the_training_run(capsys, trained):
    out, stdout = trained
    code, evaluated, _ = run(capsys, "evaluate", str(out / "model.npz"), "--data", DATA)
    assert code == 0
    accuracy = re.compile(r"^Test accuracy: (0\.\d{4})$", re.M)
    assert accuracy.search(evaluated).group(1) == accuracy.search(stdout).group(1)


@pytest.mark.slow
@needs_mnist
def test_predict_index_and_the_same_image_as_png(capsys, trained, tmp_path):
    model = str(trained[0] / "model.npz")
    code, out, _ = run(capsys, "predict", model, "--index", "0", "--data", DATA)
    assert code == 0
    assert out.startswith("Test image 0, label 7\n")
    digit, probs = predicted_digit(out), probabilities(out)
    assert probs.sum() == pytest.approx(1.0, abs=PRINTED_SUM_ATOL)

    from minicnn.datasets import mnist

    _, (x_test, _) = mnist.load_data(DATA)
    matplotlib.image.imsave(tmp_path / "test0.png", x_test[0], cmap="gray", vmin=0, vmax=255)
    matplotlib.image.imsave(tmp_path / "test0_paper.png", 255 - x_test[0], cmap="gray",
                            vmin=0, vmax=255)
    for name in ("test0.png", "test0_paper.png"):  # as MNIST, and dark ink on a white page
        code, out, _ = run(capsys, "predict", model, str(tmp_path / name))
        assert code == 0
        assert predicted_digit(out) == digit
        assert np.allclose(probabilities(out), probs, atol=PNG_PROBABILITY_ATOL)


@pytest.mark.slow
@needs_mnist
def test_predict_index_out_of_range(capsys, trained):
    code, _, err = run(capsys, "predict", str(trained[0] / "model.npz"), "--index", "10000",
                       "--data", DATA)
    assert code == 2 and "--index 10000 is out of range" in err
