"""Batches served from a tensor split that lives on the training device.

The CPU path gathers and augments every batch in a DataLoader and copies it to the device. On a
GPU that copy and the Python around it cost more than a small BNN's step, so here the split is
uploaded once (uint8, about 150 MB for CIFAR-10) and every batch is gathered, cropped, flipped
and normalised where it lives, by the same functions as the CPU path (:mod:`dwr.data.augment`).

The order and the augmentation of epoch ``e`` come from a generator on the device seeded with
``(seed, e)``. Each pass over the batches is the next epoch, starting at ``start_epoch``, so a
run resumed at an epoch boundary sees the batches it would have seen.
Training drops the last partial batch (a fixed batch shape lets ``torch.compile`` and CUDA
graphs reuse one graph); evaluation keeps every image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from dwr.data.augment import gather_batch


class DeviceBatches:
    """An iterable of ``(images, labels)`` batches drawn from ``images`` on their device.

    ``images`` is (N, C, H, W) uint8 and ``labels`` (N,) int64, both already on the device.
    Every ``iter()`` starts the next epoch (:attr:`epoch` is the one it will draw).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        shuffle: bool,
        augment: bool,
        pad: int = 0,
        flip: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        start_epoch: int = 0,
        channels_last: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.shuffle, self.augment, self.pad, self.flip = shuffle, augment, pad, flip
        self.drop_last, self.seed, self.channels_last = drop_last, seed, channels_last
        self.epoch = start_epoch

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n = int(self.labels.shape[0])
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self._epoch(epoch)

    def _epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator(device=self.device)
        g.manual_seed(self.seed * 1_000_003 + epoch)
        n = int(self.labels.shape[0])
        if self.shuffle:
            order = torch.randperm(n, generator=g, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self._batch(idx, g)

    def _batch(self, idx: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = gather_batch(
            self.images, self.labels, idx, augment=self.augment, pad=self.pad, flip=self.flip,
            mean=self.mean, std=self.std, generator=g,
        )  # fmt: skip
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y
