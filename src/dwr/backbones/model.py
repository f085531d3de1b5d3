"""The one factory: a :class:`BackboneSpec` in, an ``nn.Module`` out.

Every backbone has the same outline, ``stem -> stages[0..n-1] -> head``, so pruning can hook
``stages[i]`` and the engine can walk units without knowing which family built them.
"""

from __future__ import annotations

import torch
from torch import nn

from dwr.backbones.blocks import BinaryUnit, Head, Stem
from dwr.backbones.methods import METHOD_TABLE
from dwr.backbones.spec import BackboneSpec


class Backbone(nn.Module):
    """A BNN backbone built from (and carrying) its spec."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.spec = spec
        method = METHOD_TABLE[spec.method]
        adapter = spec.widths[0] if spec.stem_adapter else 0
        self.stem = Stem(spec.stem, spec.in_channels, spec.stem_width, method, adapter)
        in_ch = adapter or spec.stem_width
        stages: list[nn.Module] = []
        for depth, width, stride in zip(spec.depths, spec.widths, spec.strides, strict=True):
            units: list[nn.Module] = []
            for b in range(depth):
                s = stride if b == 0 else 1
                if spec.family == "resnet":
                    for _ in range(spec.block_convs):
                        units.append(
                            BinaryUnit(in_ch, width, s, method, spec.binary, spec.shortcut)
                        )
                        in_ch, s = width, 1
                else:
                    units.append(BinaryUnit(in_ch, width, 1, method, spec.binary, None))
                    in_ch = width
            if spec.family == "vgg" and stride == 2:
                units.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*units))
        self.stages = nn.ModuleList(stages)
        self.head = Head(in_ch, spec.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every stage (what clustering-based pruning reads)."""
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def build(spec: BackboneSpec) -> Backbone:
    """Build the module a spec describes."""
    return Backbone(spec)
