"""Budgets: which cost a reshaped network must match, and uniform width scaling to meet it.

A budget is a value of one metric, ``bops``, ``ops`` (OPs = FLOPs + BOPs / 64) or ``latency``
(the engine's predicted ms, batch 1, 1 thread, from the ``dwr profile`` table:
:mod:`dwr.cost.latency`; nothing is compiled or timed), per image of a given input size;
``"original"`` means the original backbone's value. A network *meets* a
budget ``B`` when its cost ``c`` has ``|c - B| <= tol * B`` (``tol`` = 3%).

:func:`scale_to_budget` multiplies every stage width by one factor ``k`` (halves up) and
bisects ``k``: each width is non-decreasing in ``k`` and BOPs/OPs are non-decreasing in every
width, so cost(k) is a non-decreasing step function (predicted latency nearly so). With a width
multiple ``K`` every width is rounded to a multiple of ``K`` (64: whole packed words).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from dwr.backbones.model import build
from dwr.backbones.spec import MAX_WIDTH, BackboneSpec
from dwr.cost import CostReport, count_cost
from dwr.errors import DwrError
from dwr.reshape.naive import check_multiple, positive_number, round_to_multiple

METRICS = ("bops", "ops", "latency")
#: Threads of the ``latency`` metric's engine (the issue's "1 thread, batch 1").
LATENCY_THREADS = 1
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
    """The spec's cost in ``metric`` per image (``latency``: predicted engine ms)."""
    if check_metric(metric) == "latency":
        from dwr.cost.latency import predict_ms

        return predict_ms(spec, input_size, LATENCY_THREADS)
    return float(getattr(spec_cost(spec, input_size), metric))


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


def _scaled(spec: BackboneSpec, k: float, multiple: int = 1) -> BackboneSpec:
    return spec.replace(widths=tuple(round_to_multiple(w * k, multiple) for w in spec.widths))


def find_width_scale(
    spec: BackboneSpec,
    budget: float,
    metric: str = "bops",
    input_size: tuple[int, int, int] | None = None,
    tol: float = TOLERANCE,
    width_multiple: int = 1,
) -> tuple[float, BackboneSpec]:
    """The factor ``k`` and the spec :func:`scale_to_budget` returns (see there)."""
    check_metric(metric)
    m = check_multiple(width_multiple)
    if budget <= 0:
        raise DwrError(f"budget must be positive, got {budget}")

    def cost(k: float) -> float:
        return metric_value(_scaled(spec, k, m), metric, input_size)

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
            for a, b in zip(_scaled(spec, hi, m).widths, _scaled(spec, lo, m).widths, strict=True)
        )
        if step <= m or hi - lo < 1e-9:  # one step apart: nothing left between them
            break
    if metric == "latency":  # an upper bound: the widest scaling that is not over it
        return _widest_under(spec, budget, tol, m, lo, hi, cost)
    best = min((lo, hi), key=lambda k: abs(cost(k) - budget))
    if not within(cost(best), budget, tol) and m > 1:
        raise DwrError(
            f"width multiple {m} cannot meet the {metric} budget {budget:.4g} within {tol:.0%}: "
            f"the nearest widths are {list(_scaled(spec, lo, m).widths)} ({cost(lo):.4g}) and "
            f"{list(_scaled(spec, hi, m).widths)} ({cost(hi):.4g}); use a smaller "
            "--width-multiple"
        )
    if not within(cost(best), budget, tol):
        raise DwrError(
            f"no uniform width scaling of depths {list(spec.depths)} lands within "
            f"{tol:.0%} of the {metric} budget {budget:.4g} (closest {cost(best):.4g})"
        )
    return best, _scaled(spec, best, m)


def _widest_under(spec, budget, tol, m, lo, hi, cost) -> tuple[float, BackboneSpec]:
    """Latency is a ceiling, and a step function with large steps (a width crossing a
    multiple of 64 adds a packed word), so the latency search keeps the wider bracket end
    whose predicted time is at most ``budget * (1 + tol)``."""
    for k in (hi, lo):
        if cost(k) <= budget * (1 + tol):
            return k, _scaled(spec, k, m)
    what = f"width multiple {m}" if m > 1 else "one channel per stage"
    raise DwrError(
        f"the latency budget {budget:.4g} ms is below the narrowest network ({what}: widths "
        f"{list(_scaled(spec, lo, m).widths)}, {cost(lo):.4g} ms); use a larger budget"
        + (" or a smaller --width-multiple" if m > 1 else "")
    )


def scale_to_budget(
    spec: BackboneSpec,
    budget: float,
    metric: str = "bops",
    input_size: tuple[int, int, int] | None = None,
    tol: float = TOLERANCE,
    width_multiple: int = 1,
) -> BackboneSpec:
    """``spec`` with all stage widths scaled by one factor so its cost is within ``tol``
    (``latency``: at most ``budget * (1 + tol)``, as wide as that allows).

    Widths ``max(1, round(w * k))``; bisection over ``k`` (cost non-decreasing in ``k``)
    keeps the closer of the two bracketing width sets. Raises :class:`DwrError` if no factor
    lands within ``tol`` (a budget below the 1-channel network, beyond ``MAX_WIDTH``, or
    inside one integer step, or one step of ``width_multiple``). Depths, stem and name are
    kept.
    """
    return find_width_scale(spec, budget, metric, input_size, tol, width_multiple)[1]
