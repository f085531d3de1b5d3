"""The :class:`DataBundle`: one data set's splits, served as normalised NCHW batches.

Two kinds of split exist:

- :class:`TensorSplit`: every image held in memory as a uint8 tensor (digits, CIFAR). A batch is
  gathered by index and augmented as a whole in the ``collate_fn`` (see :mod:`dwr.data.augment`).
- :class:`FileSplit`: image files decoded by Pillow in DataLoader workers (ImageFolder).

A tensor split can also be uploaded to the training device once and served from there
(:meth:`DataBundle.device_loader`), which is how GPU training keeps the GPU busy.

Loaders are plain :class:`torch.utils.data.DataLoader` objects, so Lightning can swap in a
``DistributedSampler`` under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dwr.data.augment import gather_batch, normalize
from dwr.data.device_loader import DeviceBatches
from dwr.errors import DwrError

SPLITS = ("train", "val", "test")


class _Indices(Dataset):
    """A dataset whose items are their own indices; the collate function does the work."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@dataclass
class TensorSplit:
    """Images (N, C, H, W) uint8 and labels (N,) int64 in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> TensorSplit:
        t = torch.as_tensor(idx, dtype=torch.long)
        return TensorSplit(self.images[t], self.labels[t])


class _GatherBatch:
    """collate_fn: indices -> (normalised float batch, labels), augmented as a whole."""

    def __init__(self, split: TensorSplit, augment: bool, pad: int, flip: bool, mean, std):
        self.split, self.augment, self.pad, self.flip = split, augment, pad, flip
        self.mean, self.std = mean, std

    def __call__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return gather_batch(
            self.split.images, self.split.labels, idx, augment=self.augment, pad=self.pad,
            flip=self.flip, mean=self.mean, std=self.std,
        )  # fmt: skip


@dataclass
class FileSplit:
    """Image paths and labels; decoded on demand by a transform from :mod:`dwr.data.imagefolder`."""

    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> FileSplit:
        return FileSplit([self.paths[i] for i in idx], [self.labels[i] for i in idx])


@dataclass
class DataBundle:
    """A data set: its splits, class names, input size and normalisation.

    ``augment`` holds the training augmentation for tensor splits: ``pad`` (random-crop
    padding in pixels) and ``flip`` (horizontal flips).
    """

    name: str
    num_classes: int
    input_size: tuple[int, int, int]
    class_names: list[str]
    splits: dict[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: dict[str, Any] = field(default_factory=dict)
    root: str | None = None
    _uploaded: dict[tuple[str, str, int], tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def _split(self, split: str):
        if split not in SPLITS:
            raise DwrError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        if split not in self.splits:
            hint = " (load the data set with val_fraction > 0)" if split == "val" else ""
            raise DwrError(f"data set {self.name!r} has no {split!r} split{hint}")
        return self.splits[split]

    def size(self, split: str) -> int:
        """Number of examples in ``split``."""
        return len(self._split(split))

    def loader(
        self,
        split: str,
        batch_size: int,
        shuffle: bool | None = None,
        augment: bool | None = None,
        workers: int = 0,
        skip_bad: bool = False,
    ) -> DataLoader:
        """Batches of normalised float NCHW images and int64 labels.

        ``shuffle`` and ``augment`` default to ``split == "train"``. ``skip_bad``: image files
        that cannot be decoded do not stop the loader (see :class:`ImageFileDataset`).
        """
        data = self._split(split)
        if batch_size < 1:
            raise DwrError(f"batch_size must be >= 1, got {batch_size}")
        train = split == "train"
        shuffle = train if shuffle is None else shuffle
        augment = train if augment is None else augment
        # A training batch of one image would break BatchNorm: drop such a remainder.
        drop_last = train and len(data) % batch_size == 1
        if isinstance(data, TensorSplit):
            collate = _GatherBatch(
                data,
                augment,
                int(self.augment.get("pad", 0)),
                bool(self.augment.get("flip", False)),
                self.mean,
                self.std,
            )
            return DataLoader(
                _Indices(len(data)),
                batch_size=batch_size,
                shuffle=shuffle,
                collate_fn=collate,
                drop_last=drop_last,
                num_workers=workers,
                persistent_workers=workers > 0,
            )
        from dwr.data.imagefolder import ImageFileDataset

        dataset = ImageFileDataset(data, augment, self.mean, self.std, skip_bad=skip_bad)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def on_device(self, split: str) -> bool:
        """Whether ``split`` can be served by :meth:`device_loader` (it is held in memory)."""
        return split in self.splits and isinstance(self.splits[split], TensorSplit)

    def device_loader(
        self,
        split: str,
        batch_size: int,
        device: torch.device | str,
        *,
        seed: int = 0,
        start_epoch: int = 0,
        channels_last: bool = False,
    ) -> DeviceBatches:
        """Batches of ``split`` gathered and augmented on ``device``, where the split is
        uploaded once (see :mod:`dwr.data.device_loader`). Training splits are shuffled,
        augmented and drop their last partial batch; other splits are served in order.
        ``start_epoch`` is the epoch the first pass draws (a resumed run's next epoch)."""
        data = self._split(split)
        if not isinstance(data, TensorSplit):
            raise DwrError(
                f"the {split!r} split of {self.name!r} is read from files; only in-memory data "
                "sets (digits, CIFAR) can live on the device"
            )
        if batch_size < 1:
            raise DwrError(f"batch_size must be >= 1, got {batch_size}")
        key = (split, str(torch.device(device)), id(data))
        if key not in self._uploaded:
            self._uploaded[key] = (data.images.to(device), data.labels.to(device))
        images, labels = self._uploaded[key]
        train = split == "train"
        return DeviceBatches(
            images,
            labels,
            batch_size,
            self.mean,
            self.std,
            shuffle=train,
            augment=train,
            pad=int(self.augment.get("pad", 0)),
            flip=bool(self.augment.get("flip", False)),
            drop_last=train and len(data) >= batch_size,
            seed=seed,
            start_epoch=start_epoch,
            channels_last=channels_last,
        )

    def sample(self, n: int, split: str = "train", seed: int = 0) -> torch.Tensor:
        """``n`` normalised images drawn without replacement (seeded), never augmented."""
        data = self._split(split)
        if n < 1 or n > len(data):
            raise DwrError(
                f"cannot sample {n} images from the {split!r} split of {self.name!r}: "
                f"it holds {len(data)}"
            )
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data), generator=g)[:n].sort().values
        if isinstance(data, TensorSplit):
            return normalize(data.images[idx], self.mean, self.std)
        from dwr.data.imagefolder import ImageFileDataset

        dataset = ImageFileDataset(data, train_transform=False, mean=self.mean, std=self.std)
        return torch.stack([dataset[int(i)][0] for i in idx])


def carve_val(
    splits: dict[str, Any], labels: Sequence[int], val_fraction: float, seed: int
) -> dict[str, Any]:
    """Move a stratified ``val_fraction`` of ``splits["train"]`` into ``splits["val"]``."""
    if val_fraction <= 0:
        return splits
    if not val_fraction < 1:
        raise DwrError(f"val_fraction must be in [0, 1), got {val_fraction}")
    from sklearn.model_selection import train_test_split

    y = np.asarray(labels)
    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DwrError(f"cannot carve a validation split of {val_fraction}: {exc}") from None
    out = dict(splits)
    out["train"] = splits["train"].subset(np.sort(tr))
    out["val"] = splits["train"].subset(np.sort(va))
    return out
