"""The one factory: a :class:`BackboneSpec` in, an ``nn.Module`` out.

Every backbone has the same outline, ``stem -> stages[0..n-1] -> head``, so pruning can hook
``stages[i]`` and the engine can walk units without knowing which family built them. The
stages are the family's unit list (:mod:`dwr.backbones.units`), one module per entry.
"""

from __future__ import annotations

import torch
from torch import nn

from dwr.backbones.blocks import BinaryUnit, Head, Stem
from dwr.backbones.methods import METHOD_TABLE
from dwr.backbones.spec import BackboneSpec
from dwr.backbones.units import Pool, stage_units


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
        for stage in stage_units(spec):
            modules: list[nn.Module] = []
            for u in stage:
                if isinstance(u, Pool):
                    modules.append(nn.MaxPool2d(2))
                    continue
                shortcut = None if u.shortcut == "none" else u.shortcut
                modules.append(
                    BinaryUnit(
                        u.in_channels,
                        u.out_channels,
                        u.stride,
                        method,
                        spec.binary,
                        shortcut,
                        kernel=u.kernel,
                    )
                )
                in_ch = u.out_channels
            stages.append(nn.Sequential(*modules))
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
