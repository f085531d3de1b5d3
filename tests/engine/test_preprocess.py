"""Format 3: the engine file carries the preprocessing and the class names; images are
decoded and preprocessed as the data sets' evaluation transform does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_fuzz import repack, split
from engine_helpers import random_model
from PIL import Image

import dwr.engine as engine
from dwr.data.imagefolder import MEAN, STD, ImageFileDataset
from dwr.engine import Preprocess
from dwr.engine.compiled import CompiledModel
from dwr.errors import DwrError

CIFAR = Preprocess((3, 32, 32), 32, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


@pytest.fixture(scope="module")
def model():
    return random_model("resnet20_cifar")


def test_preprocessing_and_class_names_round_trip(model, tmp_path):
    names = [f"label {i}" for i in range(10)]
    comp = engine.convert(model, preprocess=CIFAR, class_names=names)
    comp.save(tmp_path / "m.dwre")
    back = engine.load(tmp_path / "m.dwre")
    assert back.preprocess == CIFAR and back.class_names == names
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(back(x), comp(x), rtol=0, atol=0)


def test_format_2_files_load_without_them(model, tmp_path):
    comp = engine.convert(model, preprocess=CIFAR, class_names=[str(i) for i in range(10)])
    comp.save(tmp_path / "m.dwre")
    header, payload = split((tmp_path / "m.dwre").read_bytes())
    del header["preprocess"], header["class_names"]
    back = CompiledModel.from_bytes(repack(header, payload, version=2))
    assert back.preprocess is None and back.class_names is None
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(back(x), comp(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"class_names": ["a", "b"]}, "2 class names for a classifier of 10"),
        ({"class_names": [1] * 10}, "list of strings"),
        ({"preprocess": Preprocess((1, 32, 32), 32, (0.5,), (0.5,))}, "1-channel inputs"),
    ],
)
def test_inconsistent_labels_or_preprocessing(model, kwargs, match):
    with pytest.raises(DwrError, match=match):
        engine.convert(model, **kwargs)


def test_input_size_must_fit_the_model():
    tiny = Preprocess((3, 4, 4), 4, (0,) * 3, (1,) * 3)  # VGG's pools shrink it below 1 pixel
    with pytest.raises(DwrError, match="too small"):
        engine.convert(random_model("vgg_small_cifar"), preprocess=tiny)


@pytest.mark.parametrize(
    "args",
    [
        ((3, 32), 32, (0,) * 3, (1,) * 3),
        ((3, 32, 32), 16, (0,) * 3, (1,) * 3),  # resize below the crop
        ((3, 32, 32), 32, (0,) * 2, (1,) * 3),
        ((3, 32, 32), 32, (0,) * 3, (1, 0, 1)),
        ((3, 32, 32), 32, (0,) * 3, (1, float("nan"), 1)),
        ((2, 32, 32), 32, (0,) * 2, (1,) * 2),
        ((3, 32, 10**6), 32, (0,) * 3, (1,) * 3),
    ],
)
def test_bad_preprocessing_is_refused(args):
    with pytest.raises(DwrError, match="preprocessing"):
        Preprocess(*args)


def test_matches_the_imagefolder_evaluation_transform(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)).save(path)
    ours = Preprocess((3, 224, 224), 256, MEAN, STD).load(path)

    class Split:
        paths, labels = [str(path)], [0]

    theirs, _ = ImageFileDataset(Split(), train_transform=False, mean=MEAN, std=STD)[0]
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-5)


def test_grey_palette_and_rgba_images_become_rgb(tmp_path):
    grey = np.full((40, 40), 200, np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "p.gif")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    pre = Preprocess((3, 32, 32), 32, (0.0,) * 3, (1.0,) * 3)
    for name in ("g.png", "p.gif", "a.png"):
        x = pre.load(tmp_path / name)
        assert x.shape == (3, 32, 32) and x.dtype == np.float32
        np.testing.assert_allclose(x, 200 / 255, atol=1e-6)


def test_unreadable_images_are_dwr_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    blob = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    for name, match in [
        ("notes.txt", "not an image"),
        ("cut.png", "not an image|cannot"),
        ("missing.png", "cannot read"),
    ]:
        with pytest.raises(DwrError, match=match):
            CIFAR.load(tmp_path / name)


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow warns above, fails above 2x
    for side in (12, 15):
        Image.new("RGB", (side, side)).save(tmp_path / f"{side}.png")
        with pytest.raises(DwrError, match="implausibly large"):
            CIFAR.load(tmp_path / f"{side}.png")
