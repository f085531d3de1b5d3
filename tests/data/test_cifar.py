import pickle

import pytest
import torch

from dwr.data import load_dataset
from dwr.data.cifar import CIFAR
from dwr.errors import DwrError


def test_cifar10_loads_all_batches(cifar10_dir):
    d = load_dataset("cifar10", cifar10_dir.parent)
    assert d.size("train") == 32 and d.size("test") == 10
    assert d.class_names[0] == "airplane" and d.num_classes == 10
    assert d.splits["train"].images.dtype == torch.uint8
    # the directory itself works as root too
    raw = pickle.load(open(cifar10_dir / "test_batch", "rb"), encoding="bytes")
    d2 = load_dataset("cifar10", cifar10_dir)
    img = d2.splits["test"].images[3]
    assert torch.equal(img, torch.from_numpy(raw[b"data"][3].reshape(3, 32, 32)))
    x, y = next(iter(d2.loader("test", 4)))
    mean, std = CIFAR["cifar10"].mean[0], CIFAR["cifar10"].std[0]
    expect = (raw[b"data"][0, :1024].reshape(32, 32) / 255.0 - mean) / std
    assert torch.allclose(x[0, 0], torch.as_tensor(expect, dtype=torch.float32), atol=1e-5)
    assert y.tolist() == raw[b"labels"][:4]


def test_cifar_train_batches_are_augmented(cifar10_dir):
    d = load_dataset("cifar10", cifar10_dir)
    torch.manual_seed(0)
    x, _ = next(iter(d.loader("train", 32, shuffle=False)))
    x0, _ = next(iter(d.loader("train", 32, shuffle=False, augment=False)))
    assert x.shape == x0.shape == (32, 3, 32, 32)
    assert not torch.equal(x, x0)


def test_cifar100(cifar100_dir):
    d = load_dataset("cifar100", cifar100_dir.parent)
    assert d.num_classes == 100 and d.size("train") == 30 and d.class_names[5] == "c5"


def test_missing_and_incomplete_directories(tmp_path, cifar10_dir):
    with pytest.raises(DwrError, match="no cifar10 data at .*cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path / "nothing")
    (cifar10_dir / "test_batch").unlink()
    with pytest.raises(DwrError, match="incomplete cifar10 directory .* missing test_batch"):
        load_dataset("cifar10", cifar10_dir)


def test_corrupted_pickle_names_the_file(cifar10_dir):
    (cifar10_dir / "data_batch_2").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DwrError, match=r"corrupted CIFAR file .*data_batch_2"):
        load_dataset("cifar10", cifar10_dir)


def test_wrong_content_names_the_file(cifar10_dir):
    with open(cifar10_dir / "data_batch_1", "wb") as f:
        pickle.dump({b"data": [1, 2, 3]}, f)
    with pytest.raises(DwrError, match=r"data_batch_1.*lacks"):
        load_dataset("cifar10", cifar10_dir)


def test_download_checks_md5(tmp_path, monkeypatch):
    from dwr.data import cifar

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"not the archive")
    with pytest.raises(DwrError, match="md5"):
        load_dataset("cifar10", tmp_path, download=True)

    def offline(*a, **k):
        raise cifar.urllib.error.URLError("no network")

    archive.unlink()
    monkeypatch.setattr(cifar.urllib.request, "urlopen", offline)
    with pytest.raises(DwrError, match="could not download .*extract it"):
        load_dataset("cifar10", tmp_path, download=True)
    assert not any(tmp_path.iterdir())
