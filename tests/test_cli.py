"""The `minicnn` command line, end to end, and the PNG pictures of `minicnn.plots`.

Most commands run in-process through `main(argv)`. `train` on MNIST runs once per module in a
subprocess, as a user runs it, which also keeps visualkeras's TensorFlow out of the test process;
on Fashion-MNIST and on CIFAR-10 (small files in the binary format, written by the test) it runs
in-process with visualkeras hidden, on a few hundred images at most. The tests that start a
subprocess, or train, or use what `train` saved, are marked `slow`. Tests that need the real
MNIST or Fashion-MNIST files skip when $MINICNN_DATA, or $MINICNN_FASHION_MNIST_DATA (default
../shared/fashion-mnist), does not point at them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
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
from PIL import Image

from minicnn import __version__, cli, layers, models, plots
from minicnn.callbacks import History
from minicnn.cli import DATASETS, MODELS, main
from minicnn.datasets import cifar10, fashion_mnist, mnist
from minicnn.datasets.idx import write_idx
from minicnn.datasets.images import read_color_image, read_gray_image
from tests.test_cifar10 import N as CIFAR10_RECORDS
from tests.test_cifar10 import make_batches, write_folder
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
FASHION_DATA = os.environ.get("MINICNN_FASHION_MNIST_DATA") or str(
    ROOT.parent / "shared" / "fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.isdir(FASHION_DATA),
    reason=f"no Fashion-MNIST files: set MINICNN_FASHION_MNIST_DATA (tried {FASHION_DATA})")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What `fit(verbose=2)` prints after each epoch, as Keras does.
EPOCH_LINE = re.compile(r"^\d+/\d+ - \d+s - \d+m?s/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
                        r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}$")
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


def class_probabilities(out: str, class_names: tuple[str, ...]) -> np.ndarray:
    """The probability table `predict` prints, one row per class name, in order."""
    rows = re.findall(r"^  (.+?): +(\d\.\d{4})", out, re.M)
    assert [name for name, _ in rows] == list(class_names), out
    return np.array([float(p) for _, p in rows])


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
    (["train"], ["--dataset", "--model", "--epochs", "--batch-size", "--data", "--out", "--seed",
                 "--validation-split", "--limit", "--verbose"]),
    (["evaluate"], ["MODEL", "--dataset", "--data", "--batch-size", "--custom-objects"]),
    (["predict"], ["MODEL", "IMAGE", "--index", "--dataset", "--data", "--custom-objects"]),
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


# -- datasets and models ------------------------------------------------------------------------
CLASS_NAMES = {
    "mnist": ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"),
}


def test_each_dataset_has_its_class_names_and_its_own_recipe():
    assert {name: d.class_names for name, d in DATASETS.items()} == CLASS_NAMES
    assert (mnist.CLASS_NAMES, fashion_mnist.CLASS_NAMES, cifar10.CLASS_NAMES) == tuple(
        CLASS_NAMES.values())
    assert MODELS == tuple(models.RECIPES)  # spelled out in the CLI, so --help imports no engine
    for dataset in DATASETS.values():
        model = models.RECIPES[dataset.recipe](seed=0, compile=False)
        assert model.input_shape == (None, *dataset.input_shape), dataset.name


@pytest.mark.parametrize("dataset, model", [("mnist", "cifar10_cnn"),
                                            ("fashion_mnist", "cifar10_cnn"),
                                            ("cifar10", "mnist_cnn"),
                                            ("cifar10", "fashion_mnist_cnn")])
def test_a_model_that_does_not_fit_the_dataset_is_a_usage_error(capsys, tmp_path, dataset, model):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "train", "--dataset", dataset, "--model", model,
                            "--out", str(out), "--data", "/nonexistent")
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert err.startswith(f"minicnn train: error: argument --model: {model} takes inputs "), err
    assert f"but --dataset {dataset} has images" in err
    assert f"such as {DATASETS[dataset].recipe}" in err
    assert not out.exists()  # refused before the data is read or anything written


@pytest.mark.parametrize("argv", [["train", "--dataset", "svhn"], ["train", "--model", "resnet"],
                                  ["evaluate", "m.npz", "--dataset", "mnist2"],
                                  ["predict", "m.npz", "--index", "0", "--dataset", "cifar100"]])
def test_unknown_dataset_or_model_names_the_choices(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "invalid choice" in err
    assert ("cifar10_cnn" if "--model" in argv else "fashion_mnist") in err


def test_help_says_digit_only_of_mnist(capsys):
    texts = [run(capsys, *command, "--help")[1] for command in
             ([], ["train"], ["evaluate"], ["predict"], ["summary"])]
    for text in texts[:3] + texts[4:]:
        assert "digit" not in text.lower(), text
    assert "digit or garment" in texts[3]  # MNIST's, then Fashion-MNIST's
    assert "Fashion-MNIST or CIFAR-10" in texts[0] and "--dataset" in texts[1]
    assert all("digit" not in line or "mnist" in line for line in cli.__doc__.splitlines())


@pytest.fixture(scope="module")
def untrained_cifar10(tmp_path_factory) -> str:
    """Keras's cifar10_cnn, untrained, saved with the dataset.txt that `train` writes."""
    folder = tmp_path_factory.mktemp("untrained_cifar10")
    models.cifar10_cnn(seed=0).save(folder / "model.npz")
    (folder / "dataset.txt").write_text("cifar10\n")
    return str(folder / "model.npz")


@pytest.mark.slow
def test_the_dataset_comes_from_the_option_then_dataset_txt_then_mnist(capsys, tmp_path,
                                                                       untrained_cifar10):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(photo)
    code, out, _ = run(capsys, "predict", untrained_cifar10, str(photo))  # from dataset.txt
    assert code == 0 and "Predicted class: " in out and "digit" not in out
    assert class_probabilities(out, CLASS_NAMES["cifar10"]).sum() == pytest.approx(
        1.0, abs=PRINTED_SUM_ATOL)
    moved = tmp_path / "model.npz"  # the same model without its dataset.txt: MNIST, refused
    shutil.copy(untrained_cifar10, moved)
    for argv in (["predict", str(moved), str(photo)], ["evaluate", str(moved)]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and err.count("\n") == 1
        assert "maps inputs (None, 32, 32, 3) to (None, 10); MNIST needs (None, 28, 28, 1)" in err
        assert "with --dataset" in err
    code, out, _ = run(capsys, "predict", str(moved), str(photo), "--dataset", "cifar10")
    assert code == 0 and "Predicted class: " in out
    (tmp_path / "dataset.txt").write_text("imagenet\n")
    code, _, err = run(capsys, "predict", str(moved), str(photo))
    assert code == 1 and "dataset.txt' names the dataset 'imagenet'; expected one of mnist, " \
                         "fashion_mnist, cifar10 (or pass --dataset)" in err


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
    expected = model.predict(read_gray_image(image)[None, ..., None])[0]  # Scale(3.0) inside
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
    out = str(tmp_path / "out")
    for argv, title in [(["train", "--out", out], "MNIST"),
                        (["train", "--out", out, "--dataset", "fashion_mnist"], "Fashion-MNIST"),
                        (["train", "--out", out, "--dataset", "cifar10"], "CIFAR-10"),
                        (["evaluate", untrained_model], "MNIST"),
                        (["evaluate", untrained_model, "--dataset", "fashion_mnist"],
                         "Fashion-MNIST"),
                        (["predict", untrained_model, "--index", "0"], "MNIST")]:
        code, _, err = run(capsys, *argv, "--data", "/nonexistent")
        assert code == 1, argv
        assert f"{title} directory '/nonexistent'" in err and "Traceback" not in err, err
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
def test_read_gray_image_inverts_a_light_background(tmp_path):
    rng = np.random.default_rng(0)
    digit = np.zeros((28, 28))
    digit[5:23, 8:20] = rng.random((18, 12))
    matplotlib.image.imsave(tmp_path / "dark.png", digit, cmap="gray", vmin=0, vmax=1)
    matplotlib.image.imsave(tmp_path / "light.png", 1 - digit, cmap="gray", vmin=0, vmax=1)
    dark, light = read_gray_image(tmp_path / "dark.png"), read_gray_image(tmp_path / "light.png")
    assert dark.shape == (28, 28) and dark.dtype == np.float32
    assert np.allclose(dark, digit, atol=PNG_PIXEL_ATOL)
    assert np.allclose(light, digit, atol=PNG_PIXEL_ATOL)


def test_read_gray_image_transparent_page_and_resizing(tmp_path):
    digit = np.zeros((28, 28))
    digit[4:24, 12:16] = 1.0
    # 4x larger, black ink on a transparent page (alpha is the ink): block means shrink it back.
    big = np.kron(digit, np.ones((4, 4)))
    rgba = np.zeros((112, 112, 4))
    rgba[..., 3] = big
    matplotlib.image.imsave(tmp_path / "big.png", rgba)
    assert np.allclose(read_gray_image(tmp_path / "big.png"), digit, atol=EXACT_PIXEL_ATOL)
    # Half size and not square: padded to a square with black, then each pixel repeated.
    small = digit[::2, 4:24:2]  # (14, 10)
    matplotlib.image.imsave(tmp_path / "small.png", small, cmap="gray", vmin=0, vmax=1)
    expected = np.kron(np.pad(small, ((0, 0), (2, 2))), np.ones((2, 2)))
    assert np.allclose(read_gray_image(tmp_path / "small.png"), expected, atol=EXACT_PIXEL_ATOL)


def test_read_gray_image_errors_are_the_ones_predict_reports(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^image file '.*none\.png' does not exist$"):
        read_gray_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(ValueError, match=r"^cannot read image '.*bad\.png': "):
        read_gray_image(tmp_path / "bad.png")


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
    image = read_gray_image(black_png(tmp_path / "black.png", 300, 200))
    assert image.shape == (28, 28) and not image.any()


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, no_decoding):
    """20000x20000 pixels in a 0.6 MB file: 400 MB decoded, 6 GB as the old reader's floats."""
    bomb = black_png(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 10**6
    with pytest.raises(ValueError, match=r"^image '.*bomb\.png' is too large to read: Image "
                                         r"size \(400000000 pixels\) exceeds limit"):
        read_gray_image(bomb)


def test_a_picture_over_max_pixels_is_refused_from_its_header(tmp_path, no_decoding):
    big = black_png(tmp_path / "big.png", 4097, 4096)
    with pytest.raises(ValueError, match=r"^image '.*big\.png' is 4097x4096 pixels, more than "
                                         r"the 16,777,216 minicnn reads \(MAX_PIXELS\)"):
        read_gray_image(big)


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
        np.testing.assert_allclose(read_gray_image(path), np.full((28, 28), expected),
                                   atol=EXACT_PIXEL_ATOL)


def test_read_color_image_keeps_colours_and_crops_the_centre_square(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (64, 96, 3), np.uint8)
    photo[0] = 255  # a light border inverts a gray picture, never a colour one
    Image.fromarray(photo).save(tmp_path / "photo.png")
    image = read_color_image(tmp_path / "photo.png")
    assert image.shape == (32, 32, 3) and image.dtype == np.float32
    centre = photo[:, 16:80] / 255  # (64, 64): the 96 columns cropped by 16 on each side
    expected = centre.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))  # 2x2 block means
    np.testing.assert_allclose(image, expected, atol=EXACT_PIXEL_ATOL)
    # A CIFAR-10-sized picture is read back exactly as the loader's pixels divided by 255.
    Image.fromarray(photo[:32, :32]).save(tmp_path / "small.png")
    np.testing.assert_allclose(read_color_image(tmp_path / "small.png"), photo[:32, :32] / 255,
                               atol=EXACT_PIXEL_ATOL)


def test_read_color_image_gray_and_transparent_pictures(tmp_path):
    gray = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    image = read_color_image(tmp_path / "gray.png")  # 16 -> 32: each pixel repeated 2x2
    expected = np.kron(gray / 255, np.ones((2, 2)))
    for c in range(3):
        np.testing.assert_allclose(image[..., c], expected, atol=EXACT_PIXEL_ATOL)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:16, :, 0] = rgba[:16, :, 3] = 255  # red on top, transparent below
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    image = read_color_image(tmp_path / "rgba.png")
    np.testing.assert_allclose(image[:16], np.broadcast_to([1.0, 0.0, 0.0], (16, 32, 3)),
                               atol=EXACT_PIXEL_ATOL)
    np.testing.assert_allclose(image[16:], 1.0, atol=EXACT_PIXEL_ATOL)  # white page


@pytest.mark.parametrize("read", [read_gray_image, read_color_image])
def test_both_readers_refuse_large_pictures_from_the_header(tmp_path, no_decoding, read):
    with pytest.raises(ValueError, match=r"^image '.*big\.png' is 4097x4096 pixels"):
        read(black_png(tmp_path / "big.png", 4097, 4096))
    with pytest.raises(ValueError, match=r"^image '.*bomb\.png' is too large to read"):
        read(black_png(tmp_path / "bomb.png", 20000, 20000))
    with pytest.raises(FileNotFoundError, match=r"^image file '.*none\.png' does not exist$"):
        read(tmp_path / "none.png")


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
    assert "Training mnist_cnn on 1800 MNIST images, validating on 200; seed 0" in stdout
    epoch_lines = [line for line in stdout.splitlines() if EPOCH_LINE.match(line)]
    assert len(epoch_lines) == 1 and epoch_lines[0].startswith("15/15 - "), stdout
    assert re.search(r"^Test accuracy: 0\.\d{4}$", stdout, re.M)
    assert len(re.findall(r"^  test image \d: predicted \d \(probability \d\.\d{4}\), label \d$",
                          stdout, re.M)) == 3
    header, *rows = (out / "history.csv").read_text().splitlines()
    assert header == "epoch,accuracy,loss,val_accuracy,val_loss" and len(rows) == 1
    assert (out / "dataset.txt").read_text() == "mnist\n"
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


# -- on Fashion-MNIST and CIFAR-10: train in-process, then use the saved model -------------------
PREDICTION_LINE = re.compile(r"^  test image (\d): predicted (.+) \(probability \d\.\d{4}\), "
                             r"label (.+)$", re.M)


def train_in_process(*argv: str) -> str:
    """`minicnn train ARGV` in this process, with visualkeras hidden (no TensorFlow here): its
    stdout."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr):
        mp.setitem(sys.modules, "visualkeras", None)
        code = main(["train", "--epochs", "1", "--seed", "0", *argv])
    assert code == 0, stdout.getvalue() + stderr.getvalue()
    return stdout.getvalue()


@pytest.fixture(scope="module")
def fashion_mnist_subset(tmp_path_factory) -> Path:
    """The first 200 training and 100 test images of the real Fashion-MNIST, as the four IDX
    files in a folder of their own: the real set's layout, a test set small enough to evaluate
    at once."""
    if not os.path.isdir(FASHION_DATA):
        pytest.skip(f"no Fashion-MNIST files in {FASHION_DATA}")
    folder = tmp_path_factory.mktemp("fashion_mnist")
    train, test = fashion_mnist.load_data(FASHION_DATA)
    for prefix, (images, labels), n in (("train", train, 200), ("t10k", test, 100)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images[:n])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels[:n])
    return folder


@pytest.fixture(scope="module")
def trained_fashion_mnist(tmp_path_factory, fashion_mnist_subset) -> tuple[Path, str]:
    """One short `minicnn train --dataset fashion_mnist`: (its output directory, its stdout)."""
    out = tmp_path_factory.mktemp("train_fashion_mnist")
    return out, train_in_process("--dataset", "fashion_mnist", "--data", str(fashion_mnist_subset),
                                 "--batch-size", "50", "--out", str(out))


@pytest.mark.slow
@needs_fashion_mnist
def test_train_on_fashion_mnist_speaks_of_garments(trained_fashion_mnist):
    out, stdout = trained_fashion_mnist
    assert " Total params: 225,418 (880.54 KB)" in stdout  # fashion_mnist_cnn, the set's own
    assert "Training fashion_mnist_cnn on 180 Fashion-MNIST images, validating on 20; seed 0" \
        in stdout
    rows = PREDICTION_LINE.findall(stdout)
    assert [k for k, _, _ in rows] == ["0", "1", "2"], stdout
    assert all(predicted in CLASS_NAMES["fashion_mnist"] for _, predicted, _ in rows)
    assert [label for _, _, label in rows] == ["Ankle boot", "Pullover", "Trouser"]
    assert "digit" not in stdout.lower()
    assert (out / "dataset.txt").read_text() == "fashion_mnist\n"
    for name in ("history.png", "predictions.png", "filters.png", "confusion.png",
                 "misclassified.png"):
        assert_png(out / name)


@pytest.mark.slow
@needs_fashion_mnist
def test_predict_with_a_fashion_mnist_model(capsys, trained_fashion_mnist, fashion_mnist_subset,
                                            tmp_path):
    model = str(trained_fashion_mnist[0] / "model.npz")
    code, out, _ = run(capsys, "predict", model, "--index", "0", "--data",
                       str(fashion_mnist_subset))
    assert code == 0  # the set named in dataset.txt, whose test image 0 is an ankle boot
    assert out.startswith("Test image 0, label Ankle boot\nPredicted class: ")
    probs = class_probabilities(out, CLASS_NAMES["fashion_mnist"])
    # Fashion-MNIST's garments are light on black as MNIST's digits are: a photo of a dark
    # garment on a light page is inverted, one as the set has it is not.
    _, (x_test, _) = fashion_mnist.load_data(fashion_mnist_subset)
    matplotlib.image.imsave(tmp_path / "test0.png", x_test[0], cmap="gray", vmin=0, vmax=255)
    matplotlib.image.imsave(tmp_path / "test0_paper.png", 255 - x_test[0], cmap="gray",
                            vmin=0, vmax=255)
    for name in ("test0.png", "test0_paper.png"):
        code, out, _ = run(capsys, "predict", model, str(tmp_path / name))
        assert code == 0 and "digit" not in out
        np.testing.assert_allclose(class_probabilities(out, CLASS_NAMES["fashion_mnist"]), probs,
                                   atol=PNG_PROBABILITY_ATOL)


@pytest.fixture(scope="module")
def cifar10_files(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """Small CIFAR-10 batches in the binary format (CIFAR10_RECORDS records each, random
    pixels): (their folder, x_test, y_test as (N,))."""
    folder = tmp_path_factory.mktemp("cifar10")
    batches, (_, (x_test, y_test)) = make_batches(seed=0)
    write_folder(folder, batches)
    return folder, x_test, y_test.reshape(-1)


@pytest.fixture
def small_cifar10(monkeypatch):
    """cifar10.load_data reads batches of CIFAR10_RECORDS records, as cifar10_files writes."""
    monkeypatch.setattr(cifar10, "RECORDS_PER_BATCH", CIFAR10_RECORDS)


@pytest.fixture(scope="module")
def trained_cifar10(tmp_path_factory, cifar10_files) -> tuple[Path, str]:
    """One `minicnn train --dataset cifar10` on the small batches: (its folder, its stdout)."""
    out = tmp_path_factory.mktemp("train_cifar10")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifar10, "RECORDS_PER_BATCH", CIFAR10_RECORDS)
        stdout = train_in_process("--dataset", "cifar10", "--data", str(cifar10_files[0]),
                                  "--validation-split", "0.2", "--batch-size", "4",
                                  "--out", str(out))
    return out, stdout


@pytest.mark.slow
def test_train_on_cifar10_speaks_of_its_classes(trained_cifar10, cifar10_files):
    out, stdout = trained_cifar10
    y_test = cifar10_files[2]
    train_images = 5 * CIFAR10_RECORDS
    n_fit = math.floor(train_images * 0.8)
    assert " Total params: 1,250,858 " in stdout  # cifar10_cnn, the set's own
    assert (f"Training cifar10_cnn on {n_fit} CIFAR-10 images, validating on "
            f"{train_images - n_fit}; seed 0") in stdout
    rows = PREDICTION_LINE.findall(stdout)
    assert [k for k, _, _ in rows] == ["0", "1", "2"], stdout
    assert all(predicted in CLASS_NAMES["cifar10"] for _, predicted, _ in rows)
    assert [label for _, _, label in rows] == [CLASS_NAMES["cifar10"][y] for y in y_test[:3]]
    assert "digit" not in stdout.lower()
    assert (out / "dataset.txt").read_text() == "cifar10\n"
    for name in ("history.png", "predictions.png", "filters.png", "confusion.png",
                 "misclassified.png"):
        assert_png(out / name)


@pytest.mark.slow
def test_evaluate_and_predict_with_a_cifar10_model(capsys, trained_cifar10, cifar10_files,
                                                   small_cifar10, tmp_path):
    out, stdout = trained_cifar10
    folder, x_test, y_test = cifar10_files
    model = str(out / "model.npz")
    code, evaluated, _ = run(capsys, "evaluate", model, "--data", str(folder))
    assert code == 0
    assert evaluated.startswith(f"Model {model} on the {len(x_test)} CIFAR-10 test images\n")
    accuracy = re.compile(r"^Test accuracy: (\d\.\d{4})$", re.M)
    assert accuracy.search(evaluated).group(1) == accuracy.search(stdout).group(1)

    code, out, _ = run(capsys, "predict", model, "--index", "0", "--data", str(folder))
    assert code == 0
    assert out.startswith(f"Test image 0, label {CLASS_NAMES['cifar10'][y_test[0]]}\n"
                          f"Predicted class: ")
    probs = class_probabilities(out, CLASS_NAMES["cifar10"])
    # The same image as a PNG photo: read in colour, uninverted, exactly the loader's pixels.
    Image.fromarray(x_test[0]).save(tmp_path / "test0.png")
    code, out, _ = run(capsys, "predict", model, str(tmp_path / "test0.png"))
    assert code == 0
    np.testing.assert_allclose(class_probabilities(out, CLASS_NAMES["cifar10"]), probs,
                               atol=PNG_PROBABILITY_ATOL)


@pytest.mark.parametrize("argv, message", [
    (["train", "--address", "auto"], "argument --address: needs --workers N"),
    (["train", "--workers", "9"], "Expected at most 8"),
])
def test_train_refuses_distributed_options_that_cannot_work_before_loading_data(argv, message,
                                                                                 capsys):
    assert cli.main([*argv, "--data", "/nonexistent"]) == 2
    assert message in capsys.readouterr().err
