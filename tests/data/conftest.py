import pickle

import numpy as np
import pytest


def write_cifar10(root, n_train=(20, 12), n_test=10, seed=0):
    """A small CIFAR-10 directory in the official pickle format; returns its path."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": 10}, f)
    files = [(f"data_batch_{i + 1}", n) for i, n in enumerate(n_train)] + [("test_batch", n_test)]
    for name, n in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    return d


def write_cifar100(root, n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    with open(d / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(d / name, "wb") as f:
            pickle.dump(
                {b"data": data, b"fine_labels": [int(v) for v in rng.integers(0, 100, n)]}, f
            )
    return d


def write_imagefolder(root, classes=("cat", "dog"), per_class=3, size=(40, 30)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.jpg")
    return root


@pytest.fixture
def cifar10_dir(tmp_path):
    return write_cifar10(tmp_path)


@pytest.fixture
def cifar100_dir(tmp_path):
    return write_cifar100(tmp_path)


@pytest.fixture
def make_imagefolder():
    return write_imagefolder
