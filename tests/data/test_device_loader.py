"""The device-resident batches (``DataBundle.device_loader``): the same augmentation, order
and labels as the CPU DataLoader path, drawn per (seed, epoch). Run on the CPU here: the code is
the same on a GPU, only the tensors' device differs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dwr.data.augment import normalize
from dwr.data.bundle import DataBundle, TensorSplit
from dwr.errors import DwrError

N, SIZE, PAD = 96, 12, 3


def _coordinates_bundle() -> DataBundle:
    """Images whose pixels name their own row (channel 0) and column (channel 1), offset by
    10 so zero padding stands out; channel 2 holds the image's index."""
    rows = torch.arange(SIZE).view(1, SIZE, 1).expand(N, SIZE, SIZE) + 10
    cols = torch.arange(SIZE).view(1, 1, SIZE).expand(N, SIZE, SIZE) + 10
    ids = torch.arange(N).view(N, 1, 1).expand(N, SIZE, SIZE)
    images = torch.stack([rows, cols, ids], 1).to(torch.uint8)
    split = TensorSplit(images, torch.arange(N) % 7)
    return DataBundle(
        "coords", 7, (3, SIZE, SIZE), [str(i) for i in range(7)],
        {"train": split, "test": split}, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255),
        augment={"pad": PAD, "flip": True},
    )  # fmt: skip


def _decode(x: torch.Tensor) -> tuple[list[tuple[int, int, bool]], torch.Tensor]:
    """(row offset, column offset, flipped) per image of an augmented batch, and image ids."""
    x = x.round().to(torch.int64)
    out = []
    for img in x:
        # out[i, j] = image[oy + i - PAD, ox + j - PAD] + 10, or 0 in the padding
        r, c = img[0, :, SIZE // 2], img[1, SIZE // 2, :]
        nz = (c > 0).nonzero().flatten()
        flipped = bool(c[nz[0]] > c[nz[-1]])
        c = c.flip(0) if flipped else c
        i, j = int((r > 0).nonzero()[0]), int((c > 0).nonzero()[0])
        out.append((int(r[i]) - 10 - i + PAD, int(c[j]) - 10 - j + PAD, flipped))
    ids = x[:, 2].amax(dim=(1, 2))
    return out, ids


def _stats(batches) -> tuple[np.ndarray, float, set[int]]:
    counts, flips, n, seen = np.zeros((2 * PAD + 1, 2 * PAD + 1)), 0, 0, set()
    for x, y in batches:
        decoded, ids = _decode(x)
        assert torch.equal(y, ids % 7)  # labels travel with their images
        seen |= set(ids.tolist())
        for oy, ox, flipped in decoded:
            counts[oy, ox] += 1
            flips, n = flips + flipped, n + 1
    return counts / n, flips / n, seen


def test_device_batches_match_the_cpu_augmentation_distribution():
    data = _coordinates_bundle()
    torch.manual_seed(0)
    cpu = [b for _ in range(20) for b in data.loader("train", 32)]
    loader = data.device_loader("train", 32, "cpu", seed=0)
    dev = [b for _ in range(20) for b in loader]
    (p_cpu, f_cpu, _), (p_dev, f_dev, seen) = _stats(cpu), _stats(dev)
    uniform = 1 / (2 * PAD + 1) ** 2
    # 1,920 draws in 49 cells: each cell's share within 4 sigma of uniform, in both paths
    sigma = (uniform * (1 - uniform) / 1920) ** 0.5
    assert np.abs(p_dev - uniform).max() < 4 * sigma and np.abs(p_cpu - uniform).max() < 4 * sigma
    assert abs(f_dev - 0.5) < 0.05 and abs(f_cpu - 0.5) < 0.05
    assert seen == set(range(N))


def test_each_epoch_is_a_permutation_drawn_from_seed_and_epoch():
    data = _coordinates_bundle()
    a = data.device_loader("train", 32, "cpu", seed=3)
    epochs = [torch.cat([_decode(x)[1] for x, _ in a]) for _ in range(3)]
    for ids in epochs:
        assert sorted(ids.tolist()) == list(range(N))  # every image once (96 = 3 batches)
    assert not torch.equal(epochs[0], epochs[1])
    resumed = data.device_loader("train", 32, "cpu", seed=3, start_epoch=2)
    again = [x for x, _ in resumed]
    assert torch.equal(torch.cat(again), torch.cat([x for x, _ in _nth_epoch(data, 3, 2)]))
    other_seed = data.device_loader("train", 32, "cpu", seed=4)
    assert not torch.equal(torch.cat([_decode(x)[1] for x, _ in other_seed]), epochs[0])


def _nth_epoch(data, seed, n):
    loader = data.device_loader("train", 32, "cpu", seed=seed)
    for _ in range(n):
        list(loader)
    return list(loader)


def test_training_drops_a_partial_batch_and_evaluation_keeps_every_image_in_order():
    data = _coordinates_bundle()
    train = data.device_loader("train", 40, "cpu")
    assert len(train) == 2 and [x.shape[0] for x, _ in train] == [40, 40]
    test = data.device_loader("test", 40, "cpu")
    assert len(test) == 3
    x = torch.cat([b for b, _ in test])
    assert torch.equal(x, normalize(data.splits["test"].images, data.mean, data.std))


def test_channels_last_and_file_splits():
    data = _coordinates_bundle()
    x, _ = next(iter(data.device_loader("train", 8, "cpu", channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    files = DataBundle("f", 2, (3, 4, 4), ["a", "b"], {"train": object()}, (0,), (1,))
    assert not files.on_device("train")
    with pytest.raises(DwrError, match="read from files"):
        files.device_loader("train", 8, "cpu")
