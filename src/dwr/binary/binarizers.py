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


class _SignWithSurrogate(torch.autograd.Function):
    """Forward ``sign(x)``; backward ``dL/dx = dL/dy * surrogate'(x)`` (set by subclasses)."""

    @staticmethod
    def surrogate_grad(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign(x)

    @classmethod
    def backward(cls, ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * cls.surrogate_grad(x).to(grad.dtype)


class _SteSign(_SignWithSurrogate):
    """Clipped straight-through estimator: surrogate'(x) = 1{|x| <= 1}."""

    @staticmethod
    def surrogate_grad(x: torch.Tensor) -> torch.Tensor:
        return x.abs() <= 1


class _ApproxSign(_SignWithSurrogate):
    """Bi-Real: surrogate'(x) = max(0, 2 - 2|x|), the derivative of 2x + x|x| on [-1, 1]."""

    @staticmethod
    def surrogate_grad(x: torch.Tensor) -> torch.Tensor:
        return (2.0 - 2.0 * x.abs()).clamp_min(0.0)


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
