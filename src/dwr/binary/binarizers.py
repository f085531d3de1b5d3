"""Binarizers: pure functions to {-1, +1} with the custom gradients of the BNN literature.

Each activation binarizer is a ``torch.autograd.Function`` (forward and backward written out);
weight binarizers may add a real scale. All are registered by name so layers can take
``input_binarizer="approx_sign"`` as in larq.

``sign`` here maps 0 to +1, so every output is exactly ±1 (what XNOR/popcount computes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dwr.errors import DwrError

Binarizer = Callable[[torch.Tensor], torch.Tensor]


def sign(x: torch.Tensor) -> torch.Tensor:
    """Forward of every binarizer: +1 where x >= 0, else -1 (no zeros)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SteSign(torch.autograd.Function):
    """sign(x); backward: dL/dx = dL/dy * 1{|x| <= 1} (clipped straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _ApproxSign(torch.autograd.Function):
    """sign(x); backward (Bi-Real): dL/dx = dL/dy * max(0, 2 - 2|x|).

    That is the derivative of the piecewise polynomial 2x + x|x| on [-1, 1].
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (2.0 - 2.0 * x.abs()).clamp_min(0.0)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    """Sign with the clipped straight-through gradient (BNN, XNOR-Net)."""
    return _SteSign.apply(x)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """Sign with Bi-Real's piecewise-polynomial gradient max(0, 2 - 2|x|)."""
    return _ApproxSign.apply(x)


def scaled_sign(w: torch.Tensor) -> torch.Tensor:
    """Weight binarizer of Bi-Real/ReActNet: alpha_o * sign(W), alpha_o = mean |W_o| (detached).

    The scale is per output channel (dim 0) and carries no gradient; sign uses the clipped STE,
    so dL/dW = alpha_o * dL/dW_b * 1{|W| <= 1}.
    """
    alpha = w.detach().abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
    return alpha * ste_sign(w)


_REGISTRY: dict[str, Binarizer] = {
    "ste_sign": ste_sign,
    "approx_sign": approx_sign,
    "scaled_sign": scaled_sign,
}

#: Names valid as activation binarizers and as weight binarizers.
INPUT_BINARIZERS = ("ste_sign", "approx_sign")
WEIGHT_BINARIZERS = ("ste_sign", "scaled_sign")


def register_binarizer(name: str, fn: Binarizer) -> Binarizer:
    """Add a binarizer under ``name`` so layers can refer to it as a string."""
    _REGISTRY[name] = fn
    return fn


def get_binarizer(spec: str | Binarizer | None) -> Binarizer | None:
    """Resolve a binarizer given by name, as a callable, or ``None`` (full precision)."""
    if spec is None or callable(spec):
        return spec
    if spec not in _REGISTRY:
        raise DwrError(f"unknown binarizer {spec!r}; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[spec]


def binarizer_name(fn: Binarizer | None) -> str | None:
    """The registered name of a binarizer (None for full precision or an unregistered one)."""
    for name, registered in _REGISTRY.items():
        if registered is fn:
            return name
    return None
