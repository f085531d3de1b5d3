"""MobileNet-V1-shaped BNNs: ReActNet-A (Liu et al., ECCV 2020), the baseline of most ImageNet
BNN papers.

A block ``C -> W`` (stride s) is two binary units, each with RSign and RPReLU:
- a normal (not depthwise) 3x3 conv ``C -> C`` at stride s, whose shortcut is the input, or its
  2x2 average pool when s = 2;
- a 1x1 conv ``C -> W`` whose shortcut is the input, tiled to ``W`` channels when W != C.
  ReActNet's code doubles the width with two 1x1 convs of one binarized input, each adding
  that input, and concatenates them: exactly one 1x1 conv of twice the width with the input
  tiled twice, which is how it is built here.

Stages group blocks of one width; the first block of a stage applies the stride and changes
the width. ``reactnet_a`` is stem 32 (3x3 stride 2, BN, no activation), then widths
64/128/256/512/1024 with 1/2/2/6/2 blocks, strides 1/2/2/2/2, as ``stage_out_channel``.
"""

from __future__ import annotations

from dwr.backbones.registry import register_model
from dwr.backbones.spec import BackboneSpec
from dwr.backbones.units import Stage, Unit, register_family


def _block(in_channels: int, width: int, stride: int) -> list[Unit]:
    return [
        Unit(in_channels, in_channels, 3, stride, "identity" if stride == 1 else "avgpool"),
        Unit(in_channels, width, 1, 1, "identity" if width == in_channels else "tile"),
    ]


@register_family("mobilenet", "ReActNet-A blocks: binary 3x3 then 1x1, pooled and tiled shortcuts")
def mobilenet_units(spec: BackboneSpec, in_channels: int) -> list[Stage]:
    stages: list[Stage] = []
    for depth, width, stride in zip(spec.depths, spec.widths, spec.strides, strict=True):
        stage: Stage = []
        for b in range(depth):
            stage += _block(in_channels, width, stride if b == 0 else 1)
            in_channels = width
        stages.append(stage)
    return stages


@register_model
def reactnet_a() -> BackboneSpec:
    return BackboneSpec(
        family="mobilenet",
        depths=(1, 2, 2, 6, 2),
        widths=(64, 128, 256, 512, 1024),
        strides=(1, 2, 2, 2, 2),
        stem_width=32,
        stem="mobilenet",
        block_convs=1,
        method="reactnet",
        num_classes=1000,
        name="reactnet_a",
    )
