"""Binarizers: pure functions to {-1, +1} with the custom gradients of the BNN literature.

Each activation binarizer is a ``torch.autograd.Function`` (forward and backward written out);
weight binarizers may add a real scale. All are registered by name so layers can take
``input_binarizer="approx_sign"`` as in larq, and each carries :class:`BinarizerProperties`
(precision, eval-mode forward, weight scale) that the cost model and the engine read instead of
its name, so a user's binarizer with a sign forward is counted and compiled like ours.

``sign`` here maps 0 to +1, so every output is exactly ±1 (what XNOR/popcount computes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dwr.errors import DwrError

Binarizer = Callable[[torch.Tensor], torch.Tensor]

#: Eval-mode forwards a binarizer may declare: ``"sign"`` is +1 where x >= 0, else -1.
FORWARDS = ("sign",)
#: Weight scales: ``"none"`` (plain ±1) or ``"mean_abs_per_output"``
#: (alpha_o = mean |W_o| over every dim but the first, as in XNOR-Net / Bi-Real).
SCALES = ("none", "mean_abs_per_output")


@dataclass(frozen=True)
class BinarizerProperties:
    """What a binarizer computes, as other code needs to know it (larq's quantizer properties).

    ``precision`` is the bits per value (1 for a binarizer); ``forward`` is its eval-mode
    forward (one of :data:`FORWARDS`); ``scale`` the real factor it multiplies the signs by
    (one of :data:`SCALES`); ``gradient`` names its backward, for people.
    """

    precision: int = 1
    forward: str = "sign"
    scale: str = "none"
    gradient: str = "unspecified"

    def __post_init__(self) -> None:
        if not isinstance(self.precision, int) or self.precision < 1:
            raise DwrError(f"binarizer precision must be a positive int, got {self.precision!r}")
        if self.forward not in FORWARDS:
            raise DwrError(f"binarizer forward {self.forward!r} is not one of {FORWARDS}")
        if self.scale not in SCALES:
            raise DwrError(f"binarizer scale {self.scale!r} is not one of {SCALES}")

    @property
    def is_sign(self) -> bool:
        """True when eval mode computes ``scale * sign(x)``: what XNOR/popcount can run."""
        return self.precision == 1 and self.forward == "sign"


def sign(x: torch.Tensor) -> torch.Tensor:
    """Forward of every binarizer: +1 where x >= 0, else -1 (no zeros)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def _ste_grad(x: torch.Tensor) -> torch.Tensor:
    """Clipped straight-through estimator: surrogate'(x) = 1{|x| <= 1}."""
    return x.abs() <= 1


def _approx_grad(x: torch.Tensor) -> torch.Tensor:
    """Bi-Real: surrogate'(x) = max(0, 2 - 2|x|), the derivative of 2x + x|x| on [-1, 1]."""
    return (2.0 - 2.0 * x.abs()).clamp_min(0.0)


# Forward ``sign(x)``; backward ``dL/dx = dL/dy * surrogate'(x)``. Static methods only, so that
# torch.compile traces them into one graph (it cannot trace classmethod autograd Functions).
class _SteSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * _ste_grad(x).to(grad.dtype)


class _ApproxSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * _approx_grad(x).to(grad.dtype)


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


_REGISTRY: dict[str, tuple[Binarizer, BinarizerProperties]] = {
    "ste_sign": (ste_sign, BinarizerProperties(gradient="clipped STE: 1{|x| <= 1}")),
    "approx_sign": (approx_sign, BinarizerProperties(gradient="Bi-Real: max(0, 2 - 2|x|)")),
    "scaled_sign": (
        scaled_sign,
        BinarizerProperties(scale="mean_abs_per_output", gradient="alpha * 1{|W| <= 1}"),
    ),
}

#: Names valid as activation binarizers and as weight binarizers.
INPUT_BINARIZERS = ("ste_sign", "approx_sign")
WEIGHT_BINARIZERS = ("ste_sign", "scaled_sign")


def register_binarizer(
    name: str, fn: Binarizer, properties: BinarizerProperties | None = None
) -> Binarizer:
    """Add a binarizer under ``name`` so layers can refer to it as a string.

    ``properties`` default to a 1-bit sign with no scale; declare them truthfully, since the
    cost model and the engine act on them.
    """
    _REGISTRY[name] = (fn, properties or BinarizerProperties())
    return fn


def get_binarizer(spec: str | Binarizer | None) -> Binarizer | None:
    """Resolve a binarizer given by name, as a callable, or ``None`` (full precision)."""
    if spec is None or callable(spec):
        return spec
    if spec not in _REGISTRY:
        raise DwrError(f"unknown binarizer {spec!r}; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[spec][0]


def binarizer_name(fn: Binarizer | None) -> str | None:
    """The registered name of a binarizer (None for full precision or an unregistered one)."""
    for name, (registered, _) in _REGISTRY.items():
        if registered is fn:
            return name
    return None


def binarizer_properties(fn: Binarizer | None) -> BinarizerProperties | None:
    """The declared properties of a binarizer: its registration's, else a
    ``binarizer_properties`` attribute on the callable, else ``None`` (unknown)."""
    for registered, properties in _REGISTRY.values():
        if registered is fn:
            return properties
    declared = getattr(fn, "binarizer_properties", None)
    return declared if isinstance(declared, BinarizerProperties) else None


def describe_binarizer(fn: Binarizer | None) -> str:
    """A name for messages: the registered name, else the callable's qualified name."""
    return binarizer_name(fn) or getattr(fn, "__qualname__", None) or repr(fn)


def sign_scale(fn: Binarizer, side: str) -> str:
    """The scale kind of ``fn`` as a conv's ``side`` (``"input"`` or ``"weight"``) binarizer
    when it is a 1-bit sign that XNOR/popcount (and a ``Sign`` graph) can compute, an input
    unscaled; else :class:`DwrError` naming it."""
    scales = ("none",) if side == "input" else SCALES
    props = binarizer_properties(fn)
    if props is None or not props.is_sign or props.scale not in scales:
        found = "no declared properties" if props is None else str(props)
        raise DwrError(
            f"{side} binarizer {describe_binarizer(fn)} ({found}); 1-bit sign binarizers "
            f"with scale {' or '.join(scales)} are supported (declare them with "
            "register_binarizer(name, fn, BinarizerProperties(...)))"
        )
    return props.scale
