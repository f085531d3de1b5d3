import numpy as np
import pytest
import torch

from dwr.data import load_dataset
from dwr.errors import DwrError


def test_digits_shapes_split_and_normalisation():
    d = load_dataset("digits")
    assert d.num_classes == 10 and d.input_size == (3, 32, 32)
    assert d.size("train") + d.size("test") == 1797
    assert d.size("test") == 360
    x, y = next(iter(d.loader("train", 1437, shuffle=False, augment=False)))
    assert x.shape == (1437, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05
    assert torch.equal(x[:, 0], x[:, 1])  # grey replicated
    # stratified: every class in the test split with 35-37 examples
    _, yt = next(iter(d.loader("test", 1000)))
    assert set(np.bincount(yt.numpy())) <= {35, 36, 37}


def test_digits_split_is_fixed_and_val_is_carved_from_train():
    a, b = load_dataset("digits"), load_dataset("digits", val_fraction=0.2, seed=3)
    xa = a.sample(360, "test")
    xb = b.sample(360, "test")
    assert torch.equal(xa, xb)
    assert b.size("train") + b.size("val") == a.size("train")
    tr = {tuple(v.tolist()) for v in b.splits["train"].images.flatten(1)[:, ::7]}
    va = [tuple(v.tolist()) for v in b.splits["val"].images.flatten(1)[:, ::7]]
    assert sum(v in tr for v in va) < 5  # (near-)disjoint; digits has a few duplicates


def test_loader_defaults_augment_train_only():
    d = load_dataset("digits")
    torch.manual_seed(0)
    x1, _ = next(iter(d.loader("train", 64, shuffle=False)))
    x2, _ = next(iter(d.loader("train", 64, shuffle=False, augment=False)))
    x3, _ = next(iter(d.loader("test", 64)))
    x4, _ = next(iter(d.loader("test", 64)))
    assert not torch.equal(x1, x2)
    assert torch.equal(x3, x4)


def test_sample_and_errors():
    d = load_dataset("digits")
    s = d.sample(5, "test", seed=1)
    assert s.shape == (5, 3, 32, 32)
    assert torch.equal(s, d.sample(5, "test", seed=1))
    with pytest.raises(DwrError, match="holds 360"):
        d.sample(361, "test")
    with pytest.raises(DwrError, match="no 'val' split"):
        d.loader("val", 8)
    with pytest.raises(DwrError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
