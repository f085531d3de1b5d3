"""Naive depth-width reshaping: shallower and wider at about the same BOPs.

With factor ``s`` every stage's depth becomes ``max(1, round(d / s))`` and every width
``round(w * sqrt(s))`` (halves round up). A stage's BOPs scale like ``d * w^2`` (about constant)
and its activations like ``d * w`` (about ``1 / sqrt(s)``). The stem width is kept, as are the
strides, so a VGG "stage" (a run of convs between poolings) keeps its pooling.
"""

from __future__ import annotations

import math

from dwr.backbones.spec import MAX_WIDTH, BackboneSpec
from dwr.errors import DwrError


def round_half_up(x: float) -> int:
    """``round`` with halves going up (Python's ``round`` goes to even)."""
    return int(math.floor(x + 0.5))


def positive_number(value: object, what: str = "factor", expected: str = "a number") -> float:
    """``value`` as a finite float > 0, else a :class:`DwrError` naming ``what``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DwrError(f"{what} must be {expected}, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise DwrError(f"{what} must be a positive number, got {number:g}")
    return number


def round_to_multiple(width: float, multiple: int = 1) -> int:
    """``width`` rounded (halves up) to a multiple of ``multiple``, at least one multiple."""
    return max(multiple, multiple * round_half_up(width / multiple))


def check_multiple(multiple: object) -> int:
    """A width multiple as an int >= 1, else a :class:`DwrError`."""
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise DwrError(f"width multiple must be a whole number >= 1, got {multiple!r}")
    return multiple


def scale_widths(spec: BackboneSpec, scale: float, name: str | None = None) -> BackboneSpec:
    """Every stage width times ``scale`` (halves up, at least 1); depths and stem unchanged."""
    scale = positive_number(scale, "width scale")
    widths = tuple(max(1, round_half_up(w * scale)) for w in spec.widths)
    if max(widths) > MAX_WIDTH:
        raise DwrError(
            f"width scale {scale:g} gives widths {list(widths)} above {MAX_WIDTH}; "
            "that would not fit in memory"
        )
    return spec.replace(widths=widths, name=spec.name if name is None else name)


def naive_reshape(spec: BackboneSpec, factor: float, width_multiple: int = 1) -> BackboneSpec:
    """Depths ``max(1, round(d / s))``, widths ``round(w * sqrt(s))`` (to a multiple of
    ``width_multiple``, e.g. 64 for whole packed words); a new spec, same stem.

    Raises :class:`DwrError` for ``factor <= 0`` or widths beyond ``MAX_WIDTH``.
    """
    s = positive_number(factor)
    m = check_multiple(width_multiple)
    depths = tuple(max(1, round_half_up(d / s)) for d in spec.depths)
    widths = tuple(round_to_multiple(w * math.sqrt(s), m) for w in spec.widths)
    if max(widths) > MAX_WIDTH:
        raise DwrError(
            f"reshaping factor {factor:g} is absurd: widths {list(widths)} exceed {MAX_WIDTH} "
            "channels and would not fit in memory"
        )
    base = spec.name or spec.family
    suffix = f"_m{m}" if m > 1 else ""
    return spec.replace(depths=depths, widths=widths, name=f"{base}_naive{s:g}{suffix}")
