"""Optimiser and learning-rate schedule from a recipe.

Weight decay applies to conv and linear weights (tensors with more than one dimension) only;
BatchNorm parameters, biases and learnable shifts are not decayed. The schedule multiplies the
base rate by ``f(t)`` at every optimisation step ``t`` of ``T``:
warm-up ``(t + 1) / W`` for ``t < W``, then cosine ``(1 + cos(pi p)) / 2`` or linear ``1 - p``
with ``p = (t - W) / (T - W)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(
    model: nn.Module, cfg: dict[str, Any], weight_decay: float, fused: bool = False
) -> torch.optim.Optimizer:
    """The recipe's optimiser; ``fused`` (CUDA parameters) updates every tensor in one kernel."""
    groups = param_groups(model, weight_decay)
    extra = {"fused": True} if fused else {}
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=cfg["lr"], **extra)
    return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=False, **extra)


class LrFactor:
    """Picklable ``f(step)`` for :class:`torch.optim.lr_scheduler.LambdaLR`."""

    def __init__(self, kind: str, total: int, warmup: int) -> None:
        self.kind, self.total, self.warmup = kind, max(1, total), max(0, warmup)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        p = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.kind == "linear":
            return 1.0 - p
        return 0.5 * (1.0 + math.cos(math.pi * p))


def make_scheduler(optimizer, cfg: dict[str, Any], total_steps: int, steps_per_epoch: int):
    warmup = round(cfg["warmup_epochs"] * steps_per_epoch)
    factor = LrFactor(cfg["schedule"], total_steps, warmup)
    # A lambda (unlike a callable object) is not saved in the scheduler's state, so a run
    # resumed with more epochs follows the new schedule from its restored step count.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step))
