"""Stage feature statistics for clustering-based pruning.

For stage ``i`` with a tensor ``F[n, c, h, w]`` over ``N`` images, channel ``c`` is described by
its feature map averaged over the images and flattened: ``v_c = (1/N) sum_n F[n, c].flatten()``,
a vector of length ``H*W``. Channels with near-parallel vectors carry the same information.

Which tensor (``tensor``):
- ``"stage"``: the stage's output (after its last unit's BN, shortcut and activation);
- ``"conv"``: the output of the stage's last binary convolution, before its BN (what the DWR
  authors' ``Pruning/clustest-cifar.py`` hooks).
"""

from __future__ import annotations

import torch
from torch import nn

from dwr.errors import DwrError

TENSORS = ("stage", "conv")


def _hooked(model: nn.Module, tensor: str) -> list[nn.Module]:
    """The module whose output describes each stage."""
    stages = getattr(model, "stages", None)
    if stages is None:
        raise DwrError("stage features need a dwr Backbone (a model with .stages)")
    if tensor not in TENSORS:
        raise DwrError(f"unknown feature tensor {tensor!r}; choose one of {list(TENSORS)}")
    if tensor == "stage":
        return list(stages)
    convs = []
    for i, stage in enumerate(stages):
        units = [m for m in stage if hasattr(m, "conv")]
        if not units:
            raise DwrError(f"stage {i} has no binary convolution to cluster")
        convs.append(units[-1].conv)
    return convs


@torch.no_grad()
def stage_features(
    model: nn.Module, images: torch.Tensor, batch_size: int = 64, tensor: str = "stage"
) -> list[torch.Tensor]:
    """One ``[C_i, H_i * W_i]`` float64 tensor per stage: each channel's mean feature map.

    Hooks ``model.stages[i]`` (``tensor="stage"``) or its last binary conv (``"conv"``); the
    model runs in eval mode and is left as it was.
    """
    modules = _hooked(model, tensor)
    if images.ndim != 4 or images.shape[0] == 0:
        raise DwrError(
            f"sample images must be a non-empty [N, C, H, W] batch, got {tuple(images.shape)}"
        )
    sums: list[torch.Tensor | None] = [None] * len(modules)

    def hook(i: int):
        def fn(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            s = out.detach().double().sum(dim=0).flatten(1)  # [C, H*W]
            sums[i] = s if sums[i] is None else sums[i] + s

        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, images.shape[0], batch_size):
            model(images[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    n = images.shape[0]
    return [s / n for s in sums]  # type: ignore[operator]
