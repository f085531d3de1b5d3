"""Budgets: which cost a reshaped network must match, and uniform width scaling to meet it.

A budget is a value of one metric, ``bops`` or ``ops`` (OPs = FLOPs + BOPs / 64), per image of
a given input size; ``"original"`` means the original backbone's value. A network *meets* a
budget ``B`` when its cost ``c`` has ``|c - B| <= tol * B`` (``tol`` = 3%).

:func:`scale_to_budget` multiplies every stage width by one factor ``k`` (halves up) and
bisects ``k``: each width is non-decreasing in ``k`` and BOPs/OPs are non-decreasing in every
width, so cost(k) is a non-decreasing step function.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from dwr.backbones.model import build
from dwr.backbones.spec import MAX_WIDTH, BackboneSpec
from dwr.cost import CostReport, count_cost
from dwr.errors import DwrError
from dwr.reshape.naive import positive_number, round_half_up

METRICS = ("bops", "ops")
TOLERANCE = 0.03


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise DwrError(f"unknown budget metric {metric!r}; choose one of {list(METRICS)}")
    return metric


@lru_cache(maxsize=4096)
def _cost(spec_json: str, input_size: tuple[int, int, int]) -> CostReport:
    spec = BackboneSpec.from_json(spec_json)
    spec.output_size(input_size[1], input_size[2])
    with torch.device("meta"):  # shapes only: no memory, no weight init
        return count_cost(build(spec), input_size)


def spec_cost(spec: BackboneSpec, input_size: tuple[int, int, int] | None = None) -> CostReport:
    """:func:`count_cost` of a spec (cached, computed on the meta device)."""
    return _cost(spec.to_json(), tuple(input_size or spec.input_size))


def metric_value(
    spec: BackboneSpec, metric: str, input_size: tuple[int, int, int] | None = None
) -> float:
    """The spec's cost in ``metric`` per image."""
    return float(getattr(spec_cost(spec, input_size), check_metric(metric)))


def resolve_budget(
    budget: str | float | None,
    metric: str,
    original: BackboneSpec,
    input_size: tuple[int, int, int] | None = None,
) -> float:
    """A budget value: ``None``/``"original"`` is the original's cost, else a positive number."""
    check_metric(metric)
    if budget is None or (isinstance(budget, str) and budget.strip().lower() == "original"):
        return metric_value(original, metric, input_size)
    return positive_number(budget, "budget", expected="'original' or a number")


def within(cost: float, budget: float, tol: float = TOLERANCE) -> bool:
    return abs(cost - budget) <= tol * budget


def _scaled(spec: BackboneSpec, k: float) -> BackboneSpec:
    return spec.replace(widths=tuple(max(1, round_half_up(w * k)) for w in spec.widths))


def find_width_scale(
    spec: BackboneSpec,
    budget: float,
    metric: str = "bops",
    input_size: tuple[int, int, int] | None = None,
    tol: float = TOLERANCE,
) -> tuple[float, BackboneSpec]:
    """The factor ``k`` and the spec :func:`scale_to_budget` returns (see there)."""
    check_metric(metric)
    if budget <= 0:
        raise DwrError(f"budget must be positive, got {budget}")

    def cost(k: float) -> float:
        return metric_value(_scaled(spec, k), metric, input_size)

    lo, hi = 0.0, 1.0
    while cost(hi) < budget:
        if max(spec.widths) * hi * 2 > MAX_WIDTH:
            raise DwrError(
                f"a {metric} budget of {budget:.4g} needs widths above {MAX_WIDTH} "
                f"for depths {list(spec.depths)}"
            )
        lo, hi = hi, hi * 2
    for _ in range(60):  # cost(lo) < budget <= cost(hi)
        mid = (lo + hi) / 2
        if cost(mid) < budget:
            lo = mid
        else:
            hi = mid
        step = sum(
            abs(a - b)
            for a, b in zip(_scaled(spec, hi).widths, _scaled(spec, lo).widths, strict=True)
        )
        if step <= 1 or hi - lo < 1e-9:  # one channel apart: nothing left between them
            break
    best = min((lo, hi), key=lambda k: abs(cost(k) - budget))
    if not within(cost(best), budget, tol):
        raise DwrError(
            f"no uniform width scaling of depths {list(spec.depths)} lands within "
            f"{tol:.0%} of the {metric} budget {budget:.4g} (closest {cost(best):.4g})"
        )
    return best, _scaled(spec, best)


def scale_to_budget(
    spec: BackboneSpec,
    budget: float,
    metric: str = "bops",
    input_size: tuple[int, int, int] | None = None,
    tol: float = TOLERANCE,
) -> BackboneSpec:
    """``spec`` with all stage widths scaled by one factor so its cost is within ``tol``.

    Widths ``max(1, round(w * k))``; bisection over ``k`` (cost non-decreasing in ``k``)
    keeps the closer of the two bracketing width sets. Raises :class:`DwrError` if no factor
    lands within ``tol`` (a budget below the 1-channel network, beyond ``MAX_WIDTH``, or
    inside one integer step). Depths, stem and name are kept.
    """
    return find_width_scale(spec, budget, metric, input_size, tol)[1]
