"""utils.image_dataset_from_directory: a folder of pictures, one subfolder per class, as the
batches fit takes (minicnn/datasets/directory.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from minicnn import layers, utils
from minicnn.models import Sequential


@pytest.fixture
def folder(tmp_path):
    """cats/ (5 red pictures of several sizes and formats) and dogs/ (4 blue ones, one in a
    subfolder), and a text file that is no picture."""
    rng = np.random.default_rng(0)
    for name, colour, n in (("cats", 0, 5), ("dogs", 2, 4)):
        for k in range(n):
            pixels = rng.integers(0, 40, (20 + k, 30, 3), dtype=np.uint8)
            pixels[..., colour] = 250
            where = tmp_path / name / ("deep" if (name == "dogs" and k == 0) else "")
            where.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(where / f"{k}.{'png' if k % 2 else 'jpg'}")
    (tmp_path / "cats" / "notes.txt").write_text("not a picture")
    return tmp_path


def test_finds_classes_and_reads_batches_as_keras(folder, capsys):
    ds = utils.image_dataset_from_directory(folder, image_size=(8, 10), batch_size=4, seed=1)
    assert capsys.readouterr().out == "Found 9 files belonging to 2 classes.\n"
    assert ds.class_names == ["cats", "dogs"] and len(ds) == 3
    images, labels = ds[0]
    assert images.shape == (4, 8, 10, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.shape == (4,)
    # each picture's colour tells its class: red cats, blue dogs
    seen = np.concatenate([ds[i][1] for i in range(len(ds))])
    colours = np.concatenate([ds[i][0].mean(axis=(1, 2)).argmax(axis=1) for i in range(len(ds))])
    assert sorted(seen) == [0] * 5 + [1] * 4
    np.testing.assert_array_equal(colours, seen * 2)
    assert 0 <= images.min() and images.max() <= 255


def test_splits_the_same_files_the_same_way_and_label_modes(folder, capsys):
    train, val = utils.image_dataset_from_directory(
        folder, validation_split=0.34, subset="both", seed=7, image_size=(6, 6),
        label_mode="categorical", color_mode="grayscale", batch_size=2)
    out = capsys.readouterr().out
    assert "Using 6 files for training." in out and "Using 3 files for validation." in out
    assert not set(train.file_paths) & set(val.file_paths)
    again = utils.image_dataset_from_directory(folder, validation_split=0.34,
                                               subset="validation", seed=7, image_size=(6, 6),
                                               verbose=False)
    assert sorted(again.file_paths) == sorted(val.file_paths)
    images, labels = train[0]
    assert images.shape == (2, 6, 6, 1) and labels.shape == (2, 2)
    binary = utils.image_dataset_from_directory(folder, label_mode="binary", verbose=False)
    assert binary[0][1].shape == (9, 1)


def test_a_model_trains_on_it(folder):
    train = utils.image_dataset_from_directory(folder, image_size=(8, 8), batch_size=4,
                                               label_mode="binary", verbose=False, seed=0)
    model = Sequential([layers.Rescaling(1 / 255, input_shape=(8, 8, 3)),
                        layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                        layers.Dense(1, activation="sigmoid")], seed=0)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(train, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict(train, verbose=0).shape == (9, 1)


def test_errors_name_the_problem(folder, tmp_path_factory):
    with pytest.raises(ValueError, match="is not a folder"):
        utils.image_dataset_from_directory(folder / "nothing")
    with pytest.raises(ValueError, match="No images found"):
        utils.image_dataset_from_directory(tmp_path_factory.mktemp("empty"))
    with pytest.raises(ValueError, match="`validation_split` and `subset` go together"):
        utils.image_dataset_from_directory(folder, validation_split=0.2)
    with pytest.raises(ValueError, match="`image_size`"):
        utils.image_dataset_from_directory(folder, image_size=(0, 5))
    with pytest.raises(ValueError, match="did not match"):
        utils.image_dataset_from_directory(folder, class_names=["cats", "cows"])
    (folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = utils.image_dataset_from_directory(folder, shuffle=False, batch_size=20,
                                            verbose=False)
    with pytest.raises(ValueError, match=r"cannot read image '.*broken.png'"):
        ds[0]
