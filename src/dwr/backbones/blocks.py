"""Building blocks shared by every family.

- :class:`Stem`: the real-valued first convolution (+ BN, activation, optional max-pool).
- :class:`StemAdapter`: the DWR authors' cheap widening of the stem's channels (``Convalg``).
- :class:`BinaryUnit`: ``act(BN(binconv3x3(shift(x))) + shortcut(x))`` -- one binary conv with
  its own shortcut (IR-Net/Bi-Real/ReActNet); with ``residual=False`` it is VGG's conv unit.
- :func:`make_shortcut`: identity, real 1x1 conv + BN, avg-pool + 1x1 conv + BN, or the
  parameter-free zero padding (ResNet-20's option A), average pool or tiling (ReActNet-A).
- :class:`Head`: global average pool and the real-valued classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dwr.backbones.methods import Method, activation, input_shift
from dwr.backbones.spec import STEM_GEOMETRY
from dwr.binary import BinaryConv2d
from dwr.errors import DwrError


class Stem(nn.Module):
    """Real-valued first conv, BN, activation and max-pool as its kind's
    :data:`~dwr.backbones.spec.STEM_GEOMETRY` says, then, with ``adapter_width``, a
    :class:`StemAdapter` to that many channels."""

    def __init__(
        self, kind: str, in_channels: int, width: int, method: Method, adapter_width: int = 0
    ) -> None:
        super().__init__()
        g = STEM_GEOMETRY[kind]
        self.conv = nn.Conv2d(in_channels, width, g.k, g.stride, g.pad, bias=False)
        pool = nn.MaxPool2d(*g.pool) if g.pool else nn.Identity()
        self.bn = nn.BatchNorm2d(width)
        self.act = activation(method, width) if g.act else nn.Identity()
        self.pool = pool
        self.adapter = StemAdapter(width, adapter_width) if adapter_width else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.pool(self.act(self.bn(self.conv(x)))))


class StemAdapter(nn.Module):
    """``PReLU(cat(BN(dwconv1x1(x)), x, x, ...)[:, :width])``: ``C`` channels to ``width``.

    The DWR authors' ``Convalg`` (ImageNet DWR code): a per-channel scale and shift (a
    depthwise 1x1 conv and BN) of the stem's output, concatenated with that output itself and
    sliced to stage 0's width, so stage 0 starts with a width-to-width binary conv. Their
    widths are at most ``2C``; a wider (reshaped) stage 0 concatenates more copies of ``x``.
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.conv = nn.Conv2d(in_channels, in_channels, 1, groups=in_channels, bias=False)
        self.bn = nn.BatchNorm2d(in_channels)
        self.act = nn.PReLU(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        copies = max(1, -(-self.width // self.conv.in_channels) - 1)  # traceable: no x.shape
        out = torch.cat([self.bn(self.conv(x))] + [x] * copies, dim=1)[:, : self.width]
        return self.act(out)


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: subsample by the stride, then zero-pad (or drop) channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra > 0:
            x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        elif extra < 0:  # widths that shrink keep the first channels
            x = x[:, : self.out_channels]
        return x


class TileShortcut(nn.Module):
    """``cat([x, x, ...], 1)[:, :out_channels]``: ReActNet-A's doubling blocks, whose two 1x1
    convs of one input each add that input (one conv of twice the width, shortcut tiled)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        copies = -(-self.out_channels // x.shape[1])
        return torch.cat([x] * copies, dim=1)[:, : self.out_channels]


def _avg_pool(stride: int) -> nn.AvgPool2d:
    return nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match; otherwise the unit's (real-valued or parameter-free)
    downsampling shortcut (kinds: :data:`dwr.backbones.units.SHORTCUT_KINDS`)."""
    if kind == "identity" or (stride == 1 and in_channels == out_channels):
        return nn.Identity()
    if kind == "zero_pad":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if kind == "avgpool":
        if in_channels != out_channels or stride == 1:
            raise DwrError("an avgpool shortcut keeps the channels and needs a stride")
        return _avg_pool(stride)
    if kind == "tile":
        if stride != 1:
            raise DwrError("a tile shortcut has stride 1")
        return TileShortcut(out_channels)
    layers: list[nn.Module] = []
    if kind == "avgpool_conv" and stride > 1:
        layers.append(_avg_pool(stride))
        stride = 1
    layers += [
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    return nn.Sequential(*layers)


class BinaryUnit(nn.Module):
    """One binary k x k convolution (3 unless given): ``act(BN(conv(shift(x))) + shortcut(x))``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        method: Method,
        binary: bool,
        shortcut: str | None,
        kernel: int = 3,
    ) -> None:
        super().__init__()
        self.shift = input_shift(method, in_channels)
        self.conv = BinaryConv2d(
            in_channels,
            out_channels,
            kernel,
            stride,
            kernel // 2,
            input_binarizer=method.input_binarizer if binary else None,
            weight_binarizer=method.weight_binarizer if binary else None,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.shortcut = (
            None if shortcut is None else make_shortcut(shortcut, in_channels, out_channels, stride)
        )
        self.act = activation(method, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(self.shift(x)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class Head(nn.Module):
    """Global average pool, flatten, real-valued linear classifier."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))
