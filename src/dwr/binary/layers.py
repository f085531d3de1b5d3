"""Binary layers: convolution and linear maps that binarize their input and/or weights.

Wiring only; the math lives in :mod:`dwr.binary.binarizers`. A binarizer given as ``None``
keeps that side full precision, so the same module serves the BNN and its float twin.
Padding is applied *after* binarization, so a padded position contributes 0 (not ±1):
exactly what a bit-packed kernel with a validity mask computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dwr.binary.binarizers import Binarizer, binarizer_properties, get_binarizer


def _one_bit(fn: Binarizer | None) -> bool:
    """A binarizer counts as 1 bit unless its properties declare more."""
    if fn is None:
        return False
    properties = binarizer_properties(fn)
    return properties is None or properties.precision == 1


class _Binarized:
    """Shared by the binary layers: binarize the input and the weight (``None``: keep real)."""

    input_binarizer: Binarizer | None
    weight_binarizer: Binarizer | None
    weight: torch.Tensor

    @property
    def is_binary(self) -> bool:
        """True when both operands are binarized to 1 bit, so the MACs are XNOR/popcount (BOPs)."""
        return _one_bit(self.input_binarizer) and _one_bit(self.weight_binarizer)

    def _operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.input_binarizer is not None:
            x = self.input_binarizer(x)
        w = self.weight if self.weight_binarizer is None else self.weight_binarizer(self.weight)
        return x, w


class BinaryConv2d(_Binarized, nn.Conv2d):
    """``conv2d(input_binarizer(x), weight_binarizer(W))``; no bias (BN follows)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        input_binarizer: str | Binarizer | None = "approx_sign",
        weight_binarizer: str | Binarizer | None = "scaled_sign",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.input_binarizer = get_binarizer(input_binarizer)
        self.weight_binarizer = get_binarizer(weight_binarizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, w = self._operands(x)
        return F.conv2d(x, w, None, self.stride, self.padding)


class BinaryLinear(_Binarized, nn.Linear):
    """``linear(input_binarizer(x), weight_binarizer(W)) + b``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        input_binarizer: str | Binarizer | None = "approx_sign",
        weight_binarizer: str | Binarizer | None = "scaled_sign",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.input_binarizer = get_binarizer(input_binarizer)
        self.weight_binarizer = get_binarizer(weight_binarizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, w = self._operands(x)
        return F.linear(x, w, self.bias)


class LearnableBias(nn.Module):
    """Adds a learnable per-channel shift: x + b (ReActNet's ``move`` layers)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class RSign(nn.Module):
    """ReActNet's RSign: a learnable per-channel threshold before the sign.

    The module returns the shifted input ``x + b``; the binary convolution that follows
    binarizes it, so sign(x + b) is computed once and the gradient flows to b.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift = LearnableBias(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift(x)


class RPReLU(nn.Module):
    """ReActNet's RPReLU: PReLU(x - gamma) + zeta, all per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift_in = LearnableBias(channels)
        self.prelu = nn.PReLU(channels, init=0.25)
        self.shift_out = LearnableBias(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shift_out(self.prelu(self.shift_in(x)))
