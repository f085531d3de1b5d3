"""Binarization methods: which binarizers a backbone uses and what sits around the sign.

- ``irnet`` (IR-Net / DWR CIFAR): ApproxSign activations, scaled-sign weights, Hardtanh.
- ``bireal`` (Bi-Real Net): ApproxSign, scaled-sign weights, no extra nonlinearity.
- ``reactnet`` (ReActNet): RSign (learnable threshold) + ApproxSign, scaled-sign weights, RPReLU.
- ``bnn`` (BNN / XNOR-style): clipped-STE sign for both, Hardtanh.

A spec with ``binary=False`` keeps the same wiring with both binarizers ``None`` (float twin).
The table is plain data (the lowering reads it without PyTorch); the module builders import
PyTorch when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Method:
    input_binarizer: str
    weight_binarizer: str
    activation: str  # "hardtanh" | "identity" | "rprelu"
    rsign: bool


METHOD_TABLE: dict[str, Method] = {
    "irnet": Method("approx_sign", "scaled_sign", "hardtanh", rsign=False),
    "bireal": Method("approx_sign", "scaled_sign", "identity", rsign=False),
    "reactnet": Method("approx_sign", "scaled_sign", "rprelu", rsign=True),
    "bnn": Method("ste_sign", "ste_sign", "hardtanh", rsign=False),
}


def activation(method: Method, channels: int) -> nn.Module:
    """The nonlinearity after each unit's residual add."""
    from torch import nn

    from dwr.binary import RPReLU

    if method.activation == "hardtanh":
        return nn.Hardtanh()
    if method.activation == "rprelu":
        return RPReLU(channels)
    return nn.Identity()


def input_shift(method: Method, channels: int) -> nn.Module:
    """RSign's learnable threshold before a binary conv (identity for other methods)."""
    from torch import nn

    from dwr.binary import RSign

    return RSign(channels) if method.rsign else nn.Identity()
