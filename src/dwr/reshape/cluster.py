"""Channel clustering with DBSCAN (cosine distance) and the eps search that meets a budget.

A stage's new width is the number of DBSCAN clusters plus noise points among its channel
vectors, under cosine distance ``d(u, v) = 1 - u.v / (|u| |v|)`` (in [0, 2]).

With ``min_samples <= 2`` (the default, 2) a point is core as soon as it has one neighbour
within ``eps``, so clusters are the connected components (size >= 2) of the graph
``d(u, v) <= eps`` and noise points are its isolated vertices: the width is the number of
components, which is non-increasing in ``eps`` (the graph only gains edges).

The width is non-increasing in ``eps`` for any ``min_samples`` too. Clusters are the
components of the core points' eps-graph (border points join one of them and add nothing);
noise points are the rest. As eps grows the core set only grows and edges are only added:
components merge (-1 each); a border point turning core joins the component of the core that
made it a border point (still within eps); a noise point turning core replaces one noise point
by at most one new component; a noise point turning border disappears (-1). So
``width = components + noise`` never grows. Cost is non-decreasing in every width, so
cost(eps) is non-increasing and a bisection over eps finds where it crosses the budget.

**One eps, or one per stage.** Channel vectors have ``H*W`` entries, so a stage at 8x8 compares
64 numbers and one at 32x32 compares 1,024; the mean maps of low-resolution stages sit much
closer under cosine distance, and one eps for every stage then prunes the last stages hardest
whatever their redundancy. ``eps_scale="stage"`` measures eps in each stage's own unit: stage
``i`` clusters at ``eps * m_i``, where ``m_i`` is the median over its channels of the distance
to the ``k``-th nearest other channel, ``k = max(1, min_samples - 1)`` (the DBSCAN k-distance
that decides who is core). ``eps = 1`` then makes about half of every stage's channels core,
and stages whose channels crowd together lose more. Every ``eps_i`` grows with ``eps``, so the
widths stay non-increasing in it and the same bisection applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import DBSCAN
from sklearn.metrics.pairwise import cosine_distances

from dwr.errors import DwrError
from dwr.limits import check_eps

EPS_MIN = 1e-9
EPS_MAX = 2.0  # the largest cosine distance: every channel in one cluster


@dataclass(frozen=True)
class ChannelDistances:
    """One stage's pairwise cosine distances ``[C, C]``, computed once and reused: pass these
    instead of the features to every function here (prune needs them for the eps scales and
    again for each eps the bisection tries)."""

    matrix: np.ndarray


Features = torch.Tensor | np.ndarray | ChannelDistances


def channel_distances(features: Sequence[Features]) -> list[ChannelDistances]:
    """Every stage's :class:`ChannelDistances` (those already given are kept)."""
    return [ChannelDistances(_distances(f)) for f in features]


def _distances(features: Features) -> np.ndarray:
    if isinstance(features, ChannelDistances):
        return features.matrix
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else features
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DwrError(f"channel features must be a non-empty [C, D] array, got {x.shape}")
    if not np.isfinite(x).all():
        raise DwrError("channel features are not finite (NaN/inf): has the network diverged?")
    return np.clip(cosine_distances(x), 0.0, 2.0)


def _width(dist: np.ndarray, eps: float, min_samples: int) -> int:
    labels = (
        DBSCAN(eps=max(eps, EPS_MIN), min_samples=min_samples, metric="precomputed")
        .fit(dist)
        .labels_
    )
    clusters = len(set(labels[labels >= 0].tolist()))
    noise = int((labels < 0).sum())
    return clusters + noise


def k_distance_scale(dist: np.ndarray, min_samples: int) -> float:
    """Median distance from a channel to its ``k``-th nearest other channel,
    ``k = max(1, min_samples - 1)``: one stage's unit of eps (at least :data:`EPS_MIN`)."""
    if dist.shape[0] < 2:
        return 1.0
    k = min(max(1, int(min_samples) - 1), dist.shape[0] - 1)
    return max(float(np.median(np.sort(dist, axis=1)[:, k])), EPS_MIN)


def eps_scales(features: Sequence[Features], eps_scale: str, min_samples: int) -> list[float]:
    """Each stage's eps multiplier: 1 for ``"global"``, its :func:`k_distance_scale` for
    ``"stage"``."""
    check_eps(None, eps_scale)
    if eps_scale == "global":
        return [1.0] * len(features)
    return [k_distance_scale(_distances(f), min_samples) for f in features]


def cluster_width(features: Features, eps: float, min_samples: int = 2) -> int:
    """Clusters + noise points of DBSCAN(eps, cosine) over the rows of ``features`` [C, D]."""
    return _width(_distances(features), eps, min_samples)


def widths_for_eps(
    features: Sequence[Features],
    eps: float,
    min_samples: int = 2,
    scales: Sequence[float] | None = None,
) -> list[int]:
    """The width of every stage at one ``eps`` (stage ``i`` at ``eps * scales[i]``)."""
    scales = scales or [1.0] * len(features)
    return [cluster_width(f, eps * m, min_samples) for f, m in zip(features, scales, strict=True)]


@dataclass
class EpsSearch:
    """Result of :func:`search_eps`: the chosen eps, its widths and cost, and the bracket."""

    eps: float
    widths: list[int]
    cost: float
    budget: float
    within: bool  # |cost - budget| <= tol * budget
    bracket: list[dict]  # the two eps (cost above / below budget) bisection ended with


def search_eps(
    features: Sequence[Features],
    cost_fn: Callable[[list[int]], float],
    budget: float,
    tol: float = 0.03,
    min_samples: int = 2,
    iters: int = 50,
    scales: Sequence[float] | None = None,
) -> EpsSearch:
    """Bisect eps so that ``cost_fn(widths_for_eps(eps))`` is as close to ``budget`` as it gets
    (stage ``i`` clustered at ``eps * scales[i]``).

    Returns the closest result, ``within`` telling whether it lands within ``tol``; DBSCAN
    widths are a step function of eps, so a step may jump over the window. Raises
    :class:`DwrError` when no eps can reach the budget: even the unclustered widths cost
    less (the pre-trained network is too narrow), or one channel per stage costs more.
    """
    if budget <= 0:
        raise DwrError(f"budget must be positive, got {budget}")
    dists = [_distances(f) for f in features]
    scales = list(scales or [1.0] * len(dists))
    cache: dict[float, tuple[list[int], float]] = {}

    def at(eps: float) -> tuple[list[int], float]:
        if eps not in cache:
            widths = [_width(d, eps * m, min_samples) for d, m in zip(dists, scales, strict=True)]
            cache[eps] = (widths, float(cost_fn(widths)))
        return cache[eps]

    # cost(lo) is the largest, cost(hi) the smallest: every stage at eps 2 or more
    lo, hi = EPS_MIN / max(scales), EPS_MAX / min(scales)
    widest, top = at(lo)
    if top < budget * (1 - tol):
        raise DwrError(
            f"no eps reaches the budget {budget:.4g}: even unpruned widths {widest} cost only "
            f"{top:.4g}; the pre-trained network is too narrow, use a larger reshaping factor "
            "or wider pre-training (--overparam)"
        )
    narrowest, bottom = at(hi)
    if bottom > budget * (1 + tol):
        raise DwrError(
            f"no eps reaches the budget {budget:.4g}: even one cluster per stage costs "
            f"{bottom:.4g}; the budget is below what these depths allow"
        )
    if top < budget:  # already inside the window from below: keep every channel
        return EpsSearch(lo, widest, top, budget, True, [])
    for _ in range(iters):  # invariant: cost(lo) >= budget > cost(hi)
        mid = (lo + hi) / 2
        if at(mid)[1] >= budget:
            lo = mid
        else:
            hi = mid
        step = sum(abs(a - b) for a, b in zip(at(lo)[0], at(hi)[0], strict=True))
        if step <= 1 or hi - lo < 1e-12:  # one channel apart: nothing left between them
            break
    best = min((lo, hi), key=lambda e: abs(at(e)[1] - budget))
    widths, cost = at(best)
    bracket = [{"eps": e, "widths": at(e)[0], "cost": at(e)[1]} for e in (lo, hi)]
    return EpsSearch(best, widths, cost, budget, abs(cost - budget) <= tol * budget, bracket)
