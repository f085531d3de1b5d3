"""Pruning by clustering: the DWR step from an over-parameterised BNN to a budgeted one.

1. Run sample images, take each stage's mean channel maps (:mod:`dwr.reshape.features`):
   of the stage outputs (``tensor="stage"``) or of each stage's last binary conv before BN
   (``"conv"``, as the DWR authors).
2. DBSCAN (cosine, ``min_samples``) per stage; width = clusters + noise
   (:mod:`dwr.reshape.cluster`).
3. ``eps_scale``: one eps for every stage (``"global"``, the authors'), or each stage's eps
   in units of its own k-distance (``"stage"``; :mod:`dwr.reshape.cluster` says why).
4. ``eps=None``: bisect eps so the network's cost lands within +-3% of the budget. DBSCAN
   widths are a step function of eps; when the step jumps over the +-3% window, take the
   bracket's over-budget widths (the *raw* clustering widths) and scale every stage by one
   factor ``k < 1`` (bisection, :func:`dwr.reshape.budget.find_width_scale`) into the window.
   Widths then never exceed the pre-trained network's.
5. A fixed ``eps`` (the authors set it by hand): the raw widths at that eps give each stage's
   share (its redundancy), and one factor ``k`` (below or above 1) scales them to the budget.
   Either way the result is within +-3% of the budget.

The result is a spec (depths, strides and stem of the pre-trained network, new widths); the
pruned network is trained from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dwr.backbones.spec import BackboneSpec
from dwr.errors import DwrError
from dwr.limits import check_eps
from dwr.reshape.budget import (
    TOLERANCE,
    check_metric,
    find_width_scale,
    metric_value,
    spec_cost,
)
from dwr.reshape.cluster import channel_distances, eps_scales, search_eps, widths_for_eps
from dwr.reshape.features import stage_features

MIN_SAMPLES_IMAGES = 8
_SAME = ("family", "strides", "stem", "stem_width", "block_convs", "shortcut", "method")


@dataclass
class PruneResult:
    """The pruned spec, the eps found, raw clustering widths, and costs."""

    spec: BackboneSpec
    eps: float
    raw_widths: list[int]
    width_scale: float  # 1.0 when the clustering widths already met the budget
    budget: float
    metric: str
    cost: dict[str, Any]  # totals of the pruned spec (count_cost)
    raw_cost: float  # metric value of the raw clustering widths
    from_widths: list[int] = field(default_factory=list)
    bracket: list[dict] = field(default_factory=list)
    eps_scales: list[float] = field(default_factory=list)  # stage i clustered at eps * [i]

    def with_name(self, name: str) -> PruneResult:
        self.spec = self.spec.replace(name=name)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "widths": list(self.spec.widths),
            "depths": list(self.spec.depths),
            "raw_widths": list(self.raw_widths),
            "from_widths": list(self.from_widths),
            "width_scale": self.width_scale,
            "budget": self.budget,
            "budget_metric": self.metric,
            "raw_cost": self.raw_cost,
            "cost": dict(self.cost),
            "bracket": self.bracket,
            "eps_scales": list(self.eps_scales),
            "spec": self.spec.to_dict(),
        }


def check_reshaped(spec: BackboneSpec, family: BackboneSpec) -> None:
    """Raise :class:`DwrError` unless ``spec`` is a depth/width reshaping of ``family``."""
    diffs = [k for k in _SAME if getattr(spec, k) != getattr(family, k)]
    if diffs:
        detail = ", ".join(f"{k} {getattr(spec, k)!r} vs {getattr(family, k)!r}" for k in diffs)
        raise DwrError(
            f"the checkpoint ({spec.name or spec.family}) is not a reshaped "
            f"{family.name or family.family}: {detail}"
        )


def prune(
    model: nn.Module,
    images: torch.Tensor,
    budget: float,
    metric: str = "bops",
    *,
    tol: float = TOLERANCE,
    min_samples: int = 2,
    eps: float | None = None,
    tensor: str = "stage",
    batch_size: int = 64,
    name: str | None = None,
    width_multiple: int = 1,
    eps_scale: str = "global",
) -> PruneResult:
    """Cluster ``model``'s stage channels on ``images`` and pick widths that meet ``budget``
    (with ``width_multiple`` K > 1, scaled to the budget in multiples of K).

    ``model`` is a trained :class:`~dwr.backbones.model.Backbone`; costs are counted for one
    image of ``images``' size. ``eps=None`` bisects eps to the budget; a number clusters at
    that eps and scales the widths to the budget. ``eps_scale="stage"`` clusters stage ``i``
    at ``eps * m_i``, ``m_i`` its channels' median k-distance
    (:func:`dwr.reshape.cluster.eps_scales`). Raises :class:`DwrError` for too few
    images, a bad ``eps``/``min_samples`` or a budget no eps reaches.
    """
    check_metric(metric)
    spec: BackboneSpec | None = getattr(model, "spec", None)
    if spec is None:
        raise DwrError("pruning needs a dwr Backbone (a model that carries its spec)")
    if images.ndim != 4:
        raise DwrError(f"sample images must be [N, C, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] < MIN_SAMPLES_IMAGES:
        raise DwrError(
            f"clustering needs at least {MIN_SAMPLES_IMAGES} sample images, got {images.shape[0]}"
        )
    if int(min_samples) != min_samples or min_samples < 1:
        raise DwrError(f"min_samples must be a positive integer, got {min_samples}")
    check_eps(eps, eps_scale)
    input_size = tuple(int(v) for v in images.shape[1:])
    feats = channel_distances(stage_features(model, images, batch_size, tensor=tensor))
    scales = eps_scales(feats, eps_scale, min_samples)
    base = (spec.name or spec.family).removesuffix("_pretrain")
    if eps is not None:
        return _prune_at_eps(
            spec, feats, budget, metric, input_size, tol, min_samples, eps, width_multiple, scales
        ).with_name(name or f"{base}_pruned")

    def cost_of(widths: list[int]) -> float:
        return metric_value(spec.replace(widths=tuple(widths)), metric, input_size)

    found = search_eps(feats, cost_of, budget, tol=tol, min_samples=min_samples, scales=scales)
    raw = spec.replace(widths=tuple(found.widths))
    scale = 1.0
    final = raw
    raw_widths, raw_cost = list(found.widths), found.cost
    if not found.within:
        over = found.bracket[0]  # cost >= budget: widths to shrink uniformly
        raw_widths, raw_cost = list(over["widths"]), float(over["cost"])
    if not found.within or width_multiple > 1:
        scale, final = find_width_scale(
            spec.replace(widths=tuple(raw_widths)), budget, metric, input_size, tol, width_multiple
        )
    final = final.replace(name=name or f"{base}_pruned")
    return PruneResult(
        spec=final,
        eps=float(found.eps if found.within else found.bracket[0]["eps"]),
        raw_widths=raw_widths,
        width_scale=float(scale),
        budget=float(budget),
        metric=metric,
        cost=spec_cost(final, input_size).totals(),
        raw_cost=float(raw_cost),
        from_widths=list(spec.widths),
        bracket=found.bracket,
        eps_scales=scales,
    )


def _prune_at_eps(
    spec: BackboneSpec,
    feats: list,
    budget: float,
    metric: str,
    input_size: tuple[int, ...],
    tol: float,
    min_samples: int,
    eps: float,
    width_multiple: int = 1,
    scales: list[float] | None = None,
) -> PruneResult:
    """Widths in proportion to the clustering widths at ``eps``, scaled to the budget."""
    raw_widths = widths_for_eps(feats, eps, min_samples, scales)
    raw = spec.replace(widths=tuple(raw_widths))
    scale, final = find_width_scale(raw, budget, metric, input_size, tol, width_multiple)
    return PruneResult(
        spec=final,
        eps=float(eps),
        raw_widths=list(raw_widths),
        width_scale=float(scale),
        budget=float(budget),
        metric=metric,
        cost=spec_cost(final, input_size).totals(),
        raw_cost=metric_value(raw, metric, input_size),
        from_widths=list(spec.widths),
        eps_scales=list(scales or []),
    )
