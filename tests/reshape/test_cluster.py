import numpy as np
import pytest
import torch

from dwr import DwrError
from dwr.reshape import cluster_width, search_eps, widths_for_eps


def clustered(sizes, dim=24, spread=0.01, seed=0):
    """Channels around ``len(sizes)`` orthogonal-ish directions: known clusters."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][: len(sizes)] + 0.5  # positive mean
    rows = [
        c + spread * rng.normal(size=dim)
        for c, n in zip(centres, sizes, strict=True)
        for _ in range(n)
    ]
    return torch.tensor(np.stack(rows)[rng.permutation(sum(sizes))])


def test_width_counts_clusters_and_noise():
    f = clustered([3, 5, 2, 6])
    assert cluster_width(f, 0.05) == 4
    assert cluster_width(f, 1e-9) == 16  # every channel on its own (all noise)
    assert cluster_width(f, 2.0) == 1
    # a lone channel far from everything is a noise point and counts once
    g = torch.cat([f, -f[:1] * 3])
    assert cluster_width(g, 0.05) == 5
    # scaling a channel does not move it (cosine distance)
    assert cluster_width(torch.cat([f, f[:4] * 7.0]), 0.05) == 4


@pytest.mark.parametrize("min_samples", [2, 3, 5, 8])
def test_width_is_non_increasing_in_eps(min_samples):
    """For every min_samples (see the proof in dwr.reshape.cluster), on random and on
    clustered channels, over a fine eps grid."""
    g = torch.Generator().manual_seed(min_samples)
    for f in (torch.randn(40, 16, generator=g), clustered([2, 3, 4, 6, 1, 9], spread=0.3)):
        widths = [cluster_width(f, e, min_samples) for e in np.geomspace(1e-3, 2.0, 150)]
        assert all(a >= b for a, b in zip(widths[:-1], widths[1:], strict=True))
        assert widths[0] > widths[-1]


def test_search_eps_brackets_the_budget_with_min_samples_5():
    f = [clustered([3, 5, 2, 6, 7, 1], spread=0.2, seed=s) for s in range(3)]
    cost = lambda w: float(sum(x * x for x in w))  # noqa: E731
    budget = 0.5 * cost([24, 24, 24])
    found = search_eps(f, cost, budget, min_samples=5)
    if found.bracket:  # bisection ended on two neighbouring eps around the budget
        above, below = found.bracket
        assert above["eps"] < below["eps"] and above["cost"] >= budget > below["cost"]
        assert found.cost == min(above["cost"], below["cost"], key=lambda c: abs(c - budget))
    assert found.within == (abs(found.cost - budget) <= 0.03 * budget)


def test_search_eps_finds_the_known_clusters():
    feats = [clustered([4, 4, 4, 4], seed=1), clustered([2, 3, 5, 1, 6, 3, 4], seed=2)]
    cost = lambda w: float(sum(w))  # noqa: E731
    found = search_eps(feats, cost, budget=11.0)  # 4 + 7 clusters
    assert found.within and found.widths == [4, 7] and found.cost == 11.0
    assert widths_for_eps(feats, found.eps) == [4, 7]


def test_search_eps_quadratic_cost_meets_tolerance():
    feats = [torch.randn(30, 64), torch.randn(60, 16)]
    cost = lambda w: float(w[0] * 9 * w[1] + w[1] ** 2)  # noqa: E731
    budget = cost([20, 30])
    found = search_eps(feats, cost, budget)
    # either within 3%, or the two bracketing eps straddle the budget (a step)
    lo, hi = found.bracket
    assert found.within or (lo["cost"] >= budget > hi["cost"])
    assert found.within == (abs(found.cost / budget - 1) <= 0.03)


def test_budget_no_eps_reaches():
    feats = [clustered([3, 3]), clustered([2, 2])]
    with pytest.raises(DwrError, match="too narrow.*larger reshaping factor"):
        search_eps(feats, lambda w: float(sum(w)), budget=100.0)
    with pytest.raises(DwrError, match="one cluster per stage"):
        search_eps(feats, lambda w: float(sum(w)), budget=0.5)


def test_bad_features():
    with pytest.raises(DwrError, match="non-empty"):
        cluster_width(torch.zeros(0, 4), 0.1)
    with pytest.raises(DwrError, match="not finite"):
        cluster_width(torch.tensor([[1.0, float("nan")], [1.0, 2.0]]), 0.1)


# -- eps per stage (eps_scale="stage") ----------------------------------------------------------
def test_k_distance_scale_is_the_median_kth_neighbour_distance():
    from dwr.reshape.cluster import _distances, k_distance_scale

    f = clustered([4, 4, 4], spread=0.01)
    d = _distances(f)
    kth = np.sort(d, axis=1)[:, 1]  # nearest other channel (min_samples 2)
    assert k_distance_scale(d, 2) == pytest.approx(float(np.median(kth)))
    assert k_distance_scale(d, 5) > k_distance_scale(d, 2)  # 4th neighbour is across clusters
    assert k_distance_scale(_distances(f[:1]), 2) == 1.0  # one channel: nothing to scale


def test_stage_scale_prunes_alike_stages_alike_whatever_their_distance_unit():
    """Two stages with the same cluster structure, one 30x tighter in cosine distance: one eps
    merges the tight stage long before the loose one; eps in each stage's unit treats them
    the same, and the bisection over it still meets the budget."""
    from dwr.reshape.cluster import eps_scales

    loose = clustered([4, 4, 4, 4], spread=0.05, seed=1)
    centre = loose.mean(0, keepdim=True)
    tight = centre + (loose - centre) * 0.1  # same directions' structure, far smaller angles
    feats = [tight, loose]
    same = widths_for_eps(feats, 0.01)
    assert same[0] < same[1]  # one eps: the tight stage collapses first
    scales = eps_scales(feats, "stage", 2)
    assert scales[0] < scales[1]
    for t in (0.5, 1.0, 2.0, 5.0):
        a, b = widths_for_eps(feats, t, 2, scales)
        assert abs(a - b) <= 2
    found = search_eps(feats, lambda w: float(sum(w)), budget=16.0, scales=scales)
    assert found.within and abs(found.widths[0] - found.widths[1]) <= 2
    widths = [sum(widths_for_eps(feats, t, 5, eps_scales(feats, "stage", 5)))
              for t in np.geomspace(0.01, 500, 80)]  # fmt: skip
    assert all(x >= y for x, y in zip(widths[:-1], widths[1:], strict=True))


def test_eps_ranges_depend_on_the_scale():
    from dwr.limits import check_eps

    check_eps(None, "stage")
    check_eps(2.0, "global")
    check_eps(40.0, "stage")
    with pytest.raises(DwrError, match=r"\(0, 2\] \(a cosine distance\)"):
        check_eps(3.0, "global")
    with pytest.raises(DwrError, match="eps scale must be one of global, stage"):
        check_eps(None, "pixel")


def test_precomputed_distances_give_the_same_clustering():
    """prune computes each stage's distances once (``channel_distances``) and passes them to
    the eps scales and every step of the bisection; nothing may change with them."""
    from dwr.reshape.cluster import ChannelDistances, channel_distances, eps_scales

    feats = [clustered([3, 5, 2], seed=2), clustered([6, 6], spread=0.05, seed=3)]
    dists = channel_distances(feats)
    assert all(isinstance(d, ChannelDistances) and d.matrix.shape == (len(f), len(f))
               for d, f in zip(dists, feats, strict=True))  # fmt: skip
    assert channel_distances(dists)[0].matrix is dists[0].matrix  # not recomputed
    for scale in ("global", "stage"):
        scales = eps_scales(feats, scale, 5)
        assert eps_scales(dists, scale, 5) == scales
        assert widths_for_eps(dists, 0.3, 5, scales) == widths_for_eps(feats, 0.3, 5, scales)
        a = search_eps(feats, lambda w: float(sum(w)), 7.0, min_samples=5, scales=scales)
        b = search_eps(dists, lambda w: float(sum(w)), 7.0, min_samples=5, scales=scales)
        assert (a.eps, a.widths, a.bracket) == (b.eps, b.widths, b.bracket)
