"""Batched augmentation on uint8 image tensors (no per-image Python loops).

- :func:`random_crop`: zero-pad every side by ``pad`` pixels, then cut an ``H x W`` window at
  an independent random offset per image (the CIFAR "random crop with 4-pixel padding").
- :func:`random_flip`: mirror each image horizontally with probability 1/2.
- :func:`normalize`: ``(x / 255 - mean) / std`` per channel, returned as float32.

Each runs on the device that holds ``x`` (a CUDA generator for CUDA tensors), so the same
code augments CPU batches and a training split that lives on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def random_crop(
    x: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-image random ``H x W`` crop of the batch ``x`` (N, C, H, W) zero-padded by ``pad``."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]  # (N, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=dev)[:, None, None]
    # Advanced indexing on (N, H', W', C) picks out[n, i, j] = padded[n, oy+i, ox+j].
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image of ``x`` (N, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x / 255 - mean) / std`` for a uint8 batch; float32 out."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - m) / s


def gather_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    idx: torch.Tensor,
    *,
    augment: bool,
    pad: int,
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``idx`` of a uint8 split: cropped and flipped when ``augment``, normalised,
    with its labels. The one recipe of the CPU DataLoader path and the device path."""
    x = images[idx]
    if augment:
        x = random_crop(x, pad, generator=generator)
        if flip:
            x = random_flip(x, generator=generator)
    return normalize(x, mean, std), labels[idx]
