import pytest
import torch

from dwr.data import load_dataset
from dwr.data.imagefolder import random_resized_box
from dwr.errors import DwrError


def test_imagefolder_loads_and_transforms(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path, per_class=3)
    d = load_dataset("imagefolder", tmp_path)
    assert d.class_names == ["cat", "dog"] and d.num_classes == 2
    assert d.size("train") == 6 and d.size("test") == 6
    x, y = next(iter(d.loader("train", 4, workers=1)))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32
    assert set(y.tolist()) <= {0, 1}
    a, _ = next(iter(d.loader("test", 6)))
    b, _ = next(iter(d.loader("test", 6)))
    assert torch.equal(a, b)  # evaluation transform is deterministic
    assert d.sample(2, "test").shape == (2, 3, 224, 224)


def test_random_resized_box_stays_inside():
    torch.manual_seed(0)
    for w, h in ((40, 30), (500, 20), (224, 224)):
        for _ in range(50):
            left, top, cw, ch = random_resized_box(w, h)
            assert 0 <= left and 0 <= top and left + cw <= w and top + ch <= h and cw and ch


def test_imagefolder_errors(tmp_path, make_imagefolder):
    with pytest.raises(DwrError, match="needs a root"):
        load_dataset("imagefolder")
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("x")
    (tmp_path / "val" / "cat").mkdir(parents=True)
    with pytest.raises(DwrError, match=r"no images in .*train"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(DwrError, match=r"missing directory .*val"):
        make_imagefolder(tmp_path / "x", per_class=1)
        import shutil

        shutil.rmtree(tmp_path / "x" / "val")
        load_dataset("imagefolder", tmp_path / "x")


@pytest.mark.timeout(60)
def test_a_fifo_among_the_images_is_refused_at_once(tmp_path, make_imagefolder):
    import os

    make_imagefolder(tmp_path, per_class=1)
    os.mkfifo(tmp_path / "val" / "cat" / "9.jpg")
    d = load_dataset("imagefolder", tmp_path)
    with pytest.raises(DwrError, match=r"cannot decode image .*9\.jpg: a FIFO"):
        for _ in d.loader("test", 2):
            pass


def test_16bit_images_are_scaled_like_8bit_ones(tmp_path, make_imagefolder):
    import numpy as np
    from PIL import Image

    make_imagefolder(tmp_path, per_class=1)
    for split in ("train", "val"):
        for c, depth in (("cat", 8), ("dog", 16)):
            value = np.full((30, 40), 128 * (257 if depth == 16 else 1))
            img = value.astype(np.uint16 if depth == 16 else np.uint8)
            (tmp_path / split / c / "0.jpg").unlink()
            Image.fromarray(img).save(tmp_path / split / c / "0.png")
    x, y = next(iter(load_dataset("imagefolder", tmp_path).loader("test", 2)))
    assert y.tolist() == [0, 1]
    assert torch.equal(x[0], x[1])  # mid-grey either way, not white
