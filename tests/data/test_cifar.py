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


class _WritesMarker:
    """Unpickling this calls ``pathlib.Path.write_text(marker, "pwned")``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned"))


@pytest.mark.parametrize("victim", ["data_batch_1", "batches.meta"])
def test_malicious_pickle_runs_nothing(cifar10_dir, tmp_path, victim):
    marker = tmp_path / "marker"
    payload = pickle.dumps({b"data": _WritesMarker(marker), b"labels": [], b"label_names": []})
    pickle.loads(payload)  # the payload works: plain pickle writes the marker
    assert marker.read_text() == "pwned"
    marker.unlink()
    (cifar10_dir / victim).write_bytes(payload)
    with pytest.raises(DwrError, match=rf"refusing CIFAR file .*{victim}: it refers to pathlib"):
        load_dataset("cifar10", cifar10_dir)
    assert not marker.exists()


def test_os_system_payload_is_refused(cifar10_dir, tmp_path):
    marker = tmp_path / "marker2"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    (cifar10_dir / "test_batch").write_bytes(payload)
    with pytest.raises(DwrError, match="it refers to os.system"):
        load_dataset("cifar10", cifar10_dir)
    assert not marker.exists()


@pytest.mark.parametrize(
    "labels,needle",
    [
        ([b"cat"] * 20, "list of bytes"),
        (["3"] * 20, "list of str"),
        ("0123", "got a str"),
        ([0.5] * 20, "list of float"),
    ],
)
def test_non_integer_labels_are_a_clean_error(cifar10_dir, labels, needle):
    import numpy as np

    data = np.zeros((20, 3072), np.uint8)
    with open(cifar10_dir / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)
    with pytest.raises(DwrError, match=rf"data_batch_1: 'labels' should be .*{needle}"):
        load_dataset("cifar10", cifar10_dir)


def test_python2_style_numpy_core_pickles_load(cifar10_dir):
    """The official files name ``numpy.core.multiarray`` (NumPy 1); they still load."""
    raw = (cifar10_dir / "test_batch").read_bytes()
    path = cifar10_dir / "test_batch"
    d = pickle.loads(raw, encoding="bytes")
    path.write_bytes(
        pickle.dumps(d, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    )
    assert b"numpy.core.multiarray" in path.read_bytes()
    assert load_dataset("cifar10", cifar10_dir).size("test") == 10
